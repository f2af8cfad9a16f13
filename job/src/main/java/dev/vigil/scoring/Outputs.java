package dev.vigil.scoring;

import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import org.apache.flink.util.OutputTag;

/** The scoring operator's side outputs. */
public final class Outputs {

    /** Events at or before the last scored one of their device: counted, never scored. */
    public static final OutputTag<TelemetryEvent> LATE = new OutputTag<>("late-or-duplicate") {};

    /** Every scored step's score, when enabled. */
    public static final OutputTag<ScoredStep> SCORES = new OutputTag<>("scores") {};

    private Outputs() {}
}
