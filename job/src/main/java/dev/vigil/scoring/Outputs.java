package dev.vigil.scoring;

import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import org.apache.flink.util.OutputTag;

/** The scoring operator's side outputs. */
public final class Outputs {

    /**
     * The records the scorer could not score, as dead letters holding the record as parsed: at or
     * before the last scored step of their device ({@code DUPLICATE}, {@code OUT_OF_ORDER}, counted
     * as late) or failed by ONNX Runtime ({@code MODEL_ERROR}). Written to the dead-letter topic
     * with the parser's.
     */
    public static final OutputTag<DeadLetter> DEAD_LETTERS =
            new OutputTag<>("scorer-dead-letters") {};

    /** Every scored step's score, when enabled. */
    public static final OutputTag<ScoredStep> SCORES = new OutputTag<>("scores") {};

    private Outputs() {}
}
