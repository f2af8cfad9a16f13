package dev.vigil.pipeline;

import dev.vigil.config.InputRules;
import dev.vigil.metrics.Metrics;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.DeadLetterReason;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import java.nio.charset.StandardCharsets;
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
 * any other becomes a dead letter with its reason and original bytes, as does a record keyed by
 * something else than its {@code device_id} ({@code KEY_MISMATCH}: its device's steps would be
 * spread over partitions) or whose {@code ts} lies further ahead of this job's clock than the
 * allowed skew ({@code FUTURE_TS}: scored, it would make every later step of its device late).
 * Never throws on input, so one bad record cannot restart the job.
 */
public class ParseTelemetry extends ProcessFunction<RawRecord, TelemetryEvent> {

    public static final OutputTag<DeadLetter> DEAD_LETTERS = new OutputTag<>("dead-letters") {};

    private final List<String> features;
    private final InputRules rules;
    private transient InputFormat.Parser parser;
    private transient Metrics.Parse metrics;

    public ParseTelemetry(List<String> features, InputRules rules) {
        this.features = List.copyOf(features);
        this.rules = rules;
    }

    @Override
    public void open(OpenContext openContext) {
        parser = rules.format().parser(features);
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
        if (raw.key == null ? rules.requireKey() : !keyIs(raw.key, e.deviceId)) {
            reject(
                    DeadLetterReason.KEY_MISMATCH,
                    raw.key == null
                            ? "the record has no Kafka key; it must be keyed by its device_id"
                                    + " (vigil.input.require-key: false accepts unkeyed records)"
                            : "the record's Kafka key is not its device_id",
                    raw,
                    ctx);
            return;
        }
        long now = System.currentTimeMillis();
        Duration maxClockSkew = rules.maxClockSkew();
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

    /** Whether the key's bytes are the device id in UTF-8; allocates only when they are not. */
    static boolean keyIs(byte[] key, String deviceId) {
        int n = deviceId.length();
        if (key.length == n) {
            int i = 0;
            while (i < n && deviceId.charAt(i) < 0x80 && key[i] == (byte) deviceId.charAt(i)) {
                i++;
            }
            if (i == n) {
                return true;
            }
        }
        return new String(key, StandardCharsets.UTF_8).equals(deviceId);
    }

    private void reject(DeadLetterReason reason, String detail, RawRecord raw, Context ctx) {
        metrics.deadLetter(reason);
        ctx.output(DEAD_LETTERS, new DeadLetter(reason, detail, raw, System.currentTimeMillis()));
    }
}
