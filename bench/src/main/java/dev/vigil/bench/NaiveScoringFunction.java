package dev.vigil.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.vigil.model.GruModel;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;

/**
 * The baseline: what a typical first implementation does. One ONNX Runtime call per record with
 * fresh heap arrays and fresh tensors each time, results copied out of a new result object. It
 * keeps the same device state as the job so the comparison measures only the scoring.
 */
public class NaiveScoringFunction extends PassthroughFunction {

    private transient OrtEnvironment env;
    private transient OrtSession session;

    public NaiveScoringFunction(ModelBundle bundle) {
        super(bundle);
    }

    @Override
    public void open(OpenContext ctx) throws Exception {
        super.open(ctx);
        env = OrtEnvironment.getEnvironment();
        session = env.createSession(bundle.onnx(), new OrtSession.SessionOptions());
    }

    @Override
    public void close() throws Exception {
        if (session != null) {
            session.close();
        }
    }

    @Override
    protected void step(DeviceState s, TelemetryEvent e) throws Exception {
        ModelCard card = bundle.card();
        float[][] x = new float[1][card.featureCount()];
        for (int i = 0; i < x[0].length; i++) {
            x[0][i] = (e.values[i] - card.mean()[i]) / card.std()[i];
        }
        float[][] h = new float[][] {s.hidden.clone()};
        try (OnnxTensor xt = OnnxTensor.createTensor(env, x);
                OnnxTensor ht = OnnxTensor.createTensor(env, h);
                OrtSession.Result r =
                        session.run(Map.of(GruModel.INPUT_X, xt, GruModel.INPUT_H, ht))) {
            s.hidden = ((float[][]) r.get(GruModel.OUTPUT_H).get().getValue())[0];
            s.forecast = ((float[][]) r.get(GruModel.OUTPUT_Y).get().getValue())[0];
        }
    }
}
