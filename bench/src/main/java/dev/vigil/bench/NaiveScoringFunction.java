package dev.vigil.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.vigil.config.VigilOptions;
import dev.vigil.model.GruModel;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * The baseline: what a typical first implementation does. One ONNX Runtime call per record with
 * fresh heap arrays and fresh tensors each time, results copied out of a new result object. It
 * keeps the same device state as the job, read from and written to RocksDB at every record, as a
 * keyed process function does.
 */
public class NaiveScoringFunction
        extends KeyedProcessFunction<String, TelemetryEvent, AnomalyEvent> {

    private final ModelBundle bundle;
    private transient ValueState<DeviceState> state;
    private transient OrtEnvironment env;
    private transient OrtSession session;

    public NaiveScoringFunction(ModelBundle bundle) {
        this.bundle = bundle;
    }

    @Override
    public void open(OpenContext ctx) throws Exception {
        state =
                getRuntimeContext()
                        .getState(
                                DeviceStateSchema.descriptor(
                                        VigilOptions.STATE_TTL.defaultValue()));
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
    public void processElement(TelemetryEvent e, Context ctx, Collector<AnomalyEvent> out)
            throws Exception {
        ModelCard card = bundle.card();
        DeviceState s = state.value();
        if (s == null) {
            s = DeviceState.fresh(card.version(), card.hiddenSize(), card.featureCount());
        }
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
        s.steps++;
        s.lastTs = e.ts;
        state.update(s);
    }
}
