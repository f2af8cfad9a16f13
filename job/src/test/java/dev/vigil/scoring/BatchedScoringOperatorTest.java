package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The batched operator against the per-record reference over the whole test stream, and its
 * flushes: at the size limit, the time limit, a watermark, a checkpoint barrier, end of input.
 */
class BatchedScoringOperatorTest {

    private static final double SCORE_TOLERANCE = 1e-6;

    private static final TelemetryParser LATE_PARSER =
            new TelemetryParser(Fixtures.model().card().featureNames());

    /** The generated test stream, parsed; bad records dropped (they never reach scoring). */
    private static List<TelemetryEvent> stream;

    @BeforeAll
    static void parseTheTestStream(@TempDir Path dir) throws Exception {
        new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(dir);
        TelemetryParser parser = new TelemetryParser(Fixtures.model().card().featureNames());
        stream = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("test.jsonl"))) {
            TelemetryParser.Result r = parser.parse(line.getBytes(StandardCharsets.UTF_8));
            if (r.event() != null) {
                stream.add(r.event());
            }
        }
    }

    private static ScoringSettings settings(int batchSize, long timeoutMs) {
        return Fixtures.scoringDefaults()
                .updateEvery(20)
                .emitScores(true)
                .batch(batchSize, timeoutMs)
                .build();
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            harness(OneInputStreamOperator<TelemetryEvent, AnomalyEvent> operator)
                    throws Exception {
        KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h =
                new KeyedOneInputStreamOperatorTestHarness<>(
                        operator, new VigilPipeline.DeviceKey(), Types.STRING);
        // The job's backend: every state access goes through the state's serializer.
        h.setStateBackend(new EmbeddedRocksDBStateBackend());
        return h;
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            perRecord() throws Exception {
        return perRecord(Fixtures.model());
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            perRecord(ModelBundle bundle) throws Exception {
        return harness(new KeyedProcessOperator<>(new GruScoringFunction(bundle, settings(0, 0))));
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            batched(int batchSize, long timeoutMs) throws Exception {
        return batched(Fixtures.model(), batchSize, timeoutMs);
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            batched(ModelBundle bundle, int batchSize, long timeoutMs) throws Exception {
        return harness(new BatchedScoringOperator(bundle, settings(batchSize, timeoutMs)));
    }

    private static void feed(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            List<TelemetryEvent> events)
            throws Exception {
        for (TelemetryEvent e : events) {
            h.processElement(
                    new StreamRecord<>(
                            new TelemetryEvent(e.deviceId, e.ts, e.seq, e.values), e.ts));
        }
    }

    /** What a run emitted, per device in order: the part that must not depend on batching. */
    private record Emitted(
            Map<String, List<AnomalyEvent>> anomalies,
            Map<String, List<ScoredStep>> scores,
            Map<String, List<String>> late) {

        static Emitted of(
                KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h) {
            Map<String, List<AnomalyEvent>> anomalies = new LinkedHashMap<>();
            h.extractOutputValues()
                    .forEach(
                            a ->
                                    anomalies
                                            .computeIfAbsent(a.deviceId, k -> new ArrayList<>())
                                            .add(a));
            Map<String, List<ScoredStep>> scores = new LinkedHashMap<>();
            var s = h.getSideOutput(Outputs.SCORES);
            if (s != null) {
                s.forEach(
                        r ->
                                scores.computeIfAbsent(
                                                r.getValue().deviceId, k -> new ArrayList<>())
                                        .add(r.getValue()));
            }
            // Each late record by its dead letter's bytes: the record as parsed, and why.
            Map<String, List<String>> late = new LinkedHashMap<>();
            var l = h.getSideOutput(Outputs.DEAD_LETTERS);
            if (l != null) {
                l.forEach(
                        r -> {
                            byte[] record = r.getValue().raw;
                            String device = LATE_PARSER.parse(record).event().deviceId;
                            late.computeIfAbsent(device, k -> new ArrayList<>())
                                    .add(
                                            r.getValue().reason
                                                    + " "
                                                    + new String(record, StandardCharsets.UTF_8));
                        });
            }
            return new Emitted(anomalies, scores, late);
        }

        void assertSameAs(Emitted reference) {
            assertThat(late).isEqualTo(reference.late);
            assertThat(scores.keySet()).isEqualTo(reference.scores.keySet());
            int steps = 0;
            for (String device : reference.scores.keySet()) {
                List<ScoredStep> mine = scores.get(device);
                List<ScoredStep> theirs = reference.scores.get(device);
                assertThat(mine).hasSameSizeAs(theirs);
                for (int i = 0; i < theirs.size(); i++) {
                    assertThat(mine.get(i).ts).isEqualTo(theirs.get(i).ts);
                    assertClose(mine.get(i).score, theirs.get(i).score, device, theirs.get(i).ts);
                    assertClose(
                            mine.get(i).dynamics, theirs.get(i).dynamics, device, theirs.get(i).ts);
                    assertClose(mine.get(i).level, theirs.get(i).level, device, theirs.get(i).ts);
                    assertClose(mine.get(i).stuck, theirs.get(i).stuck, device, theirs.get(i).ts);
                    steps++;
                }
            }
            assertThat(steps).isGreaterThan(30_000);
            assertThat(anomalies.keySet()).isEqualTo(reference.anomalies.keySet());
            for (String device : reference.anomalies.keySet()) {
                assertThat(anomalies.get(device))
                        .extracting(a -> a.eventId + "@" + a.ts)
                        .containsExactlyElementsOf(
                                reference.anomalies.get(device).stream()
                                        .map(a -> a.eventId + "@" + a.ts)
                                        .toList());
            }
        }
    }

    private static void assertClose(float mine, float theirs, String device, long ts) {
        if (Float.isNaN(theirs)) {
            assertThat(mine).as("no value of %s at %d", device, ts).isNaN();
            return;
        }
        assertThat((double) mine)
                .as("score of %s at %d", device, ts)
                .isCloseTo(
                        theirs,
                        org.assertj.core.data.Offset.offset(SCORE_TOLERANCE * Math.max(1, theirs)));
    }

    private static Emitted reference;

    /**
     * The committed model with a level score learned over 200 steps, so that it is learned well
     * inside the test stream, and a scale low enough that it fires on it.
     */
    private static ModelBundle withLevel() {
        ModelCard c = Fixtures.model().card();
        return new ModelBundle(
                c.withLevel(c.version() + "-level", new ModelCard.Level(200, 400, 20, 0.01f, 2f)),
                Fixtures.model().onnx());
    }

    @Test
    void shouldEmitWhatThePerRecordOperatorEmitsWithALevelScore() throws Exception {
        Emitted perRecord;
        try (var h = perRecord(withLevel())) {
            h.open();
            feed(h, stream);
            perRecord = Emitted.of(h);
        }
        try (var h = batched(withLevel(), 64, 0)) {
            h.open();
            feed(h, stream);
            h.endInput();

            Emitted batched = Emitted.of(h);
            batched.assertSameAs(perRecord);
            assertThat(batched.anomalies().values().stream().flatMap(List::stream))
                    .extracting(a -> a.reason)
                    .anyMatch(r -> r.contains("level"));
        }
    }

    /**
     * Per-device normalisation: both operators feed the model the same device-normalised inputs
     * (the committed model was not trained on them; the operators' agreement is what is checked),
     * and those inputs are not the fleet's: the dynamics scores differ from {@link #withLevel()}'s.
     */
    @Test
    void shouldEmitWhatThePerRecordOperatorEmitsNormalisingByDevice() throws Exception {
        ModelCard c = withLevel().card();
        ModelBundle byDevice =
                new ModelBundle(
                        c.withNormalisation(
                                c.version() + "-device", new ModelCard.DeviceNormalisation(0.1f)),
                        Fixtures.model().onnx());
        Emitted perRecord;
        try (var h = perRecord(byDevice)) {
            h.open();
            feed(h, stream);
            perRecord = Emitted.of(h);
        }
        Emitted byFleet;
        try (var h = perRecord(withLevel())) {
            h.open();
            feed(h, stream);
            byFleet = Emitted.of(h);
        }
        try (var h = batched(byDevice, 64, 0)) {
            h.open();
            feed(h, stream);
            h.endInput();
            Emitted batched = Emitted.of(h);
            batched.assertSameAs(perRecord);
        }
        String device = perRecord.scores().keySet().iterator().next();
        List<ScoredStep> mine = perRecord.scores().get(device);
        List<ScoredStep> fleets = byFleet.scores().get(device);
        assertThat(mine).hasSameSizeAs(fleets);
        // Once the profile is learned (200 steps) the dynamics scores are the device's own.
        int differing = 0;
        for (int i = 300; i < mine.size(); i++) {
            differing += Math.abs(mine.get(i).dynamics - fleets.get(i).dynamics) > 1e-3 ? 1 : 0;
        }
        assertThat(differing).isGreaterThan((mine.size() - 300) / 2);
    }

    /**
     * One row ONNX Runtime cannot step (the test model fails on a first input of 4 or more) fails
     * neither its batch nor the job: it becomes a dead letter MODEL_ERROR holding the record, its
     * device's memory is reset, and every other step of the batch, its device's included, is
     * scored.
     */
    @Test
    void shouldContainARowOnnxRuntimeFailsOn() throws Exception {
        ModelCard card = Fixtures.model().card();
        ModelBundle poison =
                new ModelBundle(
                        card,
                        Files.readAllBytes(Path.of("src/test/resources/poison-model/model.onnx")));
        List<TelemetryEvent> in = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            for (String device : List.of("pump-a", "pump-b", "pump-c")) {
                float[] v = card.mean().clone();
                if (device.equals("pump-b") && i == 30) {
                    v[0] += 10 * card.std()[0]; // normalised 10: the row the model fails on
                }
                in.add(new TelemetryEvent(device, 1_764_000_000_000L + i * 60_000L, i, v));
            }
        }
        for (boolean batched : new boolean[] {false, true}) {
            try (var h = batched ? batched(poison, 64, 0) : perRecord(poison)) {
                h.open();
                feed(h, in);
                if (batched) {
                    h.endInput();
                }
                Emitted out = Emitted.of(h);
                assertThat(out.late()).containsOnlyKeys("pump-b");
                assertThat(out.late().get("pump-b")).hasSize(1);
                assertThat(out.late().get("pump-b").get(0))
                        .startsWith("MODEL_ERROR ")
                        .contains("\"seq\":30");
                assertThat(out.scores().get("pump-a")).hasSize(60);
                assertThat(out.scores().get("pump-b")).hasSize(59);
                assertThat(out.scores().get("pump-c")).hasSize(60);
                List<DeadLetter> letters = new ArrayList<>();
                h.getSideOutput(Outputs.DEAD_LETTERS).forEach(r -> letters.add(r.getValue()));
                assertThat(letters.get(0).detail).contains("ONNX Runtime failed on a row");
            }
        }
    }

    private static synchronized Emitted reference() throws Exception {
        if (reference == null) {
            try (var h = perRecord()) {
                h.open();
                feed(h, stream);
                reference = Emitted.of(h);
            }
        }
        return reference;
    }

    @Test
    void shouldEmitWhatThePerRecordOperatorEmitsOverTheWholeTestStream() throws Exception {
        try (var h = batched(256, 0)) {
            h.open();
            feed(h, stream);
            h.endInput();

            Emitted batched = Emitted.of(h);
            batched.assertSameAs(reference());
            assertThat(batched.anomalies()).isNotEmpty();
        }
    }

    @Test
    void shouldEmitTheSameWithBatchesOfOne() throws Exception {
        try (var h = batched(1, 0)) {
            h.open();
            feed(h, stream);
            h.endInput();

            Emitted.of(h).assertSameAs(reference());
        }
    }

    @Test
    void shouldSnapshotMidBufferAndRestoreToTheSameOutput() throws Exception {
        int cut = stream.size() / 2 + 77; // not a multiple of the batch size
        OperatorSubtaskState snapshot;
        var first = batched(256, 0);
        first.open();
        feed(first, stream.subList(0, cut));
        first.prepareSnapshotPreBarrier(1L); // what the task does before the barrier
        snapshot = first.snapshot(1L, 0L);
        Emitted before = Emitted.of(first);
        first.close();

        var second = batched(256, 0);
        second.initializeState(snapshot);
        second.open();
        feed(second, stream.subList(cut, stream.size()));
        second.endInput();
        Emitted after = Emitted.of(second);
        second.close();

        Emitted whole =
                new Emitted(
                        concat(before.anomalies(), after.anomalies()),
                        concat(before.scores(), after.scores()),
                        concat(before.late(), after.late()));
        whole.assertSameAs(reference());
    }

    private static <T> Map<String, List<T>> concat(Map<String, List<T>> a, Map<String, List<T>> b) {
        Map<String, List<T>> out = new LinkedHashMap<>();
        a.forEach((k, v) -> out.computeIfAbsent(k, x -> new ArrayList<>()).addAll(v));
        b.forEach((k, v) -> out.computeIfAbsent(k, x -> new ArrayList<>()).addAll(v));
        return out;
    }

    @Test
    void shouldFlushWhenTheTimeoutPasses() throws Exception {
        try (var h = batched(256, 10)) {
            h.open();
            h.setProcessingTime(1_000);
            feed(h, stream.subList(0, 30));
            assertThat(h.getSideOutput(Outputs.SCORES)).isNull();

            h.setProcessingTime(1_009);
            assertThat(h.getSideOutput(Outputs.SCORES)).isNull();
            h.setProcessingTime(1_010);
            assertThat(h.getSideOutput(Outputs.SCORES)).hasSize(30);
        }
    }

    @Test
    void shouldFlushBeforeForwardingAWatermark() throws Exception {
        try (var h = batched(256, 0)) {
            h.open();
            feed(h, stream.subList(0, 30));
            h.processWatermark(new Watermark(stream.get(29).ts));

            assertThat(h.getSideOutput(Outputs.SCORES)).hasSize(30);
            assertThat(h.getOutput()).last().isInstanceOf(Watermark.class);
        }
    }

    @Test
    void shouldFlushAtTheSizeLimit() throws Exception {
        try (var h = batched(16, 0)) {
            h.open();
            feed(h, stream.subList(0, 40));

            assertThat(h.getSideOutput(Outputs.SCORES)).hasSize(32);
        }
    }
}
