package dev.vigil.tools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.state.DeviceState;
import dev.vigil.testing.Fixtures;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.state.api.OperatorIdentifier;
import org.apache.flink.state.api.OperatorTransformation;
import org.apache.flink.state.api.SavepointReader;
import org.apache.flink.state.api.SavepointWriter;
import org.apache.flink.state.api.functions.KeyedStateBootstrapFunction;
import org.apache.flink.state.api.functions.KeyedStateReaderFunction;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A rewrite ({@code promote-shadow}, {@code reset-device}) that fails ends with that failure and
 * writes nothing. When each device's value was serialized in the State Processor API's bootstrap
 * thread, a state that could not be serialized left the rewrite waiting forever. A rewrite keeps
 * the scoring operator's silence period and each state's time-to-live timestamp.
 */
class ScoringStateRewriteITCase {

    @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = Fixtures.miniCluster(1);

    private static final Path GOLDEN = Fixtures.repoRoot().resolve("testdata/savepoints/0.5.0");

    @Test
    void shouldFailWhenAnEditedStateCannotBeWritten(@TempDir Path dir) {
        assertThat(assertFailsInTime(new KeepsAMalformedShadow(), dir.resolve("rewritten")))
                .hasMessageStartingWith("rewriting the scoring state failed at device ")
                .hasMessageContaining("shadow");
    }

    @Test
    void shouldFailWhenTheEditFails(@TempDir Path dir) {
        // Whichever failure Flink reports (the edit's own, or one it caused, such as a split
        // assignment lost to the failed task), the rewrite names the edit's.
        assertThat(assertFailsInTime(new Fails(), dir.resolve("rewritten")))
                .hasMessageMatching(
                        "rewriting the scoring state failed at device (\\S+): "
                                + "java.io.IOException: edit failed on \\1");
    }

    /**
     * The scoring operator's own state, the silence period its devices' timers were set for, is in
     * the copy as it was: without it the restored job would walk every device to arm the watch
     * again. A savepoint from before the watch has none, and neither has its copy.
     */
    @Test
    void shouldCarryTheSilencePeriodIntoTheCopy(@TempDir Path dir) throws Exception {
        Path copy = dir.resolve("copy");
        ScoringStateRewrite.write(GOLDEN, copy, new KeepsAll(), "keeping-rewrite");
        List<Long> golden = periods(GOLDEN);
        assertThat(golden).isNotEmpty();
        assertThat(periods(copy)).containsExactlyInAnyOrderElementsOf(golden);

        Path beforeTheWatch = Fixtures.repoRoot().resolve("testdata/savepoints/0.3.0");
        Path oldCopy = dir.resolve("old-copy");
        ScoringStateRewrite.write(beforeTheWatch, oldCopy, new KeepsAll(), "keeping-rewrite");
        assertThat(periods(beforeTheWatch)).isEmpty();
        assertThat(periods(oldCopy)).isEmpty();
    }

    /**
     * Each state keeps the time it was last written, so its time-to-live goes on from there:
     * written with a fresh one, a device silent past {@code vigil.state.ttl} would come back with
     * its old memory (and its silence timer would report it at once). In the older layout (0.4.0,
     * the shadow's state apart) each of a device's two states keeps its own; promoted, each keeps
     * its own in its new place.
     */
    @Test
    void shouldKeepTheTimeEachStateWasLastWritten(@TempDir Path dir) throws Exception {
        for (Path golden :
                List.of(GOLDEN, Fixtures.repoRoot().resolve("testdata/savepoints/0.4.0-shadow"))) {
            Path copy = dir.resolve("copy-" + golden.getFileName());
            ScoringStateRewrite.write(golden, copy, new KeepsAll(), "keeping-rewrite");

            Map<String, List<Long>> before = lastWritten(golden);
            assertThat(before).isNotEmpty();
            assertThat(before.values())
                    .allMatch(t -> t.get(0) < System.currentTimeMillis() - 60_000);
            assertThat(lastWritten(copy)).as(golden.toString()).isEqualTo(before);
        }

        Path older = Fixtures.repoRoot().resolve("testdata/savepoints/0.4.0-shadow");
        Path promoted = dir.resolve("promoted");
        PromoteShadowCommand.Summary summary = PromoteShadowCommand.write(older, promoted);
        Map<String, List<Long>> before = lastWritten(older);
        // what it prints: the earliest and latest time a device was last written
        List<Long> perDevice =
                before.values().stream().map(t -> Math.max(t.get(0), t.get(1))).toList();
        assertThat(summary.oldestWritten()).isEqualTo(Collections.min(perDevice));
        assertThat(summary.newestWritten()).isEqualTo(Collections.max(perDevice));
        Map<String, List<Long>> after = lastWritten(promoted);
        assertThat(before.values()).anyMatch(t -> t.get(1) != SavedStates.NONE);
        before.forEach(
                (device, t) -> {
                    // a device the shadow never saw: its serving state, and a copy as the shadow's
                    List<Long> swapped =
                            t.get(1) == SavedStates.NONE
                                    ? List.of(t.get(0), t.get(0))
                                    : List.of(t.get(1), t.get(0));
                    assertThat(after.get(device)).as(device).isEqualTo(swapped);
                });
    }

