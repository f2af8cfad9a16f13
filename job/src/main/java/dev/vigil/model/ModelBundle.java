package dev.vigil.model;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ONNX model's bytes with its validated card. Read once where the job is submitted and shipped
 * inside the job graph, so every TaskManager scores with exactly the model that was checked at
 * start, wherever it runs.
 */
public record ModelBundle(ModelCard card, byte[] onnx) implements Serializable {

    public static final String ONNX_FILE = "model.onnx";

    private static final Logger LOG = LoggerFactory.getLogger(ModelBundle.class);

    static String sha256(byte[] bytes) {
        try {
            return java.util.HexFormat.of()
                    .formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JVM has SHA-256", e);
        }
    }

    /**
     * Loads {@code dir/model.onnx} and {@code dir/model.json} and checks one against the other (the
     * ONNX file's digest against the card's {@code onnx.sha256} when it has one, then the ONNX
     * signature against the card's sizes); throws {@link ModelException} with what to fix.
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
        String declared = ModelCard.declaredOnnxSha256(dir);
        String actual = sha256(onnx);
        if (declared == null) {
            LOG.warn(
                    "The model card {} has no onnx.sha256: nothing checks that {} (sha256 {}) is"
                            + " the model it was calibrated for. ./vigil train writes it; add it to"
                            + " a card written by hand.",
                    dir.resolve(ModelCard.FILE),
                    onnxFile,
                    actual);
        } else if (!declared.equalsIgnoreCase(actual)) {
            throw new ModelException(
                    onnxFile
                            + " has sha256 "
                            + actual
                            + " but its card "
                            + dir.resolve(ModelCard.FILE)
                            + " was written for "
                            + declared
                            + " (onnx.sha256): its normalisation, thresholds and version belong to"
                            + " other weights. Use the model.onnx and model.json that ./vigil train"
                            + " wrote together.");
        }
        ModelBundle bundle = new ModelBundle(card, onnx);
        try (GruModel model = GruModel.open(bundle, 1)) {
            // opening checked the ONNX signature against the card; one step checks the weights
            stepOnce(model, card);
            return bundle;
        } catch (ModelException e) {
            throw new ModelException(onnxFile + ": " + e.getMessage(), e);
        }
    }

    /**
     * One step from the training mean (normalised zeros) with zero memory, as a new device's first:
     * ONNX Runtime must run it and give a finite memory and forecast. A model that cannot would
     * fail every batch in the running job, or reset every device at every step (NaN weights).
     */
    static void stepOnce(GruModel model, ModelCard card) {
        for (int i = 0; i < card.featureCount(); i++) {
            model.x().put(i, 0f);
        }
        for (int i = 0; i < card.hiddenSize(); i++) {
            model.h().put(i, 0f);
        }
        try {
            model.run(1);
        } catch (IllegalStateException e) {
            throw new ModelException(
                    "ONNX Runtime cannot run one step of it (" + e.getMessage() + ")", e);
        }
        for (int i = 0; i < card.hiddenSize(); i++) {
            notFinite(model.hNext().get(i), "memory (h_next)", i);
        }
        for (int i = 0; i < card.featureCount(); i++) {
            notFinite(model.y().get(i), "forecast (y)", i);
        }
    }

    private static void notFinite(float v, String output, int index) {
        if (!Float.isFinite(v)) {
            throw new ModelException(
                    "one step from the training mean with zero memory gives a non-finite "
                            + output
                            + " ("
                            + v
                            + " at "
                            + index
                            + "): its weights are not finite or it was exported wrong;"
                            + " train and export it again with ./vigil train");
        }
    }
}
