package dev.vigil.model;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.Map;

/**
 * One ONNX Runtime session of the GRU step model, with direct input and output buffers allocated
 * once for up to {@code maxBatch} rows. A caller writes rows into {@link #x()} and {@link #h()},
 * calls {@link #run(int)} and reads {@link #hNext()} and {@link #y()}: no tensor, buffer or array
 * is allocated per call once a batch size has been seen. Not thread-safe: one per operator
 * instance, opened in {@code open()} and closed in {@code close()}.
 */
public final class GruModel implements AutoCloseable {

    public static final String INPUT_X = "x";
    public static final String INPUT_H = "h";
    public static final String OUTPUT_H = "h_next";
    public static final String OUTPUT_Y = "y";

    private final ModelCard card;
    private final int maxBatch;
    private final OrtSession session;
    private final FloatBuffer x;
    private final FloatBuffer h;
    private final FloatBuffer hNext;
    private final FloatBuffer y;

    /** Tensors over the buffers' first rows, per batch size, created when first needed. */
    private final Binding[] bindings;

    private record Binding(
            Map<String, OnnxTensor> inputs, Map<String, OnnxTensor> outputs, OnnxTensor[] all) {}

    private GruModel(ModelCard card, int maxBatch, OrtSession session) {
        this.card = card;
        this.maxBatch = maxBatch;
        this.session = session;
        int f = card.featureCount();
        int hs = card.hiddenSize();
        x = direct(maxBatch * f);
        h = direct(maxBatch * hs);
        hNext = direct(maxBatch * hs);
        y = direct(maxBatch * f);
        bindings = new Binding[maxBatch + 1];
    }

