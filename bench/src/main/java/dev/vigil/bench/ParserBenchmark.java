package dev.vigil.bench;

import dev.vigil.serde.InputFormat;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * What parsing one input record costs, per input format ({@code vigil.input.format}): the format's
 * parser on records of 16 features as the benchmark's load generator writes them (about 420 bytes
 * of JSON, about 310 of Avro), a different record each call from a pool of 1024, so that the branch
 * predictor and caches see varied input as the job does.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class ParserBenchmark {

    static final int FEATURES = 16;
    private static final int POOL = 1024;

    /**
     * An input format, or {@code json-jackson}: JSON read by Jackson alone, without the fast path.
     */
    @Param({"json", "json-jackson", "avro"})
    public String format;

    private InputFormat.Parser parser;
    private byte[][] records;
    private int next;

    @Setup(Level.Trial)
    public void open() {
        List<String> names = new ArrayList<>();
        for (int f = 0; f < FEATURES; f++) {
            names.add("feature_" + f);
        }
        boolean jacksonAlone = format.equals("json-jackson");
        InputFormat f =
                jacksonAlone
                        ? InputFormat.JSON
                        : InputFormat.valueOf(format.toUpperCase(Locale.ROOT));
        parser = f.parser(names);
        if (jacksonAlone) {
            parser = ((TelemetryParser) parser)::parseJson;
        }
        records = records(f, names, POOL);
    }

    /** {@code n} records like the load generator's: device, ts, seq and one value per feature. */
    static byte[][] records(InputFormat format, List<String> names, int n) {
        SplittableRandom random = new SplittableRandom(42);
        String[] order = names.toArray(String[]::new);
        byte[][] out = new byte[n][];
        for (int i = 0; i < n; i++) {
            float[] values = new float[names.size()];
            for (int f = 0; f < values.length; f++) {
                values[f] = (float) (50 + 10 * random.nextGaussian());
            }
            TelemetryEvent e =
                    new TelemetryEvent(
                            "dev-" + i % 10_000, 1_764_000_000_000L + i * 60_000L, i, values);
            out[i] = format.write(e, order);
        }
        return out;
    }

    @Benchmark
    public TelemetryParser.Result parse() {
        byte[] raw = records[next];
        next = (next + 1) & (POOL - 1);
        return parser.parse(raw);
    }
}
