package dev.vigil.scoring;

import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import org.apache.flink.util.OutputTag;

/** The scoring operator's side outputs. */
public final class Outputs {

    /**
     * Events at or before the last scored one of their device, as dead letters ({@code DUPLICATE},
     * {@code OUT_OF_ORDER}) holding the record as parsed: counted, never scored, and written to the
     * dead-letter topic with the parser's.
     */
    public static final OutputTag<DeadLetter> LATE = new OutputTag<>("late-or-duplicate") {};

    /** Every scored step's score, when enabled. */
    public static final OutputTag<ScoredStep> SCORES = new OutputTag<>("scores") {};

    private Outputs() {}
}