    /**
     * reset-device says when each named device was last written (the tool cannot know the job's
     * time-to-live: a device silent past it is dropped by the job however the copy has it).
     */
    @Test
    void shouldSayWhenEachNamedDeviceWasLastWritten(@TempDir Path dir) throws Exception {
        Map<String, List<Long>> before = lastWritten(GOLDEN);
        List<String> devices = List.copyOf(before.keySet());
        String reset = devices.get(0);
        String dropped = devices.get(1);
        Path summaryFile = dir.resolve("summary.json");

        ResetDeviceCommand.write(
                GOLDEN, dir.resolve("reset"), Set.of(reset), Set.of(dropped), summaryFile);

        ResetDeviceCommand.Summary summary =
                new com.fasterxml.jackson.databind.ObjectMapper()
                        .readValue(summaryFile.toFile(), ResetDeviceCommand.Summary.class);
        assertThat(summary.lastWritten())
                .containsOnlyKeys(reset, dropped)
                .containsEntry(reset, Math.max(before.get(reset).get(0), before.get(reset).get(1)))
                .containsEntry(
                        dropped, Math.max(before.get(dropped).get(0), before.get(dropped).get(1)));
        assertThat(lastWritten(dir.resolve("reset")).get(reset)).isEqualTo(before.get(reset));
    }

    /**
     * In the older layout a device's two states can have been written at different times (a shadow
     * model removed, its states left behind): the rewrite keeps them apart, each with its own time,
     * rather than giving the older one the newer one's (the job joins them at its restore, leaving
     * out the one that has expired). Promoted, each keeps its own in its new place, and the copy of
     * a serving state that becomes the shadow's (a device the shadow never saw) has its time.
     */
    @Test
    void shouldKeepTwoStatesWrittenAtDifferentTimesApart(@TempDir Path dir) throws Exception {
        // The golden 0.4.0 savepoint (its Kafka offsets and the rest) with these devices instead
        Path older = dir.resolve("older");
        StreamExecutionEnvironment env = ScoringStateRewrite.environment();
        OperatorIdentifier scoring = OperatorIdentifier.forUid(VigilPipeline.UID_SCORING);
        String golden =
                Fixtures.repoRoot().resolve("testdata/savepoints/0.4.0-shadow").toUri().toString();
        SavepointWriter.fromExistingSavepoint(env, golden, new EmbeddedRocksDBStateBackend())
                .removeOperator(scoring)
                .withOperator(
                        scoring,
                        OperatorTransformation.bootstrapWith(
                                        env.fromData(
                                                Tuple3.of("apart", 1_000L, 2_000L),
                                                Tuple3.of("together", 3_000L, 3_000L),
                                                Tuple3.of(
                                                        "serving-only", 4_000L, SavedStates.NONE)))
                                .keyBy(t -> t.f0, Types.STRING)
                                .transform(new OlderLayout()))
                .write(older.toUri().toString());
        env.execute("older-layout");
        Map<String, List<Long>> written =
                Map.of(
                        "apart", List.of(1_000L, 2_000L),
                        "together", List.of(3_000L, 3_000L),
                        "serving-only", List.of(4_000L, SavedStates.NONE));
        assertThat(lastWritten(older)).isEqualTo(written);

        Path copy = dir.resolve("copy");
        ScoringStateRewrite.write(older, copy, new KeepsAll(), "keeping-rewrite");
        assertThat(lastWritten(copy)).isEqualTo(written);

        Path promoted = dir.resolve("promoted");
        PromoteShadowCommand.write(older, promoted);
        assertThat(lastWritten(promoted))
                .isEqualTo(
                        Map.of(
                                "apart", List.of(2_000L, 1_000L),
                                "together", List.of(3_000L, 3_000L),
                                "serving-only", List.of(4_000L, 4_000L)));
    }

