package dev.vigil.metrics;

import dev.vigil.scoring.DriftWindow;
import dev.vigil.serde.DeadLetterReason;
import java.util.EnumMap;
import java.util.Map;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;
import org.apache.flink.api.common.accumulators.LongCounter;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;

/**
 * The job's metrics, all in the operator metric group {@code vigil} (Prometheus: {@code
 * flink_taskmanager_job_task_operator_vigil_<name>}).
 *
 * <p>Each operator registers only its own ({@link Parse}, {@link Scoring}). Where every input
 * record ends is counted twice: as metrics (for dashboards) and as accumulators of the same names
 * (for a finished job's result, which the demo and the tests read). {@code records_in == scored +
 * late + dead_letters}.
 */
public final class Metrics {

    private Metrics() {}

    public static final String GROUP = "vigil";

    /**
     * The shadow model's scoring operator's group (Prometheus {@code
     * flink_taskmanager_job_task_operator_vigil_shadow_<name>}); its accumulators are named {@code
     * shadow_<name>}.
     */
    public static final String GROUP_SHADOW = "vigil_shadow";

    public static final String RECORDS_IN = "records_in";
    public static final String SCORED = "scored";

    /**
     * Scored steps taken while their device's memory warmed up (the card's {@code warmup_steps}
     * after a start or a reset): no alert can come from them. Part of {@link #SCORED}; a share near
     * 1 means the devices are reset before they warm up (alert {@code VigilDevicesWarmingUp}).
     */
    public static final String WARMING_UP = "warming_up";

    public static final String LATE = "late";

    /** Per reason ({@code duplicate}, {@code out_of_order}), with the label {@code reason}. */
    public static final String LATE_BY_REASON = "late_by_reason";

    public static final String DEAD_LETTERS = "dead_letters";

    /** Per reason, with the label {@code reason}. */
    public static final String DEAD_LETTERS_BY_REASON = "dead_letters_by_reason";

    public static final String EPISODES_OPENED = "episodes_opened";
    public static final String EPISODES_CLOSED = "episodes_closed";

    /** Devices reported silent (a silence OPEN), and back (its CLOSE): README, "Silence". */
    public static final String SILENCES_OPENED = "silences_opened";

    public static final String SILENCES_CLOSED = "silences_closed";

    /**
     * Devices forgotten: reported silent and still silent after {@code vigil.state.ttl}, their
     * state removed (README, "Silence"). Their silence's CLOSE counts in {@link #SILENCES_CLOSED}
     * too.
     */
    public static final String DEVICES_FORGOTTEN = "devices_forgotten";

    /**
     * How far the silence watch's clock, the watermark, is behind the wall clock, in milliseconds
     * (0 at the end of a bounded input; the time since the operator started while no watermark has
     * come). A silence is reported this much later than it happened: about 30 s while records flow;
     * more while none come, while a backlog is read, and without bound when a partition's Kafka
     * timestamps stop moving while its records still come (alert {@code VigilSilenceWatchBehind}).
     * Only with the watch on.
     */
    public static final String SILENCE_WATCH_LAG_MS = "silence_watch_lag_ms";

    /**
     * How long (the records' time: the step's {@code ts} less its episode's start) the oldest
     * episode has been open among the devices a scoring subtask stepped in the last one to two
     * minutes (processing time, whole minutes); 0 when none of them was in an episode. An episode
     * held open for days by a lasting change hides any later fault of the same device.
     */
    public static final String EPISODE_OPEN_LONGEST_MS = "episode_open_longest_ms";

    /** Devices whose state the batched operator's state cache holds and RocksDB does not yet. */
    public static final String STATE_CACHE_DEVICES = "state_cache_devices";

    /**
     * Milliseconds a write-back of the state cache took (before a checkpoint barrier, or when the
     * cache filled): the scoring task does nothing else meanwhile.
     */
    public static final String STATE_CACHE_WRITE_BACK_MS = "state_cache_write_back_ms";

    /**
     * Reads of a device's state that the batched operator's state cache did not hold, so RocksDB
     * served them: a device's first step in the subtask, its first after a silence of a checkpoint
     * interval or more, and every device's after the cache filled (or, on a state backend that
     * keeps the objects themselves, after every checkpoint).
     */
    public static final String STATE_CACHE_MISSES = "state_cache_misses";

