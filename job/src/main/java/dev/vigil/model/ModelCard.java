package dev.vigil.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * The model card ({@code model.json} beside {@code model.onnx}): what the ONNX model expects and
 * how to read its output. Validated when loaded, so a bad card stops the job at start, never a
 * device's scoring later.
 */
public final class ModelCard implements Serializable {

    public static final String FILE = "model.json";

    /**
     * What a feature is for: a {@code TARGET} is watched (scored, explained, profiled); a {@code
     * CONTEXT} feature (a command, a setpoint, a load) is only an input that explains the targets.
     */
    public enum Role {
        TARGET,
        CONTEXT
    }

    /**
     * One input feature, in model order; {@code bins} is what training saw of its raw values, for
     * the drift metrics (null in a card trained before them).
     */
    public record Feature(
            String name, float mean, float std, float residualScale, Role role, Bins bins)
            implements Serializable {

        /** A target feature. */
        public Feature(String name, float mean, float std, float residualScale) {
            this(name, mean, std, residualScale, Role.TARGET, null);
        }
    }

    /**
     * A feature's distribution in training (README, "Drift"): its deciles as increasing bin edges
     * (ties merged) and the share of training steps in each of the {@code edges.length + 1} bins; a
     * value is in the bin of the number of edges below it.
     */
    public record Bins(float[] edges, float[] shares) implements Serializable {}

    /**
     * The level score ("this device is not where it normally is", README "Scoring"): each target's
     * moving average over {@code windowSteps} against the device's own profile, learned over its
     * first {@code profileSteps} steps and then adapting with {@code halfLifeSteps} on quiet steps
     * only; the profile's unit is floored at {@code floor} (normalised units). {@code scale} is the
     * raw level that counts as the threshold (training's calibration). With {@code learning} (null
     * when the card has none, as before 0.7.0) the level also has a value while the profile is
     * learned.
     */
    public record Level(
            int profileSteps,
            int halfLifeSteps,
            int windowSteps,
            float floor,
            float scale,
            Learning learning)
            implements Serializable {

        /** No level while the profile is learned: the fields cards before 0.7.0 have. */
        public Level(
                int profileSteps, int halfLifeSteps, int windowSteps, float floor, float scale) {
            this(profileSteps, halfLifeSteps, windowSteps, floor, scale, null);
        }
    }

    /**
     * The level while a device's profile is learned ({@code score.level.learning}, README
     * "Scoring"): from the device's {@code afterSteps}-th learned step, each target's moving
     * average against the profile learned so far, in a unit blended from the fleet's {@code unit}
     * (per target, normalised units) to the device's own as the profile is learned; {@code scale}
     * is the level that counts as the threshold (training's calibration on its devices' learning
     * steps). With {@code gated} ({@code gated: true}, which {@code ./vigil train --gate-learning}
     * writes) a step whose level while learning is above the threshold is not learned into the
     * profile, so that a fault that starts while a device learns its normal does not become part of
     * it; the profile is learned once {@code profile_steps} steps are learned into it.
     */
    public record Learning(int afterSteps, float[] unit, float scale, boolean gated)
            implements Serializable {

        @Override
        public boolean equals(Object o) {
            return o instanceof Learning l
                    && afterSteps == l.afterSteps
                    && java.util.Arrays.equals(unit, l.unit)
                    && Float.compare(scale, l.scale) == 0
                    && gated == l.gated;
        }

        @Override
        public int hashCode() {
            return 31
                            * (31 * (31 * afterSteps + java.util.Arrays.hashCode(unit))
                                    + Float.hashCode(scale))
                    + Boolean.hashCode(gated);
        }

        @Override
        public String toString() {
            return "Learning[afterSteps="
                    + afterSteps
                    + ", unit="
                    + java.util.Arrays.toString(unit)
                    + ", scale="
                    + scale
                    + ", gated="
                    + gated
                    + "]";
        }
    }

    /**
     * The variability score ("this device's readings move more, or less, than they normally do",
     * README "Scoring"): per target, the log of the moving average over {@code windowSteps} of its
     * squared change from the last step (plus {@code floor} squared, normalised units), against
     * that log's mean and spread learned over the device's steps {@code windowSteps} to {@code
     * profileSteps} and then adapting with {@code halfLifeSteps} on the target's quiet steps;
     * {@code scale} is the distance (in spreads) that counts as the threshold (training's
     * calibration).
     */
    public record Variability(
            int profileSteps, int halfLifeSteps, int windowSteps, float floor, float scale)
            implements Serializable {}

    /**
     * The correlation score ("this device's targets are not related as the fleet's normal data
     * relates them", README "Scoring"): the distance of the step's target inputs, as the model sees
     * them, from the normal subspace training found: the span of the {@code components} rows of
     * {@code basis} (row-major, one value per target each, orthonormal). The distance is the root
     * of the sum of squares of what the subspace leaves of the step; {@code scale} is the distance
     * that counts as the threshold (training's calibration). It keeps no state: a new device is
     * measured against the fleet's normal from its first step, and nothing it does becomes normal.
     */
    public record Correlation(float[] basis, int components, float scale) implements Serializable {

        @Override
        public boolean equals(Object o) {
            return o instanceof Correlation c
                    && components == c.components
                    && java.util.Arrays.equals(basis, c.basis)
                    && Float.compare(scale, c.scale) == 0;
        }

        @Override
        public int hashCode() {
            return 31 * (31 * java.util.Arrays.hashCode(basis) + components)
                    + Float.hashCode(scale);
        }

        @Override
        public String toString() {
            return "Correlation[components=" + components + ", scale=" + scale + "]";
        }
    }

