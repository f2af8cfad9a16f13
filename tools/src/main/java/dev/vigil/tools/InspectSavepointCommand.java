package dev.vigil.tools;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.state.DeviceState;
import java.io.BufferedWriter;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.state.api.OperatorIdentifier;
import org.apache.flink.state.api.SavepointReader;
import org.apache.flink.state.api.functions.KeyedStateReaderFunction;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

/**
 * {@code vigil inspect-savepoint PATH}: what a savepoint holds for each device, read with Flink's
 * State Processor API through the job's own state descriptor, so it reads exactly what a restore
 * would. One row per device on standard output; the summary line goes to standard error so that the
 * rows stay machine-readable.
 */
final class InspectSavepointCommand {

    static final String USAGE =
            "vigil inspect-savepoint PATH [--format csv|json] [--device ID] [--model serving|shadow]";

    static final String CSV_HEADER =
            "device,model_version,steps,last_event_time,episode_open,hidden_norm";

    private static final ObjectMapper JSON = new ObjectMapper();

    private final PrintStream out;
    private final PrintStream err;

    InspectSavepointCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    int run(String[] argv) throws Exception {
        Path savepoint = savepointArgument(argv, USAGE);
        Args args =
                new Args(
                        "inspect-savepoint",
                        Arrays.copyOfRange(argv, 1, argv.length),
                        Set.of("--format", "--device", "--model"));
        String format = args.get("--format") == null ? "csv" : args.get("--format");
        if (!format.equals("csv") && !format.equals("json")) {
            throw new Args.UsageException("--format is csv or json, was '" + format + "'");
        }
        String only = args.get("--device");
        String model = args.get("--model") == null ? "serving" : args.get("--model");
        if (!model.equals("serving") && !model.equals("shadow")) {
            throw new Args.UsageException("--model is serving or shadow, was '" + model + "'");
        }
        boolean shadow = model.equals("shadow");

        Path work = Files.createTempDirectory("vigil-inspect-");
        try {
            Path rows = work.resolve("rows");
            Path summaryFile = work.resolve("summary.json");
            read(
                    savepoint,
                    new Reader(only, format, shadow, rows.toString(), summaryFile.toString()));
            if (format.equals("csv") && only == null) {
                out.println(CSV_HEADER);
            }
            try (var lines = Files.lines(rows)) {
                lines.forEach(out::println);
            }
            Summary summary = JSON.readValue(summaryFile.toFile(), Summary.class);
            if (shadow && only == null && summary.devices() == 0) {
                err.println(noShadowState(savepoint));
                return 1;
            }
            if (only != null && summary.devices() == 0) {
                err.println(
                        (shadow ? "no shadow state of device '" : "no device '")
                                + only
                                + "' in "
                                + savepoint);
                return 1;
            }
            err.printf(
                    "%d devices in %s%s (%d with an open episode); model versions: %s%n",
                    summary.devices(),
                    savepoint,
                    shadow ? ", the shadow model's state" : "",
                    summary.open(),
                    summary.versions());
            return 0;
        } finally {
            LocalRun.deleteRecursively(work);
        }
    }

    /**
     * The savepoint a command's first argument names: a path, or a file: URI as Flink prints
     * savepoint paths.
     */
    static Path savepointArgument(String[] argv, String usage) throws IOException {
        if (argv.length == 0 || argv[0].startsWith("--")) {
            throw new Args.UsageException("which savepoint? " + usage);
        }
        return locate(
                argv[0].startsWith("file:") ? Path.of(URI.create(argv[0])) : Path.of(argv[0]));
    }

    /** What to say of a savepoint taken from a job without a shadow model. */
    static String noShadowState(Path savepoint) {
        return savepoint
                + " holds no state of a shadow model (no device has one in the operator "
                + VigilPipeline.UID_SCORING
                + "): take it from a job run with vigil.model.shadow.dir";
    }

    /** The {@code --out} of a command that writes a new savepoint: given, and not there yet. */
    static Path newSavepointDirectory(Args args, String usage) {
        Path target = args.path("--out");
        if (target == null) {
            throw new Args.UsageException("where to write the new savepoint? " + usage);
        }
        if (Files.exists(target)) {
            throw new Args.UsageException(
                    target + " exists: give a new directory for the new savepoint");
        }
        return target;
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

    /** What the reader saw: devices, those with an open episode, devices per model version. */
    record Summary(long devices, long open, Map<String, Long> versions) {}

    /**
     * Runs {@code reader} over every device in the savepoint's scoring operator, at parallelism 1
     * (the reader writes one file). The rows go to a file rather than back through Flink's collect
     * sink, which can lose the last results when a local job ends, and which would hold every row
     * of a million-device savepoint in memory.
     */
    static void read(Path savepoint, KeyedStateReaderFunction<String, Void> reader)
            throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        SavepointReader.read(env, savepoint.toUri().toString(), new EmbeddedRocksDBStateBackend())
                .readKeyedState(OperatorIdentifier.forUid(VigilPipeline.UID_SCORING), reader)
                .sinkTo(new DiscardingSink<>());
        env.execute("vigil-inspect-savepoint");
    }

