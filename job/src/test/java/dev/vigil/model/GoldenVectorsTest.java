package dev.vigil.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.vigil.scoring.StepMath;
import dev.vigil.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Python training and Java serving compute the same numbers: the vectors the training script wrote
 * (raw inputs and hidden states → forecasts and scores) replayed through ONNX Runtime and {@link
 * StepMath}.
 */
class GoldenVectorsTest {

    private static final float TOLERANCE = 1e-4f;

    @Test
    void shouldReproduceTrainingsForecastsAndScores() throws Exception {
        ModelBundle bundle = Fixtures.model();
        ModelCard card = bundle.card();
        JsonNode golden =
                new ObjectMapper().readTree(Fixtures.modelDir().resolve("golden.json").toFile());
        assertThat(golden.get("features").toString())
                .isEqualTo(new ObjectMapper().writeValueAsString(card.featureNames()));
        assertThat(golden.get("cases")).isNotEmpty();

        int checkedScores = 0;
        try (GruModel model = GruModel.open(bundle, 1)) {
            for (JsonNode c : golden.get("cases")) {
                float[] h = floats(c.get("h0"));
                float[] forecast = null;
                float[] shares = new float[card.featureCount()];
                for (JsonNode step : c.get("steps")) {
                    StepMath.normalise(
                            floats(step.get("values")),
                            card.mean(),
                            card.std(),
                            model.x(),
                            0,
                            Float.MAX_VALUE);
                    if (forecast == null) {
                        assertThat(step.get("score").isNull()).isTrue();
                    } else {
                        float score =
                                StepMath.score(
                                        model.x(),
                                        0,
                                        forecast,
                                        card.residualScale(),
                                        card.targets(),
                                        shares);
                        float expected = (float) step.get("score").asDouble();
                        assertThat(score)
                                .isCloseTo(expected, within(TOLERANCE * Math.max(1f, expected)));
                        checkedScores++;
                    }
                    model.h().put(0, h);
                    model.run(1);
                    model.hNext().get(0, h);
                    forecast = new float[card.featureCount()];
                    model.y().get(0, forecast);
                    float[] expectedForecast = floats(step.get("forecast"));
                    for (int i = 0; i < forecast.length; i++) {
                        assertThat(forecast[i]).isCloseTo(expectedForecast[i], within(TOLERANCE));
                    }
                }
                float[] expectedH = floats(c.get("h_final"));
                for (int i = 0; i < h.length; i++) {
                    assertThat(h[i]).isCloseTo(expectedH[i], within(TOLERANCE));
                }
            }
        }
        assertThat(checkedScores).isGreaterThan(20);
    }

    /**
     * The level score: training's stream of normalised target values (learning every step, as in
     * calibration) replayed through {@link StepMath}'s level arithmetic. Skipped only for a card
     * trained without a level score.
     */
    @Test
    void shouldReproduceTrainingsLevelScores() throws Exception {
        JsonNode golden =
                new ObjectMapper().readTree(Fixtures.modelDir().resolve("golden.json").toFile());
        JsonNode c = golden.get("level_case");
        org.junit.jupiter.api.Assumptions.assumeTrue(
                Fixtures.model().card().level() != null, "the committed card has no level score");
        assertThat(c).as("a card with a level score has a golden level case").isNotNull();
        int profileSteps = c.get("profile_steps").asInt();
        float alpha = 2f / (c.get("window_steps").asInt() + 1);
        float beta = (float) (1 - Math.pow(0.5, 1.0 / c.get("half_life_steps").asInt()));
        float floor = (float) c.get("floor").asDouble();
        int targets = c.get("z").get(0).size();
        int[] all = java.util.stream.IntStream.range(0, targets).toArray();
        float[] m = new float[targets];
        float[] mean = new float[targets];
        float[] var = new float[targets];
        float[] shares = new float[targets];
        int checked = 0;
        for (int t = 0; t < c.get("z").size(); t++) {
            java.nio.FloatBuffer x = java.nio.FloatBuffer.wrap(floats(c.get("z").get(t)));
            StepMath.updateLevelMean(x, 0, all, m, alpha, t == 0);
            JsonNode expected = c.get("level").get(t);
            if (t >= profileSteps) {
                float level = StepMath.level(m, mean, var, floor, all, shares);
                assertThat(level)
                        .as("level at step %d", t)
                        .isCloseTo(
                                (float) expected.asDouble(),
                                within(TOLERANCE * Math.max(1f, level)));
                checked++;
            } else {
                assertThat(expected.isNull()).isTrue();
            }
            StepMath.learnProfile(x, 0, all, m, mean, var, t, profileSteps, beta);
        }
        assertThat(checked).isGreaterThan(100);
    }

    private static float[] floats(JsonNode array) {
        List<Float> values = new ArrayList<>();
        array.forEach(v -> values.add((float) v.asDouble()));
        float[] out = new float[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i);
        }
        return out;
    }
}