    /**
     * The stuck score ("this reading has stopped moving"): the longest run of consecutive steps in
     * which one of {@code features} (targets whose normal readings rarely repeat) repeated its
     * value exactly; {@code scale} is the run that counts as the threshold (training: the longest
     * run any device had in its training history).
     */
    public record Stuck(float scale, List<String> features) implements Serializable {
        public Stuck {
            features = List.copyOf(features);
        }
    }

    /**
     * Per-device normalisation ({@code "normalisation": "device"}, README "Scoring"): the model
     * sees each target feature normalised by the device's own profile rather than the fleet's mean
     * and std, so that one model serves devices whose levels and spreads differ. The fleet's
     * statistics stand in while the profile is learned (blended out over {@code profile_steps});
     * the device's spread is floored at {@code floor} (in fleet standard deviations). Context
     * features keep the fleet's normalisation. Needs the level score, whose profile it uses.
     */
    public record DeviceNormalisation(float floor) implements Serializable {}

    /**
     * The forecast residual scaled per device ({@code score.dynamics.device_steps}, README
     * "Scoring"): each device learns the mean square of its own dynamics score (in threshold units)
     * over its first {@code steps} steps after warm-up, then keeps adapting it with {@code
     * halfLifeSteps} (0: never) from steps whose combined score is at or below the threshold; its
     * dynamics score is divided by {@code max(floor, sqrt(that) / rms)}, where {@code rms} is the
     * same root mean square over the held-out steps training calibrated on. A device whose normal
     * residuals run higher than the fleet's is held to its own level; one whose residuals run lower
     * is made up to {@code 1 / floor} times as sensitive ({@code score.dynamics.device_floor}, in
     * (0, 1]; 1, no device more sensitive than the fleet, when the card does not say), and one
     * whose residuals run higher is made at most {@code ceiling} times less sensitive ({@code
     * device_ceiling}, at least 1; none when the card does not say). With {@code blocks} above 1
     * ({@code device_blocks}; 1, a plain mean, when the card does not say) the steps are learned in
     * that many blocks and the level leaves out the one or two far above the others (state format
     * 6): a fault while the device learns does not set it. With {@code learningBlocks} above 0
     * ({@code device_learning_blocks}; 0 when the card does not say) a device still learning is
     * held to the level of its blocks so far once that many are complete, instead of the fleet's
     * scale.
     */
    public record DeviceDynamics(
            int steps,
            int halfLifeSteps,
            float rms,
            float floor,
            int blocks,
            float ceiling,
            int learningBlocks)
            implements Serializable {

        /** A plain mean over the steps, and no ceiling: the fields cards before 0.6.0 have. */
        public DeviceDynamics(int steps, int halfLifeSteps, float rms, float floor) {
            this(steps, halfLifeSteps, rms, floor, 1, Float.POSITIVE_INFINITY);
        }

        /** The fleet's scale until the level is learned: the fields cards before 0.7.0 have. */
        public DeviceDynamics(
                int steps, int halfLifeSteps, float rms, float floor, int blocks, float ceiling) {
            this(steps, halfLifeSteps, rms, floor, blocks, ceiling, 0);
        }
    }

    private final String version;
    private final int hiddenSize;
    private final List<Feature> features;
    private final float threshold;
    private final int warmupSteps;
    private final float dynamicsScale;
    private final Level level;
    private final Stuck stuck;
    private final Variability variability;
    private final Correlation correlation;
    private final DeviceNormalisation normalisation;
    private final float dynamicsQuantile99;
    private final DeviceDynamics deviceDynamics;
    private final long stepIntervalMs;

    // Derived once, read per record.
    private final float[] mean;
    private final float[] std;
    private final float[] residualScale;
    private final String[] names;
    private final int[] targets;
    private final int[] stuckTargets;

    /** A card with the forecast residual as its only score (a card written before 0.2.0). */
    public ModelCard(
            String version,
            int hiddenSize,
            List<Feature> features,
            float threshold,
            int warmupSteps) {
        this(version, hiddenSize, features, threshold, warmupSteps, 1f, null, null, null);
    }

    /**
     * @param dynamicsScale the raw forecast-residual score that counts as the threshold: the
     *     combined score divides it by this (1 for a card with no {@code score} section)
     * @param level the level score's parameters, or null for none
     * @param stuck the stuck score's parameters, or null for none
     * @param normalisation per-device normalisation, or null for the fleet's (every card before it)
     */
    public ModelCard(
            String version,
            int hiddenSize,
            List<Feature> features,
            float threshold,
            int warmupSteps,
            float dynamicsScale,
            Level level,
            Stuck stuck,
            DeviceNormalisation normalisation) {
        this(
                version,
                hiddenSize,
                features,
                threshold,
                warmupSteps,
                dynamicsScale,
                level,
                stuck,
                normalisation,
                Float.NaN,
                null,
                0L);
    }

    /**
     * @param dynamicsQuantile99 the raw forecast-residual score's 0.99 quantile on held-out normal
     *     steps ({@code score_quantiles} of the card), which the drift metrics compare live scores
     *     with; NaN when the card does not say
     * @param deviceDynamics the per-device scale of the forecast residual, or null for the fleet's
     *     (every card before it)
     * @param stepIntervalMs the median interval between a device's steps in the training data
     *     ({@code training.step_interval_ms}); 0 when the card does not say
     */
    public ModelCard(
            String version,
            int hiddenSize,
            List<Feature> features,
            float threshold,
            int warmupSteps,
            float dynamicsScale,
            Level level,
            Stuck stuck,
            DeviceNormalisation normalisation,
            float dynamicsQuantile99,
            DeviceDynamics deviceDynamics,
            long stepIntervalMs) {
        this(
                version,
                hiddenSize,
                features,
                threshold,
                warmupSteps,
                dynamicsScale,
                level,
                stuck,
                normalisation,
                dynamicsQuantile99,
                deviceDynamics,
                stepIntervalMs,
                null,
                null);
    }

