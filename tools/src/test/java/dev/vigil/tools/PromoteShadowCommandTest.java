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

    private static DeviceState withOpenEpisode(DeviceState s) {
        s.episodeOpen = true;
        s.episodeStart = 4_000_000;
        s.episodeSteps = 12;
        s.episodePeak = 3f;
        s.episodeShares[0] = 2f;
        s.episodeReasons = 1;
        s.aboveRun = 12;
        return s;
    }

    /**
     * A device the shadow never saw keeps its serving state (the restore's {@code
     * vigil.model.on-change} decides), and the model that wrote it keeps a copy as the shadow's.
     * The episode the serving state had open goes with the copy, as with every serving state that
     * becomes the shadow's: the old model closes it where it opened it, under its own version.
     */
    @Test
    void shouldKeepTheServingStateOfADeviceTheShadowNeverSawAndACopyAsTheShadows() {
        DeviceState serving = withOpenEpisode(state("old", 5_000_000, false));
        serving.hidden[1] = 0.25f;

        DeviceState[] promoted = PromoteShadowCommand.promoted(serving, null);

        assertThat(promoted[0]).isSameAs(serving);
        assertThat(serving.modelVersion).isEqualTo("old");
        assertThat(serving.hidden[1]).isEqualTo(0.25f);
        assertThat(serving.episodeOpen).isFalse();
        assertThat(serving.episodeStart).isZero();
        assertThat(serving.episodeSteps).isZero();
        assertThat(serving.episodePeak).isZero();
        assertThat(serving.episodeShares).containsOnly(0f);
        assertThat(serving.episodeReasons).isZero();
        assertThat(serving.aboveRun).isZero();
        DeviceState copy = promoted[1];
        assertThat(copy).isNotSameAs(serving);
        assertThat(copy.modelVersion).isEqualTo("old");
        assertThat(copy.hidden).containsExactly(serving.hidden);
        assertThat(copy.hidden).isNotSameAs(serving.hidden);
        assertThat(copy.lastSeenMs).isEqualTo(5_000_000);
        assertThat(copy.episodeOpen).isTrue();
        assertThat(copy.episodeStart).isEqualTo(4_000_000);
        assertThat(copy.episodeSteps).isEqualTo(12);
        assertThat(copy.episodeShares[0]).isEqualTo(2f);
    }

    /**
     * Promoting twice gives a device the shadow never saw back to the old model as it was, its open
     * episode too (a rollback), and the memory the shadow's model built never leaves it.
     */
    @Test
    void shouldGiveEveryDeviceBackToItsModelWhenPromotedTwice() {
        DeviceState unseen = withOpenEpisode(state("old", 5_000_000, false));
        unseen.hidden[0] = 0.75f;

        DeviceState[] once = PromoteShadowCommand.promoted(unseen, null);
        DeviceState[] twice = PromoteShadowCommand.promoted(once[0], once[1]);

        assertThat(twice[0].modelVersion).isEqualTo("old");
        assertThat(twice[0].hidden[0]).isEqualTo(0.75f);
        assertThat(twice[0].episodeOpen).isTrue();
        assertThat(twice[0].episodeStart).isEqualTo(4_000_000);
        assertThat(twice[0].lastSeenMs).isEqualTo(5_000_000);
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
