package dev.vigil.tools.evaluation;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.model.ModelCard;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.testing.Fixtures;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The reports' drift summary: the stream's values, and the residuals after each warm-up. */
class DriftSummaryTest {

    private static final ModelCard CARD = Fixtures.model().card();

    @Test
    void shouldSummariseTheStreamAndTheResidualsAfterEachWarmUp(@TempDir Path dir)
            throws Exception {
        // Two records at the card's means plus one standard deviation on the first feature, and a
        // line that is not a record
        float[] values = CARD.mean().clone();
        values[0] += CARD.std()[0];
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            lines.add(
                    new String(
                            InputFormat.JSON.write(
                                    new TelemetryEvent("pump-1", 1_000L * i, i, values),
                                    CARD.names()),
                            StandardCharsets.UTF_8));
        }
        lines.add("not a record");
        Path stream = dir.resolve("stream.jsonl");
        Files.write(stream, lines);
        // Warm-up steps far above q0.99 are left out; after it, 1 of 4 above
        float above = 2 * CARD.dynamicsQuantile99() / CARD.dynamicsScale();
        List<ScoredStep> scores = new ArrayList<>();
        for (int i = 0; i < CARD.warmupSteps() + 4; i++) {
            ScoredStep s = new ScoredStep("pump-1", i, 0f);
            s.dynamics = i < CARD.warmupSteps() || i == CARD.warmupSteps() + 1 ? above : 0f;
            scores.add(s);
        }

        DriftSummary summary = DriftSummary.of(CARD, stream, scores);

        Map<String, Object> json = summary.json();
        assertThat(json.get("share_above_q99")).isEqualTo(0.25);
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> features = (List<Map<String, Object>>) json.get("features");
        assertThat(features).hasSize(CARD.featureCount());
        assertThat(features.get(0)).containsEntry("name", CARD.names()[0]);
        assertThat((Double) features.get(0).get("mean_shift_std")).isEqualTo(1.0, within(1e-3));
        assertThat((Double) features.get(1).get("mean_shift_std")).isEqualTo(0.0, within(1e-3));
        assertThat(features.get(0).get("psi")).isNotNull();
        assertThat(summary.line()).contains("25.00 % of forecast residuals above the card's q0.99");
    }
}
