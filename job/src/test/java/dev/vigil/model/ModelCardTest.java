package dev.vigil.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.vigil.testing.Fixtures;
import dev.vigil.testing.LogCapture;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelCardTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir Path dir;

    /**
     * Copies the committed model into {@link #dir} (over an earlier copy), its card changed by
     * {@code edit}.
     */
    private Path modelWith(Consumer<ObjectNode> edit) throws IOException {
        Files.copy(
                Fixtures.modelDir().resolve(ModelBundle.ONNX_FILE),
                dir.resolve(ModelBundle.ONNX_FILE),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        ObjectNode card =
                (ObjectNode) JSON.readTree(Fixtures.modelDir().resolve(ModelCard.FILE).toFile());
        edit.accept(card);
        JSON.writeValue(dir.resolve(ModelCard.FILE).toFile(), card);
        return dir;
    }

    private static ObjectNode feature(ObjectNode card, int i) {
        return (ObjectNode) card.withArray("features").get(i);
    }

    /** {@code score.dynamics} with the per-device scale: rms 0.3, learned over 1,000 steps. */
    private static ObjectNode deviceScale(ObjectNode card) {
        return dynamics(card).put("rms", 0.3).put("device_steps", 1000);
    }

    private static ObjectNode dynamics(ObjectNode card) {
        return (ObjectNode) card.get("score").get("dynamics");
    }

    @Test
    void shouldLoadTheCommittedModel() {
        ModelBundle bundle = ModelBundle.load(Fixtures.modelDir());

        assertThat(bundle.card().featureNames()).hasSize(8).contains("rpm", "vibration_mm_s");
        assertThat(bundle.card().hiddenSize()).isEqualTo(64);
        assertThat(bundle.card().threshold()).isPositive();
    }

    @Test
    void shouldRefuseAModelWithoutACard() throws IOException {
        Files.copy(
                Fixtures.modelDir().resolve(ModelBundle.ONNX_FILE),
                dir.resolve(ModelBundle.ONNX_FILE),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);

        assertThatThrownBy(() -> ModelBundle.load(dir))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("no model card at")
                .hasMessageContaining("model.json");
    }

    @Test
    void shouldRefuseACardWithoutItsModel() throws IOException {
        Files.copy(Fixtures.modelDir().resolve(ModelCard.FILE), dir.resolve(ModelCard.FILE));

        assertThatThrownBy(() -> ModelBundle.load(dir))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("no model.onnx");
    }

    @Test
    void shouldRefuseDuplicateFeatureNames() throws IOException {
        Path model = modelWith(c -> feature(c, 1).put("name", "load_pct"));

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("feature \"load_pct\" is listed twice");
    }

    @Test
    void shouldRefuseANonFiniteMean() throws IOException {
        Path model = modelWith(c -> feature(c, 2).put("mean", "NaN"));

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("feature \"current_a\" has a non-finite mean NaN");
    }

    @Test
    void shouldRefuseAZeroStd() throws IOException {
        Path model = modelWith(c -> feature(c, 0).put("std", 0));

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("\"load_pct\" needs a finite, positive std");
    }

    @Test
    void shouldRefuseAHiddenSizeTheOnnxModelDoesNotHave() throws IOException {
        Path model = modelWith(c -> c.put("hidden_size", 32));

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("ONNX 'h' has shape [-1, 64] (width 64)")
                .hasMessageContaining("the card says hidden_size 32 (width 32)");
    }

    @Test
    void shouldRefuseAFeatureCountTheOnnxModelDoesNotHave() throws IOException {
        Path model =
                modelWith(
                        c -> {
                            ((ArrayNode) c.withArray("features")).remove(7);
                            // the stuck score watches it too (committed card): drop it there
                            ((ArrayNode) c.get("score").get("stuck").get("features")).remove(7);
                        });

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("ONNX 'x' has shape [-1, 8] (width 8)")
                .hasMessageContaining("the card says features [load_pct");
    }

    /**
     * A model whose weights are not finite passes every check of its signature; one step at load
     * shows it, so that the job does not start and reset every device at every step instead.
     */
    @Test
    void shouldRefuseAModelWhoseStepIsNotFinite() throws IOException {
        Path model = modelWith(c -> ((ObjectNode) c.get("onnx")).remove("sha256"));
        byte[] onnx = Files.readAllBytes(model.resolve(ModelBundle.ONNX_FILE));
        // The first float tensor's raw_data (TensorProto field 9, length-delimited: tag 0x4A) is
        // the GRU's input weights, 3 gates x hidden x features floats: all set to NaN.
        int hidden = Fixtures.model().card().hiddenSize();
        int features = Fixtures.model().card().featureCount();
        int at = -1;
        int length = 0;
        for (int i = 0; i + 3 < onnx.length && at < 0; i++) {
            if (onnx[i] == 0x4A) {
                int v = 0;
                int shift = 0;
                int j = i + 1;
                while (j < onnx.length) {
                    int c = onnx[j++] & 0xff;
                    v |= (c & 0x7f) << shift;
                    shift += 7;
                    if ((c & 0x80) == 0 || shift > 28) {
                        break;
                    }
                }
                if (v >= 256 && v % 4 == 0 && j + v <= onnx.length) {
                    at = j;
                    length = v;
                }
            }
        }
        assertThat(length).as("the input weights' bytes").isEqualTo(3 * hidden * features * 4);
        java.nio.FloatBuffer weights =
                java.nio.ByteBuffer.wrap(onnx, at, length)
                        .order(java.nio.ByteOrder.LITTLE_ENDIAN)
                        .asFloatBuffer();
        for (int i = 0; i < length / 4; i++) {
            weights.put(i, Float.NaN);
        }
        Files.write(model.resolve(ModelBundle.ONNX_FILE), onnx);

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("gives a non-finite memory (h_next) (NaN at 0)")
                .hasMessageContaining("train and export it again");
    }

    @Test
    void shouldRefuseBytesThatAreNotAnOnnxModel() throws IOException {
        Path model = modelWith(c -> ((ObjectNode) c.get("onnx")).remove("sha256"));
        Files.writeString(model.resolve(ModelBundle.ONNX_FILE), "not a model");

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("ONNX Runtime cannot load the model");
    }

    /**
     * A model exported without a dynamic batch axis (here fixed at 1) would pass a check at one
     * batch size and fail at another, on every TaskManager or for every partial batch: refused at
     * start whatever the batch size.
     */
    @Test
    void shouldRefuseAResidualQuantileThatIsNotAFinitePositiveNumber() throws IOException {
        for (String bad : List.of("0", "-0.5", "\"high\"", "1e40")) {
            Path model = modelWith(c -> c.withObject("score_quantiles").set("0.99", readJson(bad)));

            assertThatThrownBy(() -> ModelBundle.load(model))
                    .as(bad)
                    .isInstanceOf(ModelException.class)
                    .hasMessageContaining(
                            "\"score_quantiles\": {\"0.99\": ...} must be a finite, positive"
                                    + " number, found "
                                    + readJson(bad));
        }
    }

    @Test
    void shouldRefuseAStepCountThatIsNotAWholeNumber() throws IOException {
        for (String bad : List.of("\"twenty\"", "20.5", "3000000000")) {
            Path model = modelWith(c -> c.set("warmup_steps", readJson(bad)));

            assertThatThrownBy(() -> ModelBundle.load(model))
                    .as(bad)
                    .isInstanceOf(ModelException.class)
                    .hasMessageContaining(
                            "\"warmup_steps\" must be a whole number, found " + readJson(bad));
        }
        Path model = modelWith(c -> c.set("warmup_steps", readJson("20.0")));
        assertThat(ModelBundle.load(model).card().warmupSteps()).isEqualTo(20);
    }

    private static com.fasterxml.jackson.databind.JsonNode readJson(String text) {
        try {
            return JSON.readTree(text);
        } catch (IOException e) {
            throw new IllegalArgumentException(e);
        }
    }

    @Test
    void shouldRefuseAFixedBatchAxis() throws IOException {
        Path model = modelWith(c -> ((ObjectNode) c.get("onnx")).remove("sha256"));
        Files.copy(
                Path.of("src/test/resources/fixed-batch-model/model.onnx"),
                model.resolve(ModelBundle.ONNX_FILE),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("ONNX 'x' has a fixed batch of 1")
                .hasMessageContaining("export it with a dynamic batch axis");
    }

    /**
     * A model.onnx copied over another model's card with the same sizes would start, and score with
     * the other model's normalisation and thresholds under its version: the card's digest refuses
     * it at start.
     */
    @Test
    void shouldRefuseAnOnnxFileTheCardWasNotWrittenFor() throws IOException {
        Path model = modelWith(c -> {});
        assertThat(ModelBundle.load(model).card().version())
                .isEqualTo(Fixtures.model().card().version());
        Files.writeString(model.resolve(ModelBundle.ONNX_FILE), "other weights");

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining(
                        "model.onnx has sha256 " + ModelBundle.sha256("other weights".getBytes()))
                .hasMessageContaining("was written for 97bdd9502311")
                .hasMessageContaining("(onnx.sha256)");
    }

    /**
     * The score section with {@code score.level.learning}: from {@code afterSteps}, {@code units}
     * times the same {@code unit}, and {@code scale}.
     */
    private static void withLearning(
            ObjectNode card, int afterSteps, int units, double unit, double scale) {
        withScoreSection(card);
        ArrayNode values =
                ((ObjectNode) card.get("score").get("level"))
                        .putObject("learning")
                        .put("after_steps", afterSteps)
                        .put("scale", scale)
                        .putArray("unit");
        for (int i = 0; i < units; i++) {
            values.add(unit);
        }
    }

    /** The score section training writes: a forecast residual scale and a level score. */
    private static void withScoreSection(ObjectNode card) {
        ObjectNode score = card.putObject("score");
        score.put("combine", "max");
        score.putObject("dynamics").put("scale", 4.5);
        score.putObject("level")
                .put("profile_steps", 1000)
                .put("half_life_steps", 2000)
                .put("window_steps", 60)
                .put("floor", 0.01)
                .put("scale", 4.1);
        card.put("threshold", 1.0);
    }

    @Test
    void shouldReadTheScoreSectionAndFeatureRoles() throws IOException {
        Path model =
                modelWith(
                        c -> {
                            withScoreSection(c);
                            feature(c, 7).put("role", "context");
                        });

        ModelCard card = ModelBundle.load(model).card();

        assertThat(card.dynamicsScale()).isEqualTo(4.5f);
        assertThat(card.level()).isEqualTo(new ModelCard.Level(1000, 2000, 60, 0.01f, 4.1f));
        assertThat(card.threshold()).isEqualTo(1f);
        assertThat(card.targets()).containsExactly(0, 1, 2, 3, 4, 5, 6);
        assertThat(card.features().get(7).role()).isEqualTo(ModelCard.Role.CONTEXT);
    }

    @Test
    void shouldReadACardWithoutScoreSectionAsTheForecastResidualAlone() {
        ModelCard old = new ModelCard("v", 64, Fixtures.model().card().features(), 4.47f, 20);

        assertThat(old.dynamicsScale()).isEqualTo(1f);
        assertThat(old.level()).isNull();
        assertThat(old.targets()).hasSize(8);
    }

    @Test
    void shouldRefuseAnUnknownRole() throws IOException {
        Path model = modelWith(c -> feature(c, 3).put("role", "input"));

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining(
                        "feature \"flow_lpm\" has role \"input\": must be target or context");
    }

    @Test
    void shouldRefuseACardWithNothingToScore() throws IOException {
        Path model =
                modelWith(
                        c -> {
                            for (int i = 0; i < 8; i++) {
                                feature(c, i).put("role", "context");
                            }
                        });

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("at least one must be a target");
    }

    @Test
    void shouldRefuseALevelScoreWithoutAScale() throws IOException {
        Path model =
                modelWith(
                        c -> {
                            withScoreSection(c);
                            ((ObjectNode) c.get("score").get("level")).remove("scale");
                        });

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("missing \"scale\"");
    }

    /** The variability section training writes (window 50 of a profile of 1,000 steps). */
    private static ObjectNode withVariability(ObjectNode card) {
        withScoreSection(card);
        return ((ObjectNode) card.get("score"))
                .putObject("variability")
                .put("window_steps", 50)
                .put("floor", 0.1)
                .put("profile_steps", 1000)
                .put("half_life_steps", 2000)
                .put("scale", 4.7)
                .put("calibration", "quantile 0.95 over 49 devices");
    }

    @Test
    void shouldReadTheVariabilityScore() throws IOException {
        Path model = modelWith(ModelCardTest::withVariability);

        assertThat(ModelBundle.load(model).card().variability())
                .isEqualTo(new ModelCard.Variability(1000, 2000, 50, 0.1f, 4.7f));
        assertThat(
                        ModelBundle.load(modelWith(ModelCardTest::withScoreSection))
                                .card()
                                .variability())
                .isNull();
    }

    @Test
    void shouldRefuseAVariabilityScoreThatCannotLearnOrScore() throws IOException {
        Path window = modelWith(c -> withVariability(c).put("window_steps", 1000));
        assertThatThrownBy(() -> ModelBundle.load(window))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining(
                        "\"score.variability\" needs window_steps of at least 1,"
                                + " profile_steps above it");
        Path floor = modelWith(c -> withVariability(c).put("floor", 0));
        assertThatThrownBy(() -> ModelBundle.load(floor))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("\"score.variability.floor\" must be finite and positive");
        Path scale = modelWith(c -> withVariability(c).remove("scale"));
        assertThatThrownBy(() -> ModelBundle.load(scale))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("missing \"scale\"");
    }

    /**
     * A correlation section over the test card's 8 targets: the subspace of the first two and of
     * the sum of the last two (rows orthonormal).
     */
    private static ObjectNode withCorrelation(ObjectNode card) {
        withScoreSection(card);
        ObjectNode c = ((ObjectNode) card.get("score")).putObject("correlation");
        float h = (float) Math.sqrt(0.5);
        var rows = c.putArray("basis");
        rows.addArray().add(1).add(0).add(0).add(0).add(0).add(0).add(0).add(0);
        rows.addArray().add(0).add(0).add(0).add(0).add(0).add(0).add(h).add(h);
        return c.put("scale", 2.5)
                .put("variance", 0.93)
                .put("calibration", "quantile 1.0 over 24 devices");
    }

    @Test
    void shouldReadTheCorrelationScore() throws IOException {
        ModelCard card = ModelBundle.load(modelWith(ModelCardTest::withCorrelation)).card();

        float h = (float) Math.sqrt(0.5);
        assertThat(card.correlation())
                .isEqualTo(
                        new ModelCard.Correlation(
                                new float[] {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, h, h},
                                2,
                                2.5f));
        assertThat(
                        ModelBundle.load(modelWith(ModelCardTest::withScoreSection))
                                .card()
                                .correlation())
                .isNull();
    }

    @Test
    void shouldSayWhatItScoresAndWhatItLeavesOut() throws IOException {
        // The committed card: every feature a target, the level and the stuck watch, no more.
        assertThat(Fixtures.model().card().describeScoring())
                .startsWith("scores load_pct, rpm, current_a, flow_lpm, pressure_bar,")
                .contains("(8 of 8 features)")
                .contains("dynamics (the forecast residual, the fleet's scale)")
                .contains(", level (profile of 1000 steps, no score while it is learned)")
                .contains(", stuck (8 watched)")
                .contains("; not in this card: variability, correlation;")
                .contains("inputs normalised by the fleet")
                .doesNotContain("context");

        ModelCard card =
                ModelBundle.load(
                                modelWith(
                                        c -> {
                                            ObjectNode variability = withVariability(c);
                                            withCorrelation(c); // a new score section: put back
                                            ((ObjectNode) c.get("score"))
                                                    .set("variability", variability);
                                            deviceScale(c);
                                        }))
                        .card();
        assertThat(card.describeScoring())
                .contains("(8 of 8 features)")
                .contains("dynamics (the forecast residual, scaled per device)")
                .contains(", level (profile of 1000 steps, no score while it is learned)")
                .contains(", variability, correlation (off a normal subspace of 2 of 8 directions)")
                .contains("; not in this card: stuck;")
                .endsWith("; threshold 1.000");

        ModelCard withContext =
                ModelBundle.load(
                                modelWith(
                                        c -> {
                                            withScoreSection(c);
                                            feature(c, 7).put("role", "context");
                                        }))
                        .card();
        assertThat(withContext.describeScoring())
                .startsWith("scores load_pct, rpm, current_a, flow_lpm, pressure_bar,")
                .contains("(7 of 8 features; 1 context, seen by the model, never scored)")
                .doesNotContain("ambient_c");

        ModelCard learningByDevice =
                ModelBundle.load(
                                modelWith(
                                        c -> {
                                            withLearning(c, 50, 8, 0.25, 5.0);
                                            learningSection(c).put("gated", true);
                                            c.put("normalisation", "device")
                                                    .put("normalisation_floor", 0.1);
                                        }))
                        .card();
        assertThat(learningByDevice.describeScoring())
                .contains(
                        ", level (profile of 1000 steps, scored while it is learned, skipping"
                                + " the steps above the threshold while it is learned)")
                .contains("; targets normalised by each device, context by the fleet;");
    }

    @Test
    void shouldCountTheTargetsItDoesNotName() {
        List<ModelCard.Feature> many = new java.util.ArrayList<>();
        for (int i = 0; i < ModelCard.DESCRIBED_TARGETS + 3; i++) {
            many.add(new ModelCard.Feature("f" + i, 0f, 1f, 1f));
        }
        ModelCard card = new ModelCard("v", 64, many, 1f, 20);

        assertThat(card.describeScoring())
                .startsWith("scores f0, f1, f2, f3, f4, f5, f6, f7 and 3 more (11 of 11 features)")
                .contains("; not in this card: level, stuck, variability, correlation;");
    }

    @Test
    void shouldRefuseACorrelationScoreItCannotCompute() throws IOException {
        Path skewed =
                modelWith(
                        c -> {
                            var row =
                                    (com.fasterxml.jackson.databind.node.ArrayNode)
                                            withCorrelation(c).get("basis").get(1);
                            row.set(0, 0.5); // no longer at right angles to the first row
                        });
        assertThatThrownBy(() -> ModelBundle.load(skewed))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("\"score.correlation.basis\" rows must be orthonormal")
                .hasMessageContaining("rows 0 and 1");
        Path narrow =
                modelWith(
                        c ->
                                ((com.fasterxml.jackson.databind.node.ArrayNode)
                                                withCorrelation(c).get("basis").get(0))
                                        .remove(7));
        assertThatThrownBy(() -> ModelBundle.load(narrow))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("one per target each");
        Path short7 =
                modelWith(
                        c -> {
                            for (var row : withCorrelation(c).get("basis")) {
                                ((com.fasterxml.jackson.databind.node.ArrayNode) row).remove(0);
                            }
                        });
        assertThatThrownBy(() -> ModelBundle.load(short7))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("each of 8 values, found 2 rows of 7");
        Path full =
                modelWith(
                        c -> {
                            var rows = withCorrelation(c).putArray("basis");
                            for (int i = 0; i < 8; i++) {
                                var row = rows.addArray();
                                for (int j = 0; j < 8; j++) {
                                    row.add(i == j ? 1 : 0);
                                }
                            }
                        });
        assertThatThrownBy(() -> ModelBundle.load(full))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("needs fewer rows than this card has targets (8)");
        Path scale = modelWith(c -> withCorrelation(c).put("scale", 0));
        assertThatThrownBy(() -> ModelBundle.load(scale))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("\"score.correlation.scale\" must be finite and positive");
        Path misspelt = modelWith(c -> withCorrelation(c).put("scael", 1));
        assertThatThrownBy(() -> ModelBundle.load(misspelt))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("scael");
    }

    @Test
    void shouldReadTheStuckScoreAndTheFeaturesItWatches() throws IOException {
        Path model =
                modelWith(
                        c -> {
                            withScoreSection(c);
                            ObjectNode stuck =
                                    ((ObjectNode) c.get("score"))
                                            .putObject("stuck")
                                            .put("scale", 2);
                            stuck.putArray("features").add("rpm").add("current_a");
                        });

        ModelCard card = ModelBundle.load(model).card();

        assertThat(card.stuck())
                .isEqualTo(new ModelCard.Stuck(2f, java.util.List.of("rpm", "current_a")));
        assertThat(card.stuckTargets()).containsExactly(1, 2);
    }

    @Test
    void shouldRefuseAStuckScoreOnAContextFeature() throws IOException {
        Path model =
                modelWith(
                        c -> {
                            withScoreSection(c);
                            feature(c, 7).put("role", "context");
                            ObjectNode stuck =
                                    ((ObjectNode) c.get("score"))
                                            .putObject("stuck")
                                            .put("scale", 2);
                            stuck.putArray("features").add("ambient_c");
                        });

        assertThatThrownBy(() -> ModelBundle.load(model))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("names \"ambient_c\", which is not a target feature");
    }

    @Test
    void shouldReadPerDeviceNormalisation() throws IOException {
        Path model =
                modelWith(
                        c -> {
                            withScoreSection(c);
                            c.put("normalisation", "device").put("normalisation_floor", 0.1);
                        });

        ModelCard card = ModelBundle.load(model).card();

        assertThat(card.normalisation()).isEqualTo(new ModelCard.DeviceNormalisation(0.1f));
        assertThat(Fixtures.model().card().normalisation()).as("fleet").isNull();
    }

    @Test
    void shouldReadTheCadenceTheModelWasTrainedOn() throws IOException {
        assertThat(Fixtures.model().card().stepIntervalMs()).isEqualTo(60_000L);
        Path none = modelWith(c -> ((ObjectNode) c.get("training")).remove("step_interval_ms"));
        assertThat(ModelBundle.load(none).card().stepIntervalMs()).as("not said").isZero();
        Path fractional =
                modelWith(c -> ((ObjectNode) c.get("training")).put("step_interval_ms", 60000.5));
        assertThatThrownBy(() -> ModelBundle.load(fractional))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("\"training.step_interval_ms\" must be a whole number");
        Path negative =
                modelWith(c -> ((ObjectNode) c.get("training")).put("step_interval_ms", -1));
        assertThatThrownBy(() -> ModelBundle.load(negative))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("0 or more, found -1");
    }

    @Test
    void shouldRefusePerDeviceNormalisationWithoutAProfile() throws IOException {
        Path noLevel =
                modelWith(
                        c -> {
                            withScoreSection(c);
                            ((ObjectNode) c.get("score")).remove("level");
                            c.put("normalisation", "device").put("normalisation_floor", 0.1);
                        });
        assertThatThrownBy(() -> ModelBundle.load(noLevel))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("no \"score.level\"");
    }

    @Test
    void shouldRefusePerDeviceNormalisationWithoutAFloor() throws IOException {
        Path noFloor =
                modelWith(
                        c -> {
                            withScoreSection(c);
                            c.put("normalisation", "device");
                        });
        assertThatThrownBy(() -> ModelBundle.load(noFloor))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("missing \"normalisation_floor\"");
    }

    @Test
    void shouldReadThePerDeviceScaleOfTheForecastResidual() throws IOException {
        Path model = modelWith(c -> deviceScale(c).put("device_half_life_steps", 20000));

        ModelCard card = ModelBundle.load(model).card();

        assertThat(card.deviceDynamics())
                .isEqualTo(new ModelCard.DeviceDynamics(1000, 20000, 0.3f, 1f));
        Path frozen = modelWith(c -> deviceScale(c));
        assertThat(ModelBundle.load(frozen).card().deviceDynamics().halfLifeSteps()).isZero();
        Path floored = modelWith(c -> deviceScale(c).put("device_floor", 0.5));
        assertThat(ModelBundle.load(floored).card().deviceDynamics().floor()).isEqualTo(0.5f);
        Path blocked =
                modelWith(c -> deviceScale(c).put("device_blocks", 10).put("device_ceiling", 4));
        assertThat(ModelBundle.load(blocked).card().deviceDynamics())
                .isEqualTo(new ModelCard.DeviceDynamics(1000, 0, 0.3f, 1f, 10, 4f));
        Path early =
                modelWith(
                        c ->
                                deviceScale(c)
                                        .put("device_blocks", 10)
                                        .put("device_learning_blocks", 3));
        assertThat(ModelBundle.load(early).card().deviceDynamics())
                .isEqualTo(
                        new ModelCard.DeviceDynamics(
                                1000, 0, 0.3f, 1f, 10, Float.POSITIVE_INFINITY, 3));
        assertThat(Fixtures.model().card().deviceDynamics()).as("the fleet's").isNull();
    }

    @Test
    void shouldRefuseAPerDeviceScaleWithoutTheFleetsLevel() throws IOException {
        Path noRms = modelWith(c -> dynamics(c).put("device_steps", 1000).remove("rms"));
        assertThatThrownBy(() -> ModelBundle.load(noRms))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("needs \"score.dynamics.rms\"")
                .hasMessageContaining("--dynamics-scale device");
        Path zeroSteps = modelWith(c -> dynamics(c).put("rms", 0.3).put("device_steps", 0));
        assertThatThrownBy(() -> ModelBundle.load(zeroSteps))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("must be at least 1");
        for (double floor : new double[] {0, -0.5, 1.5}) {
            Path badFloor = modelWith(c -> deviceScale(c).put("device_floor", floor));
            assertThatThrownBy(() -> ModelBundle.load(badFloor))
                    .isInstanceOf(ModelException.class)
                    .hasMessageContaining(
                            "\"score.dynamics.device_floor\" must be above 0 and at most 1");
        }
        for (Object ceiling : new Object[] {0.5, 0, "NaN"}) {
            Path badCeiling =
                    modelWith(
                            c -> {
                                var d = deviceScale(c);
                                if (ceiling instanceof String text) {
                                    d.put("device_ceiling", text);
                                } else {
                                    d.put("device_ceiling", ((Number) ceiling).doubleValue());
                                }
                            });
            assertThatThrownBy(() -> ModelBundle.load(badCeiling))
                    .isInstanceOf(ModelException.class)
                    .hasMessageContaining("\"score.dynamics.device_ceiling\" must be at least 1");
        }
        Path noBlocks = modelWith(c -> deviceScale(c).put("device_blocks", 0));
        assertThatThrownBy(() -> ModelBundle.load(noBlocks))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("\"score.dynamics.device_blocks\" must be at least 1");
        for (int[] blocksAndEarly : new int[][] {{10, 11}, {10, -1}, {1, 1}}) {
            Path badEarly =
                    modelWith(
                            c ->
                                    deviceScale(c)
                                            .put("device_blocks", blocksAndEarly[0])
                                            .put("device_learning_blocks", blocksAndEarly[1]));
            assertThatThrownBy(() -> ModelBundle.load(badEarly))
                    .isInstanceOf(ModelException.class)
                    .hasMessageContaining("\"score.dynamics.device_learning_blocks\" must be 0");
        }
    }

    @Test
    void shouldReadTheLevelWhileAProfileIsLearned() throws IOException {
        Path model = modelWith(c -> withLearning(c, 50, 8, 0.25, 5.0));

        ModelCard.Learning learning = ModelBundle.load(model).card().level().learning();

        float[] quarters = new float[8];
        java.util.Arrays.fill(quarters, 0.25f);
        assertThat(learning).isEqualTo(new ModelCard.Learning(50, quarters, 5f, false));

        Path gated =
                modelWith(
                        c -> {
                            withLearning(c, 50, 8, 0.25, 5.0);
                            learningSection(c).put("gated", true);
                        });
        assertThat(ModelBundle.load(gated).card().level().learning())
                .isEqualTo(new ModelCard.Learning(50, quarters, 5f, true));

        Path notABoolean =
                modelWith(
                        c -> {
                            withLearning(c, 50, 8, 0.25, 5.0);
                            learningSection(c).put("gated", "yes");
                        });
        assertThatThrownBy(() -> ModelBundle.load(notABoolean))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining(
                        "\"score.level.learning.gated\" must be true or false, found \"yes\"");
    }

    private static ObjectNode learningSection(ObjectNode card) {
        return (ObjectNode) card.get("score").get("level").get("learning");
    }

    @Test
    void shouldRefuseALevelWhileLearningThatDoesNotFitTheCard() throws IOException {
        record Bad(int afterSteps, int units, double unit, double scale, String message) {}
        for (Bad bad :
                List.of(
                        new Bad(0, 8, 0.25, 5, "\"score.level.learning.after_steps\" must be"),
                        new Bad(1001, 8, 0.25, 5, "between 1 and score.level.profile_steps (1000)"),
                        new Bad(50, 7, 0.25, 5, "needs one value per target feature (8), found 7"),
                        new Bad(50, 8, 0, 5, "\"score.level.learning.unit\" values must be"),
                        new Bad(50, 8, 0.25, -1, "\"score.level.learning.scale\" must be"))) {
            Path model =
                    modelWith(
                            c ->
                                    withLearning(
                                            c,
                                            bad.afterSteps(),
                                            bad.units(),
                                            bad.unit(),
                                            bad.scale()));
            assertThatThrownBy(() -> ModelBundle.load(model))
                    .as("%s", bad)
                    .isInstanceOf(ModelException.class)
                    .hasMessageContaining(bad.message());
        }
    }

    @Test
    void shouldRefuseAnUnknownFieldWhereTheCardSaysHowToScore() throws IOException {
        record Misspelt(String where, Consumer<ObjectNode> edit) {}
        for (Misspelt m :
                List.of(
                        new Misspelt("the card", c -> c.put("normalization", "device")),
                        new Misspelt("a feature", c -> feature(c, 0).put("roles", "context")),
                        new Misspelt(
                                "\"score\"", c -> ((ObjectNode) c.get("score")).putObject("drift")),
                        new Misspelt(
                                "\"score.dynamics\"", c -> dynamics(c).put("device_step", 1000)),
                        new Misspelt(
                                "\"score.level\"",
                                c -> ((ObjectNode) c.get("score").get("level")).put("halflife", 9)),
                        new Misspelt(
                                "\"score.stuck\"",
                                c ->
                                        ((ObjectNode) c.get("score").get("stuck"))
                                                .put("feature", "rpm")),
                        new Misspelt(
                                "a feature's \"bins\"",
                                c -> ((ObjectNode) feature(c, 0).get("bins")).put("edge", 1)))) {
            Path card = modelWith(m.edit());
            assertThatThrownBy(() -> ModelBundle.load(card))
                    .as(m.where())
                    .isInstanceOf(ModelException.class)
                    .hasMessageContaining("unknown field")
                    .hasMessageContaining(" in " + m.where() + " (known: ");
        }
        Path learning =
                modelWith(
                        c ->
                                ((ObjectNode) c.get("score").get("level"))
                                        .putObject("learning")
                                        .put("after_step", 10));
        assertThatThrownBy(() -> ModelBundle.load(learning))
                .hasMessageContaining("unknown field \"after_step\" in \"score.level.learning\"");
        // What describes the model is not checked: training details, the quantiles, the ONNX file
        Path described =
                modelWith(
                        c -> {
                            ((ObjectNode) c.get("training"))
                                    .put("notes", "retrained after the move");
                            ((ObjectNode) c.get("score_quantiles")).put("0.5", 0.1);
                        });
        assertThat(ModelBundle.load(described).card().featureNames()).hasSize(8);
    }

    @Test
    void shouldRefuseACombinationRuleOtherThanTheLargest() throws IOException {
        Path norm = modelWith(c -> ((ObjectNode) c.get("score")).put("combine", "l2"));
        assertThatThrownBy(() -> ModelBundle.load(norm))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("\"score.combine\" is \"l2\"");
    }

    @Test
    void shouldWarnOfACardWithoutTheDigestOfItsModel() throws IOException {
        Path undigested = modelWith(c -> ((ObjectNode) c.get("onnx")).remove("sha256"));
        try (LogCapture log = LogCapture.start()) {
            ModelBundle.load(undigested);
            assertThat(log.events())
                    .anySatisfy(
                            e -> assertThat(e).startsWith("WARN").contains("has no onnx.sha256"));
        }
        try (LogCapture log = LogCapture.start()) {
            ModelBundle.load(Fixtures.modelDir());
            assertThat(log.events()).noneMatch(e -> e.contains("onnx.sha256"));
        }
    }

    @Test
    void shouldRefuseAnUnknownNormalisation() throws IOException {
        Path unknown = modelWith(c -> c.put("normalisation", "per-device"));
        assertThatThrownBy(() -> ModelBundle.load(unknown))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("must be fleet or device");
    }

    @Test
    void shouldReadTheDriftBinsAndTheResidualsQuantile() throws IOException {
        ModelCard card = ModelBundle.load(Fixtures.modelDir()).card();
        ModelCard.Bins bins = card.features().get(0).bins();
        assertThat(bins.shares()).hasSize(bins.edges().length + 1);
        assertThat(card.dynamicsQuantile99()).isEqualTo(card.dynamicsScale()); // both at q0.99

        ModelCard without =
                ModelBundle.load(
                                modelWith(
                                        c -> {
                                            feature(c, 0).remove("bins");
                                            c.remove("score_quantiles");
                                        }))
                        .card();
        assertThat(without.features().get(0).bins()).isNull();
        assertThat(without.dynamicsQuantile99()).isNaN();
    }

    @Test
    void shouldRefuseDriftBinsThatDoNotAddUp() throws IOException {
        Path shares =
                modelWith(c -> ((ArrayNode) feature(c, 1).path("bins").path("shares")).set(0, 0.5));
        assertThatThrownBy(() -> ModelBundle.load(shares))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining(
                        "feature \"rpm\" has bins that have shares that do not sum to 1");
        Path edges =
                modelWith(c -> ((ArrayNode) feature(c, 1).path("bins").path("edges")).set(1, 0.0));
        assertThatThrownBy(() -> ModelBundle.load(edges))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("has bins that do not increase");
        Path count =
                modelWith(c -> ((ArrayNode) feature(c, 1).path("bins").path("shares")).remove(0));
        assertThatThrownBy(() -> ModelBundle.load(count))
                .isInstanceOf(ModelException.class)
                .hasMessageContaining("are not {edges: [n numbers], shares: [n + 1 numbers]}");
    }
}
