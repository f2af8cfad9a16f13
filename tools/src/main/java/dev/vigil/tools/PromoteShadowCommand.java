package dev.vigil.tools;

import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.util.FileUtils;

/**
 * {@code vigil promote-shadow SAVEPOINT --out DIR}: writes a copy of a savepoint taken with a
 * shadow model ({@code vigil.model.shadow.dir}) in which each device's serving and shadow states
 * trade places. Restored with the shadow's model as {@code vigil.model.dir}, the promoted model
 * scores each device from its first step with the memory and profile it produced itself: no
 * warm-up, no reset. Restored with the old model as the shadow, the old model closes on the
 * anomalies topic the episodes it had open there, and stays warm: promoting again rolls back. A
 * device the shadow never saw (silent since the shadow was added, or, promoting again, a device the
 * old model never saw) keeps its serving state, which the restore treats as any state of another
 * model ({@code vigil.model.on-change}), and a copy of it becomes the shadow's: the model that
 * wrote it stays warm for that device too, so promoting twice gives every device back to the model
 * that had it. Every other operator's state (Kafka offsets, pending transactions) is kept as it
 * was.
 */
final class PromoteShadowCommand {

    static final String USAGE = "vigil promote-shadow SAVEPOINT --out DIR";

    private static final com.fasterxml.jackson.databind.ObjectMapper JSON =
            new com.fasterxml.jackson.databind.ObjectMapper();

    private final PrintStream out;

    PromoteShadowCommand(PrintStream out) {
        this.out = out;
    }

    int run(String[] argv) throws Exception {
        Path savepoint = InspectSavepointCommand.savepointArgument(argv, USAGE);
        Args args =
                new Args(
                        "promote-shadow",
                        Arrays.copyOfRange(argv, 1, argv.length),
                        Set.of("--out"));
        Path target = InspectSavepointCommand.newSavepointDirectory(args, USAGE);
        Summary summary = write(savepoint, target);
        out.printf(
                "wrote %s from %s: the shadow's state of %d devices is the serving state (model"
                        + " versions %s), and their serving state the shadow's; restore it with the"
                        + " shadow's model as vigil.model.dir (and the old one as"
                        + " vigil.model.shadow.dir to keep a warm rollback)%n",
                target,
                savepoint,
                summary.promoted().values().stream().mapToLong(Long::longValue).sum(),
                summary.promoted());
        if (summary.oldestWritten() <= summary.newestWritten()) {
            // The tool does not know the job's vigil.state.ttl: the user compares.
            out.printf(
                    "devices last written from %s to %s (the copy keeps these times: a device"
                            + " silent since for longer than the job's state time-to-live"
                            + " (vigil.state.ttl, twice it with the silence watch on) is dropped"
                            + " by the job at its next read, promoted or not)%n",
                    Instant.ofEpochMilli(summary.oldestWritten()),
                    Instant.ofEpochMilli(summary.newestWritten()));
        }
        if (summary.unseen() > 0) {
            out.printf(
                    "%d devices the shadow never saw keep their serving state (on the restore,"
                            + " vigil.model.on-change decides what becomes of it) and have a copy"
                            + " of it as the shadow's%n",
                    summary.unseen());
        }
        return 0;
    }

    /**
     * The devices promoted, per model version, the devices the shadow never saw, and the earliest
     * and latest time a device was last written (epoch ms; {@link Long#MAX_VALUE} and {@link
     * Long#MIN_VALUE} for none).
     */
    record Summary(
            Map<String, Long> promoted, long unseen, long oldestWritten, long newestWritten) {}

    /**
     * Writes the copy and says what it holds. A savepoint without any shadow state is refused (and
     * nothing is left at {@code target}): promoting it would leave every device without state.
     */
    static Summary write(Path savepoint, Path target) throws Exception {
        Path summary = Files.createTempFile("vigil-promote-", ".json");
        try {
            ScoringStateRewrite.write(
                    savepoint, target, new Promote(summary.toString()), "vigil-promote-shadow");
            Summary written = JSON.readValue(summary.toFile(), Summary.class);
            if (written.promoted().isEmpty()) {
                FileUtils.deleteDirectory(target.toFile());
                throw new Args.UsageException(InspectSavepointCommand.noShadowState(savepoint));
            }
            return written;
        } finally {
            Files.deleteIfExists(summary);
        }
    }

    /**
     * A device's states after the promotion, {serving, shadow}: the shadow's serves, with the
     * device's silence watch as the serving state has it (the job keeps the serving state's
     * current; a shadow's stands still while the job runs without its model, and a stale one would
     * report a device that is talking silent), and the serving state becomes the shadow's. A device
     * the shadow never saw keeps its serving state, and a copy of it becomes the shadow's; an
     * episode the serving state had open goes with the copy, as it goes with every serving state
     * that becomes the shadow's: the old model, restored as the shadow (or, without one, the
     * restore) closes it on the anomalies topic under its own version, and promoting again gives it
     * back to the old model open.
     */
    static DeviceState[] promoted(DeviceState serving, DeviceState shadow) {
        if (shadow == null) {
            DeviceState copy = DeviceStateSchema.serializer().copy(serving);
            serving.forgetEpisode();
            return new DeviceState[] {serving, copy};
        }
        if (serving != null) {
            shadow.copySilence(serving);
        }
        return new DeviceState[] {shadow, serving};
    }

    /** Each device's shadow and serving states swapped; the summary to a file. */
    static final class Promote extends ScoringStateRewrite.Edit {
        private final String summaryFile;
        private transient Map<String, Long> versions;
        private transient long unseen;
        private transient long oldest;
        private transient long newest;

        Promote(String summaryFile) {
            this.summaryFile = summaryFile;
        }

        @Override
        public void open(OpenContext context) throws Exception {
            super.open(context);
            versions = new TreeMap<>();
            oldest = Long.MAX_VALUE;
            newest = Long.MIN_VALUE;
        }

        @Override
        void edit(String device, DeviceState serving, DeviceState shadow) throws IOException {
            if (shadow != null) {
                versions.merge(String.valueOf(shadow.modelVersion), 1L, Long::sum);
            } else {
                unseen++;
            }
            long written = lastWritten();
            oldest = Math.min(oldest, written);
            newest = Math.max(newest, written);
            DeviceState[] promoted = promoted(serving, shadow);
            keep(device, promoted[0], promoted[1]);
        }

        @Override
        public void close() throws IOException {
            if (versions != null) {
                JSON.writeValue(
                        new java.io.File(summaryFile),
                        new Summary(versions, unseen, oldest, newest));
            }
        }
    }
}
