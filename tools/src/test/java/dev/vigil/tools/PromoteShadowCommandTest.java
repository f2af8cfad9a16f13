package dev.vigil.tools;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.state.DeviceState;
import org.junit.jupiter.api.Test;

class PromoteShadowCommandTest {

    private static DeviceState state(String version, long lastSeenMs, boolean silent) {
        DeviceState s = DeviceState.fresh(version, 4, 2);
        s.lastSeenMs = lastSeenMs;
        s.silenceTimerMs = lastSeenMs + 600_000;
        s.silent = silent;
        return s;
    }

    /**
     * A shadow state that stood still while the job ran without its model: its watch says the
     * device went silent long ago. Promoted, it serves with the watch the serving state kept, so
     * the restored job neither reports that device silent nor misses its real silence.
     */
    @Test
    void shouldPromoteTheShadowWithTheServingStatesSilenceWatch() {
        DeviceState serving = state("old", 5_000_000, false);
        DeviceState stale = state("new", 1_000_000, true);

        DeviceState[] promoted = PromoteShadowCommand.promoted(serving, stale);

        assertThat(promoted[0]).isSameAs(stale);
        assertThat(promoted[0].modelVersion).isEqualTo("new");
        assertThat(promoted[0].lastSeenMs).isEqualTo(5_000_000);
        assertThat(promoted[0].silenceTimerMs).isEqualTo(5_600_000);
        assertThat(promoted[0].silent).isFalse();
        assertThat(promoted[1]).isSameAs(serving);
    }

    @Test
    void shouldKeepTheServingStateOfADeviceTheShadowNeverSaw() {
        DeviceState serving = state("old", 5_000_000, false);

        assertThat(PromoteShadowCommand.promoted(serving, null)).containsExactly(serving, null);
    }
}