    /**
     * Closed episodes during which the job's other model (serving or shadow) had an episode open on
     * the same device: the two models shared them. Only with a shadow model.
     */
    public static final String EPISODES_SHARED = "episodes_shared";

    /**
     * The correlation of the serving and the shadow model's step scores over the last drift window
     * (in the group {@link #GROUP_SHADOW}; as an accumulator, {@code shadow_score_correlation} over
     * the whole run): {@link ScoreCorrelation}.
     */
    public static final String SCORE_CORRELATION = "score_correlation";

    /**
     * With a shadow model, per arm (label {@code arm}: {@code control}, served by the serving
     * model, or {@code canary}, by the shadow model): the steps scored and the episodes opened for
     * that arm's devices by the model that serves them.
     */
    public static final String SCORED_BY_ARM = "scored_by_arm";

    public static final String EPISODES_OPENED_BY_ARM = "episodes_opened_by_arm";

    /**
     * Episodes closed because the level or the variability score crossed the threshold at every
     * step for {@code vigil.alerts.relearn-after}: each device's profiles are learned again from
     * there (its CLOSE says {@code relearned}).
     */
    public static final String PROFILES_RELEARNED = "profiles_relearned";

    public static final String RESETS_GAP = "resets_gap";
    public static final String RESETS_MODEL_CHANGE = "resets_model_change";

    /** Devices reset because a step would have stored a non-finite memory or profile. */
    public static final String RESETS_NON_FINITE = "resets_non_finite";

    public static final String RESETS_RESTART = "resets_restart";

    /**
     * Resets (after a gap, a restart or a non-finite step) of a device that had not warmed up since
     * its last start or reset: no alert could come from it in between. Each also counts under its
     * own reason. A device reset at every step (reporting less often than {@code
     * vigil.scoring.gap}, or restarting all the time) counts at every step: blind, though scored
     * (alert {@code VigilDevicesResetBeforeWarm}).
     */
    public static final String RESETS_BEFORE_WARM = "resets_before_warm";

    public static final String RESETS_INVALID_STATE = "resets_invalid_state";

    /** Feature values clamped to {@code vigil.scoring.max-abs-normalised} before scoring. */
    public static final String CLAMPED_VALUES = "clamped_values";

    /**
     * Devices whose memory was kept across a model change ({@code vigil.model.on-change: keep}).
     */
    public static final String KEPT_MODEL_CHANGE = "kept_model_change";

    /** Per feature (label {@code feature}): the last drift window's mean, in training stds. */
    public static final String DRIFT_MEAN_SHIFT_STD = "drift_mean_shift_std";

    /** Per feature (label {@code feature}): the last drift window's population stability index. */
    public static final String DRIFT_PSI = "drift_psi";

    /**
     * Per feature and bin (labels {@code feature}, {@code bin}): the steps of every complete drift
     * window so far in that bin of the card's (a counter). Summed over subtasks and a span of time,
     * the fleet's distribution, from which the rule {@code vigil:feature_drift_psi:fleet}
     * (deploy/prometheus/alerts.yaml) computes the fleet's population stability index.
     */
    public static final String DRIFT_BIN_STEPS = "drift_bin_steps";

    /** Per feature and bin (labels {@code feature}, {@code bin}): the card's share of that bin. */
    public static final String DRIFT_BIN_EXPECTED_SHARE = "drift_bin_expected_share";

    /** The last drift window's share of residual scores above the card's q0.99 (about 0.01). */
    public static final String DRIFT_SHARE_ABOVE_Q99 = "drift_score_share_above_q99";

    public static final String INFERENCE_BATCH_SIZE = "inference_batch_size";
    public static final String INFERENCE_MICROS = "inference_micros";
    public static final String EVENT_TO_EMIT_LATENCY_MS = "event_to_emit_latency_ms";

    /** Always 1, with the label {@code model_version}: which model a subtask scores with. */
    public static final String MODEL_INFO = "model_info";

    /**
     * Label keys. Flink's Prometheus reporter also puts a label's key into the metric name: {@code
     * ..._vigil_reason_dead_letters_by_reason{reason="MISSING_FEATURE"}}.
     */
    public static final String LABEL_REASON = "reason";

    public static final String LABEL_MODEL_VERSION = "model_version";

