package dev.vigil.scoring;

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
 * @param onModelChange what a device's state written by another model version becomes
 * @param stateTtl how long a silent device's state is kept
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
        ModelChange onModelChange,
        java.time.Duration stateTtl)
        implements Serializable {}
