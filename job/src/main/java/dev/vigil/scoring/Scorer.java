package dev.vigil.scoring;

import dev.vigil.alerts.EpisodeRules;
import dev.vigil.alerts.Thresholds;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.GruModel;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.DeadLetterReason;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSerializer;
import org.apache.flink.metrics.Histogram;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One device step of DESIGN.md's "Scoring", split around the ONNX Runtime call so that steps of
 * many devices can share one call: {@link #prepare} and {@link #accept} (model change, order guard,
 * gap reset), {@link #load} (normalise, score against the last forecast, stage the row), {@link
 * #infer} (one call for all staged rows), {@link #finish} (take the new hidden state and forecast,
 * warm-up, episodes, emit). The per-record and the batched operators both run exactly this code, so
 * they cannot disagree.
 *
 * <p>Owns the operator instance's ONNX Runtime session and per-row scratch, allocated once.
 */
final class Scorer implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(Scorer.class);

    /** A record without a Flink timestamp. */
    static final long NO_TIMESTAMP = Long.MIN_VALUE;

    /**
     * Where a step's results go. {@code timestamp} is the Flink timestamp of the input record that
     * caused the output (or {@link #NO_TIMESTAMP}), for an operator that emits outside Flink's
     * per-record context.
     */
    interface Emitter {
        /** An event of the episode {@code s} holds (for a CLOSE: the episode just closed). */
        void anomaly(AnomalyEvent event, DeviceState s, long timestamp);

        /** A record the scorer could not score, as a dead letter holding the record as parsed. */
        void deadLetter(DeadLetter letter, long timestamp);

        void score(ScoredStep step, long timestamp);
    }

    private final ModelCard card;
    private final ScoringSettings settings;
    private final GruModel model;
    private final EpisodeRules rules;
    private final Thresholds thresholds;
    private final Metrics.Scoring metrics;

    /** The fleet's input and scores against training's, over windows of steps; null when off. */
    private final DriftWindow drift;

    private final Histogram batchSizes;
    private final Histogram inferenceMicros;
    private final Histogram latencyMs;
    // When the last infer() returned: each of its rows' event-to-emit latency ends there (one
    // clock read per call, not one per row).
    private long inferredAt;
    private final int features;
    private final int hidden;
    private final int[] targets;
    // The level score's constants, from the card (level null: no level score; learning null: no
    // level while a device's profile is learned).
    private final ModelCard.Level level;
    private final ModelCard.Learning learning;
    // Whether a step whose level while learning crosses the threshold stays out of the profile.
    private final boolean learningGated;
    private final ModelCard.Stuck stuck;
    private final ModelCard.DeviceNormalisation byDevice;
    private final ModelCard.DeviceDynamics deviceDynamics;
    private final ModelCard.Variability variability;
    private final ModelCard.Correlation correlation;
    private final float variabilityAlpha;
    private final float variabilityBeta;
    private final float variabilityFloorSquared;
    private final float dynamicsBeta;
    private final float levelAlpha;
    private final float profileBeta;
    // Per row, reused: the dynamics score, whether it had a forecast, each feature's part (its
    // squared residual, made a share by finish() where a share is used); the level score in
    // threshold units (NaN while it has no value) and its parts; the targets' fleet-normalised
    // values, which the level and the profile work on; the stuck score and its shares.
    private final float[] scores;
    private final boolean[] scored;
    private final float[][] shares;
    private final float[] levels;
    private final float[][] levelShares;
    private final float[][] fleetTargets;
    private final float[] runs;
    private final float[][] runShares;
    // Per row: the variability score in threshold units (NaN while it has no value), its parts,
    // and each target's log variability and distance, which the profile learns from in finish.
    private final float[] variabilities;
    private final float[][] variabilityShares;
    private final float[][] variabilityLogs;
    private final float[][] variabilityDistances;
    // Per row: the correlation score in threshold units (NaN without one) and its parts (computed
    // by finish for a step that uses them); the targets as the model sees them under per-device
    // normalisation and the step's coordinates in the normal subspace, scratch of one row's use.
    private final float[] correlations;
    private final float[][] correlationShares;
    private final float[] deviceInputs;
    private final float[] projection;
    // Per row: the step's score after warm-up (NaN: none), for comparing two models.
    private final float[] stepScores;
    private final int[] top;
    // Per row: why ONNX Runtime failed on it alone (null: it did not), set by a failed batch's
    // retry and kept until the next infer(); anyFailed: whether any row holds one.
    private final String[] failures;
    private boolean anyFailed;
    private boolean loggedModelChange;
    private boolean loggedModelError;
    private boolean loggedInvalidState;

    Scorer(ModelBundle bundle, ScoringSettings settings, int maxBatch, Metrics.Scoring metrics) {
        this.card = bundle.card();
        this.settings = settings;
        this.metrics = metrics;
        this.rules =
                new EpisodeRules(
                        settings.openAfter(), settings.closeAfter(), settings.updateEvery());
        this.thresholds = new Thresholds(card.threshold(), settings.adaptiveHalfLife());
        metrics.modelVersion(card.version());
        this.batchSizes = metrics.histogram(Metrics.INFERENCE_BATCH_SIZE);
        this.inferenceMicros = metrics.histogram(Metrics.INFERENCE_MICROS);
        this.latencyMs = metrics.histogram(Metrics.EVENT_TO_EMIT_LATENCY_MS);
        this.features = card.featureCount();
        this.hidden = card.hiddenSize();
        this.targets = card.targets();
        this.level = card.level();
        this.learning = level == null ? null : level.learning();
        this.learningGated = learning != null && learning.gated();
        this.stuck = card.stuck();
        this.byDevice = card.normalisation();
        this.deviceDynamics = card.deviceDynamics();
        this.variability = card.variability();
        this.correlation = card.correlation();
        this.variabilityAlpha = variability == null ? 0f : 2f / (variability.windowSteps() + 1);
        this.variabilityBeta =
                variability == null ? 0f : StepMath.halfLifeRate(variability.halfLifeSteps());
        this.variabilityFloorSquared =
                variability == null ? 0f : variability.floor() * variability.floor();
        this.dynamicsBeta =
                deviceDynamics == null ? 0f : StepMath.halfLifeRate(deviceDynamics.halfLifeSteps());
        this.levelAlpha = level == null ? 0f : 2f / (level.windowSteps() + 1);
        this.profileBeta = level == null ? 0f : StepMath.halfLifeRate(level.halfLifeSteps());
        this.scores = new float[maxBatch];
        this.scored = new boolean[maxBatch];
        this.shares = new float[maxBatch][features];
        this.levels = new float[maxBatch];
        this.levelShares = new float[maxBatch][features];
        this.fleetTargets = new float[maxBatch][targets.length];
        this.runs = new float[maxBatch];
        this.runShares = new float[maxBatch][features];
        this.variabilities = new float[maxBatch];
        this.variabilityShares = new float[maxBatch][features];
        this.variabilityLogs = new float[maxBatch][targets.length];
        this.variabilityDistances = new float[maxBatch][targets.length];
        this.correlations = new float[maxBatch];
        this.correlationShares = new float[maxBatch][features];
        this.deviceInputs = new float[targets.length];
        this.projection = new float[correlation == null ? 0 : correlation.components()];
        this.stepScores = new float[maxBatch];
        this.top = new int[features];
        this.failures = new String[maxBatch];
        if (settings.driftWindowSteps() > 0) {
            this.drift = new DriftWindow(card, settings.driftWindowSteps());
            metrics.drift(drift, card.names());
        } else {
            this.drift = null;
        }
        this.model = GruModel.open(bundle, maxBatch); // last: nothing to leak if the above throws
    }

    /** The version of the model this scorer runs (its card's). */
    String version() {
        return card.version();
    }

    /**
     * The state to step a device with: a fresh one for a new device; for a state another model
     * version wrote, what {@link ScoringSettings#onModelChange()} says: {@code RESET} a fresh one
     * keeping only the order guard (an open episode is closed first), {@code KEEP} the same memory
     * under the new version when the sizes match (else a reset), {@code FAIL} stops the job with
     * both versions named.
     */
    DeviceState prepare(DeviceState stored, String deviceId, long timestamp, Emitter out) {
        DeviceState s = prepared(stored, deviceId, timestamp, out);
        s.fitted = true;
        return s;
    }

    private DeviceState prepared(DeviceState stored, String deviceId, long timestamp, Emitter out) {
        if (stored == null) {
            return withProfile(DeviceState.fresh(card.version(), hidden, features));
        }
        if (card.version().equals(stored.modelVersion)) {
            if (stored.fitted) {
                return stored; // checked when this operator last stepped it, and kept finite since
            }
            if (!fits(stored)) {
                return invalidState(stored, deviceId, timestamp, out);
            }
            return withProfile(stored); // restored from format 1: starts learning its profile
        }
        ModelChange policy = settings.onModelChange();
        if (policy == ModelChange.FAIL) {
            throw new IllegalStateException(
                    "device "
                            + deviceId
                            + (metrics.shadow() ? " has shadow-model state" : " has state")
                            + " written by model "
                            + stored.modelVersion
                            + " but this job runs "
                            + card.version()
                            + (metrics.shadow() ? " as its shadow (vigil.model.shadow.dir)" : "")
                            + " and vigil.model.on-change is fail: restore with the old model"
                            + (metrics.shadow() ? " as the shadow, or without a shadow," : ",")
                            + " or choose reset or keep");
        }
        boolean sizesMatch =
                stored.hidden != null
                        && stored.hidden.length == hidden
                        && stored.forecast != null
                        && stored.forecast.length == features;
        if (!loggedModelChange) {
            loggedModelChange = true; // once per subtask, not once per device
            LOG.warn(
                    "restored state written by model {}; this job runs {}: {} each device's memory",
                    stored.modelVersion,
                    card.version(),
                    policy == ModelChange.KEEP && sizesMatch ? "keeping" : "resetting");
        }
        if (policy == ModelChange.KEEP && sizesMatch) {
            stored.modelVersion = card.version();
            // The memory carries over; the profile and runs do not: they are in the old card's
            // units and over its watched features, so they are learned again.
            stored.profileSteps = 0;
            stored.profileMean = null;
            stored.dynamicsSteps = 0;
            stored.dynamicsBlocks = null;
            stored.unchangedRuns = null;
            stored.resetVariability(0);
            metrics.keptModelChange.inc();
            return withProfile(stored);
        }
        closeOnReset(stored, deviceId, timestamp, out);
        // The profile goes too: it is in the old card's normalised units.
        DeviceState s = DeviceState.freshKeepingOrder(stored, card.version(), hidden, features);
        metrics.resetModelChange.inc();
        return withProfile(s);
    }

    /**
     * Whether a state of this card's version has this card's sizes and a finite memory: what a
     * restore must give. A savepoint written by a faulty build, or edited, could give anything.
     */
    private boolean fits(DeviceState s) {
        return s.hidden != null
                && s.hidden.length == hidden
                && s.forecast != null
                && s.forecast.length == features
                && s.episodeShares != null
                && s.episodeShares.length == features
                && StepMath.allFinite(s.hidden)
                && StepMath.allFinite(s.forecast)
                && StepMath.allFinite(s.episodeShares)
                && Float.isFinite(s.scoreLevel);
    }

    /**
     * A restored state that does not fit the card is reset, never a crash: an open episode is
     * closed (named by no feature when its explanation does not fit), the memory and profile start
     * again, the order guard is kept, and the reset is counted ({@code resets_invalid_state}).
     */
    private DeviceState invalidState(
            DeviceState stored, String deviceId, long timestamp, Emitter out) {
        if (!loggedInvalidState) {
            loggedInvalidState = true; // once per subtask; the counter has the rest
            LOG.warn(
                    "device {}: restored state does not fit model {} (hidden {}, forecast {},"
                            + " or a non-finite value); its memory is reset",
                    deviceId,
                    card.version(),
                    stored.hidden == null ? "none" : stored.hidden.length,
                    stored.forecast == null ? "none" : stored.forecast.length);
        }
        closeOnReset(stored, deviceId, timestamp, out);
        DeviceState s = DeviceState.freshKeepingOrder(stored, card.version(), hidden, features);
        metrics.resetInvalidState.inc();
        return withProfile(s);
    }

    /**
     * A profile and runs of this card's size: new ones (learned from the next step) when the card
     * has a level or stuck score and the state has none, or ones of other sizes (new device, format
     * 1, another card's targets, a faulty savepoint).
     */
    private DeviceState withProfile(DeviceState s) {
        int t = targets.length;
        if (level != null
                && !(sized(s.levelMean, t)
                        && sized(s.profileMean, t)
                        && sized(s.profileVar, t)
                        && (byDevice == null ? s.valueVar == null : sized(s.valueVar, t)))) {
            s.resetProfile(t, byDevice != null);
        }
        int watched = card.stuckTargets().length;
        if (stuck != null
                && !(sized(s.lastValues, watched)
                        && s.unchangedRuns != null
                        && s.unchangedRuns.length == watched)) {
            s.resetRuns(watched);
        }
        if (variability != null
                && !(sized(s.variabilityMeanSquare, t)
                        && sized(s.variabilityMean, t)
                        && sized(s.variabilityVar, t)
                        && sized(s.variabilityLast, t))) {
            s.resetVariability(t);
        }
        return s;
    }

    private static boolean sized(float[] values, int length) {
        return values != null && values.length == length;
    }

    /**
     * Whether a stored state needs no rewrite when its device's records are all turned away: it
     * exists and was written by this card's model ({@link #prepare} changes nothing else that a
     * later call would not change again). The operators then leave it unwritten, so that late and
     * duplicate records do not keep a silent device's state alive past its time-to-live.
     */
    boolean current(DeviceState stored) {
        return stored != null && card.version().equals(stored.modelVersion);
    }

    /**
     * The order guard, restarts and the gap reset. A step at or before the last scored one (by
     * {@code seq} when both have one, else by {@code ts}) is turned away as a dead letter ({@code
     * DUPLICATE} when equal, {@code OUT_OF_ORDER} when before; false is returned and the state is
     * untouched), unless it is a restart of the device: its {@code seq} went back while its {@code
     * ts} moved on (a reboot that restarts the counter), or its {@code ts} lies more than {@link
     * ScoringSettings#restartStepBackMs()} before the last step's (a clock stepped back). A restart
     * closes an open episode, resets the memory (the profile stays: it is the same device) and the
     * step is scored, so that no device is blinded for good by one bad clock or counter.
     */
    boolean accept(DeviceState s, TelemetryEvent e, long timestamp, Emitter out) {
        if (s.lastTs != Long.MIN_VALUE) {
            boolean bySeq = e.hasSeq() && s.lastSeq != DeviceState.NO_SEQ;
            long last = bySeq ? s.lastSeq : s.lastTs;
            long now = bySeq ? e.seq : e.ts;
            if (now <= last) {
                // Never a duplicate; the difference of two longs read unsigned cannot overflow.
                boolean restart =
                        now < last
                                && ((bySeq && e.ts > s.lastTs)
                                        || (e.ts < s.lastTs
                                                && Long.compareUnsigned(
                                                                s.lastTs - e.ts,
                                                                settings.restartStepBackMs())
                                                        > 0));
                if (!restart) {
                    metrics.late(now == last);
                    out.deadLetter(lateLetter(e, now == last, bySeq, last), timestamp);
                    return false;
                }
                closeOnReset(s, e.deviceId, timestamp, out);
                countIfCold(s);
                s.resetMemory();
                metrics.resetRestart.inc();
                return true;
            }
        }
        if (s.steps > 0 && e.ts - s.lastTs > settings.gapMs()) {
            closeOnReset(s, e.deviceId, timestamp, out);
            countIfCold(s);
            s.resetMemory();
            metrics.resetGap.inc();
        }
        return true;
    }

    /** Counts a reset of a device that had not warmed up since its last start or reset. */
    private void countIfCold(DeviceState s) {
        if (s.steps > 0 && s.steps <= card.warmupSteps()) {
            metrics.resetBeforeWarm.inc();
        }
    }

    /** Turned away: the record as parsed, and why. Allocates, on this rare path only. */
    private DeadLetter lateLetter(TelemetryEvent e, boolean duplicate, boolean bySeq, long last) {
        String key = bySeq ? "seq " : "ts ";
        String detail =
                duplicate
                        ? key + last + " was already scored for this device"
                        : key + (bySeq ? e.seq : e.ts) + " is before the last scored " + key + last;
        return new DeadLetter(
                duplicate ? DeadLetterReason.DUPLICATE : DeadLetterReason.OUT_OF_ORDER,
                detail,
                settings.inputFormat().write(e, card.names()),
                System.currentTimeMillis());
    }

    /**
     * Normalises the event into row {@code row} (by the fleet's statistics; under per-device
     * normalisation the targets then by the device's profile), scores it (level against the
     * device's profile, once learned, or against the profile so far while it is learned, with the
     * card's {@code score.level.learning}; dynamics against the last forecast; stuck) and stages
     * the device's memory.
     */
    void load(DeviceState s, TelemetryEvent e, int row) {
        int offset = row * features;
        int clamped =
                StepMath.normalise(
                        e.values,
                        card.mean(),
                        card.std(),
                        model.x(),
                        offset,
                        settings.maxAbsNormalised());
        if (clamped > 0) {
            metrics.clampedValues.add(clamped);
        }
        levels[row] = Float.NaN;
        float[] z = fleetTargets[row];
        if (level != null || variability != null || correlation != null) {
            StepMath.gatherTargets(model.x(), offset, targets, z);
        }
        variabilities[row] = Float.NaN;
        if (variability != null) {
            float[] logs = variabilityLogs[row];
            StepMath.updateVariability(
                    z,
                    s.variabilityLast,
                    s.variabilityMeanSquare,
                    variabilityAlpha,
                    variabilityFloorSquared,
                    s.steps == 0 || s.variabilitySteps == 0,
                    logs);
            if (s.variabilitySteps >= variability.profileSteps()) {
                variabilities[row] =
                        StepMath.variability(
                                        logs,
                                        s.variabilityMean,
                                        s.variabilityVar,
                                        targets,
                                        variabilityDistances[row],
                                        variabilityShares[row])
                                / variability.scale();
            }
        }
        if (level != null) {
            StepMath.updateLevelMean(z, s.levelMean, levelAlpha, s.profileSteps == 0);
            if (s.profileSteps >= level.profileSteps()) {
                levels[row] =
                        StepMath.level(
                                        s.levelMean,
                                        s.profileMean,
                                        s.profileVar,
                                        level.floor(),
                                        targets,
                                        levelShares[row])
                                / level.scale();
            } else if (learning != null && s.profileSteps >= learning.afterSteps()) {
                levels[row] =
                        StepMath.levelWhileLearning(
                                        s.levelMean,
                                        s.profileMean,
                                        s.profileVar,
                                        learning.unit(),
                                        (float) s.profileSteps / level.profileSteps(),
                                        level.floor(),
                                        targets,
                                        levelShares[row])
                                / learning.scale();
            }
            if (byDevice != null) {
                clamped =
                        StepMath.normaliseByDevice(
                                z,
                                targets,
                                s.profileMean,
                                s.valueVar,
                                s.profileSteps,
                                level.profileSteps(),
                                byDevice.floor(),
                                model.x(),
                                offset,
                                settings.maxAbsNormalised());
                if (clamped > 0) {
                    metrics.clampedValues.add(clamped);
                }
            }
        }
        // Against the fleet's normal subspace, on the targets as the model sees them (under
        // per-device normalisation, the device's units): no state, a value from the first step.
        correlations[row] =
                correlation == null
                        ? Float.NaN
                        : StepMath.correlation(
                                        correlationInputs(row),
                                        correlation.basis(),
                                        correlation.components())
                                / correlation.scale();
        boolean hasForecast = s.steps > 0; // a forecast exists only after the first step
        scored[row] = hasForecast;
        scores[row] =
                hasForecast
                        ? StepMath.score(
                                model.x(),
                                offset,
                                s.forecast,
                                card.residualScale(),
                                targets,
                                shares[row])
                        : 0f;
        runs[row] =
                stuck == null
                        ? Float.NaN
                        : StepMath.unchangedRun(
                                e.values,
                                card.stuckTargets(),
                                s.lastValues,
                                s.unchangedRuns,
                                runShares[row]);
        model.h().put(row * hidden, s.hidden);
    }

    /**
     * Row {@code row}'s targets as the model sees them: the fleet-normalised values load gathered,
     * or under per-device normalisation the device's, read again from the model's input (which
     * holds the row until the next load of it).
     */
    private float[] correlationInputs(int row) {
        if (byDevice == null) {
            return fleetTargets[row];
        }
        StepMath.gatherTargets(model.x(), row * features, targets, deviceInputs);
        return deviceInputs;
    }

    /**
     * Steps the GRU for the first {@code rows} staged rows in one ONNX Runtime call. If that call
     * fails, each row is stepped alone, so that one row ONNX Runtime cannot step fails only itself
     * ({@link #finish} turns it into a dead letter {@code MODEL_ERROR}), never its batch or the
     * job.
     */
    void infer(int rows) {
        if (anyFailed) { // the last call's failures, read until now by finish and failed
            java.util.Arrays.fill(failures, null);
            anyFailed = false;
        }
        long t0 = System.nanoTime();
        try {
            model.run(rows);
        } catch (IllegalStateException batchFailed) {
            retryRowByRow(rows, batchFailed);
        }
        inferenceMicros.update((System.nanoTime() - t0) / 1_000);
        batchSizes.update(rows);
        inferredAt = System.currentTimeMillis();
    }

    /**
     * Whether the last {@link #infer} could not step row {@code row} (until the next call): {@link
     * #finish} makes it a dead letter {@code MODEL_ERROR}, and the step is not scored (the silence
     * watch does not count it as the device seen, nor a canary's comparison as a step scored).
     */
    boolean failed(int row) {
        return failures[row] != null;
    }

    private void retryRowByRow(int rows, IllegalStateException batchFailed) {
        if (!loggedModelError) {
            loggedModelError = true; // the dead letters carry each row's error
            LOG.warn("{}; stepping its rows one by one", batchFailed.getMessage(), batchFailed);
        }
        for (int row = 0; row < rows; row++) {
            try {
                model.runRow(row);
            } catch (IllegalStateException rowFailed) {
                String why = rowFailed.getMessage();
                failures[row] = why.length() > 1000 ? why.substring(0, 1000) + "..." : why;
                anyFailed = true;
            }
        }
    }

    /**
     * Takes row {@code row}'s new memory and forecast, then warm-up, episodes and outputs. A row
     * ONNX Runtime failed on is a dead letter {@code MODEL_ERROR} instead, and its device's memory
     * is reset (an open episode closed): the step is not scored and the order guard does not move.
     */
    void finish(DeviceState s, TelemetryEvent e, int row, long timestamp, Emitter out) {
        stepScores[row] = Float.NaN;
        if (failures[row] != null) {
            String failure = failures[row];
            closeOnReset(s, e.deviceId, timestamp, out);
            s.resetMemory();
            metrics.modelError();
            out.deadLetter(
                    new DeadLetter(
                            DeadLetterReason.MODEL_ERROR,
                            failure,
                            settings.inputFormat().write(e, card.names()),
                            System.currentTimeMillis()),
                    timestamp);
            return;
        }
        model.hNext().get(row * hidden, s.hidden);
        model.y().get(row * features, s.forecast);
        if (s.steps < Integer.MAX_VALUE) { // counted past warm-up only to stay past it: never wraps
            s.steps++;
        }
        s.lastTs = e.ts;
        s.lastSeq = e.hasSeq() ? e.seq : DeviceState.NO_SEQ;
        metrics.scored.inc();
        if (s.steps <= card.warmupSteps()) {
            metrics.warmingUp.inc();
        }
        if (drift != null) { // a residual during warm-up says how fresh the memory is, not drift
            boolean warm = scored[row] && s.steps > card.warmupSteps();
            drift.observe(e.values, warm ? scores[row] : Float.NaN);
        }
        // Each component in threshold units (the card's calibration); NaN when it has no value.
        float dynamics = scored[row] ? scores[row] / card.dynamicsScale() : Float.NaN;
        float fleetScaled = dynamics;
        boolean adapts = false; // the device's level of forecast residual is learned: it adapts
        if (deviceDynamics != null && scored[row] && s.steps > card.warmupSteps()) {
            adapts = s.dynamicsSteps >= deviceDynamics.steps();
            dynamics = scaleByDevice(s, dynamics);
        }
        float levelScore = levels[row];
        float stuckScore = Float.isNaN(runs[row]) ? Float.NaN : runs[row] / stuck.scale();
        float threshold = thresholds.effective(s);
        // The step's score is the largest component; the forecast residual explains the step
        // unless another component is what crossed the threshold (a spike's quiet closing steps
        // keep naming the spiking feature, not a drifting one).
        float score = dynamics;
        float[] stepShares = shares[row];
        if (levelScore > score || Float.isNaN(score)) {
            score = levelScore;
            if (levelScore > threshold || Float.isNaN(dynamics)) {
                stepShares = levelShares[row];
            }
        }
        if (stuckScore > score || Float.isNaN(score)) {
            score = stuckScore;
            if (stuckScore > threshold) {
                stepShares = runShares[row];
            }
        }
        float variabilityScore = variabilities[row];
        if (variabilityScore > score || Float.isNaN(score)) {
            score = variabilityScore;
            if (variabilityScore > threshold) {
                stepShares = variabilityShares[row];
            }
        }
        float correlationScore = correlations[row];
        if (correlationScore > score || Float.isNaN(score)) {
            score = correlationScore;
            if (correlationScore > threshold) {
                stepShares = correlationShares[row];
                StepMath.correlationParts(
                        correlationInputs(row),
                        correlation.basis(),
                        correlation.components(),
                        projection,
                        targets,
                        stepShares);
            }
        }
        // load() left each component's parts; only a step in an episode or above the threshold
        // uses the shares (the episode adds them up, an event names its top features), so only
        // such a step divides its own. The stuck watch's are shares already.
        if (stepShares != runShares[row] && (s.episodeOpen || score > threshold)) {
            StepMath.toShares(stepShares, targets);
        }
        if (settings.emitScores()) {
            out.score(
                    new ScoredStep(
                            e.deviceId,
                            e.ts,
                            Float.isNaN(score) ? 0f : score,
                            dynamics,
                            level == null ? Float.NaN : levelScore,
                            stuckScore,
                            variabilityScore,
                            correlationScore),
                    timestamp);
        }
        boolean relearn = false;
        if (!Float.isNaN(score) && s.steps > card.warmupSteps()) {
            stepScores[row] = score;
            String type = rules.step(s, e.ts, score, threshold, stepShares);
            if (s.episodeOpen || s.aboveRun > 0) {
                s.episodeReasons |=
                        (dynamics > threshold ? AnomalyEvent.REASON_DYNAMICS : 0)
                                | (levelScore > threshold ? AnomalyEvent.REASON_LEVEL : 0)
                                | (stuckScore > threshold ? AnomalyEvent.REASON_STUCK : 0)
                                | (variabilityScore > threshold
                                        ? AnomalyEvent.REASON_VARIABILITY
                                        : 0)
                                | (correlationScore > threshold
                                        ? AnomalyEvent.REASON_CORRELATION
                                        : 0);
            }
            if (type != null) {
                out.anomaly(
                        event(type, e.deviceId, e.ts, score, threshold, s, stepShares),
                        s,
                        timestamp);
            }
            if (levelScore > threshold || variabilityScore > threshold) {
                if (s.profileAboveSince == DeviceState.NO_TIME) {
                    s.profileAboveSince = e.ts;
                }
            } else {
                s.profileAboveSince = DeviceState.NO_TIME;
            }
            relearn = relearns(s, e.ts);
            if (s.episodeOpen && !relearn) {
                metrics.episodeOpenFor(e.ts - s.episodeStart);
            }
            thresholds.learn(s, score);
        }
        if (adapts && !(score > threshold)) {
            adaptDynamicsLevel(s, fleetScaled);
        }
        if (relearn) {
            relearn(s, e, score, threshold, stepShares, timestamp, out);
        } else if (level != null) {
            learnProfile(s, row, levelScore, correlations[row], threshold);
        }
        if (variability != null && !relearn) {
            learnVariability(s, row, threshold);
        }
        keepFinite(s, e.deviceId, timestamp, out);
        latencyMs.update(inferredAt - e.ts);
    }

    /**
     * The dynamics score (threshold units) held to the device's own level of forecast residual:
     * while that level is learned (the card's {@code device_steps} after warm-up) the step is
     * learned into it and keeps the fleet's scale, or, once the card's {@code
     * device_learning_blocks} blocks are complete, is held to the level of the blocks so far;
     * afterwards it is divided by {@code max(floor, min(ceiling, the device's root mean square /
     * the fleet's))}, so a device whose normal residuals run higher than the fleet's alerts on what
     * is abnormal for it. Measured on SMAP and MSL in EVALUATION.md.
     */
    private float scaleByDevice(DeviceState s, float dynamics) {
        int steps = deviceDynamics.steps();
        if (s.dynamicsSteps < steps) {
            float soFar =
                    levelSoFar(s, steps, deviceDynamics.blocks(), deviceDynamics.learningBlocks());
            float square = dynamics * dynamics;
            if (Float.isFinite(square)) {
                learnDynamicsLevel(s, square, steps, deviceDynamics.blocks());
            }
            return Float.isNaN(soFar) ? dynamics : dynamics / divisor(soFar);
        }
        return dynamics / divisor(s.dynamicsMeanSquare);
    }

    private float divisor(float meanSquare) {
        return StepMath.deviceDivisor(
                meanSquare, deviceDynamics.rms(), deviceDynamics.floor(), deviceDynamics.ceiling());
    }

    /**
     * The level of forecast residual (mean square) a device still learning it is held to: that of
     * its completed blocks ({@link StepMath#trimmedLevel}) once {@code learningBlocks} (at least 1)
     * are complete, else NaN (the fleet's scale). A device restored mid-way from a format before 6
     * has no blocks yet: its plain mean so far stands for them, as when it learns on.
     */
    static float levelSoFar(DeviceState s, int steps, int blocks, int learningBlocks) {
        int complete = StepMath.levelBlock(s.dynamicsSteps, steps, blocks);
        if (learningBlocks <= 0 || complete < learningBlocks) {
            return Float.NaN;
        }
        return s.dynamicsBlocks == null
                ? s.dynamicsMeanSquare
                : StepMath.trimmedLevel(s.dynamicsBlocks, complete);
    }

    /**
     * Learns one step into the device's level of forecast residual. With one block (cards without
     * {@code device_blocks}) the level is the plain mean square of the {@code steps} steps. With
     * more, the steps are cut into {@code blocks} blocks; each block's mean square is kept ({@link
     * DeviceState#dynamicsBlocks}), and when the last block ends the level is their mean, leaving
     * out the one or two blocks far above the others ({@link StepMath#trimmedLevel}). A fault while
     * the device learns, a run of large residuals in one or two blocks, does not set its level; the
     * scattered spikes of a noisy device, in every block, do. A device restored mid-way from a
     * format before 6 (a plain mean so far) counts its completed blocks as having had that mean.
     */
    static void learnDynamicsLevel(DeviceState s, float square, int steps, int blocks) {
        int i = s.dynamicsSteps;
        if (blocks <= 1) {
            s.dynamicsSteps = i + 1;
            s.dynamicsMeanSquare += (square - s.dynamicsMeanSquare) / s.dynamicsSteps;
            return;
        }
        int block = StepMath.levelBlock(i, steps, blocks);
        if (s.dynamicsBlocks == null) {
            s.dynamicsBlocks = new float[DeviceStateSerializer.BLOCK_FLOATS];
            for (int b = 0; b < block; b++) {
                StepMath.addLevelBlock(s.dynamicsBlocks, s.dynamicsMeanSquare);
            }
        }
        int inBlock = i - StepMath.levelBlockStart(block, steps, blocks) + 1;
        s.dynamicsMeanSquare += (square - s.dynamicsMeanSquare) / inBlock;
        s.dynamicsSteps = i + 1;
        boolean last = i + 1 == steps;
        if (last || StepMath.levelBlock(i + 1, steps, blocks) != block) {
            StepMath.addLevelBlock(s.dynamicsBlocks, s.dynamicsMeanSquare);
            s.dynamicsMeanSquare = 0f;
            if (last) {
                s.dynamicsMeanSquare =
                        StepMath.trimmedLevel(
                                s.dynamicsBlocks, StepMath.levelBlocks(steps, blocks));
                s.dynamicsBlocks = null;
            }
        }
    }

    /**
     * After the device's level of forecast residual is learned, a quiet step (combined score at or
     * below the threshold) moves it with the card's {@code device_half_life_steps}: a level learned
     * while the device was faulty (a fault in its first steps, a restore in the middle of one)
     * comes back down once it is normal again, and a fault that lasts never raises it.
     */
    private void adaptDynamicsLevel(DeviceState s, float fleetScaled) {
        float square = fleetScaled * fleetScaled;
        if (dynamicsBeta > 0f && Float.isFinite(square)) {
            s.dynamicsMeanSquare += dynamicsBeta * (square - s.dynamicsMeanSquare);
        }
    }

    /**
     * Never stores a non-finite memory, forecast or profile: from one, every later score of the
     * device would be NaN and never cross a threshold again. Such a step resets the device (an open
     * episode is closed first) and is counted.
     */
    private void keepFinite(DeviceState s, String deviceId, long timestamp, Emitter out) {
        boolean memory = StepMath.allFinite(s.hidden) && StepMath.allFinite(s.forecast);
        boolean profile =
                StepMath.allFinite(s.levelMean)
                        && StepMath.allFinite(s.profileMean)
                        && StepMath.allFinite(s.profileVar)
                        && StepMath.allFinite(s.valueVar);
        boolean variable =
                StepMath.allFinite(s.variabilityMeanSquare)
                        && StepMath.allFinite(s.variabilityMean)
                        && StepMath.allFinite(s.variabilityVar)
                        && StepMath.allFinite(s.variabilityLast);
        if (memory && profile && variable) {
            return;
        }
        closeOnReset(s, deviceId, timestamp, out);
        countIfCold(s);
        s.resetMemory();
        if (!profile) {
            s.resetProfile(targets.length, byDevice != null);
        }
        if (!variable) {
            s.resetVariability(variability == null ? 0 : targets.length);
        }
        metrics.resetNonFinite.inc();
    }

    /**
     * The device's profile learns this step: while it is being learned, every step, or with the
     * card's {@code score.level.learning.gated} those whose level while learning is at or below the
     * threshold (a fault that starts while a new device learns its normal stays out of it);
     * afterwards only when the level is at or below the threshold, so that a shift that lasts never
     * becomes the device's normal. Gated on the level alone, not on the combined score: a forecast
     * residual that fires often must not freeze the profile (measured: SMAP event F1 0.666 with the
     * combined score's gate, 0.700 with the level's; EVALUATION.md). Nor, while it is learned or
     * after, a step the correlation score puts above the threshold: that measure owes nothing to
     * the device, so a fault it sees in a new device's first steps stays out of its normal.
     */
    private void learnProfile(
            DeviceState s, int row, float levelScore, float correlationScore, float threshold) {
        if (correlationScore > threshold) {
            return;
        }
        boolean learning = s.profileSteps < level.profileSteps();
        boolean quiet = !(levelScore > threshold);
        if (learning ? quiet || !learningGated : quiet && profileBeta > 0f) {
            StepMath.learnProfile(
                    fleetTargets[row],
                    s.levelMean,
                    s.profileMean,
                    s.profileVar,
                    s.valueVar,
                    s.profileSteps,
                    level.profileSteps(),
                    profileBeta);
            if (learning) {
                s.profileSteps++;
            }
        }
    }

    /**
     * Whether this step ends the device's episode by learning its normal again ({@code
     * vigil.alerts.relearn-after}): the level or the variability score has crossed the threshold at
     * every step for that long by the records' time ({@link DeviceState#profileAboveSince}), so
     * what holds the episode open is a state the device has kept, which profiles that learn only
     * from quiet steps never take. An episode the forecast residual or the stuck score holds open
     * is left to them, and a change that starts inside an older episode waits its own time.
     */
    private boolean relearns(DeviceState s, long ts) {
        return s.episodeOpen
                && settings.relearnAfterMs() > 0
                && s.profileAboveSince != DeviceState.NO_TIME
                && ts - s.profileAboveSince >= settings.relearnAfterMs();
    }

    /**
     * Closes the episode with {@code relearned} (this step's score, the whole episode's features)
     * and forgets the device's level and variability profiles, learned again from the next step as
     * a new device's are (with the card's level while learning, if it has one); the level of
     * forecast residual stays, and so does the memory, unless the card normalises the model's
     * inputs by the device's profile: then the inputs start again from the fleet's normalisation,
     * and the memory with them (a warm-up follows). A fault that lasts becomes the device's normal
     * this way: the CLOSE says so, and a later change from there (a return to the old level too)
     * opens a new episode.
     */
    private void relearn(
            DeviceState s,
            TelemetryEvent e,
            float score,
            float threshold,
            float[] stepShares,
            long timestamp,
            Emitter out) {
        rules.forceClose(s);
        AnomalyEvent close =
                event(AnomalyEvent.CLOSE, e.deviceId, e.ts, score, threshold, s, stepShares);
        close.relearned = true;
        out.anomaly(close, s, timestamp);
        s.relearnProfile();
        s.resetVariability(variability == null ? 0 : targets.length);
        s.profileAboveSince = DeviceState.NO_TIME;
        if (byDevice != null) {
            s.resetMemory();
        }
        metrics.profilesRelearned.inc();
    }

    /**
     * The device's variability profile learns this step ({@code training/train.py} {@code
     * variability_stream}): nothing for its first {@code window_steps} steps (the moving average
     * settles), then Welford's mean and variance of each target's log until {@code profile_steps},
     * afterwards an adaptation with the card's half-life of each target whose own distance is at or
     * below the threshold.
     */
    private void learnVariability(DeviceState s, int row, float threshold) {
        int t = s.variabilitySteps;
        int steps = variability.profileSteps();
        float[] logs = variabilityLogs[row];
        if (t >= steps) {
            if (variabilityBeta > 0f) {
                StepMath.adaptVariability(
                        logs,
                        variabilityDistances[row],
                        s.variabilityMean,
                        s.variabilityVar,
                        variabilityBeta,
                        variability.scale(),
                        threshold);
            }
            return;
        }
        int window = variability.windowSteps();
        if (t >= window) {
            StepMath.learnVariability(
                    logs, s.variabilityMean, s.variabilityVar, t - window, t == steps - 1);
        }
        s.variabilitySteps = t + 1;
    }

    /**
     * Closes the device's open episode (a CLOSE event, as on a reset) and nothing else: the memory
     * and the profile stay. For an episode that must not continue where its events go now ({@link
     * Models#handOver}).
     */
    void closeEpisode(DeviceState s, String deviceId, long timestamp, Emitter out) {
        closeOnReset(s, deviceId, timestamp, out);
    }

    private void closeOnReset(DeviceState s, String deviceId, long timestamp, Emitter out) {
        closeAs(s, deviceId, timestamp, out, card.version());
    }

    /**
     * Closes the open episode of a state no model of this job scores (a removed shadow model's,
     * kept in the device's entry): a CLOSE where its OPEN went, under the version of the model that
     * opened it.
     */
    void closeEpisodeOf(DeviceState s, String deviceId, long timestamp, Emitter out) {
        closeAs(s, deviceId, timestamp, out, s.modelVersion);
    }

    private void closeAs(
            DeviceState s, String deviceId, long timestamp, Emitter out, String modelVersion) {
        if (rules.forceClose(s)) {
            AnomalyEvent close =
                    event(
                            AnomalyEvent.CLOSE,
                            deviceId,
                            s.lastTs,
                            0f,
                            thresholds.effective(s),
                            s,
                            s.episodeShares);
            close.modelVersion = modelVersion;
            out.anomaly(close, s, timestamp);
        }
    }

    private AnomalyEvent event(
            String type,
            String deviceId,
            long ts,
            float score,
            float threshold,
            DeviceState s,
            float[] stepShares) {
        AnomalyEvent a = new AnomalyEvent();
        a.type = type;
        a.deviceId = deviceId;
        a.ts = ts;
        a.episodeStart = s.episodeStart;
        a.eventId = AnomalyEvent.eventId(deviceId, s.episodeStart, type, s.episodeSteps);
        a.score = score;
        a.threshold = threshold;
        a.peakScore = s.episodePeak;
        a.steps = s.episodeSteps;
        a.modelVersion = card.version();
        a.reason = AnomalyEvent.reason(s.episodeReasons);
        // OPEN and UPDATE are explained by this step; CLOSE by the whole episode. An episode
        // another card opened (a model change, a removed shadow's) over other features, or a
        // restored state's that is not finite, closes without an explanation.
        float[] explain = AnomalyEvent.CLOSE.equals(type) ? s.episodeShares : stepShares;
        boolean fits = explain != null && explain.length == features && StepMath.allFinite(explain);
        float total = 0f;
        for (int i = 0; fits && i < explain.length; i++) {
            total += explain[i];
        }
        int n = fits ? StepMath.topK(explain, settings.topFeatures(), top) : 0;
        a.topFeatureNames = new String[n];
        a.topFeatureShares = new float[n];
        for (int i = 0; i < n; i++) {
            a.topFeatureNames[i] = card.names()[top[i]];
            a.topFeatureShares[i] = total > 0 ? explain[top[i]] / total : 0f;
        }
        if (AnomalyEvent.CLOSE.equals(type)) {
            a.durationMs = ts - s.episodeStart;
            metrics.episodesClosed.inc();
            if ((s.episodeReasons & DeviceState.EPISODE_SHARED) != 0) {
                metrics.episodesShared.inc();
            }
        } else if (AnomalyEvent.OPEN.equals(type)) {
            metrics.episodesOpened.inc();
        }
        return a;
    }

    /**
     * Row {@code row}'s score in threshold units, once {@link #finish} has run on it: NaN when the
     * step was not scored past warm-up (or not scored at all).
     */
    float stepScore(int row) {
        return stepScores[row];
    }

    /** What its {@link Metrics#EPISODE_OPEN_LONGEST_MS} gauge reads now. */
    long episodeOpenLongestMs() {
        return metrics.episodeOpenLongestMs();
    }

    @Override
    public void close() {
        model.close();
    }
}
