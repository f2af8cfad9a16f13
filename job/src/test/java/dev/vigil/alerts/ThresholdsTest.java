package dev.vigil.alerts;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.state.DeviceState;
import org.junit.jupiter.api.Test;

class ThresholdsTest {

    private static final float BASE = 4f;

    @Test
    void shouldKeepTheCardsThresholdWhenNotAdaptive() {
        Thresholds fixed = new Thresholds(BASE, 0);
        DeviceState s = DeviceState.fresh("m", 2, 2);
        for (int i = 0; i < 1000; i++) {
            fixed.learn(s, 3f);
        }

        assertThat(s.scoreLevel).isEqualTo(1f);
        assertThat(fixed.effective(s)).isEqualTo(BASE);
    }

    @Test
    void shouldRaiseTheThresholdOfANoisyDeviceByItsScoreLevel() {
        Thresholds adaptive = new Thresholds(BASE, 10);
        DeviceState s = DeviceState.fresh("m", 2, 2);
        for (int i = 0; i < 200; i++) {
            adaptive.learn(s, 2.5f); // a device normally 2.5x the fleet's level
        }

        assertThat(s.scoreLevel).isCloseTo(2.5f, within(0.01f));
        assertThat(adaptive.effective(s)).isCloseTo(10f, within(0.05f));
    }

    @Test
    void shouldHalveTheDistanceInOneHalfLife() {
        Thresholds adaptive = new Thresholds(BASE, 10);
        DeviceState s = DeviceState.fresh("m", 2, 2);
        for (int i = 0; i < 10; i++) {
            adaptive.learn(s, 3f);
        }

        assertThat(s.scoreLevel).isCloseTo(2f, within(0.001f));
    }

    @Test
    void shouldNeverGoBelowTheCardsThreshold() {
        Thresholds adaptive = new Thresholds(BASE, 10);
        DeviceState s = DeviceState.fresh("m", 2, 2);
        for (int i = 0; i < 200; i++) {
            adaptive.learn(s, 0.1f); // a quieter device than the fleet
        }

        assertThat(adaptive.effective(s)).isEqualTo(BASE);
    }

    @Test
    void shouldNotLearnFromEpisodesOrScoresAboveTheThreshold() {
        Thresholds adaptive = new Thresholds(BASE, 10);
        DeviceState s = DeviceState.fresh("m", 2, 2);
        s.episodeOpen = true;
        adaptive.learn(s, 100f);
        assertThat(s.scoreLevel).isEqualTo(1f);

        s.episodeOpen = false;
        for (int i = 0; i < 500; i++) {
            adaptive.learn(s, 1000f); // clipped at the threshold
        }
        assertThat(s.scoreLevel).isLessThanOrEqualTo(BASE);
    }
}
