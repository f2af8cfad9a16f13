package dev.vigil.bench;

import dev.vigil.serde.TelemetryParser;
import java.nio.charset.StandardCharsets;
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
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * What parsing one input record costs: {@link TelemetryParser#parse} on records of 16 features as
 * the benchmark's load generator writes them (about 420 bytes), a different record each call from a
 * pool of 1024, so that the branch predictor and caches see varied input as the job does.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class ParserBenchmark {

    static final int FEATURES = 16;
    private static final int POOL = 1024;

    private TelemetryParser parser;
    private byte[][] records;
    private int next;

    @Setup(Level.Trial)
    public void open() {
        List<String> names = new ArrayList<>();
        for (int f = 0; f < FEATURES; f++) {
            names.add("feature_" + f);
        }
        parser = new TelemetryParser(names);
        records = records(names, POOL);
    }

    /** {@code n} records like the load generator's: device, ts, seq and one value per feature. */
    static byte[][] records(List<String> names, int n) {
        SplittableRandom random = new SplittableRandom(42);
        byte[][] out = new byte[n][];
        StringBuilder b = new StringBuilder(512);
        for (int i = 0; i < n; i++) {
            b.setLength(0);
            b.append("{\"device_id\":\"dev-").append(i % 10_000).append("\",\"ts\":");
            b.append(1_764_000_000_000L + i * 60_000L).append(",\"seq\":").append(i);
            b.append(",\"values\":{");
            for (int f = 0; f < names.size(); f++) {
                if (f > 0) {
                    b.append(',');
                }
                float v = (float) (50 + 10 * random.nextGaussian());
                b.append('"').append(names.get(f)).append("\":");
                b.append(String.format(Locale.ROOT, "%s", v));
            }
            b.append("}}");
            out[i] = b.toString().getBytes(StandardCharsets.UTF_8);
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