    /**
     * Writes a device's serving state under the entry's name and its shadow's under the older
     * layout's, at the given times (none: no shadow).
     */
    private static final class OlderLayout
            extends KeyedStateBootstrapFunction<String, Tuple3<String, Long, Long>> {
        private transient SavedStates states;

        @Override
        public void open(OpenContext context) {
            states = new SavedStates(getRuntimeContext());
        }

        @Override
        public void processElement(Tuple3<String, Long, Long> device, Context context)
                throws Exception {
            states.write(DeviceState.fresh("serving-v1", 4, 2), device.f1);
            if (device.f2 != SavedStates.NONE) {
                states.writeApart(DeviceState.fresh("shadow-v2", 4, 2), device.f2);
            }
        }
    }

    /** Each device of a savepoint, and when its serving and its shadow state were last written. */
    private static Map<String, List<Long>> lastWritten(Path savepoint) throws Exception {
        Map<String, List<Long>> times = new TreeMap<>();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        try (CloseableIterator<Tuple3<String, Long, Long>> read =
                SavepointReader.read(
                                env,
                                savepoint.toUri().toString(),
                                new EmbeddedRocksDBStateBackend())
                        .readKeyedState(
                                OperatorIdentifier.forUid(VigilPipeline.UID_SCORING),
                                new LastWritten(),
                                Types.STRING,
                                Types.TUPLE(Types.STRING, Types.LONG, Types.LONG))
                        .executeAndCollect("read-last-written")) {
            read.forEachRemaining(t -> times.put(t.f0, List.of(t.f1, t.f2)));
        }
        return times;
    }

    private static final class LastWritten
            extends KeyedStateReaderFunction<String, Tuple3<String, Long, Long>> {
        private transient SavedStates states;

        @Override
        public void open(OpenContext context) {
            states = new SavedStates(getRuntimeContext());
        }

        @Override
        public void readKey(
                String device, Context context, Collector<Tuple3<String, Long, Long>> out)
                throws Exception {
            states.read();
            out.collect(Tuple3.of(device, states.servingWritten(), states.shadowWritten()));
        }
    }

    private static List<Long> periods(Path savepoint) throws Exception {
        return ScoringStateRewrite.silenceWatchPeriods(savepoint);
    }

    /** The rewrite fails within two minutes and writes nothing; returns its failure. */
    private static Throwable assertFailsInTime(ScoringStateRewrite.Edit edit, Path target) {
        Throwable failure =
                assertTimeoutPreemptively(
                        Duration.ofMinutes(2),
                        () ->
                                catchThrowable(
                                        () ->
                                                ScoringStateRewrite.write(
                                                        GOLDEN, target, edit, "failing-rewrite")),
                        "the rewrite neither finished nor failed");
        assertThat(failure).as("the rewrite's failure").isNotNull();
        assertThat(target).as("a half-written copy, which would block a retry").doesNotExist();
        return failure;
    }

    /**
     * Keeps each device's serving state with a shadow state that holds a shadow of its own, which
     * the serializer refuses.
     */
    private static final class KeepsAMalformedShadow extends ScoringStateRewrite.Edit {
        @Override
        void edit(String device, DeviceState serving, DeviceState shadow) throws IOException {
            DeviceState nested = new DeviceState();
            nested.shadow = new DeviceState();
            keep(device, serving != null ? serving : shadow, nested);
        }
    }

    /** Keeps every device as it is. */
    private static final class KeepsAll extends ScoringStateRewrite.Edit {
        @Override
        void edit(String device, DeviceState serving, DeviceState shadow) throws IOException {
            keep(device, serving, shadow);
        }
    }

    /** Fails on the first device. */
    private static final class Fails extends ScoringStateRewrite.Edit {
        @Override
        void edit(String device, DeviceState serving, DeviceState shadow) throws IOException {
            throw new IOException("edit failed on " + device);
        }
    }
}
