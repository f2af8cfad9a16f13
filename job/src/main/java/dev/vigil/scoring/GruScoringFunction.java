package dev.vigil.scoring;

import dev.vigil.alerts.EpisodeRules;
import dev.vigil.model.GruModel;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.pipeline.Metrics;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.nio.FloatBuffer;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Scores each device's steps in order with the GRU and turns the scores into anomaly episodes
 * (DESIGN.md, "Scoring, per device, per step"). One ONNX Runtime call per record: the simplest
 * correct operator, and the reference the batched one must match.
 *
 * <p>It must never feed a late or duplicate event to the GRU, never score against a forecast from
 * another model version, and never emit an alert during warm-up.
 */
public class GruScoringFunction extends KeyedProcessFunction<String, TelemetryEvent, AnomalyEvent> {

    private final ModelBundle bundle;
    private final ScoringSettings settings;

    private transient ModelCard card;
    private transient EpisodeRules rules;
    private transient GruModel model;
    private transient ValueState<DeviceState> state;
    private transient Metrics metrics;
    private transient Histogram batchSizes;
    private transient Histogram inferenceMicros;
    private transient Histogram latencyMs;
    // Scratch, reused for every record.
    private transient float[] shares;
    private transient int[] top;

    public GruScoringFunction(ModelBundle bundle, ScoringSettings settings) {
        this.bundle = bundle;
        this.settings = settings;
    }

    @Override
    public void open(OpenContext openContext) {
        card = bundle.card();
        rules =
                new EpisodeRules(
                        card.threshold(),
                        settings.openAfter(),
                        settings.closeAfter(),
                        settings.updateEvery());
        model = GruModel.open(bundle, 1);
        // Created on a device's first event; see DeviceStateSchema for expiry.
        state = getRuntimeContext().getState(DeviceStateSchema.descriptor());
        metrics = new Metrics(getRuntimeContext());
        metrics.modelVersion(card.version());
        batchSizes = metrics.histogram(Metrics.INFERENCE_BATCH_SIZE);
        inferenceMicros = metrics.histogram(Metrics.INFERENCE_MICROS);
        latencyMs = metrics.histogram(Metrics.EVENT_TO_EMIT_LATENCY_MS);
        shares = new float[card.featureCount()];
        top = new int[card.featureCount()];
    }

    @Override
    public void close() {
        if (model != null) {
            model.close();
        }
    }

    @Override
    public void processElement(TelemetryEvent e, Context ctx, Collector<AnomalyEvent> out)
            throws Exception {
        DeviceState s = state.value();
        if (s == null) {
            s = DeviceState.fresh(card.version(), card.hiddenSize(), card.featureCount());
        } else if (!card.version().equals(s.modelVersion)) {
            // Another model wrote this memory: its hidden state means nothing to this model.
            closeEpisodeOnReset(s, ctx, out);
            DeviceState old = s;
            s = DeviceState.fresh(card.version(), card.hiddenSize(), card.featureCount());
            s.lastTs = old.lastTs; // the order guard survives the reset
            s.lastSeq = old.lastSeq;
            metrics.resetModelChange.inc();
        }

        if (isLateOrDuplicate(s, e)) {
            metrics.late.inc();
            ctx.output(Outputs.LATE, e);
            return; // the hidden state is untouched
        }
        if (s.steps > 0 && e.ts - s.lastTs > settings.gapMs()) {
            closeEpisodeOnReset(s, ctx, out);
            s.resetMemory();
            metrics.resetGap.inc();
        }

        FloatBuffer x = model.x();
        StepMath.normalise(e.values, card.mean(), card.std(), x, 0);
        boolean scored = s.steps > 0; // a forecast exists only after the first step
        float score = scored ? StepMath.score(x, 0, s.forecast, card.residualScale(), shares) : 0f;

        FloatBuffer h = model.h();
        h.put(0, s.hidden);
        long t0 = System.nanoTime();
        model.run(1);
        inferenceMicros.update((System.nanoTime() - t0) / 1_000);
        batchSizes.update(1);
        model.hNext().get(0, s.hidden);
        model.y().get(0, s.forecast);

        s.steps++;
        s.lastTs = e.ts;
        s.lastSeq = e.hasSeq() ? e.seq : DeviceState.NO_SEQ;
        metrics.scored.inc();
        if (settings.emitScores()) {
            ctx.output(Outputs.SCORES, new ScoredStep(e.deviceId, e.ts, score));
        }
        if (scored && s.steps > card.warmupSteps()) {
            String type = rules.step(s, e.ts, score, shares);
            if (type != null) {
                out.collect(event(type, e.deviceId, e.ts, score, s));
            }
        }
        state.update(s);
        latencyMs.update(System.currentTimeMillis() - e.ts);
    }

    /** By {@code seq} when both sides have one, else by event time. */
    static boolean isLateOrDuplicate(DeviceState s, TelemetryEvent e) {
        if (s.steps == 0 && s.lastTs == Long.MIN_VALUE) {
            return false;
        }
        if (e.hasSeq() && s.lastSeq != DeviceState.NO_SEQ) {
            return e.seq <= s.lastSeq;
        }
        return e.ts <= s.lastTs;
    }

    private void closeEpisodeOnReset(DeviceState s, Context ctx, Collector<AnomalyEvent> out) {
        if (rules.forceClose(s)) {
            out.collect(event(AnomalyEvent.CLOSE, ctx.getCurrentKey(), s.lastTs, 0f, s));
        }
    }

    private AnomalyEvent event(String type, String deviceId, long ts, float score, DeviceState s) {
        AnomalyEvent a = new AnomalyEvent();
        a.type = type;
        a.deviceId = deviceId;
        a.ts = ts;
        a.episodeStart = s.episodeStart;
        a.eventId = AnomalyEvent.eventId(deviceId, s.episodeStart, type, s.episodeSteps);
        a.score = score;
        a.threshold = rules.threshold();
        a.peakScore = s.episodePeak;
        a.steps = s.episodeSteps;
        a.modelVersion = card.version();
        // OPEN and UPDATE are explained by this step; CLOSE by the whole episode.
        float[] explain = AnomalyEvent.CLOSE.equals(type) ? s.episodeShares : shares;
        float total = 0f;
        for (float v : explain) {
            total += v;
        }
        int n = StepMath.topK(explain, settings.topFeatures(), top);
        a.topFeatureNames = new String[n];
        a.topFeatureShares = new float[n];
        for (int i = 0; i < n; i++) {
            a.topFeatureNames[i] = card.names()[top[i]];
            a.topFeatureShares[i] = total > 0 ? explain[top[i]] / total : 0f;
        }
        if (AnomalyEvent.CLOSE.equals(type)) {
            a.durationMs = ts - s.episodeStart;
            metrics.episodesClosed.inc();
        } else if (AnomalyEvent.OPEN.equals(type)) {
            metrics.episodesOpened.inc();
        }
        return a;
    }
}