    /** The label that names a feature, on the drift gauges. */
    public static final String LABEL_FEATURE = "feature";

    /** The label that numbers a feature's bin (from 0, the card's order), on the drift gauges. */
    public static final String LABEL_BIN = "bin";

    /** The label that names a canary arm: {@code control} or {@code canary}. */
    public static final String LABEL_ARM = "arm";

    private static final int HISTOGRAM_WINDOW = 1024;

    /** One count, kept as a metric and as an accumulator. */
    public static final class Count {
        private final Counter metric;
        private final LongCounter accumulator;

        Count(RuntimeContext ctx, MetricGroup group, String metricName, String accumulatorName) {
            this.metric = group.counter(metricName);
            LongCounter existing = (LongCounter) ctx.<Long, Long>getAccumulator(accumulatorName);
            if (existing == null) {
                existing = new LongCounter();
                ctx.addAccumulator(accumulatorName, existing);
            }
            this.accumulator = existing;
        }

        public void inc() {
            metric.inc();
            accumulator.add(1L);
        }

        public void add(long n) {
            metric.inc(n);
            accumulator.add(n);
        }
    }

    private static MetricGroup group(RuntimeContext ctx) {
        return ctx.getMetricGroup().addGroup(GROUP);
    }

    /** The parse operator's: every record in, and its dead letters by reason. */
    public static final class Parse {
        public final Count recordsIn;
        private final Count deadLetters;
        private final Map<DeadLetterReason, Count> deadLettersByReason =
                new EnumMap<>(DeadLetterReason.class);

        public Parse(RuntimeContext ctx) {
            MetricGroup group = group(ctx);
            recordsIn = new Count(ctx, group, RECORDS_IN, RECORDS_IN);
            deadLetters = new Count(ctx, group, DEAD_LETTERS, DEAD_LETTERS);
            for (DeadLetterReason r : DeadLetterReason.values()) {
                if (r.fromScoring()) {
                    continue; // counted by the scorer
                }
                deadLettersByReason.put(
                        r,
                        new Count(
                                ctx,
                                group.addGroup(LABEL_REASON, r.name()),
                                DEAD_LETTERS_BY_REASON,
                                DEAD_LETTERS + "_" + r.name().toLowerCase()));
            }
        }

        public void deadLetter(DeadLetterReason reason) {
            deadLetters.inc();
            deadLettersByReason.get(reason).inc();
        }
    }

    /** The silence watch's: devices reported silent, and back, and how late its clock is. */
    public static final class Silence {
        private final MetricGroup group;
        public final Count opened;
        public final Count closed;
        public final Count forgotten;

        public Silence(RuntimeContext ctx) {
            group = group(ctx);
            opened = new Count(ctx, group, SILENCES_OPENED, SILENCES_OPENED);
            closed = new Count(ctx, group, SILENCES_CLOSED, SILENCES_CLOSED);
            forgotten = new Count(ctx, group, DEVICES_FORGOTTEN, DEVICES_FORGOTTEN);
        }

        /** Registers {@value #SILENCE_WATCH_LAG_MS}, read when the metric is reported. */
        public void lag(LongSupplier lagMs) {
            group.gauge(SILENCE_WATCH_LAG_MS, lagMs::getAsLong);
        }
    }

    /** The batched operator's state cache: how many devices it holds, what a write-back costs. */
    public static final class StateCache {
        private final Histogram writeBackMs;
        private final Counter misses;

        public StateCache(RuntimeContext ctx, IntSupplier cached) {
            MetricGroup group = group(ctx);
            group.gauge(STATE_CACHE_DEVICES, cached::getAsInt);
            writeBackMs =
                    group.histogram(
                            STATE_CACHE_WRITE_BACK_MS,
                            new DescriptiveStatisticsHistogram(HISTOGRAM_WINDOW));
            misses = group.counter(STATE_CACHE_MISSES);
        }

        public void wroteBack(long nanos) {
            writeBackMs.update(nanos / 1_000_000);
        }

        public void missed() {
            misses.inc();
        }

        public long misses() {
            return misses.getCount();
        }
    }

