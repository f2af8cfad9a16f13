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

/**
 * The model card ({@code model.json} beside {@code model.onnx}): what the ONNX model expects and
 * how to read its output. Validated when loaded, so a bad card stops the job at start, never a
 * device's scoring later.
 */
public final class ModelCard implements Serializable {

    public static final String FILE = "model.json";

    /** One input feature, in model order. */
    public record Feature(String name, float mean, float std, float residualScale)
            implements Serializable {}

    private final String version;
    private final int hiddenSize;
    private final List<Feature> features;
    private final float threshold;
    private final int warmupSteps;

    // Derived once, read per record.
    private final float[] mean;
    private final float[] std;
    private final float[] residualScale;
    private final String[] names;

    public ModelCard(
            String version,
            int hiddenSize,
            List<Feature> features,
            float threshold,
            int warmupSteps) {
        this.version = version;
        this.hiddenSize = hiddenSize;
        this.features = List.copyOf(features);
        this.threshold = threshold;
        this.warmupSteps = warmupSteps;
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
        validate();
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
            List<Feature> features = new ArrayList<>();
            JsonNode list = required(root, "features");
            if (!list.isArray()) {
                throw new ModelException(
                        "\"features\" must be a list of {name, mean, std, residual_scale}");
            }
            for (JsonNode f : list) {
                features.add(
                        new Feature(
                                required(f, "name").asText(),
                                number(f, "mean"),
                                number(f, "std"),
                                number(f, "residual_scale")));
            }
            return new ModelCard(
                    required(root, "version").asText(),
                    required(root, "hidden_size").asInt(),
                    features,
                    number(root, "threshold"),
                    required(root, "warmup_steps").asInt());
        } catch (ModelException e) {
            throw new ModelException("model card " + file + ": " + e.getMessage(), e);
        }
    }

    private static JsonNode required(JsonNode node, String field) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            throw new ModelException("missing \"" + field + "\"");
        }
        return v;
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
}
