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
 * @param emitScores whether every step's score goes to the scores side output
 */
public record ScoringSettings(
        long gapMs,
        int openAfter,
        int closeAfter,
        int updateEvery,
        int topFeatures,
        boolean emitScores)
        implements Serializable {}