    /**
     * Opens a session (one intra-op thread: Flink's parallelism is the parallelism) and checks the
     * model's inputs and outputs against the card.
     */
    public static GruModel open(ModelBundle bundle, int maxBatch) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch must be at least 1, was " + maxBatch);
        }
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        OrtSession session = null;
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(1);
            options.setInterOpNumThreads(1);
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            session = env.createSession(bundle.onnx(), options);
            checkSignature(session, bundle.card());
            return new GruModel(bundle.card(), maxBatch, session);
        } catch (OrtException e) {
            closeQuietly(session);
            throw new ModelException("ONNX Runtime cannot load the model: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            closeQuietly(session);
            throw e;
        }
    }

    /** Refuses a model whose inputs or outputs disagree with the card, naming both sides. */
    static void checkSignature(OrtSession session, ModelCard card) throws OrtException {
        Map<String, NodeInfo> inputs = session.getInputInfo();
        Map<String, NodeInfo> outputs = session.getOutputInfo();
        if (!inputs.keySet().equals(java.util.Set.of(INPUT_X, INPUT_H))) {
            throw new ModelException(
                    "the ONNX model's inputs are "
                            + inputs.keySet()
                            + " but the contract needs exactly [x, h]");
        }
        if (!outputs.keySet().containsAll(java.util.List.of(OUTPUT_H, OUTPUT_Y))) {
            throw new ModelException(
                    "the ONNX model's outputs are "
                            + outputs.keySet()
                            + " but the contract needs [h_next, y]");
        }
        int f = card.featureCount();
        int hs = card.hiddenSize();
        checkTensor(INPUT_X, inputs.get(INPUT_X), f, "features " + card.featureNames());
        checkTensor(INPUT_H, inputs.get(INPUT_H), hs, "hidden_size " + hs);
        checkTensor(OUTPUT_H, outputs.get(OUTPUT_H), hs, "hidden_size " + hs);
        checkTensor(OUTPUT_Y, outputs.get(OUTPUT_Y), f, "features " + card.featureNames());
    }

    private static void checkTensor(String name, NodeInfo node, int width, String cardSide) {
        if (!(node.getInfo() instanceof TensorInfo info)) {
            throw new ModelException("ONNX '" + name + "' is not a tensor: " + node.getInfo());
        }
        if (info.type != OnnxJavaType.FLOAT) {
            throw new ModelException(
                    "ONNX '" + name + "' has element type " + info.type + " but must be float32");
        }
        long[] shape = info.getShape();
        if (shape.length != 2) {
            throw new ModelException(
                    "ONNX '"
                            + name
                            + "' has shape "
                            + Arrays.toString(shape)
                            + " but must be [batch, "
                            + width
                            + "]");
        }
        if (shape[1] != width) {
            throw new ModelException(
                    "ONNX '"
                            + name
                            + "' has shape "
                            + Arrays.toString(shape)
                            + " (width "
                            + shape[1]
                            + ") but the card says "
                            + cardSide
                            + " (width "
                            + width
                            + ")");
        }
        // Any fixed size fails: the job steps batches of every size up to maxBatch (a flush takes
        // what is buffered), and a single row when it retries a failed batch row by row.
        if (shape[0] >= 0) {
            throw new ModelException(
                    "ONNX '"
                            + name
                            + "' has a fixed batch of "
                            + shape[0]
                            + " but the job steps batches of any size (what a flush has buffered,"
                            + " one row when it retries a failed batch): export it with a dynamic"
                            + " batch axis");
        }
    }

    /** Input rows of normalised features, row-major [maxBatch, F]; write with absolute puts. */
    public FloatBuffer x() {
        return x;
    }

    /** Input hidden states, row-major [maxBatch, H]; write with absolute puts. */
    public FloatBuffer h() {
        return h;
    }

    /** Output hidden states of the last {@link #run}, row-major [batch, H]. */
    public FloatBuffer hNext() {
        return hNext;
    }

    /** Output forecasts of the last {@link #run}, row-major [batch, F]. */
    public FloatBuffer y() {
        return y;
    }

    /** Steps the first {@code batch} rows of x and h; results land in hNext and y. */
    public void run(int batch) {
        if (batch < 1 || batch > maxBatch) {
            throw new IllegalArgumentException("batch " + batch + " outside 1.." + maxBatch);
        }
        Binding b = bindings[batch];
        if (b == null) {
            b = bind(batch);
            bindings[batch] = b;
        }
        try (OrtSession.Result ignored = session.run(b.inputs(), b.outputs())) {
            // outputs are pinned: written straight into hNext and y, owned by this model
        } catch (OrtException e) {
            throw new IllegalStateException(
                    "ONNX Runtime failed on a batch of " + batch + ": " + e.getMessage(), e);
        }
    }

    /**
     * Steps row {@code row} of x and h alone, its results landing in that row of hNext and y: how a
     * failed batch is retried, to find the row that fails it. Binds tensors for the one call (a
     * rare path); throws {@link IllegalStateException} when ONNX Runtime fails on the row.
     */
    public void runRow(int row) {
        if (row < 0 || row >= maxBatch) {
            throw new IllegalArgumentException("row " + row + " outside 0.." + (maxBatch - 1));
        }
        Binding b = bind(row, 1);
        try (OrtSession.Result ignored = session.run(b.inputs(), b.outputs())) {
            // outputs pinned to the row's place in hNext and y
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime failed on a row: " + e.getMessage(), e);
        } finally {
            for (OnnxTensor t : b.all()) {
                t.close();
            }
        }
    }

    private Binding bind(int batch) {
        return bind(0, batch);
    }

    /** Tensors over rows [first, first + batch) of the four buffers. */
    private Binding bind(int first, int batch) {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        int f = card.featureCount();
        int hs = card.hiddenSize();
        OnnxTensor[] all = new OnnxTensor[4];
        try {
            long[] features = {batch, f};
            long[] hidden = {batch, hs};
            all[0] = OnnxTensor.createTensor(env, x.slice(first * f, batch * f), features);
            all[1] = OnnxTensor.createTensor(env, h.slice(first * hs, batch * hs), hidden);
            all[2] = OnnxTensor.createTensor(env, hNext.slice(first * hs, batch * hs), hidden);
            all[3] = OnnxTensor.createTensor(env, y.slice(first * f, batch * f), features);
        } catch (OrtException e) {
            for (OnnxTensor t : all) {
                closeQuietly(t);
            }
            throw new IllegalStateException("cannot bind buffers for a batch of " + batch, e);
        }
        return new Binding(
                Map.of(INPUT_X, all[0], INPUT_H, all[1]),
                Map.of(OUTPUT_H, all[2], OUTPUT_Y, all[3]),
                all);
    }

    @Override
    public void close() {
        for (Binding b : bindings) {
            if (b != null) {
                for (OnnxTensor t : b.all()) {
                    t.close();
                }
            }
        }
        closeQuietly(session);
    }

    private static FloatBuffer direct(int floats) {
        return ByteBuffer.allocateDirect(floats * Float.BYTES)
                .order(ByteOrder.nativeOrder())
                .asFloatBuffer();
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c != null) {
            try {
                c.close();
            } catch (Exception e) {
                // closing after a failure: the first error is the one to report
            }
        }
    }
}
