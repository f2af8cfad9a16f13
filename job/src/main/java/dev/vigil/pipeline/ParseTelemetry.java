package dev.vigil.pipeline;

import dev.vigil.metrics.Metrics;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import java.util.List;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Parses and validates raw records against the model's features: a valid record goes on to scoring,
 * any other becomes a dead letter with its reason and original bytes. Never throws on input, so one
 * bad record cannot restart the job.
 */
public class ParseTelemetry extends ProcessFunction<RawRecord, TelemetryEvent> {

    public static final OutputTag<DeadLetter> DEAD_LETTERS = new OutputTag<>("dead-letters") {};

    private final List<String> features;
    private transient TelemetryParser parser;
    private transient Metrics.Parse metrics;

    public ParseTelemetry(List<String> features) {
        this.features = List.copyOf(features);
    }

    @Override
    public void open(OpenContext openContext) {
        parser = new TelemetryParser(features);
        metrics = new Metrics.Parse(getRuntimeContext());
    }

    @Override
    public void processElement(RawRecord raw, Context ctx, Collector<TelemetryEvent> out) {
        metrics.recordsIn.inc();
        TelemetryParser.Result result = parser.parse(raw.value);
        if (result.event() != null) {
            out.collect(result.event());
        } else {
            metrics.deadLetter(result.rejection().reason());
            ctx.output(
                    DEAD_LETTERS,
                    new DeadLetter(
                            result.rejection().reason(),
                            result.rejection().detail(),
                            raw,
                            System.currentTimeMillis()));
        }
    }
}
