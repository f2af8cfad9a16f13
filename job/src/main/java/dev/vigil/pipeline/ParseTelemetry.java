package dev.vigil.pipeline;

import dev.vigil.metrics.Metrics;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.DeadLetterReason;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.List;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Parses and validates raw records against the model's features: a valid record goes on to scoring,
 * any other becomes a dead letter with its reason and original bytes, as does a record whose {@code
 * ts} lies further ahead of this job's clock than the allowed skew ({@code FUTURE_TS}: scored, it
 * would make every later step of its device late). Never throws on input, so one bad record cannot
 * restart the job.
 */
public class ParseTelemetry extends ProcessFunction<RawRecord, TelemetryEvent> {

    public static final OutputTag<DeadLetter> DEAD_LETTERS = new OutputTag<>("dead-letters") {};

    private final List<String> features;
    private final Duration maxClockSkew;
    private transient TelemetryParser parser;
    private transient Metrics.Parse metrics;

    public ParseTelemetry(List<String> features, Duration maxClockSkew) {
        this.features = List.copyOf(features);
        this.maxClockSkew = maxClockSkew;
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
        TelemetryEvent e = result.event();
        if (e == null) {
            reject(result.rejection().reason(), result.rejection().detail(), raw, ctx);
            return;
        }
        long now = System.currentTimeMillis();
        if (e.ts > now && e.ts - now > maxClockSkew.toMillis()) {
            reject(
                    DeadLetterReason.FUTURE_TS,
                    Instant.ofEpochMilli(e.ts)
                            + " is "
                            + Duration.ofMillis(e.ts - now).truncatedTo(ChronoUnit.SECONDS)
                            + " ahead of this job's clock ("
                            + Instant.ofEpochMilli(now)
                            + "); vigil.input.max-clock-skew is "
                            + maxClockSkew,
                    raw,
                    ctx);
            return;
        }
        out.collect(e);
    }

    private void reject(DeadLetterReason reason, String detail, RawRecord raw, Context ctx) {
        metrics.deadLetter(reason);
        ctx.output(DEAD_LETTERS, new DeadLetter(reason, detail, raw, System.currentTimeMillis()));
    }
}
