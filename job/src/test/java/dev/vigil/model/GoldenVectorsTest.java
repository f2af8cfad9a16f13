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
     * {@code train.py}'s {@code variability_stream} over the same target values: the variability
     * per step through {@link StepMath}'s variability arithmetic, learned and adapted as the scorer
     * ({@code Scorer.learnVariability}) does it, target by target gated at the case's scale.
     */
    @Test
    void shouldReproduceTrainingsVariabilityScores() throws Exception {
        JsonNode c = golden().get("variability_case");
        int profileSteps = c.get("profile_steps").asInt();
        int window = c.get("window_steps").asInt();
        float alpha = 2f / (window + 1);
        float beta = (float) (1 - Math.pow(0.5, 1.0 / c.get("half_life_steps").asInt()));
        float floor = (float) c.get("floor").asDouble();
        float scale = (float) c.get("scale").asDouble();
        int targets = c.get("z").get(0).size();
        int[] all = java.util.stream.IntStream.range(0, targets).toArray();
        float[] last = new float[targets];
        float[] meanSquare = new float[targets];
        float[] mean = new float[targets];
        float[] var = new float[targets];
        float[] logs = new float[targets];
        float[] distances = new float[targets];
        float[] shares = new float[targets];
        int scored = 0;
        for (int t = 0; t < c.get("z").size(); t++) {
            StepMath.updateVariability(
                    floats(c.get("z").get(t)),
                    last,
                    meanSquare,
                    alpha,
                    floor * floor,
                    t == 0,
                    logs);
            JsonNode expected = c.get("variability").get(t);
            if (t < profileSteps) {
                assertThat(expected.isNull()).as("no variability at step %d", t).isTrue();
                if (t >= window) {
                    StepMath.learnVariability(logs, mean, var, t - window, t == profileSteps - 1);
                }
                continue;
            }
            float v = StepMath.variability(logs, mean, var, all, distances, shares);
            assertThat(v)
                    .as("variability at step %d", t)
                    .isCloseTo((float) expected.asDouble(), within(TOLERANCE * Math.max(1f, v)));
            StepMath.adaptVariability(logs, distances, mean, var, beta, scale, 1f);
            scored++;
        }
        assertThat(scored).isGreaterThan(100);
    }

    /**
     * {@code train.py}'s {@code correlation_stream} over the same target values (with the shift of
     * the profile case, which leaves the normal subspace): the distance and each target's part per
     * step through {@link StepMath#correlation} and {@link StepMath#correlationParts}.
     */
    @Test
    void shouldReproduceTrainingsCorrelationScores() throws Exception {
        JsonNode c = golden().get("correlation_case");
        int targets = c.get("z").get(0).size();
        int[] all = java.util.stream.IntStream.range(0, targets).toArray();
        JsonNode rows = c.get("basis");
        float[] basis = new float[rows.size() * targets];
        for (int k = 0; k < rows.size(); k++) {
            System.arraycopy(floats(rows.get(k)), 0, basis, k * targets, targets);
        }
        float scale = (float) c.get("scale").asDouble();
        float[] projection = new float[rows.size()];
        float[] parts = new float[targets];
        float largest = 0f;
        for (int t = 0; t < c.get("z").size(); t++) {
            float[] z = floats(c.get("z").get(t));
            float v = StepMath.correlation(z, basis, rows.size()) / scale;
            StepMath.correlationParts(z, basis, rows.size(), projection, all, parts);
            float expected = (float) c.get("correlation").get(t).asDouble();
            assertThat(v)
                    .as("correlation at step %d", t)
                    .isCloseTo(expected, within(TOLERANCE * Math.max(1f, expected)));
            float[] expectedParts = floats(c.get("parts").get(t));
            for (int j = 0; j < targets; j++) {
                assertThat(parts[j])
                        .as("part of target %d at step %d", j, t)
                        .isCloseTo(
                                expectedParts[j],
                                within(TOLERANCE * Math.max(1f, expectedParts[j])));
            }
            largest = Math.max(largest, v);
        }
        assertThat(c.get("z").size()).isGreaterThan(100);
        assertThat(largest).as("the shift leaves the subspace").isGreaterThan(2f);
    }

    /**
     * The level score and per-device normalisation: training's stream of normalised target values
     * (with a shift, so that the level stops the profile learning for a while) replayed through
     * {@link StepMath}'s level and normalisation arithmetic, learning gated as the scorer gates it;
     * the level while the profile is learned too, from the case's {@code learning.after_steps}.
     */
    @Test
    void shouldReproduceTrainingsLevelScoresAndDeviceInputs() throws Exception {
        Replayed r = replayProfileCase(golden().get("profile_case"));

        assertThat(r.gated()).as("steps the shift kept out of the profile").isGreaterThan(10);
        assertThat(r.whileLearning()).as("levels while the profile was learned").isEqualTo(45);
    }

    /**
     * The same with the profile's learning gated while it is learned ({@code
     * score.level.learning.gated}): a second shift, while the profile is learned, is kept out of
     * it, and the profile is learned once as many steps are learned into it.
     */
    @Test
    void shouldReproduceTrainingsLevelScoresWithLearningGated() throws Exception {
        Replayed r = replayProfileCase(golden().get("profile_case_gated"));

        assertThat(r.gatedWhileLearning())
                .as("steps the shift while learning kept out of the profile")
                .isGreaterThan(10);
        // the profile is learned once 50 steps are learned into it, those kept out added
        assertThat(r.whileLearning()).isEqualTo(45 + r.gatedWhileLearning());
        assertThat(r.gated()).as("steps kept out once the profile was learned").isGreaterThan(10);
    }

    /** Counts from replaying a profile case: the steps kept out of the profile, and why. */
    private record Replayed(int gated, int whileLearning, int gatedWhileLearning) {}

    /**
     * Replays a profile case of training's golden vectors (its normalised target values, with
     * shifts, so that the level stops the profile learning for a while) through {@link StepMath}'s
     * level and normalisation arithmetic, learning gated as the scorer gates it; the level while
     * the profile is learned too, from the case's {@code learning.after_steps}, and, with its
     * {@code learning.gated}, gating the learning until the profile is learned.
     */
    private static Replayed replayProfileCase(JsonNode c) {
        int profileSteps = c.get("profile_steps").asInt();
        float alpha = 2f / (c.get("window_steps").asInt() + 1);
        float beta = (float) (1 - Math.pow(0.5, 1.0 / c.get("half_life_steps").asInt()));
        float floor = (float) c.get("floor").asDouble();
        float scale = (float) c.get("scale").asDouble();
        float normalisationFloor = (float) c.get("normalisation_floor").asDouble();
        int afterSteps = c.get("learning").get("after_steps").asInt();
        float[] fleetUnit = floats(c.get("learning").get("unit"));
        boolean learningGated = c.get("learning").path("gated").asBoolean(false);
        float learningScale = (float) c.get("learning").path("scale").asDouble(Double.NaN);
        int targets = c.get("z").get(0).size();
        int[] all = java.util.stream.IntStream.range(0, targets).toArray();
        float[] m = new float[targets];
        float[] mean = new float[targets];
        float[] var = new float[targets];
        float[] spread = new float[targets];
        float[] shares = new float[targets];
        java.nio.FloatBuffer inputs = java.nio.FloatBuffer.allocate(targets);
        int learned = 0;
        int gated = 0;
        int whileLearning = 0;
        int gatedWhileLearning = 0;
        for (int t = 0; t < c.get("z").size(); t++) {
            float[] z = floats(c.get("z").get(t));
            StepMath.updateLevelMean(z, m, alpha, t == 0);
            JsonNode expected = c.get("level").get(t);
            float level = Float.NaN;
            if (learned >= profileSteps) {
                level = StepMath.level(m, mean, var, floor, all, shares);
            } else if (learned >= afterSteps) {
                float share = (float) learned / profileSteps;
                level =
                        StepMath.levelWhileLearning(
                                m, mean, var, fleetUnit, share, floor, all, shares);
                whileLearning++;
            }
            if (Float.isNaN(level)) {
                assertThat(expected.isNull()).as("no level at step %d", t).isTrue();
            } else {
                assertThat(level)
                        .as("level at step %d", t)
                        .isCloseTo(
                                (float) expected.asDouble(),
                                within(TOLERANCE * Math.max(1f, level)));
            }
            StepMath.normaliseByDevice(
                    z,
                    all,
                    mean,
                    spread,
                    learned,
                    profileSteps,
                    normalisationFloor,
                    inputs,
                    0,
                    1e9f);
            float[] expectedInputs = floats(c.get("inputs").get(t));
            for (int j = 0; j < targets; j++) {
                assertThat(inputs.get(j))
                        .as("input %d at step %d", j, t)
                        .isCloseTo(
                                expectedInputs[j],
                                within(TOLERANCE * Math.max(1f, Math.abs(expectedInputs[j]))));
            }
            if (learned < profileSteps && learningGated && level / learningScale > 1f) {
                gatedWhileLearning++;
            } else if (learned < profileSteps || !(level / scale > 1f)) {
                StepMath.learnProfile(z, m, mean, var, spread, learned, profileSteps, beta);
                learned = Math.min(learned + 1, profileSteps);
            } else {
                gated++;
            }
        }
        return new Replayed(gated, whileLearning, gatedWhileLearning);
    }

    /** The stuck score: training's runs of exactly repeated raw values, step by step. */
    @Test
    void shouldReproduceTrainingsUnchangedRuns() throws Exception {
        JsonNode c = golden().get("stuck_case");
        int targets = c.get("raw").get(0).size();
        int[] all = java.util.stream.IntStream.range(0, targets).toArray();
        float[] last = new float[targets];
        int[] runs = new int[targets];
        java.util.Arrays.fill(runs, -1);
        float[] shares = new float[targets];
        int longest = 0;
        for (int t = 0; t < c.get("raw").size(); t++) {
            float run = StepMath.unchangedRun(floats(c.get("raw").get(t)), all, last, runs, shares);
            assertThat(run).as("run at step %d", t).isEqualTo(c.get("run").get(t).asInt());
            longest = Math.max(longest, (int) run);
        }
        assertThat(longest).as("the injected frozen reading").isGreaterThanOrEqualTo(15);
    }

    private static JsonNode golden() throws Exception {
        return new ObjectMapper().readTree(Fixtures.modelDir().resolve("golden.json").toFile());
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
