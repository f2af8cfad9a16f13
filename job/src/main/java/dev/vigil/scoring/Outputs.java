package dev.vigil.scoring;

import dev.vigil.serde.AnomalyEvent;
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

    /**
     * The anomaly events of the model that shadows each device (with a shadow model: the shadow
     * model, or for the canary's devices the serving one), for the shadow topic.
     */
    public static final OutputTag<AnomalyEvent> SHADOW_ANOMALIES =
            new OutputTag<>("shadow-anomalies") {};

    /** Every scored step's score, when enabled. */
    public static final OutputTag<ScoredStep> SCORES = new OutputTag<>("scores") {};

    private Outputs() {}
}