    /**
     * @param variability the variability score's parameters, or null for none
     * @param correlation the correlation score's parameters, or null for none
     */
    public ModelCard(
            String version,
            int hiddenSize,
            List<Feature> features,
            float threshold,
            int warmupSteps,
            float dynamicsScale,
            Level level,
            Stuck stuck,
            DeviceNormalisation normalisation,
            float dynamicsQuantile99,
            DeviceDynamics deviceDynamics,
            long stepIntervalMs,
            Variability variability,
            Correlation correlation) {
        this.variability = variability;
        this.correlation = correlation;
        this.dynamicsQuantile99 = dynamicsQuantile99;
        this.deviceDynamics = deviceDynamics;
        this.stepIntervalMs = stepIntervalMs;
        this.version = version;
        this.hiddenSize = hiddenSize;
        this.features = List.copyOf(features);
        this.threshold = threshold;
        this.warmupSteps = warmupSteps;
        this.dynamicsScale = dynamicsScale;
        this.level = level;
        this.stuck = stuck;
        this.normalisation = normalisation;
        int n = features.size();
        mean = new float[n];
        std = new float[n];
        residualScale = new float[n];
        names = new String[n];
        for (int i = 0; i < n; i++) {
            Feature f = features.get(i);
            names[i] = f.name();
            mean[i] = f.mean();
            std[i] = f.std();
            residualScale[i] = f.residualScale();
        }
        targets =
                java.util.stream.IntStream.range(0, n)
                        .filter(i -> features.get(i).role() != Role.CONTEXT)
                        .toArray();
        List<String> nameList = List.of(names);
        stuckTargets =
                stuck == null
                        ? new int[0]
                        : stuck.features().stream().mapToInt(nameList::indexOf).toArray();
        validate();
    }

    /** This card under another version: what a new release of the same model looks like. */
    public ModelCard withVersion(String newVersion) {
        return withLevel(newVersion, level);
    }

    /**
     * This card with another level score (or none): the same model scored with other level
     * parameters.
     */
    public ModelCard withLevel(String newVersion, Level newLevel) {
        return with(newVersion, newLevel, normalisation, deviceDynamics, variability);
    }

    /** This card with another variability score (null: none). */
    public ModelCard withVariability(String newVersion, Variability newVariability) {
        return with(newVersion, level, normalisation, deviceDynamics, newVariability);
    }

    /** This card with another correlation score (null: none). */
    public ModelCard withCorrelation(String newVersion, Correlation newCorrelation) {
        return with(newVersion, level, normalisation, deviceDynamics, variability, newCorrelation);
    }

    /** This card with another normalisation (null: the fleet's). */
    public ModelCard withNormalisation(String newVersion, DeviceNormalisation newNormalisation) {
        return with(newVersion, level, newNormalisation, deviceDynamics, variability);
    }

    /** This card with another per-device scale of the forecast residual (null: the fleet's). */
    public ModelCard withDeviceDynamics(String newVersion, DeviceDynamics newDeviceDynamics) {
        return with(newVersion, level, normalisation, newDeviceDynamics, variability);
    }

    private ModelCard with(
            String newVersion,
            Level newLevel,
            DeviceNormalisation newNorm,
            DeviceDynamics newDeviceDynamics,
            Variability newVariability) {
        return with(newVersion, newLevel, newNorm, newDeviceDynamics, newVariability, correlation);
    }

    private ModelCard with(
            String newVersion,
            Level newLevel,
            DeviceNormalisation newNorm,
            DeviceDynamics newDeviceDynamics,
            Variability newVariability,
            Correlation newCorrelation) {
        return new ModelCard(
                newVersion,
                hiddenSize,
                features,
                threshold,
                warmupSteps,
                dynamicsScale,
                newLevel,
                stuck,
                newNorm,
                dynamicsQuantile99,
                newDeviceDynamics,
                stepIntervalMs,
                newVariability,
                newCorrelation);
    }

