package dev.vigil.scoring;

import dev.vigil.model.ModelBundle;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.runtime.state.KeyedStateBackend;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.InternalTimerService;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.api.operators.TimestampedCollector;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.util.Collector;

/**
 * Scores each device's steps in order, one ONNX Runtime call per record (and model): the simplest
 * correct operator, the reference {@link BatchedScoringOperator} must match, and the choice for the
 * lowest latency at low rates ({@code vigil.scoring.batch-size: 0}). It keeps the same state under
 * the same uid as the batched operator, so a job can switch between them through a savepoint.
 *
 * <p>It must never feed a late or duplicate event to the GRU, never score against a forecast from
 * another model version, and never emit an alert during warm-up.
 */
public class GruScoringFunction extends KeyedProcessFunction<String, TelemetryEvent, AnomalyEvent>
        implements Models.Sink {

    private final Models.Bundles bundles;
    private final ScoringSettings settings;

    private transient Models models;
    // Per device, both models' states in one entry: created on its first event, written every
    // scored step, dropped after backendTtl without a write (forgotten before, with the watch).
    private transient DeviceStates states;
    // The current device's state per model (two: a shadow state the job restored without its
    // shadow model is written back as it was).
    private transient DeviceState[] steppedStates;
    private transient boolean[] accepted;
    private transient Context ctx;
    private transient Collector<AnomalyEvent> out;
    private transient Scorer.Emitter serving;
    private transient Scorer.Emitter shadowing;
    private transient Silence silence;
    private transient Silence.Timers timers;

    public GruScoringFunction(ModelBundle bundle, ScoringSettings settings) {
        this(bundle, null, settings);
    }

    /** With a shadow model ({@code shadow}, or null for none) beside the serving one. */
    public GruScoringFunction(ModelBundle bundle, ModelBundle shadow, ScoringSettings settings) {
        this.bundles = new Models.Bundles(bundle, shadow);
        this.settings = settings;
    }

    @Override
    public void open(OpenContext openContext) {
        states = new DeviceStates(settings, getRuntimeContext());
        models = new Models(bundles, settings, 1, getRuntimeContext());
        steppedStates = new DeviceState[2];
        accepted = new boolean[models.count()];
        serving = models.emitter(true, this);
        shadowing = models.emitter(false, this);
        silence = Models.silence(settings, getRuntimeContext());
        timers =
                new Silence.Timers() {
                    @Override
                    public void register(String deviceId, long time) {
                        ctx.timerService().registerEventTimeTimer(time);
                    }

                    @Override
                    public void delete(String deviceId, long time) {
                        ctx.timerService().deleteEventTimeTimer(time);
                    }

                    @Override
                    public long watermark() {
                        return ctx.timerService().currentWatermark();
                    }
                };
    }

    /**
     * Arms the silence watch of a restored state that needs it ({@link SilenceArming}), through the
     * operator's timer service ({@code timers}, of the backend's current key). Called by {@link
     * Operator} once this function is open.
     */
    void arm(SilenceArming arming, KeyedStateBackend<String> backend, Silence.Timers timers)
            throws Exception {
        states.moveOlderShadowStates(backend);
        arming.open(silence, backend, states, models, timers);
    }

    /**
     * The per-record scoring operator: Flink's {@link KeyedProcessOperator} of this function, which
     * also arms the silence watch of a restored state ({@link SilenceArming}), as the batched
     * operator does. Its timers are the function's, under the same name ({@value
     * BatchedScoringOperator#SILENCE_TIMERS}).
     */
    public static final class Operator
            extends KeyedProcessOperator<String, TelemetryEvent, AnomalyEvent> {

        private final GruScoringFunction function;
        private transient SilenceArming arming;

        public Operator(GruScoringFunction function) {
            super(function);
            this.function = function;
        }

        @Override
        public void initializeState(StateInitializationContext context) throws Exception {
            super.initializeState(context);
            arming = new SilenceArming(context);
        }

        @Override
        public void open() throws Exception {
            super.open();
            InternalTimerService<VoidNamespace> service =
                    getInternalTimerService(
                            BatchedScoringOperator.SILENCE_TIMERS,
                            VoidNamespaceSerializer.INSTANCE,
                            this);
            function.silence.publishLag(service::currentWatermark);
            function.arm(
                    arming,
                    this.<String>getKeyedStateBackend(),
                    Silence.timers(key -> {}, service)); // the arming walk sets the key
        }

        @Override
        public void processWatermark(Watermark mark) throws Exception {
            super.processWatermark(mark);
            if (mark.getTimestamp() == Long.MAX_VALUE) {
                arming.drained();
            }
        }
    }

    /** What the serving model's {@code episode_open_longest_ms} gauge reads now (tests). */
    long episodeOpenLongestMs() {
        return models.scorer(Models.SERVING).episodeOpenLongestMs();
    }

    @Override
    public void close() {
        if (models != null) {
            models.close();
        }
    }

    @Override
    public void processElement(TelemetryEvent e, Context ctx, Collector<AnomalyEvent> out)
            throws Exception {
        this.ctx = ctx;
        this.out = out;
        // Outputs take this record's timestamp from ctx and out: no need to pass one.
        long ts = Scorer.NO_TIMESTAMP;
        boolean canary = models.canary(e.deviceId);
        int served = models.servedBy(canary);
        states.read(steppedStates);
        boolean changed = models.closeOrphan(steppedStates, e.deviceId, ts, serving);
        for (int m = 0; m < models.count(); m++) {
            Scorer scorer = models.scorer(m);
            Scorer.Emitter emitter = Models.serves(m, canary) ? serving : shadowing;
            DeviceState stored = steppedStates[m];
            boolean current = scorer.current(stored);
            DeviceState s = scorer.prepare(stored, e.deviceId, ts, emitter);
            Models.adoptSilence(stored, s, steppedStates[1 - m]);
            boolean handedOver = models.handOver(m, s, e.deviceId, canary, ts, emitter);
            accepted[m] = scorer.accept(s, e, ts, emitter);
            if (accepted[m]) {
                scorer.load(s, e, 0);
                scorer.infer(1);
                if (m == served && !scorer.failed(0)) { // a MODEL_ERROR step is not the device seen
                    Long seen = ctx.timestamp();
                    silence.stepped(
                            s,
                            e.deviceId,
                            seen == null ? Scorer.NO_TIMESTAMP : seen,
                            timers,
                            this,
                            models.servingVersion(canary));
                }
                scorer.finish(s, e, 0, ts, emitter);
            }
            // A late record alone does not refresh the time-to-live, unless the state was replaced
            // (a reset, which must not be redone and reported again at the next read).
            changed |= accepted[m] || !current || handedOver || s != stored;
            steppedStates[m] = s;
        }
        if (models.count() == 2) {
            if (accepted[served] && !models.scorer(served).failed(0)) {
                models.scored(canary); // a MODEL_ERROR step is not a step scored
            }
            if (accepted[Models.SERVING] && accepted[Models.SHADOW]) {
                models.compare(
                        steppedStates[Models.SERVING],
                        models.scorer(Models.SERVING).stepScore(0),
                        steppedStates[Models.SHADOW],
                        models.scorer(Models.SHADOW).stepScore(0));
            }
        }
        models.copySilence(steppedStates, served);
        if (changed) {
            states.write(steppedStates);
        }
        java.util.Arrays.fill(steppedStates, null);
    }

    /** A device's silence timer ({@link Silence}). */
    @Override
    public void onTimer(long time, OnTimerContext ctx, Collector<AnomalyEvent> out)
            throws Exception {
        this.ctx = ctx;
        this.out = out;
        if (ctx.timerService().currentWatermark() == Long.MAX_VALUE) {
            return; // the end of a bounded input: the feed ended, no device fell silent
        }
        models.silenceTimer(states, silence, ctx.getCurrentKey(), time, timers, this);
    }

    /**
     * Stamped with {@code timestamp} when it is given, as the batched operator stamps it (a silence
     * reported at the step that ends it has its OPEN at the silence's time, not the step's), else
     * with the record's or the timer's, as every output of this function.
     */
    @Override
    public void alert(AnomalyEvent event, long timestamp) {
        if (timestamp == Scorer.NO_TIMESTAMP
                || !(out instanceof TimestampedCollector<AnomalyEvent> stamped)) {
            out.collect(event);
            return;
        }
        stamped.setAbsoluteTimestamp(timestamp);
        out.collect(event);
        Long own = ctx.timestamp(); // back to the record's (the timer's) for what follows
        if (own == null) {
            stamped.eraseTimestamp();
        } else {
            stamped.setAbsoluteTimestamp(own);
        }
    }

    @Override
    public void shadowAlert(AnomalyEvent event, long timestamp) {
        ctx.output(Outputs.SHADOW_ANOMALIES, event);
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