    /**
     * Writes each device's row (or one device in full) to a file, and the summary at the end: of
     * the serving model's state, or of the shadow model's.
     */
    static final class Reader extends KeyedStateReaderFunction<String, Void> {
        private final String only;
        private final String format;
        private final boolean shadow;
        private final String rowsFile;
        private final String summaryFile;
        private transient SavedStates states;
        private transient BufferedWriter rows;
        private transient long devices;
        private transient long open;
        private transient Map<String, Long> versions;

        Reader(String only, String format, boolean shadow, String rowsFile, String summaryFile) {
            this.only = only;
            this.format = format;
            this.shadow = shadow;
            this.rowsFile = rowsFile;
            this.summaryFile = summaryFile;
        }

        @Override
        public void open(OpenContext context) throws IOException {
            states = new SavedStates(getRuntimeContext());
            rows = Files.newBufferedWriter(Path.of(rowsFile), StandardCharsets.UTF_8);
            versions = new TreeMap<>();
        }

        @Override
        public void readKey(String device, Context context, Collector<Void> out) throws Exception {
            if (only != null && !only.equals(device)) {
                return;
            }
            DeviceState s = states.read()[shadow ? 1 : 0];
            if (s == null) {
                return;
            }
            devices++;
            open += s.episodeOpen ? 1 : 0;
            versions.merge(String.valueOf(s.modelVersion), 1L, Long::sum);
            if (only != null) {
                rows.write(
                        JSON.writerWithDefaultPrettyPrinter()
                                .writeValueAsString(
                                        full(
                                                device,
                                                s,
                                                new java.util.TreeSet<>(
                                                        context.registeredEventTimeTimers()))));
            } else if (format.equals("json")) {
                rows.write(JSON.writeValueAsString(row(device, s)));
            } else {
                rows.write(csv(row(device, s)));
            }
            rows.newLine();
        }

        @Override
        public void close() throws IOException {
            if (rows != null) {
                rows.close();
                JSON.writeValue(new File(summaryFile), new Summary(devices, open, versions));
            }
        }
    }

    private static Map<String, Object> row(String device, DeviceState s) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("device", device);
        r.put("model_version", s.modelVersion);
        r.put("steps", s.steps);
        r.put("last_event_time", time(s.lastTs));
        r.put("episode_open", s.episodeOpen);
        r.put("hidden_norm", norm(s.hidden));
        return r;
    }

    private static Map<String, Object> full(
            String device, DeviceState s, java.util.SortedSet<Long> eventTimers) {
        Map<String, Object> r = row(device, s);
        r.put("last_seq", s.lastSeq == DeviceState.NO_SEQ ? null : s.lastSeq);
        r.put("above_run", s.aboveRun);
        r.put("below_run", s.belowRun);
        boolean run = s.episodeOpen || s.aboveRun > 0; // otherwise the episode fields are stale
        r.put("episode_start", run ? time(s.episodeStart) : null);
        r.put("episode_peak", run ? s.episodePeak : null);
        r.put("episode_steps", run ? s.episodeSteps : null);
        r.put("episode_shares", run ? s.episodeShares : null);
        r.put("score_level", s.scoreLevel);
        r.put("episode_reasons", run ? s.episodeReasons : null);
        // The level score's profile (state format 2; none for a card without a level score), the
        // spread of per-device normalisation and the stuck score's runs (none without them).
        r.put("profile_steps", s.profileSteps);
        r.put("level_mean", s.levelMean);
        r.put("profile_mean", s.profileMean);
        r.put("profile_var", s.profileVar);
        r.put("value_var", s.valueVar);
        r.put("last_values", s.lastValues);
        r.put("unchanged_runs", s.unchangedRuns);
        // The device's level of forecast residual (state format 3): steps learned, and its root
        // mean square in threshold units (null before the first step, and while it is learned in
        // blocks); while it is, the blocks so far (format 6: the sum of their mean squares, the
        // largest, the second largest).
        r.put("dynamics_steps", s.dynamicsSteps);
        r.put(
                "dynamics_rms",
                s.dynamicsSteps > 0 && s.dynamicsBlocks == null
                        ? Float.valueOf((float) Math.sqrt(s.dynamicsMeanSquare))
                        : null);
        r.put("dynamics_blocks", s.dynamicsBlocks);
        // The variability score's profile (state format 7; none for a card without it): steps
        // seen, and per target the moving average of the squared change, the log's mean and
        // variance (while learned, the running sum of squares), the last value.
        r.put("variability_steps", s.variabilitySteps);
        r.put("variability_mean_square", s.variabilityMeanSquare);
        r.put("variability_mean", s.variabilityMean);
        r.put("variability_var", s.variabilityVar);
        r.put("variability_last", s.variabilityLast);
        // Since when the level or the variability has crossed the threshold at every step (format
        // 7), which vigil.alerts.relearn-after measures.
        r.put("profile_above_since", time(s.profileAboveSince));
        // The silence watch (state format 4): last seen and the pending timer, on the records'
        // Kafka time, and whether a silence is reported and awaits its CLOSE.
        r.put("last_seen", time(s.lastSeenMs));
        r.put("silence_timer", time(s.silenceTimerMs));
        r.put("silent", s.silent);
        // The device's event-time timers in the savepoint (Flink's, beside the state): its silence
        // timer, which a rewritten savepoint must keep.
        r.put("event_timers", eventTimers.stream().map(InspectSavepointCommand::time).toList());
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