    /** The scoring operator's: steps, late events, episodes, resets, inference and latency. */
    public static final class Scoring {
        private final MetricGroup group;
        public final Count scored;
        public final Count warmingUp;
        private final Count late;
        private final Count lateDuplicate;
        private final Count lateOutOfOrder;
        public final Count episodesOpened;
        public final Count episodesClosed;
        public final Count episodesShared;
        public final Count profilesRelearned;
        public final Count resetGap;
        public final Count resetModelChange;
        public final Count resetNonFinite;
        public final Count resetRestart;
        public final Count resetBeforeWarm;
        public final Count resetInvalidState;
        public final Count clampedValues;
        public final Count keptModelChange;
        private final Count deadLetters;
        private final Count modelErrors;
        private final String accumulatorPrefix;
        private final boolean shadow;

        private final RecentMax openEpisodes = new RecentMax(60_000L);

        /**
         * A step of a device whose episode has been open {@code ageMs} (the step's ts less the
         * episode's start), for {@value #EPISODE_OPEN_LONGEST_MS}.
         */
        public void episodeOpenFor(long ageMs) {
            openEpisodes.update(ageMs, System.currentTimeMillis());
        }

        /** What {@value #EPISODE_OPEN_LONGEST_MS} reads now. */
        public long episodeOpenLongestMs() {
            return openEpisodes.get(System.currentTimeMillis());
        }

        /**
         * @param shadow whether the operator scores with the shadow model: its metrics go to {@link
         *     #GROUP_SHADOW}, its accumulators are named {@code shadow_<name>}
         */
        public Scoring(RuntimeContext ctx, boolean shadow) {
            this.shadow = shadow;
            group = shadow ? ctx.getMetricGroup().addGroup(GROUP_SHADOW) : group(ctx);
            accumulatorPrefix = shadow ? "shadow_" : "";
            scored = count(ctx, group, SCORED, SCORED);
            warmingUp = count(ctx, group, WARMING_UP, WARMING_UP);
            late = count(ctx, group, LATE, LATE);
            lateDuplicate =
                    count(
                            ctx,
                            group.addGroup(LABEL_REASON, "duplicate"),
                            LATE_BY_REASON,
                            LATE + "_duplicate");
            lateOutOfOrder =
                    count(
                            ctx,
                            group.addGroup(LABEL_REASON, "out_of_order"),
                            LATE_BY_REASON,
                            LATE + "_out_of_order");
            episodesOpened = count(ctx, group, EPISODES_OPENED, EPISODES_OPENED);
            episodesClosed = count(ctx, group, EPISODES_CLOSED, EPISODES_CLOSED);
            episodesShared = count(ctx, group, EPISODES_SHARED, EPISODES_SHARED);
            group.gauge(EPISODE_OPEN_LONGEST_MS, this::episodeOpenLongestMs);
            profilesRelearned = count(ctx, group, PROFILES_RELEARNED, PROFILES_RELEARNED);
            resetGap = count(ctx, group, RESETS_GAP, RESETS_GAP);
            resetModelChange = count(ctx, group, RESETS_MODEL_CHANGE, RESETS_MODEL_CHANGE);
            resetNonFinite = count(ctx, group, RESETS_NON_FINITE, RESETS_NON_FINITE);
            resetRestart = count(ctx, group, RESETS_RESTART, RESETS_RESTART);
            resetBeforeWarm = count(ctx, group, RESETS_BEFORE_WARM, RESETS_BEFORE_WARM);
            resetInvalidState = count(ctx, group, RESETS_INVALID_STATE, RESETS_INVALID_STATE);
            clampedValues = count(ctx, group, CLAMPED_VALUES, CLAMPED_VALUES);
            keptModelChange = count(ctx, group, KEPT_MODEL_CHANGE, KEPT_MODEL_CHANGE);
            // The scorer's own dead letters add to the parser's counts of the same names.
            deadLetters = count(ctx, group, DEAD_LETTERS, DEAD_LETTERS);
            String modelError = DeadLetterReason.MODEL_ERROR.name();
            modelErrors =
                    count(
                            ctx,
                            group.addGroup(LABEL_REASON, modelError),
                            DEAD_LETTERS_BY_REASON,
                            DEAD_LETTERS + "_" + modelError.toLowerCase());
        }

        /** Whether these are the shadow model's metrics. */
        public boolean shadow() {
            return shadow;
        }

        private Count count(
                RuntimeContext ctx, MetricGroup group, String metricName, String accumulatorName) {
            return new Count(ctx, group, metricName, accumulatorPrefix + accumulatorName);
        }

