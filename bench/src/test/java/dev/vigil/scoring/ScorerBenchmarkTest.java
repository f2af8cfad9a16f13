package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.model.ModelCard;
import dev.vigil.state.DeviceState;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The benchmark's cards are the ones it names, and each invocation steps the next devices. */
class ScorerBenchmarkTest {

    @ParameterizedTest
    @ValueSource(
            strings = {
                "residual",
                "all",
                "no-level",
                "no-stuck",
                "no-variability",
                "no-correlation",
                "no-device-scale",
                "no-bins"
            })
    void shouldScoreTheFleetWithTheCardItNames(String card) throws Exception {
        ScorerBenchmark b = new ScorerBenchmark();
        b.card = card;
        b.phase = "learning";
        b.episodes = "all";
        b.devices = 300; // one full batch, then one that wraps round the fleet
        b.open(Path.of("model"));
        try {
            ModelCard c = b.bundle.card();
            boolean all = card.equals("all");
            assertThat(c.level() != null).isEqualTo(all || !card.matches("residual|no-level"));
            assertThat(c.stuck() != null).isEqualTo(all || !card.matches("residual|no-stuck"));
            assertThat(c.variability() != null)
                    .isEqualTo(all || !card.matches("residual|no-variability"));
            assertThat(c.correlation() != null)
                    .isEqualTo(all || !card.matches("residual|no-correlation"));
            assertThat(c.deviceDynamics() != null)
                    .isEqualTo(all || !card.matches("residual|no-device-scale"));
            boolean bins = all || !card.matches("residual|no-bins");
            assertThat(c.features()).allMatch(f -> (f.bins() != null) == bins);
            b.restore();
            int before = b.states[0].steps;
            assertThat(before).isEqualTo(100);
            b.batch();
            b.batch();
            b.batch(); // devices 0..255, 256..299 and 0..211, then 212..299 and 0..167
            for (int d = 0; d < b.devices; d++) {
                int times = d < 168 ? 3 : 2;
                assertThat(b.states[d].steps).as("device %d", d).isEqualTo(before + times);
                // the bench's input is noise the model cannot forecast: every device in an episode
                assertThat(b.states[d].episodeOpen).as("device %d", d).isTrue();
            }
        } finally {
            b.close();
        }
    }

    @Test
    void shouldHaveEveryComponentPastItsLearningInTheLearnedPhase() throws Exception {
        ScorerBenchmark b = new ScorerBenchmark();
        b.card = "all";
        b.phase = "learned";
        b.episodes = "none";
        b.devices = 256;
        b.open(Path.of("model"));
        try {
            ModelCard c = b.bundle.card();
            b.restore();
            b.batch();
            for (DeviceState s : b.states) {
                assertThat(s.steps).isEqualTo(1_101);
                assertThat(s.profileSteps).isGreaterThanOrEqualTo(c.level().profileSteps());
                assertThat(s.variabilitySteps)
                        .isGreaterThanOrEqualTo(c.variability().profileSteps());
                assertThat(s.dynamicsSteps).isGreaterThanOrEqualTo(c.deviceDynamics().steps());
                assertThat(s.unchangedRuns).isNotNull();
                assertThat(s.episodeOpen).isFalse();
            }
        } finally {
            b.close();
        }
    }
}
