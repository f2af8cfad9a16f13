package dev.vigil.scoring;

import dev.vigil.serde.InputFormat;
import java.io.Serializable;

/**
 * What the scoring operator needs besides the model.
 *
 * @param gapMs silence after which a device's GRU memory is reset
 * @param openAfter consecutive steps above the threshold that open an episode
 * @param closeAfter consecutive steps at or below the threshold that close it
 * @param updateEvery an UPDATE event every this many steps while open; 0 for none
 * @param topFeatures how many features an event names as its explanation
 * @param adaptiveHalfLife half-life in steps of the adaptive threshold's score level; 0 for a fixed
 *     threshold (the card's)
 * @param emitScores whether every step's score goes to the scores side output
 * @param batchSize records buffered across devices per ONNX Runtime round; 0 for the per-record
 *     operator
 * @param batchTimeoutMs longest a record waits in the buffer
 * @param stateCache devices whose state the batched operator keeps on the heap between two
 *     checkpoints; 0 for none
 * @param onModelChange what a device's state written by another model version becomes
 * @param stateTtl how long a silent device's state is kept
 * @param maxAbsNormalised how far from the card's mean (in its stds) a feature may lie before it is
 *     clamped
 * @param restartStepBackMs how far before its device's last scored step a step's ts may lie before
 *     it is taken as a restart of the device rather than as late
 * @param inputFormat how the scorer's dead letters carry the record as parsed: as the job reads its
 *     input, so that a consumer can send it again
 * @param driftWindowSteps scored steps per drift window of a scoring subtask; 0 for no drift
 *     metrics
 * @param canaryFraction the share of devices (0 to 1, chosen by a stable hash of the device id)
 *     that the shadow model serves instead of the serving one, when the job has a shadow model
 * @param silenceAfterMs how long a device may go without a scored step (on the records' Flink
 *     timestamps) before a silence event reports it; 0 for no silence watch
 * @param relearnAfterMs how long (by the records' time) an episode may stay open with the level
 *     still out before the device's normal profile is learned again and the episode closes ({@code
 *     relearned}); 0 for never
 *     <p>{@code VigilConfig.scoring()} builds it from the options; {@link #toBuilder()} changes a
 *     few fields of a given one (tests start from the options' defaults).
 */
