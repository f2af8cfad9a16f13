package dev.vigil.model;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The ONNX model's bytes with its validated card. Read once where the job is submitted and shipped
 * inside the job graph, so every TaskManager scores with exactly the model that was checked at
 * start, wherever it runs.
 */
public record ModelBundle(ModelCard card, byte[] onnx) implements Serializable {

    public static final String ONNX_FILE = "model.onnx";

    /**
     * Loads {@code dir/model.onnx} and {@code dir/model.json} and checks one against the other;
     * throws {@link ModelException} with what to fix.
     */
    public static ModelBundle load(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new ModelException("model directory " + dir + " does not exist");
        }
        ModelCard card = ModelCard.load(dir);
        Path onnxFile = dir.resolve(ONNX_FILE);
        if (!Files.isRegularFile(onnxFile)) {
            throw new ModelException("no " + ONNX_FILE + " in " + dir + " beside its card");
        }
        byte[] onnx;
        try {
            onnx = Files.readAllBytes(onnxFile);
        } catch (IOException e) {
            throw new ModelException("cannot read " + onnxFile + ": " + e.getMessage(), e);
        }
        ModelBundle bundle = new ModelBundle(card, onnx);
        try (GruModel model = GruModel.open(bundle, 1)) {
            return bundle; // opening checked the ONNX signature against the card
        } catch (ModelException e) {
            throw new ModelException(onnxFile + ": " + e.getMessage(), e);
        }
    }
}
