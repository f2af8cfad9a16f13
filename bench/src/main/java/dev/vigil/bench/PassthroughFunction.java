package dev.vigil.bench;

import dev.vigil.config.VigilOptions;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * The pipeline with the model switched off: the same source, parsing, shuffle, device state read
 * and write, and sink, but no inference. The ceiling the scoring operators are measured against,
 * and the frame of the naive baseline, which adds its model call in {@link #step}.
 */
public class PassthroughFunction
        extends KeyedProcessFunction<String, TelemetryEvent, AnomalyEvent> {

    protected final ModelBundle bundle;
    private transient ValueState<DeviceState> state;

    public PassthroughFunction(ModelBundle bundle) {
        this.bundle = bundle;
    }

    @Override
    public void open(OpenContext ctx) throws Exception {
        state =
                getRuntimeContext()
                        .getState(
                                DeviceStateSchema.descriptor(
                                        VigilOptions.STATE_TTL.defaultValue()));
    }

    @Override
    public void processElement(TelemetryEvent e, Context ctx, Collector<AnomalyEvent> out)
            throws Exception {
        ModelCard card = bundle.card();
        DeviceState s = state.value();
        if (s == null) {
            s = DeviceState.fresh(card.version(), card.hiddenSize(), card.featureCount());
        }
        step(s, e);
        s.steps++;
        s.lastTs = e.ts;
        state.update(s);
    }

    /** What the variant does with a device's step between reading and writing its state. */
    protected void step(DeviceState s, TelemetryEvent e) throws Exception {}
}