    /** Reads and validates {@code dir/model.json}. */
    public static ModelCard load(Path dir) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            throw new ModelException(
                    "no model card at "
                            + file
                            + ": a model directory needs model.onnx and its card model.json"
                            + " (./vigil train writes both)");
        }
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new ModelException(
                    "model card " + file + " is not valid JSON: " + e.getMessage());
        }
        try {
            knownFields(root, "the card", TOP_FIELDS);
            List<Feature> features = new ArrayList<>();
            JsonNode list = required(root, "features");
            if (!list.isArray()) {
                throw new ModelException(
                        "\"features\" must be a list of {name, mean, std, residual_scale}");
            }
            for (JsonNode f : list) {
                knownFields(f, "a feature", FEATURE_FIELDS);
                features.add(
                        new Feature(
                                required(f, "name").asText(),
                                number(f, "mean"),
                                number(f, "std"),
                                number(f, "residual_scale"),
                                role(f),
                                bins(f)));
            }
            JsonNode score = root.get("score");
            float dynamicsScale = 1f;
            DeviceDynamics deviceDynamics = null;
            Level level = null;
            Stuck stuck = null;
            Variability variability = null;
            Correlation correlation = null;
            if (score != null && !score.isNull()) {
                knownFields(score, "\"score\"", SCORE_FIELDS);
                JsonNode combine = score.get("combine");
                if (combine != null && !combine.isNull() && !"max".equals(combine.asText())) {
                    throw new ModelException(
                            "\"score.combine\" is "
                                    + combine
                                    + ": this job combines the components by the largest only"
                                    + " (\"max\")");
                }
                JsonNode dynamics = required(score, "dynamics");
                knownFields(dynamics, "\"score.dynamics\"", DYNAMICS_FIELDS);
                dynamicsScale = number(dynamics, "scale");
                JsonNode deviceSteps = dynamics.get("device_steps");
                if (deviceSteps != null && !deviceSteps.isNull()) {
                    if (dynamics.get("rms") == null) {
                        throw new ModelException(
                                "\"score.dynamics.device_steps\" needs \"score.dynamics.rms\","
                                        + " the fleet's level that a device's is compared with:"
                                        + " train again with ./vigil train --dynamics-scale device");
                    }
                    JsonNode floor = dynamics.get("device_floor");
                    JsonNode ceiling = dynamics.get("device_ceiling");
                    deviceDynamics =
                            new DeviceDynamics(
                                    whole(dynamics, "device_steps"),
                                    wholeOr(dynamics, "device_half_life_steps", 0),
                                    number(dynamics, "rms"),
                                    floor == null || floor.isNull()
                                            ? 1f
                                            : number(dynamics, "device_floor"),
                                    wholeOr(dynamics, "device_blocks", 1),
                                    ceiling == null || ceiling.isNull()
                                            ? Float.POSITIVE_INFINITY
                                            : number(dynamics, "device_ceiling"),
                                    wholeOr(dynamics, "device_learning_blocks", 0));
                }
                JsonNode l = score.get("level");
                if (l != null && !l.isNull()) {
                    knownFields(l, "\"score.level\"", LEVEL_FIELDS);
                    level =
                            new Level(
                                    whole(l, "profile_steps"),
                                    whole(l, "half_life_steps"),
                                    whole(l, "window_steps"),
                                    number(l, "floor"),
                                    number(l, "scale"),
                                    learning(l.get("learning")));
                }
                JsonNode st = score.get("stuck");
                if (st != null && !st.isNull()) {
                    knownFields(st, "\"score.stuck\"", STUCK_FIELDS);
                    List<String> watched = new ArrayList<>();
                    required(st, "features").forEach(f -> watched.add(f.asText()));
                    stuck = new Stuck(number(st, "scale"), watched);
                }
                JsonNode v = score.get("variability");
                if (v != null && !v.isNull()) {
                    knownFields(v, "\"score.variability\"", VARIABILITY_FIELDS);
                    variability =
                            new Variability(
                                    whole(v, "profile_steps"),
                                    whole(v, "half_life_steps"),
                                    whole(v, "window_steps"),
                                    number(v, "floor"),
                                    number(v, "scale"));
                }
                correlation = correlation(score.get("correlation"));
            }
            return new ModelCard(
                    required(root, "version").asText(),
                    whole(root, "hidden_size"),
                    features,
                    number(root, "threshold"),
                    whole(root, "warmup_steps"),
                    dynamicsScale,
                    level,
                    stuck,
                    normalisation(root),
                    quantile99(root),
                    deviceDynamics,
                    stepInterval(root),
                    variability,
                    correlation);
        } catch (ModelException e) {
            throw new ModelException("model card " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * The card's {@code onnx.sha256}, the digest of the model.onnx it was written for (as {@code
     * ./vigil train} writes it), or null when it has none. Read apart from {@link #load}: it says
     * which file the card belongs to, not how to score.
     */
    static String declaredOnnxSha256(Path dir) {
        try {
            JsonNode digest =
                    new ObjectMapper()
                            .readTree(dir.resolve(FILE).toFile())
                            .path("onnx")
                            .path("sha256");
            return digest.isTextual() ? digest.asText() : null;
        } catch (IOException e) {
            throw new ModelException("model card " + dir.resolve(FILE) + ": " + e.getMessage(), e);
        }
    }

    /** {@code training.step_interval_ms}, or 0 when the card does not say (cards before it). */
    private static long stepInterval(JsonNode root) {
        JsonNode training = root.get("training");
        JsonNode v = training == null ? null : training.get("step_interval_ms");
        if (v == null || v.isNull()) {
            return 0L;
        }
        if (!v.isIntegralNumber() || v.asLong() < 0) {
            throw new ModelException(
                    "\"training.step_interval_ms\" must be a whole number of milliseconds, 0 or"
                            + " more, found "
                            + v);
        }
        return v.asLong();
    }

    private static DeviceNormalisation normalisation(JsonNode root) {
        JsonNode v = root.get("normalisation");
        String mode = v == null || v.isNull() ? "fleet" : v.asText();
        return switch (mode) {
            case "fleet" -> null;
            case "device" -> new DeviceNormalisation(number(root, "normalisation_floor"));
            default ->
                    throw new ModelException(
                            "\"normalisation\" is \"" + mode + "\": must be fleet or device");
        };
    }

    private static Role role(JsonNode feature) {
        JsonNode v = feature.get("role");
        if (v == null || v.isNull()) {
            return Role.TARGET;
        }
        return switch (v.asText()) {
            case "target" -> Role.TARGET;
            case "context" -> Role.CONTEXT;
            default ->
                    throw new ModelException(
                            "feature \""
                                    + feature.path("name").asText()
                                    + "\" has role \""
                                    + v.asText()
                                    + "\": must be target or context");
        };
    }

    /**
     * {@code score_quantiles."0.99"}, the drift metrics' calibration of the forecast residual, or
     * NaN when the card has none. One that is not a finite positive number is refused: at 0 every
     * step would count above it, and the score drift alert would fire for good.
     */
    private static float quantile99(JsonNode root) {
        JsonNode q = root.path("score_quantiles").get("0.99");
        if (q == null || q.isNull()) {
            return Float.NaN;
        }
        double v = q.isNumber() ? q.asDouble() : Double.NaN;
        if (!(v > 0) || Double.isInfinite(v) || (float) v == Float.POSITIVE_INFINITY) {
            throw new ModelException(
                    "\"score_quantiles\": {\"0.99\": ...} must be a finite, positive number, found "
                            + q);
        }
        return (float) v;
    }

    /** {@code score.level.learning}, or null when the card has none. */
    private static Learning learning(JsonNode l) {
        if (l == null || l.isNull()) {
            return null;
        }
        knownFields(l, "\"score.level.learning\"", LEARNING_FIELDS);
        float[] unit = floats(required(l, "unit"));
        if (unit == null) {
            throw new ModelException(
                    "\"score.level.learning.unit\" must be an array of numbers, one per target,"
                            + " found "
                            + l.get("unit"));
        }
        JsonNode gated = l.get("gated");
        if (gated != null && !gated.isBoolean()) {
            throw new ModelException(
                    "\"score.level.learning.gated\" must be true or false, found " + gated);
        }
        return new Learning(
                whole(l, "after_steps"),
                unit,
                number(l, "scale"),
                gated != null && gated.booleanValue());
    }

    /**
     * {@code score.correlation}, or null when the card has none: its {@code basis} (a list of rows,
     * one value per target each) flattened row by row; the sizes are checked by validate.
     */
    private static Correlation correlation(JsonNode c) {
        if (c == null || c.isNull()) {
            return null;
        }
        knownFields(c, "\"score.correlation\"", CORRELATION_FIELDS);
        JsonNode rows = required(c, "basis");
        String shape =
                "\"score.correlation.basis\" must be a non-empty list of rows of numbers, one per"
                        + " target each";
        if (!rows.isArray() || rows.isEmpty()) {
            throw new ModelException(shape + ", found " + rows);
        }
        int width = rows.get(0).size();
        float[] basis = new float[rows.size() * width];
        for (int k = 0; k < rows.size(); k++) {
            float[] row = floats(rows.get(k));
            if (row == null || row.length != width) {
                throw new ModelException(shape + ", found " + rows.get(k));
            }
            System.arraycopy(row, 0, basis, k * width, width);
        }
        return new Correlation(basis, rows.size(), number(c, "scale"));
    }

    /** A feature's drift bins, or null when the card has none; refused when inconsistent. */
    private static Bins bins(JsonNode feature) {
        JsonNode b = feature.get("bins");
        if (b == null || b.isNull()) {
            return null;
        }
        knownFields(b, "a feature's \"bins\"", BINS_FIELDS);
        String where = "feature \"" + feature.path("name").asText() + "\" has bins that ";
        float[] edges = floats(required(b, "edges"));
        float[] shares = floats(required(b, "shares"));
        if (edges == null || shares == null || shares.length != edges.length + 1) {
            throw new ModelException(
                    where + "are not {edges: [n numbers], shares: [n + 1 numbers]}: " + b);
        }
        float sum = 0f;
        for (int i = 0; i < shares.length; i++) {
            if (!(shares[i] >= 0f && shares[i] <= 1f)) {
                throw new ModelException(where + "have a share outside [0, 1]: " + b);
            }
            sum += shares[i];
        }
        for (int i = 0; i < edges.length; i++) {
            if (!Float.isFinite(edges[i]) || (i > 0 && !(edges[i] > edges[i - 1]))) {
                throw new ModelException(where + "do not increase (finite edges): " + b);
            }
        }
        if (Math.abs(sum - 1f) > 1e-3f) {
            throw new ModelException(where + "have shares that do not sum to 1: " + b);
        }
        return new Bins(edges, shares);
    }

    /** A JSON array of numbers as floats, or null when it is not one. */
    private static float[] floats(JsonNode array) {
        if (!array.isArray()) {
            return null;
        }
        float[] out = new float[array.size()];
        for (int i = 0; i < out.length; i++) {
            if (!array.get(i).isNumber()) {
                return null;
            }
            out[i] = (float) array.get(i).asDouble();
        }
        return out;
    }

    // The fields of the card's sections that say how to score: a field outside them (misspelt, or
    // from a newer ./vigil train) would be ignored, and the model scored otherwise than its card
    // says. The other sections (onnx, training, score_quantiles, each "calibration") describe.
    private static final Set<String> TOP_FIELDS =
            Set.of(
                    "version",
                    "hidden_size",
                    "normalisation",
                    "normalisation_floor",
                    "features",
                    "score",
                    "threshold",
                    "threshold_quantile",
                    "score_quantiles",
                    "warmup_steps",
                    "onnx",
                    "training");
    private static final Set<String> FEATURE_FIELDS =
            Set.of("name", "mean", "std", "residual_scale", "role", "bins");
    private static final Set<String> BINS_FIELDS = Set.of("edges", "shares");
    private static final Set<String> SCORE_FIELDS =
            Set.of("combine", "dynamics", "level", "stuck", "variability", "correlation");
    private static final Set<String> CORRELATION_FIELDS =
            Set.of("basis", "scale", "variance", "calibration");
    private static final Set<String> VARIABILITY_FIELDS =
            Set.of(
                    "profile_steps",
                    "half_life_steps",
                    "window_steps",
                    "floor",
                    "scale",
                    "calibration");
    private static final Set<String> DYNAMICS_FIELDS =
            Set.of(
                    "scale",
                    "calibration",
                    "rms",
                    "device_steps",
                    "device_half_life_steps",
                    "device_blocks",
                    "device_learning_blocks",
                    "device_ceiling",
                    "device_floor");
    private static final Set<String> LEVEL_FIELDS =
            Set.of(
                    "profile_steps",
                    "half_life_steps",
                    "window_steps",
                    "floor",
                    "scale",
                    "calibration",
                    "learning");
    private static final Set<String> LEARNING_FIELDS =
            Set.of("after_steps", "unit", "scale", "gated", "calibration");
    private static final Set<String> STUCK_FIELDS = Set.of("scale", "features", "calibration");

    /** Refuses a field of {@code node} (an object, in {@code where}) outside {@code known}. */
    private static void knownFields(JsonNode node, String where, Set<String> known) {
        if (!node.isObject()) {
            throw new ModelException(where + " must be an object, found " + node);
        }
        node.fieldNames()
                .forEachRemaining(
                        field -> {
                            if (!known.contains(field)) {
                                throw new ModelException(
                                        "unknown field \""
                                                + field
                                                + "\" in "
                                                + where
                                                + " (known: "
                                                + String.join(", ", new TreeSet<>(known))
                                                + "): correct a misspelt name, or run a job as new"
                                                + " as the ./vigil train that wrote the card");
                            }
                        });
    }

    private static JsonNode required(JsonNode node, String field) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            throw new ModelException("missing \"" + field + "\"");
        }
        return v;
    }

    /** A whole number that fits an int: "twenty", 20.5 or 3e9 is refused, not read as 0 or 20. */
    private static int whole(JsonNode node, String field) {
        JsonNode v = required(node, field);
        if (v.isNumber() && v.canConvertToExactIntegral() && v.canConvertToInt()) {
            return v.asInt();
        }
        throw new ModelException("\"" + field + "\" must be a whole number, found " + v);
    }

    /** {@link #whole}, or {@code absent} when the field is missing or null. */
    private static int wholeOr(JsonNode node, String field, int absent) {
        JsonNode v = node.get(field);
        return v == null || v.isNull() ? absent : whole(node, field);
    }

    private static float number(JsonNode node, String field) {
        JsonNode v = required(node, field);
        if (v.isNumber()) {
            return (float) v.asDouble();
        }
        if (v.isTextual()) { // "NaN", "Infinity": parsed so validate() can name them
            try {
                return Float.parseFloat(v.asText());
            } catch (NumberFormatException e) {
                // fall through
            }
        }
        throw new ModelException("\"" + field + "\" must be a number, found " + v);
    }

    private void validate() {
        if (version == null || version.isBlank()) {
            throw new ModelException("\"version\" must be a non-empty string");
        }
        if (hiddenSize <= 0) {
            throw new ModelException("\"hidden_size\" must be positive, found " + hiddenSize);
        }
        if (features.isEmpty()) {
            throw new ModelException("\"features\" is empty: the model needs at least one");
        }
        Set<String> seen = new HashSet<>();
        for (Feature f : features) {
            if (f.name() == null || f.name().isBlank()) {
                throw new ModelException("a feature has an empty name");
            }
            if (!seen.add(f.name())) {
                throw new ModelException("feature \"" + f.name() + "\" is listed twice");
            }
            if (!Float.isFinite(f.mean())) {
                throw new ModelException(
                        "feature \"" + f.name() + "\" has a non-finite mean " + f.mean());
            }
            if (!Float.isFinite(f.std()) || f.std() <= 0) {
                throw new ModelException(
                        "feature \""
                                + f.name()
                                + "\" needs a finite, positive std, found "
                                + f.std());
            }
            if (!Float.isFinite(f.residualScale()) || f.residualScale() <= 0) {
                throw new ModelException(
                        "feature \""
                                + f.name()
                                + "\" needs a finite, positive residual_scale, found "
                                + f.residualScale());
            }
        }
        if (!Float.isFinite(threshold) || threshold <= 0) {
            throw new ModelException(
                    "\"threshold\" must be finite and positive, found " + threshold);
        }
        if (warmupSteps < 0) {
            throw new ModelException("\"warmup_steps\" must be 0 or more, found " + warmupSteps);
        }
        if (targets.length == 0) {
            throw new ModelException(
                    "every feature has role \"context\": at least one must be a target to score");
        }
        if (!Float.isFinite(dynamicsScale) || dynamicsScale <= 0) {
            throw new ModelException(
                    "\"score.dynamics.scale\" must be finite and positive, found " + dynamicsScale);
        }
        if (deviceDynamics != null
                && (deviceDynamics.steps() < 1
                        || deviceDynamics.halfLifeSteps() < 0
                        || !(deviceDynamics.rms() > 0)
                        || !Float.isFinite(deviceDynamics.rms()))) {
            throw new ModelException(
                    "\"score.dynamics.device_steps\" must be at least 1,"
                            + " \"device_half_life_steps\" 0 or more and \"score.dynamics.rms\""
                            + " finite and positive, found "
                            + deviceDynamics);
        }
        if (deviceDynamics != null
                && !(deviceDynamics.floor() > 0 && deviceDynamics.floor() <= 1)) {
            throw new ModelException(
                    "\"score.dynamics.device_floor\" must be above 0 and at most 1 (the smallest"
                            + " divisor of a device's dynamics score), found "
                            + deviceDynamics.floor());
        }
        if (deviceDynamics != null && !(deviceDynamics.ceiling() >= 1)) {
            throw new ModelException(
                    "\"score.dynamics.device_ceiling\" must be at least 1 (the largest divisor of a"
                            + " device's dynamics score; leave it out for none), found "
                            + deviceDynamics.ceiling());
        }
        if (deviceDynamics != null && deviceDynamics.blocks() < 1) {
            throw new ModelException(
                    "\"score.dynamics.device_blocks\" must be at least 1 (the blocks a device's"
                            + " level of forecast residual is learned in; 1 for a plain mean),"
                            + " found "
                            + deviceDynamics.blocks());
        }
        if (deviceDynamics != null
                && (deviceDynamics.learningBlocks() < 0
                        || deviceDynamics.learningBlocks() > deviceDynamics.blocks()
                        || (deviceDynamics.learningBlocks() > 0 && deviceDynamics.blocks() < 2))) {
            throw new ModelException(
                    "\"score.dynamics.device_learning_blocks\" must be 0 (the fleet's scale until a"
                            + " device's level is learned) or at most \"device_blocks\" when that"
                            + " is 2 or more, found "
                            + deviceDynamics.learningBlocks()
                            + " with device_blocks "
                            + deviceDynamics.blocks());
        }
        if (level != null && level.learning() != null) {
            Learning learning = level.learning();
            if (learning.afterSteps() < 1 || learning.afterSteps() > level.profileSteps()) {
                throw new ModelException(
                        "\"score.level.learning.after_steps\" must be between 1 and"
                                + " score.level.profile_steps ("
                                + level.profileSteps()
                                + "), found "
                                + learning.afterSteps());
            }
            if (learning.unit().length != targets.length) {
                throw new ModelException(
                        "\"score.level.learning.unit\" needs one value per target feature ("
                                + targets.length
                                + "), found "
                                + learning.unit().length);
            }
            for (float u : learning.unit()) {
                if (!(u > 0) || !Float.isFinite(u)) {
                    throw new ModelException(
                            "\"score.level.learning.unit\" values must be finite and positive,"
                                    + " found "
                                    + u);
                }
            }
            if (!(learning.scale() > 0) || !Float.isFinite(learning.scale())) {
                throw new ModelException(
                        "\"score.level.learning.scale\" must be finite and positive, found "
                                + learning.scale());
            }
        }
        if (variability != null) {
            if (variability.windowSteps() < 1
                    || variability.profileSteps() <= variability.windowSteps()
                    || variability.halfLifeSteps() < 0) {
                throw new ModelException(
                        "\"score.variability\" needs window_steps of at least 1, profile_steps"
                                + " above it and half_life_steps of at least 0, found "
                                + variability);
            }
            finitePositive("score.variability.floor", variability.floor());
            finitePositive("score.variability.scale", variability.scale());
        }
        if (level != null) {
            if (level.profileSteps() < 1 || level.windowSteps() < 1 || level.halfLifeSteps() < 0) {
                throw new ModelException(
                        "\"score.level\" needs profile_steps and window_steps of at least 1 and"
                                + " half_life_steps of 0 or more, found "
                                + level);
            }
            finitePositive("score.level.floor", level.floor());
            finitePositive("score.level.scale", level.scale());
        }
        if (correlation != null) {
            validateCorrelation();
        }
        if (normalisation != null) {
            if (level == null) {
                throw new ModelException(
                        "\"normalisation\" is device but the card has no \"score.level\": the"
                                + " device's normal profile is the level score's; train with a"
                                + " level score");
            }
            if (!(normalisation.floor() > 0) || !Float.isFinite(normalisation.floor())) {
                throw new ModelException(
                        "\"normalisation_floor\" must be finite and positive, found "
                                + normalisation.floor());
            }
        }
        if (stuck != null) {
            if (!(stuck.scale() >= 1) || !Float.isFinite(stuck.scale())) {
                throw new ModelException(
                        "\"score.stuck.scale\" must be a finite run of at least 1 step, found "
                                + stuck.scale());
            }
            if (stuck.features().isEmpty()
                    || new HashSet<>(stuck.features()).size() != stuck.features().size()) {
                throw new ModelException(
                        "\"score.stuck.features\" must name at least one feature, each once, found "
                                + stuck.features());
            }
            for (int j = 0; j < stuckTargets.length; j++) {
                int i = stuckTargets[j];
                if (i < 0 || features.get(i).role() == Role.CONTEXT) {
                    throw new ModelException(
                            "\"score.stuck.features\" names \""
                                    + stuck.features().get(j)
                                    + "\", which is not a target feature of this card");
                }
            }
        }
    }

    /**
     * The basis must span fewer dimensions than the targets (else nothing is left to measure) and
     * be orthonormal, as the score's arithmetic takes it to be.
     */
    private void validateCorrelation() {
        int n = targets.length;
        int k = correlation.components();
        float[] b = correlation.basis();
        if (b.length != k * n || k >= n) {
            throw new ModelException(
                    "\"score.correlation.basis\" needs fewer rows than this card has targets ("
                            + n
                            + "), each of "
                            + n
                            + " values, found "
                            + k
                            + " rows of "
                            + (k == 0 ? 0 : b.length / k));
        }
        for (int i = 0; i < k; i++) {
            for (int j = i; j < k; j++) {
                double dot = 0;
                for (int t = 0; t < n; t++) {
                    dot += (double) b[i * n + t] * b[j * n + t];
                }
                if (!(Math.abs(dot - (i == j ? 1 : 0)) <= 1e-5)) {
                    throw new ModelException(
                            "\"score.correlation.basis\" rows must be orthonormal (unit length,"
                                    + " at right angles): rows "
                                    + i
                                    + " and "
                                    + j
                                    + " have a dot product of "
                                    + dot
                                    + "; train again with ./vigil train");
                }
            }
        }
        finitePositive("score.correlation.scale", correlation.scale());
    }

    public String version() {
        return version;
    }

    public int hiddenSize() {
        return hiddenSize;
    }

    public List<Feature> features() {
        return features;
    }

    public int featureCount() {
        return names.length;
    }

    public List<String> featureNames() {
        return List.of(names);
    }

    /** Feature names in model order; shared, never modify. */
    public String[] names() {
        return names;
    }

    /** Per-feature mean in model order; shared, never modify. */
    public float[] mean() {
        return mean;
    }

    /** Per-feature std in model order; shared, never modify. */
    public float[] std() {
        return std;
    }

    /** Per-feature residual scale in model order; shared, never modify. */
    public float[] residualScale() {
        return residualScale;
    }

    public float threshold() {
        return threshold;
    }

    public int warmupSteps() {
        return warmupSteps;
    }

    /** The raw forecast-residual score that counts as the threshold (1 for older cards). */
    public float dynamicsScale() {
        return dynamicsScale;
    }

    private static void finitePositive(String field, float value) {
        if (!(value > 0) || !Float.isFinite(value)) {
            throw new ModelException(
                    "\"" + field + "\" must be finite and positive, found " + value);
        }
    }

    /** The variability score's parameters, or null when the card has none. */
    public Variability variability() {
        return variability;
    }

    /** The correlation score's parameters, or null when the card has none. */
    public Correlation correlation() {
        return correlation;
    }

    /** The level score's parameters, or null when the card has none. */
    public Level level() {
        return level;
    }

    /** The stuck score's parameters, or null when the card has none. */
    public Stuck stuck() {
        return stuck;
    }

    /** The raw forecast-residual score's q0.99 on held-out normal steps; NaN when unknown. */
    public float dynamicsQuantile99() {
        return dynamicsQuantile99;
    }

    /** Per-device normalisation's parameters, or null when the model sees the fleet's. */
    public DeviceNormalisation normalisation() {
        return normalisation;
    }

    /** The per-device scale of the forecast residual, or null when the fleet's holds for all. */
    public DeviceDynamics deviceDynamics() {
        return deviceDynamics;
    }

    /**
     * The median interval between two steps of a device in the training data, in milliseconds
     * ({@code training.step_interval_ms}); 0 when the card does not say.
     */
    public long stepIntervalMs() {
        return stepIntervalMs;
    }

    /** Indexes of the features the stuck score watches (none without one); never modify. */
    public int[] stuckTargets() {
        return stuckTargets;
    }

    /** Indexes of the target features, in model order; shared, never modify. */
    public int[] targets() {
        return targets;
    }

    /**
     * What this card watches, in one line for the job's and the demo's start: the targets (by name,
     * up to {@value #DESCRIBED_TARGETS}) and how many features are context, each score component
     * the card has, the ones it leaves out (a component left out never fires, so a reader should
     * not have to infer it from silence), the model's normalisation and the threshold.
     */
    public String describeScoring() {
        StringBuilder b = new StringBuilder("scores ");
        for (int i = 0; i < targets.length && i < DESCRIBED_TARGETS; i++) {
            b.append(i == 0 ? "" : ", ").append(features.get(targets[i]).name());
        }
        if (targets.length > DESCRIBED_TARGETS) {
            b.append(" and ").append(targets.length - DESCRIBED_TARGETS).append(" more");
        }
        b.append(" (")
                .append(targets.length)
                .append(" of ")
                .append(features.size())
                .append(" features");
        int context = features.size() - targets.length;
        if (context > 0) {
            b.append("; ").append(context).append(" context, seen by the model, never scored");
        }
        b.append(") by dynamics (the forecast residual, ")
                .append(deviceDynamics == null ? "the fleet's scale" : "scaled per device")
                .append(")");
        List<String> without = new ArrayList<>();
        if (level == null) {
            without.add("level");
        } else {
            b.append(", level (profile of ")
                    .append(level.profileSteps())
                    .append(" steps")
                    .append(
                            level.learning() == null
                                    ? ", no score while it is learned"
                                    : ", scored while it is learned")
                    .append(
                            level.learning() != null && level.learning().gated()
                                    ? ", skipping the steps above the threshold while it is learned"
                                    : "")
                    .append(")");
        }
        if (stuck == null) {
            without.add("stuck");
        } else {
            b.append(", stuck (").append(stuckTargets.length).append(" watched)");
        }
        if (variability == null) {
            without.add("variability");
        } else {
            b.append(", variability");
        }
        if (correlation == null) {
            without.add("correlation");
        } else {
            b.append(", correlation (off a normal subspace of ")
                    .append(correlation.components())
                    .append(" of ")
                    .append(targets.length)
                    .append(" directions)");
        }
        if (!without.isEmpty()) {
            b.append("; not in this card: ").append(String.join(", ", without));
        }
        b.append(
                normalisation == null
                        ? "; inputs normalised by the fleet"
                        : "; targets normalised by each device, context by the fleet");
        b.append("; threshold ").append(String.format(java.util.Locale.ROOT, "%.3f", threshold));
        return b.toString();
    }

    /** The targets {@link #describeScoring} names; more are counted. */
    static final int DESCRIBED_TARGETS = 8;
}
