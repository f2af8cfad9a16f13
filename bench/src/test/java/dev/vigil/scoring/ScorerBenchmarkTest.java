package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.model.ModelCard;
import dev.vigil.state.DeviceState;
import java.nio.file.Path;
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
                "no-device-scale",
                "no-bins"
            })
    void shouldScoreTheFleetWithTheCardItNames(String card) throws Exception {
        ScorerBenchmark b = new ScorerBenchmark();
        b.card = card;
        b.phase = "learning";
        b.devices = 300; // one full batch, then the rest
        b.open(Path.of("model"));
        try {
            ModelCard c = b.bundle.card();
            boolean all = card.equals("all");
            assertThat(c.level() != null).isEqualTo(all || !card.matches("residual|no-level"));
            assertThat(c.stuck() != null).isEqualTo(all || !card.matches("residual|no-stuck"));
            assertThat(c.variability() != null)
                    .isEqualTo(all || !card.matches("residual|no-variability"));
            assertThat(c.deviceDynamics() != null)
                    .isEqualTo(all || !card.matches("residual|no-device-scale"));
            assertThat(c.features().stream().allMatch(f -> f.bins() != null))
                    .isEqualTo(all || !card.matches("residual|no-bins"));
            b.restore();
            int before = b.states[0].steps;
            assertThat(before).isEqualTo(100);
            b.batch();
            b.batch();
            b.batch(); // devices 0..255, 256..299, then 0..255 again
            for (int d = 0; d < b.devices; d++) {
                DeviceState s = b.states[d];
                assertThat(s.steps).isEqualTo(before + (d < ScorerBenchmark.BATCH ? 2 : 1));
            }
        } finally {
            b.close();
        }
    }
}
