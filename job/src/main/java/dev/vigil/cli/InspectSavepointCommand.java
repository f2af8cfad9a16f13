package dev.vigil.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.runtime.state.hashmap.HashMapStateBackend;
import org.apache.flink.state.api.OperatorIdentifier;
import org.apache.flink.state.api.SavepointReader;
import org.apache.flink.state.api.functions.KeyedStateReaderFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;

/**
 * {@code vigil inspect-savepoint PATH}: what a savepoint (or retained checkpoint) holds for each
 * device, read with Flink's State Processor API through the job's own state descriptor, so it reads
 * exactly what a restore would. One row per device on standard output; the summary line goes to
 * standard error so that the rows stay machine-readable.
 */
final class InspectSavepointCommand {

    static final String USAGE = "vigil inspect-savepoint PATH [--format csv|json] [--device ID]";

    /**
     * Long enough that nothing in a savepoint reads as expired: inspection shows every device,
     * including those a job with a shorter {@code vigil.state.ttl} would drop on their next read.
     */
    static final Duration READ_TTL = Duration.ofDays(36_500);

    private static final ObjectMapper JSON = new ObjectMapper();

    private final PrintStream out;
    private final PrintStream err;

    InspectSavepointCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    int run(String[] argv) throws Exception {
        if (argv.length == 0 || argv[0].startsWith("--")) {
            throw new Args.UsageException("which savepoint? " + USAGE);
        }
        Path savepoint = locate(Path.of(argv[0]));
        Args args =
                new Args(
                        "inspect-savepoint",
                        Arrays.copyOfRange(argv, 1, argv.length),
                        Set.of("--format", "--device"));
        String format = args.get("--format") == null ? "csv" : args.get("--format");
        if (!format.equals("csv") && !format.equals("json")) {
            throw new Args.UsageException("--format is csv or json, was '" + format + "'");
        }
        String only = args.get("--device");

        Map<String, Integer> versions = new TreeMap<>();
        long devices = 0;
        long open = 0;
        if (format.equals("csv") && only == null) {
            out.println("device,model_version,steps,last_event_time,episode_open,hidden_norm");
        }
        try (CloseableIterator<Device> rows = read(savepoint, only)) {
            while (rows.hasNext()) {
                Device d = rows.next();
                devices++;
                open += d.state.episodeOpen ? 1 : 0;
                versions.merge(String.valueOf(d.state.modelVersion), 1, Integer::sum);
                if (only != null) {
                    out.println(
                            JSON.copy()
                                    .enable(SerializationFeature.INDENT_OUTPUT)
                                    .writeValueAsString(full(d)));
                } else if (format.equals("json")) {
                    out.println(JSON.writeValueAsString(row(d)));
                } else {
                    out.println(csv(row(d)));
                }
            }
        }
        if (only != null && devices == 0) {
            err.println("no device '" + only + "' in " + savepoint);
            return 1;
        }
        err.printf(
                "%d devices in %s (%d with an open episode); model versions: %s%n",
                devices, savepoint, open, versions);
        return 0;
    }

    /** A savepoint directory, or a directory holding exactly one (what --savepoint-out leaves). */
    static Path locate(Path path) throws IOException {
        if (Files.isRegularFile(path.resolve("_metadata"))) {
            return path;
        }
        if (Files.isDirectory(path)) {
            try (var children = Files.list(path)) {
                List<Path> inside =
                        children.filter(p -> Files.isRegularFile(p.resolve("_metadata"))).toList();
                if (inside.size() == 1) {
                    return inside.get(0);
                }
            }
        }
        throw new Args.UsageException(
                "no savepoint at "
                        + path
                        + ": give the directory that holds the savepoint's _metadata file");
    }

    /** One device's key and state. A Flink POJO. */
    public static final class Device {
        public String id;
        public DeviceState state;

        public Device() {}

        Device(String id, DeviceState state) {
            this.id = id;
            this.state = state;
        }
    }

    /** Every device's state in the savepoint's scoring operator, or only {@code only}'s. */
    static CloseableIterator<Device> read(Path savepoint, String only) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        return SavepointReader.read(env, savepoint.toUri().toString(), new HashMapStateBackend())
                .readKeyedState(
                        OperatorIdentifier.forUid(VigilPipeline.UID_SCORING), new Reader(only))
                .executeAndCollect("vigil-inspect-savepoint");
    }

    static final class Reader extends KeyedStateReaderFunction<String, Device> {
        private final String only;
        private transient ValueState<DeviceState> state;

        Reader(String only) {
            this.only = only;
        }

        @Override
        public void open(OpenContext context) {
            state = getRuntimeContext().getState(DeviceStateSchema.descriptor(READ_TTL));
        }

        @Override
        public void readKey(String device, Context context, Collector<Device> out)
                throws Exception {
            if (only == null || only.equals(device)) {
                DeviceState s = state.value();
                if (s != null) {
                    out.collect(new Device(device, s));
                }
            }
        }
    }

    private static Map<String, Object> row(Device d) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("device", d.id);
        r.put("model_version", d.state.modelVersion);
        r.put("steps", d.state.steps);
        r.put("last_event_time", time(d.state.lastTs));
        r.put("episode_open", d.state.episodeOpen);
        r.put("hidden_norm", norm(d.state.hidden));
        return r;
    }

    private static Map<String, Object> full(Device d) {
        DeviceState s = d.state;
        Map<String, Object> r = row(d);
        r.put("last_seq", s.lastSeq == DeviceState.NO_SEQ ? null : s.lastSeq);
        r.put("above_run", s.aboveRun);
        r.put("below_run", s.belowRun);
        r.put("episode_start", s.episodeOpen || s.aboveRun > 0 ? time(s.episodeStart) : null);
        r.put("episode_peak", s.episodePeak);
        r.put("episode_steps", s.episodeSteps);
        r.put("episode_shares", s.episodeShares);
        r.put("score_level", s.scoreLevel);
        r.put("hidden", s.hidden);
        r.put("forecast", s.forecast);
        return r;
    }

    private static String time(long ms) {
        return ms == Long.MIN_VALUE ? null : Instant.ofEpochMilli(ms).toString();
    }

    static double norm(float[] v) {
        if (v == null) {
            return 0;
        }
        double sum = 0;
        for (float f : v) {
            sum += (double) f * f;
        }
        return Math.round(Math.sqrt(sum) * 1e6) / 1e6;
    }

    private static String csv(Map<String, Object> row) {
        StringBuilder b = new StringBuilder();
        for (Object v : row.values()) {
            if (b.length() > 0) {
                b.append(',');
            }
            String s = v == null ? "" : v.toString();
            if (s.contains(",") || s.contains("\"") || s.contains("\n")) {
                s = "\"" + s.replace("\"", "\"\"") + "\"";
            }
            b.append(s);
        }
        return b.toString();
    }
}
