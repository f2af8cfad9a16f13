package dev.vigil.scoring;

import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Scores each device's steps in order, one ONNX Runtime call per record: the simplest correct
 * operator, the reference {@link BatchedScoringOperator} must match, and the choice for the lowest
 * latency at low rates ({@code vigil.scoring.batch-size: 0}). It keeps the same state under the
 * same uid as the batched operator, so a job can switch between them through a savepoint.
 *
 * <p>It must never feed a late or duplicate event to the GRU, never score against a forecast from
 * another model version, and never emit an alert during warm-up.
 */
public class GruScoringFunction extends KeyedProcessFunction<String, TelemetryEvent, AnomalyEvent>
        implements Scorer.Emitter {

    private final ModelBundle bundle;
    private final ScoringSettings settings;

    private transient Scorer scorer;
    // Created on a device's first event, written every scored step, dropped after stateTtl without
    // one.
    private transient ValueState<DeviceState> state;
    private transient Context ctx;
    private transient Collector<AnomalyEvent> out;

    public GruScoringFunction(ModelBundle bundle, ScoringSettings settings) {
        this.bundle = bundle;
        this.settings = settings;
    }

    @Override
    public void open(OpenContext openContext) {
        state = getRuntimeContext().getState(DeviceStateSchema.descriptor(settings.stateTtl()));
        scorer =
                new Scorer(
                        bundle,
                        settings,
                        1,
                        new Metrics.Scoring(getRuntimeContext(), settings.shadow()));
    }

    @Override
    public void close() {
        if (scorer != null) {
            scorer.close();
        }
    }

    @Override
    public void processElement(TelemetryEvent e, Context ctx, Collector<AnomalyEvent> out)
            throws Exception {
        this.ctx = ctx;
        this.out = out;
        // Outputs take this record's timestamp from ctx and out: no need to pass one.
        long ts = Scorer.NO_TIMESTAMP;
        DeviceState stored = state.value();
        boolean current = scorer.current(stored);
        DeviceState s = scorer.prepare(stored, e.deviceId, ts, this);
        boolean accepted = scorer.accept(s, e, ts, this);
        if (accepted) {
            scorer.load(s, e, 0);
            scorer.infer(1);
            scorer.finish(s, e, 0, ts, this);
        }
        if (accepted || !current) { // a late record alone does not refresh the time-to-live
            state.update(s);
        }
    }

    @Override
    public void anomaly(AnomalyEvent event, long timestamp) {
        out.collect(event);
    }

    @Override
    public void deadLetter(DeadLetter letter, long timestamp) {
        ctx.output(Outputs.DEAD_LETTERS, letter);
    }

    @Override
    public void score(ScoredStep step, long timestamp) {
        ctx.output(Outputs.SCORES, step);
    }
}