public record ScoringSettings(
        long gapMs,
        int openAfter,
        int closeAfter,
        int updateEvery,
        int topFeatures,
        int adaptiveHalfLife,
        boolean emitScores,
        int batchSize,
        long batchTimeoutMs,
        int stateCache,
        ModelChange onModelChange,
        java.time.Duration stateTtl,
        float maxAbsNormalised,
        long restartStepBackMs,
        InputFormat inputFormat,
        int driftWindowSteps,
        double canaryFraction,
        long silenceAfterMs,
        long relearnAfterMs)
        implements Serializable {

    /**
     * The time-to-live the state backend applies to a device's state (processing time since its
     * last write). Without the silence watch, {@link #stateTtl}: the backend alone drops a silent
     * device, without a word. With it, twice that: the watch forgets a silent device {@code
     * stateTtl} after it was last seen, in Kafka time, and says so (a CLOSE with reason {@code
     * forgotten}); the backend's own drop is the backstop for a watermark that stands still, and
     * drops a device unreported only once the watermark lags the wall clock by another {@code
     * stateTtl}. A "never" too long to double stays as it is.
     */
    public java.time.Duration backendTtl() {
        if (silenceAfterMs <= 0 || stateTtl.compareTo(NEVER_DOUBLED) >= 0) {
            return stateTtl;
        }
        return stateTtl.multipliedBy(2);
    }

    /** Half the longest time-to-live the backend counts in milliseconds. */
    private static final java.time.Duration NEVER_DOUBLED =
            java.time.Duration.ofMillis(Long.MAX_VALUE / 2);

    public Builder toBuilder() {
        return new Builder(this);
    }

    /** A copy of some settings with a few fields changed. */
    public static final class Builder {
        private long gapMs;
        private int openAfter;
        private int closeAfter;
        private int updateEvery;
        private int topFeatures;
        private int adaptiveHalfLife;
        private boolean emitScores;
        private int batchSize;
        private long batchTimeoutMs;
        private int stateCache;
        private ModelChange onModelChange;
        private java.time.Duration stateTtl;
        private float maxAbsNormalised;
        private long restartStepBackMs;
        private InputFormat inputFormat;
        private int driftWindowSteps;
        private double canaryFraction;
        private long silenceAfterMs;
        private long relearnAfterMs;

        private Builder(ScoringSettings s) {
            gapMs = s.gapMs;
            openAfter = s.openAfter;
            closeAfter = s.closeAfter;
            updateEvery = s.updateEvery;
            topFeatures = s.topFeatures;
            adaptiveHalfLife = s.adaptiveHalfLife;
            emitScores = s.emitScores;
            batchSize = s.batchSize;
            batchTimeoutMs = s.batchTimeoutMs;
            stateCache = s.stateCache;
            onModelChange = s.onModelChange;
            stateTtl = s.stateTtl;
            maxAbsNormalised = s.maxAbsNormalised;
            restartStepBackMs = s.restartStepBackMs;
            inputFormat = s.inputFormat;
            driftWindowSteps = s.driftWindowSteps;
            canaryFraction = s.canaryFraction;
            silenceAfterMs = s.silenceAfterMs;
            relearnAfterMs = s.relearnAfterMs;
        }

        public Builder gapMs(long v) {
            gapMs = v;
            return this;
        }

        public Builder openAfter(int v) {
            openAfter = v;
            return this;
        }

        public Builder closeAfter(int v) {
            closeAfter = v;
            return this;
        }

        public Builder updateEvery(int v) {
            updateEvery = v;
            return this;
        }

        public Builder topFeatures(int v) {
            topFeatures = v;
            return this;
        }

        public Builder adaptiveHalfLife(int v) {
            adaptiveHalfLife = v;
            return this;
        }

        public Builder emitScores(boolean v) {
            emitScores = v;
            return this;
        }

        /** Records per ONNX Runtime round and the longest wait; size 0 for the per-record one. */
        public Builder batch(int size, long timeoutMs) {
            batchSize = size;
            batchTimeoutMs = timeoutMs;
            return this;
        }

        public Builder stateCache(int devices) {
            stateCache = devices;
            return this;
        }

        public Builder onModelChange(ModelChange v) {
            onModelChange = v;
            return this;
        }

        public Builder stateTtl(java.time.Duration v) {
            stateTtl = v;
            return this;
        }

        public Builder maxAbsNormalised(float v) {
            maxAbsNormalised = v;
            return this;
        }

        public Builder restartStepBackMs(long v) {
            restartStepBackMs = v;
            return this;
        }

        public Builder inputFormat(InputFormat v) {
            inputFormat = v;
            return this;
        }

        public Builder driftWindowSteps(int v) {
            driftWindowSteps = v;
            return this;
        }

        public Builder canaryFraction(double v) {
            canaryFraction = v;
            return this;
        }

        public Builder silenceAfterMs(long v) {
            silenceAfterMs = v;
            return this;
        }

        public Builder relearnAfterMs(long v) {
            relearnAfterMs = v;
            return this;
        }

        public ScoringSettings build() {
            return new ScoringSettings(
                    gapMs,
                    openAfter,
                    closeAfter,
                    updateEvery,
                    topFeatures,
                    adaptiveHalfLife,
                    emitScores,
                    batchSize,
                    batchTimeoutMs,
                    stateCache,
                    onModelChange,
                    stateTtl,
                    maxAbsNormalised,
                    restartStepBackMs,
                    inputFormat,
                    driftWindowSteps,
                    canaryFraction,
                    silenceAfterMs,
                    relearnAfterMs);
        }
    }
}
