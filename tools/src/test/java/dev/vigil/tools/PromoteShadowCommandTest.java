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

    /**
     * A device the shadow never saw keeps its serving state (the restore's {@code
     * vigil.model.on-change} decides), with its open episode, and the model that wrote it keeps a
     * copy as the shadow's, without that episode: it is open on the anomalies topic, and only the
     * serving state may go on with it or close it.
     */
    @Test
    void shouldKeepTheServingStateOfADeviceTheShadowNeverSawAndACopyAsTheShadows() {
        DeviceState serving = state("old", 5_000_000, false);
        serving.hidden[1] = 0.25f;
        serving.episodeOpen = true;
        serving.episodeStart = 4_000_000;
        serving.episodeSteps = 12;
        serving.episodePeak = 3f;
        serving.episodeShares[0] = 2f;
        serving.episodeReasons = 1;
        serving.aboveRun = 12;

        DeviceState[] promoted = PromoteShadowCommand.promoted(serving, null);

        assertThat(promoted[0]).isSameAs(serving);
        assertThat(serving.episodeOpen).isTrue();
        assertThat(serving.episodeSteps).isEqualTo(12);
        DeviceState copy = promoted[1];
        assertThat(copy).isNotSameAs(serving);
        assertThat(copy.modelVersion).isEqualTo("old");
        assertThat(copy.hidden).containsExactly(serving.hidden);
        assertThat(copy.hidden).isNotSameAs(serving.hidden);
        assertThat(copy.lastSeenMs).isEqualTo(5_000_000);
        assertThat(copy.episodeOpen).isFalse();
        assertThat(copy.episodeStart).isZero();
        assertThat(copy.episodeSteps).isZero();
        assertThat(copy.episodePeak).isZero();
        assertThat(copy.episodeShares).containsOnly(0f);
        assertThat(copy.episodeReasons).isZero();
        assertThat(copy.aboveRun).isZero();
    }

    /**
     * Promoting twice gives a device only the shadow had back to the shadow's model: the second
     * promotion finds it serving, with no shadow state (the old model never saw it), and keeps the
     * memory the shadow's model built as that model's, now the shadow again.
     */
    @Test
    void shouldGiveADeviceOnlyTheShadowHadBackToItWhenPromotedTwice() {
        DeviceState onlyShadow = state("new", 5_000_000, false);
        onlyShadow.hidden[2] = -0.5f;

        DeviceState[] once = PromoteShadowCommand.promoted(null, onlyShadow);
        assertThat(once).containsExactly(onlyShadow, null);
        DeviceState[] twice = PromoteShadowCommand.promoted(once[0], once[1]);

        assertThat(twice[1].modelVersion).isEqualTo("new");
        assertThat(twice[1].hidden).containsExactly(onlyShadow.hidden);
    }
}