        /** An event at (duplicate) or before (out of order) the last scored one of its device. */
        public void late(boolean duplicate) {
            late.inc();
            (duplicate ? lateDuplicate : lateOutOfOrder).inc();
        }

        /** A step ONNX Runtime failed on: a dead letter MODEL_ERROR. */
        public void modelError() {
            deadLetters.inc();
            modelErrors.inc();
        }

        /** A histogram over the last {@value #HISTOGRAM_WINDOW} values, in the vigil group. */
        public Histogram histogram(String name) {
            return group.histogram(name, new DescriptiveStatisticsHistogram(HISTOGRAM_WINDOW));
        }

        /**
         * Registers the drift gauges (README, "Drift") of this subtask's window: per feature (label
         * {@code feature}) {@value #DRIFT_MEAN_SHIFT_STD}, and where the card has bins {@value
         * #DRIFT_PSI} and per bin (label {@code bin}) {@value #DRIFT_BIN_STEPS} and {@value
         * #DRIFT_BIN_EXPECTED_SHARE}; {@value #DRIFT_SHARE_ABOVE_Q99} of the residual scores.
         */
        public void drift(DriftWindow drift, String[] features) {
            for (int f = 0; f < features.length; f++) {
                int i = f;
                MetricGroup feature = group.addGroup(LABEL_FEATURE, features[f]);
                feature.gauge(DRIFT_MEAN_SHIFT_STD, () -> drift.meanShift(i));
                if (drift.hasBins(f)) {
                    feature.gauge(DRIFT_PSI, () -> drift.psi(i));
                    for (int b = 0; b < drift.bins(f); b++) {
                        int j = b;
                        MetricGroup bin = feature.addGroup(LABEL_BIN, String.valueOf(b));
                        bin.gauge(DRIFT_BIN_STEPS, () -> drift.binSteps(i, j));
                        bin.gauge(DRIFT_BIN_EXPECTED_SHARE, () -> drift.expectedShare(i, j));
                    }
                }
            }
            group.gauge(DRIFT_SHARE_ABOVE_Q99, drift::shareAboveQuantile99);
        }

        /** Registers the model version this subtask scores with, as a label of a gauge of 1. */
        public void modelVersion(String version) {
            group.addGroup(LABEL_MODEL_VERSION, version).gauge(MODEL_INFO, () -> 1);
        }
    }

    /**
     * What a scoring operator with a shadow model counts besides each model's own: the per-arm
     * counts of a canary, and the correlation of the two models' scores.
     */
    public static final class Comparison {
        private final Count[] scored = new Count[2];
        private final Count[] episodesOpened = new Count[2];
        private final ScoreCorrelation total;

        /** {@code window} is published as the gauge: the last complete window's correlation. */
        public Comparison(RuntimeContext ctx, ScoreCorrelation window) {
            MetricGroup group = group(ctx);
            String[] arms = {"control", "canary"};
            for (int a = 0; a < 2; a++) {
                MetricGroup arm = group.addGroup(LABEL_ARM, arms[a]);
                scored[a] = new Count(ctx, arm, SCORED_BY_ARM, SCORED + "_" + arms[a]);
                episodesOpened[a] =
                        new Count(
                                ctx, arm, EPISODES_OPENED_BY_ARM, EPISODES_OPENED + "_" + arms[a]);
            }
            ctx.getMetricGroup()
                    .addGroup(GROUP_SHADOW)
                    .gauge(SCORE_CORRELATION, window::correlation);
            String name = "shadow_" + SCORE_CORRELATION;
            ScoreCorrelation existing =
                    (ScoreCorrelation) ctx.<double[], Double>getAccumulator(name);
            if (existing == null) {
                existing = new ScoreCorrelation();
                ctx.addAccumulator(name, existing);
            }
            total = existing;
        }

        /**
         * A step of a device of the canary arm ({@code canary}) or not, by the model serving it.
         */
        public void scored(boolean canary) {
            scored[canary ? 1 : 0].inc();
        }

        public void episodeOpened(boolean canary) {
            episodesOpened[canary ? 1 : 0].inc();
        }

        /** The whole run's correlation (the accumulator). */
        public ScoreCorrelation total() {
            return total;
        }
    }
}
