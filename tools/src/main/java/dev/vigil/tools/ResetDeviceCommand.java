package dev.vigil.tools;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.vigil.state.DeviceState;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.flink.api.common.functions.OpenContext;

/**
 * {@code vigil reset-device SAVEPOINT --out DIR [--reset IDS] [--drop IDS]}: writes a copy of a
 * savepoint in which the named devices are reset (memory, forecast, warm-up, profile and runs start
 * again; the order guard and the model version are kept) or dropped (the device comes back as a new
 * one), with every other device and every other operator's state (Kafka offsets, pending
 * transactions) as they were. The job restores from the copy as from any savepoint. The repair for
 * a device whose memory or profile learned a fault as normal, read with the State Processor API
 * through the job's own state descriptor and serializer. A device's shadow state, if the job has a
 * shadow model, is reset or dropped with it.
 *
 * <p>An episode open on a reset or dropped device ends without a CLOSE event. Every state keeps the
 * time it was last written, so its time-to-live goes on from then; a reset one takes the time of
 * the state it replaces.
 */
final class ResetDeviceCommand {

    static final String USAGE =
            "vigil reset-device SAVEPOINT --out DIR [--reset ID,ID...] [--drop ID,ID...]";

    private static final ObjectMapper JSON = new ObjectMapper();

    private final PrintStream out;
    private final PrintStream err;

    ResetDeviceCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    /**
     * Which of the named devices the savepoint held, when each was last written (epoch ms), and how
     * many devices it kept as they were.
     */
    record Summary(
            List<String> reset, List<String> dropped, Map<String, Long> lastWritten, long kept) {}

    int run(String[] argv) throws Exception {
        Path savepoint = InspectSavepointCommand.savepointArgument(argv, USAGE);
        Args args =
                new Args(
                        "reset-device",
                        Arrays.copyOfRange(argv, 1, argv.length),
                        Set.of("--out", "--reset", "--drop"));
        Path target = InspectSavepointCommand.newSavepointDirectory(args, USAGE);
        Set<String> reset = ids(args.get("--reset"));
        Set<String> drop = ids(args.get("--drop"));
        if (reset.isEmpty() && drop.isEmpty()) {
            throw new Args.UsageException("name devices to --reset or --drop; " + USAGE);
        }
        Set<String> both = new TreeSet<>(reset);
        both.retainAll(drop);
        if (!both.isEmpty()) {
            throw new Args.UsageException("devices both reset and dropped: " + both);
        }

        Path summaryFile = Files.createTempFile("vigil-reset-", ".json");
        try {
            write(savepoint, target, reset, drop, summaryFile);
            Summary summary = JSON.readValue(summaryFile.toFile(), Summary.class);
            out.printf(
                    "wrote %s from %s: reset %s, dropped %s, %d other devices as they were%n",
                    target, savepoint, summary.reset(), summary.dropped(), summary.kept());
            if (!summary.lastWritten().isEmpty()) {
                // The tool does not know the job's vigil.state.ttl: the user compares.
                StringBuilder when = new StringBuilder();
                summary.lastWritten()
                        .forEach(
                                (device, ms) ->
                                        when.append(when.isEmpty() ? "" : ", ")
                                                .append(device)
                                                .append(' ')
                                                .append(Instant.ofEpochMilli(ms)));
                out.printf(
                        "last written: %s (the copy keeps these times: a device silent since"
                                + " for longer than the job's state time-to-live"
                                + " (vigil.state.ttl, twice it with the silence watch on) is"
                                + " dropped by the job at its next read, reset or not)%n",
                        when);
            }
            Set<String> missing = new TreeSet<>(reset);
            missing.addAll(drop);
            summary.reset().forEach(missing::remove);
            summary.dropped().forEach(missing::remove);
            if (!missing.isEmpty()) {
                err.println("not in the savepoint (nothing done for them): " + missing);
                return 1;
            }
            return 0;
        } finally {
            Files.deleteIfExists(summaryFile);
        }
    }

    private static Set<String> ids(String list) {
        Set<String> ids = new LinkedHashSet<>();
        if (list != null) {
            for (String id : list.split(",")) {
                if (!id.isBlank()) {
                    ids.add(id.strip());
                }
            }
        }
        return ids;
    }

    /**
     * Reads every device of the scoring operator, rewrites or leaves out the named ones (both their
     * serving and their shadow state), and writes the existing savepoint with that operator's state
     * replaced into {@code target}; the summary goes to {@code summaryFile}.
     */
    static void write(
            Path savepoint, Path target, Set<String> reset, Set<String> drop, Path summaryFile)
            throws Exception {
        ScoringStateRewrite.write(
                savepoint,
                target,
                new Rewrite(reset, drop, summaryFile.toString()),
                "vigil-reset-device");
    }

    /** Each device as it was, rewritten or left out if named. */
    static final class Rewrite extends ScoringStateRewrite.Edit {
        private final Set<String> reset;
        private final Set<String> drop;
        private final String summaryFile;
        private transient List<String> wasReset;
        private transient List<String> dropped;
        private transient Map<String, Long> lastWritten;
        private transient long kept;

        Rewrite(Set<String> reset, Set<String> drop, String summaryFile) {
            this.reset = Set.copyOf(reset);
            this.drop = Set.copyOf(drop);
            this.summaryFile = summaryFile;
        }

        @Override
        public void open(OpenContext context) throws Exception {
            super.open(context);
            wasReset = new java.util.ArrayList<>();
            dropped = new java.util.ArrayList<>();
            lastWritten = new TreeMap<>();
        }

        @Override
        void edit(String device, DeviceState serving, DeviceState shadow) throws IOException {
            if (drop.contains(device)) {
                dropped.add(device);
                lastWritten.put(device, lastWritten());
            } else if (reset.contains(device)) {
                wasReset.add(device);
                lastWritten.put(device, lastWritten());
                keep(device, reset(serving), reset(shadow));
            } else {
                kept++;
                keep(device, serving, shadow);
            }
        }

        @Override
        public void close() throws IOException {
            if (wasReset != null) {
                JSON.writeValue(
                        new File(summaryFile),
                        new Summary(
                                wasReset.stream().sorted().toList(),
                                dropped.stream().sorted().toList(),
                                lastWritten,
                                kept));
            }
        }
    }

    /**
     * A device as the scorer finds it after a reset: its model version and order guard, nothing
     * else (no memory, forecast, episode, profile or runs: learned again from its next step); null
     * for null.
     */
    static DeviceState reset(DeviceState s) {
        if (s == null) {
            return null;
        }
        int hidden = s.hidden == null ? 0 : s.hidden.length;
        int features = s.forecast == null ? 0 : s.forecast.length;
        return DeviceState.freshKeepingOrder(s, s.modelVersion, hidden, features);
    }
}
