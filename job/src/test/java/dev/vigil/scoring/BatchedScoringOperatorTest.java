package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

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
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.CheckpointStorageLocationReference;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.hashmap.HashMapStateBackend;
import org.apache.flink.runtime.state.storage.JobManagerCheckpointStorage;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.operators.OperatorSnapshotFinalizer;
import org.apache.flink.streaming.api.operators.OperatorSnapshotFutures;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The batched operator against the per-record reference over the whole test stream, and its
 * flushes: at the size limit, the time limit, a watermark, a checkpoint barrier, end of input. With
 * a shadow model, both operators against each model run alone: the shadow, its comparison with the
 * serving model, the canary, and a rollback.
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
        // The job's backend: every state access goes through the state's serializer.
        return harness(operator, new EmbeddedRocksDBStateBackend());
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            harness(
                    OneInputStreamOperator<TelemetryEvent, AnomalyEvent> operator,
                    StateBackend backend)
                    throws Exception {
        KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h =
                new KeyedOneInputStreamOperatorTestHarness<>(
                        operator, new VigilPipeline.DeviceKey(), Types.STRING);
        h.setStateBackend(backend);
        return h;
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            perRecord() throws Exception {
        return perRecord(Fixtures.model());
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            perRecord(ModelBundle bundle) throws Exception {
        return harness(
                new GruScoringFunction.Operator(new GruScoringFunction(bundle, settings(0, 0))));
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            batched(int batchSize, long timeoutMs) throws Exception {
        return batched(Fixtures.model(), batchSize, timeoutMs);
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            batched(ModelBundle bundle, int batchSize, long timeoutMs) throws Exception {
        return harness(new BatchedScoringOperator(bundle, settings(batchSize, timeoutMs)));
    }

    /** The committed model's batched operator with the state cache at {@code devices}. */
    private static BatchedScoringOperator withStateCache(int devices) {
        return new BatchedScoringOperator(
                Fixtures.model(), settings(256, 0).toBuilder().stateCache(devices).build());
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
                    assertClose(
                            mine.get(i).variability,
                            theirs.get(i).variability,
                            device,
                            theirs.get(i).ts);
                    assertClose(
                            mine.get(i).correlation,
                            theirs.get(i).correlation,
                            device,
                            theirs.get(i).ts);
                    steps++;
                }
            }
            assertThat(steps).isGreaterThan(30_000);
            assertThat(anomalies.keySet()).isEqualTo(reference.anomalies.keySet());
            for (String device : reference.anomalies.keySet()) {
                assertThat(anomalies.get(device))
                        .extracting(Emitted::identity)
                        .containsExactlyElementsOf(
                                reference.anomalies.get(device).stream()
                                        .map(Emitted::identity)
                                        .toList());
            }
        }

        /**
         * An event as the comparison sees it: its id, its step, whether it re-learned, its reason
         * and the features it names.
         */
        private static String identity(AnomalyEvent a) {
            return a.eventId
                    + "@"
                    + a.ts
                    + (a.relearned ? " relearned" : "")
                    + " "
                    + a.reason
                    + " "
                    + java.util.Arrays.toString(a.topFeatureNames);
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

    /** The committed model with the per-device scale of the forecast residual {@code dynamics}. */
    private static ModelBundle withDeviceDynamics(ModelCard.DeviceDynamics dynamics) {
        ModelCard c = Fixtures.model().card();
        return new ModelBundle(
                c.withDeviceDynamics(c.version() + "-dynamics", dynamics), Fixtures.model().onnx());
    }

    /**
     * The whole test stream through the per-record operator and the batched one with {@code
     * bundle}: checks that the batched one emits the same, and returns what they emitted.
     */
    private static Emitted bothOperators(ModelBundle bundle) throws Exception {
        return bothOperators(bundle, settings(0, 0));
    }

    /** As {@link #bothOperators(ModelBundle)}, both operators with {@code settings}. */
    private static Emitted bothOperators(ModelBundle bundle, ScoringSettings settings)
            throws Exception {
        Emitted perRecord;
        try (var h =
                harness(
                        new GruScoringFunction.Operator(
                                new GruScoringFunction(bundle, settings)))) {
            h.open();
            feed(h, stream);
            perRecord = Emitted.of(h);
        }
        try (var h =
                harness(
                        new BatchedScoringOperator(
                                bundle, settings.toBuilder().batch(64, 0).build()))) {
            h.open();
            feed(h, stream);
            h.endInput();
            Emitted.of(h).assertSameAs(perRecord);
        }
        return perRecord;
    }

    /** {@link #withLevel()} with the model's inputs normalised by each device's profile. */
    private static ModelBundle withLevelByDevice() {
        ModelCard c = withLevel().card();
        return new ModelBundle(
                c.withNormalisation(
                        c.version() + "-device", new ModelCard.DeviceNormalisation(0.1f)),
                Fixtures.model().onnx());
    }

    @Test
    void shouldEmitWhatThePerRecordOperatorEmitsWithALevelScore() throws Exception {
        Emitted emitted = bothOperators(withLevel());
        assertThat(emitted.anomalies().values().stream().flatMap(List::stream))
                .extracting(a -> a.reason)
                .anyMatch(r -> r.contains("level"));
    }

    /** A variability score learned over 200 steps, with a scale low enough that it fires. */
    @Test
    void shouldEmitWhatThePerRecordOperatorEmitsWithAVariabilityScore() throws Exception {
        ModelCard c = withLevel().card();
        Emitted emitted =
                bothOperators(
                        new ModelBundle(
                                c.withVariability(
                                        c.version() + "-variability",
                                        new ModelCard.Variability(200, 400, 20, 0.1f, 3f)),
                                Fixtures.model().onnx()));
        assertThat(emitted.anomalies().values().stream().flatMap(List::stream))
                .extracting(a -> a.reason)
                .anyMatch(r -> r.contains("variability"));
        assertThat(emitted.scores().values().stream().flatMap(List::stream))
                .anyMatch(st -> st.variability > 0f);
    }

    /**
     * A correlation score (the load-driven targets moving together, and the ambient temperature
     * apart), with a scale low enough that it fires, under the fleet's normalisation and under the
     * device's (where it measures the inputs in the device's units).
     */
    @Test
    void shouldEmitWhatThePerRecordOperatorEmitsWithACorrelationScore() throws Exception {
        for (ModelBundle levelled : List.of(withLevel(), withLevelByDevice())) {
            ModelCard c = levelled.card();
            float[] basis = new float[2 * c.targets().length];
            for (int j = 0; j < 5; j++) {
                basis[j] = (float) (1 / Math.sqrt(5));
            }
            basis[c.targets().length + c.targets().length - 1] = 1f;
            Emitted emitted =
                    bothOperators(
                            new ModelBundle(
                                    c.withCorrelation(
                                            c.version() + "-correlation",
                                            new ModelCard.Correlation(basis, 2, 1.5f)),
                                    Fixtures.model().onnx()));
            assertThat(emitted.anomalies().values().stream().flatMap(List::stream))
                    .extracting(a -> a.reason)
                    .anyMatch(r -> r.contains("correlation"));
            assertThat(emitted.scores().values().stream().flatMap(List::stream))
                    .allMatch(st -> st.correlation >= 0f);
        }
    }

    /**
     * {@code vigil.alerts.relearn-after}: both operators close the same episodes to learn their
     * devices' normal again, at the same steps, under the fleet's normalisation and under the
     * device's (where a relearn also starts the memory again, as GruScoringFunctionTest checks; the
     * comparison covers the steps without a forecast that follow).
     */
    @Test
    void shouldLearnTheNormalAgainAsThePerRecordOperatorDoes() throws Exception {
        ScoringSettings relearning =
                settings(0, 0).toBuilder().relearnAfterMs(Duration.ofMinutes(5).toMillis()).build();
        for (ModelBundle bundle : List.of(withLevel(), withLevelByDevice())) {
            Emitted emitted = bothOperators(bundle, relearning);
            assertThat(emitted.anomalies().values().stream().flatMap(List::stream))
                    .as(bundle.card().version())
                    .anyMatch(a -> a.relearned);
        }
    }

    /**
     * Per-device normalisation: both operators feed the model the same device-normalised inputs
     * (the committed model was not trained on them; the operators' agreement is what is checked),
     * and those inputs are not the fleet's: the dynamics scores differ from {@link #withLevel()}'s.
     */
    @Test
    void shouldEmitWhatThePerRecordOperatorEmitsNormalisingByDevice() throws Exception {
        Emitted perRecord = bothOperators(withLevelByDevice());
        Emitted byFleet;
        try (var h = perRecord(withLevel())) {
            h.open();
            feed(h, stream);
            byFleet = Emitted.of(h);
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
     * The per-device scale of the forecast residual: both operators agree, and each device's
     * dynamics score equals the fleet-scaled one until the device has learned its level (100 steps
     * after warm-up), then that one divided by max(floor, the device's root mean square / the
     * card's), the device's level (the mean square of 10 blocks, leaving out the blocks far above
     * the rest) computed here from the fleet-scaled run: frozen once learned, or adapting with a
     * half-life of 50 steps on steps whose combined score is at or below the threshold. The card's
     * reference is the median device's level, so that some devices are held to their own level and
     * the others keep the fleet's (floor 1) or are made more sensitive, down to the floor (0.5).
     */
    @Test
    void shouldHoldEachDeviceToItsOwnLevelOfForecastResidual() throws Exception {
        int learnSteps = 100;
        int warmup = Fixtures.model().card().warmupSteps();
        Map<String, List<ScoredStep>> fleets = reference().scores();
        double[] rmss =
                fleets.values().stream()
                        .mapToDouble(steps -> Math.sqrt(levelOfResidual(steps, warmup, learnSteps)))
                        .sorted()
                        .toArray();
        float rms = (float) rmss[rmss.length / 2];

        for (float[] setting : new float[][] {{0, 1f}, {50, 1f}, {50, 0.5f}}) {
            int halfLife = (int) setting[0];
            float floor = setting[1];
            Emitted perRecord =
                    bothOperators(
                            withDeviceDynamics(
                                    new ModelCard.DeviceDynamics(
                                            learnSteps,
                                            halfLife,
                                            rms,
                                            floor,
                                            10,
                                            Float.POSITIVE_INFINITY)));

            float beta = halfLife == 0 ? 0f : (float) (1 - Math.pow(0.5, 1.0 / halfLife));
            int held = 0;
            int kept = 0;
            int sharpened = 0;
            int moved = 0;
            for (var entry : fleets.entrySet()) {
                List<ScoredStep> fleet = entry.getValue();
                List<ScoredStep> mine = perRecord.scores().get(entry.getKey());
                assertThat(mine).hasSameSizeAs(fleet);
                int steps = 0;
                int learned = 0;
                float meanSquare = 0f;
                List<Float> squares = new ArrayList<>();
                float learnedDivisor = Float.NaN;
                float divisor = 1f;
                for (int i = 0; i < fleet.size(); i++) {
                    float d = fleet.get(i).dynamics;
                    steps = Float.isNaN(d) ? 1 : steps + 1; // NaN: a first step, or after a reset
                    float expected = d;
                    if (steps > warmup && !Float.isNaN(d)) {
                        boolean adapts = learned >= learnSteps;
                        if (adapts) {
                            divisor =
                                    StepMath.deviceDivisor(
                                            meanSquare, rms, floor, Float.POSITIVE_INFINITY);
                            expected = d / divisor;
                            if (!(mine.get(i).score > 1f)) {
                                meanSquare += beta * (d * d - meanSquare);
                            }
                        } else {
                            learned++;
                            squares.add(d * d);
                            if (learned == learnSteps) {
                                meanSquare = trimmedLevel(squares);
                                learnedDivisor =
                                        StepMath.deviceDivisor(
                                                meanSquare, rms, floor, Float.POSITIVE_INFINITY);
                            }
                        }
                    }
                    String at =
                            entry.getKey()
                                    + " step "
                                    + i
                                    + ", half-life "
                                    + halfLife
                                    + ", floor "
                                    + floor;
                    if (Float.isNaN(d)) {
                        assertThat(mine.get(i).dynamics).as(at).isNaN();
                        continue;
                    }
                    assertThat(mine.get(i).dynamics)
                            .as(at)
                            .isCloseTo(expected, within(1e-4f * Math.max(1f, expected)));
                }
                held += learnedDivisor > 1.2f ? 1 : 0;
                kept += learnedDivisor == 1f ? 1 : 0;
                sharpened += learnedDivisor < 0.95f ? 1 : 0;
                moved += Math.abs(divisor - learnedDivisor) > 0.05f ? 1 : 0;
            }
            assertThat(held).as("devices held to their own level").isPositive();
            if (floor == 1f) {
                assertThat(kept).as("devices that keep the fleet's").isPositive();
                assertThat(sharpened).isZero();
            } else {
                assertThat(sharpened).as("devices made more sensitive").isPositive();
            }
            if (halfLife == 0) {
                assertThat(moved).as("frozen levels").isZero();
            } else {
                assertThat(moved).as("levels that adapted").isPositive();
            }
        }
    }

    /**
     * With {@code device_learning_blocks} 3, a device still learning its level (100 steps, blocks
     * of 10) keeps the fleet's scale for its first 30 steps after warm-up and is then held to the
     * level of its completed blocks (computed here from the fleet-scaled run), in both operators.
     */
    @Test
    void shouldHoldADeviceStillLearningToItsBlocksSoFar() throws Exception {
        int learnSteps = 100;
        int warmup = Fixtures.model().card().warmupSteps();
        Map<String, List<ScoredStep>> fleets = reference().scores();
        float rms =
                (float) Math.sqrt(levelOfResidual(fleets.values().iterator().next(), warmup, 100));
        Emitted perRecord =
                bothOperators(
                        withDeviceDynamics(
                                new ModelCard.DeviceDynamics(
                                        learnSteps, 0, rms, 0.5f, 10, Float.POSITIVE_INFINITY, 3)));

        int heldEarly = 0;
        for (var entry : fleets.entrySet()) {
            List<ScoredStep> fleet = entry.getValue();
            List<ScoredStep> mine = perRecord.scores().get(entry.getKey());
            int steps = 0;
            List<Float> squares = new ArrayList<>();
            for (int i = 0; i < fleet.size(); i++) {
                float d = fleet.get(i).dynamics;
                steps = Float.isNaN(d) ? 1 : steps + 1;
                if (Float.isNaN(d) || steps <= warmup || squares.size() >= learnSteps) {
                    continue;
                }
                float divisor = 1f;
                if (squares.size() >= 30) {
                    List<Float> complete = squares.subList(0, squares.size() / 10 * 10);
                    divisor =
                            StepMath.deviceDivisor(
                                    blocksLevel(complete, complete.size() / 10),
                                    rms,
                                    0.5f,
                                    Float.POSITIVE_INFINITY);
                    heldEarly += Math.abs(divisor - 1f) > 0.05f ? 1 : 0;
                }
                squares.add(d * d);
                assertThat(mine.get(i).dynamics)
                        .as("%s step %d", entry.getKey(), i)
                        .isCloseTo(d / divisor, within(1e-4f * Math.max(1f, d / divisor)));
            }
        }
        assertThat(heldEarly).as("steps held to the blocks so far").isPositive();
    }

    /**
     * The level a device learns from its squares: the mean of 10 blocks' mean squares, leaving out
     * the largest, and the second largest, when above 10 times the mean of the other 8.
     */
    private static float trimmedLevel(List<Float> squares) {
        return blocksLevel(squares, 10);
    }

    /**
     * The level of {@code squares} cut into {@code count} (at least 3) blocks: their mean, leaving
     * out the largest, and the second largest, when above 10 times the mean of the others.
     */
    private static float blocksLevel(List<Float> squares, int count) {
        int n = squares.size();
        double[] means = new double[count];
        int[] counts = new int[count];
        for (int i = 0; i < n; i++) {
            means[i * count / n] += squares.get(i);
            counts[i * count / n]++;
        }
        for (int b = 0; b < count; b++) {
            means[b] /= counts[b];
        }
        java.util.Arrays.sort(means);
        double rest = 0;
        for (int b = 0; b < count - 2; b++) {
            rest += means[b] / (count - 2);
        }
        double kept = rest * (count - 2);
        int blocks = count - 2;
        for (int b = count - 2; b < count; b++) {
            if (!(means[b] > 10 * rest)) {
                kept += means[b];
                blocks++;
            }
        }
        return (float) (kept / blocks);
    }

    /** The mean square of a device's first {@code n} dynamics scores after warm-up (not reset). */
    private static double levelOfResidual(List<ScoredStep> steps, int warmup, int n) {
        double sum = 0;
        int learned = 0;
        int count = 0;
        for (ScoredStep step : steps) {
            count = Float.isNaN(step.dynamics) ? 1 : count + 1;
            if (count > warmup && !Float.isNaN(step.dynamics) && learned < n) {
                sum += (double) step.dynamics * step.dynamics;
                learned++;
            }
        }
        return sum / learned;
    }

    /**
     * One row ONNX Runtime cannot step (the test model fails on a first input of 4 or more) fails
     * neither its batch nor the job: it becomes a dead letter MODEL_ERROR holding the record, its
     * device's memory is reset, and every other step of the batch, its device's included, is
     * scored.
     */
    @Test
    void shouldContainARowOnnxRuntimeFailsOn() throws Exception {
        ModelBundle poison = Fixtures.poisonModel(Fixtures.model().card().version());
        List<TelemetryEvent> in = poisonedOnce();
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

    /** 60 steps of three pumps, pump-b's 31st the row the poison model fails on. */
    private static List<TelemetryEvent> poisonedOnce() {
        ModelCard card = Fixtures.model().card();
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
        return in;
    }

    /**
     * A canary served by a model that fails on one of its rows: that step (a dead letter
     * MODEL_ERROR) is not counted as a step scored for the canary's arm, whose alert rate is its
     * episodes over its steps scored.
     */
    @Test
    void shouldNotCountAStepTheCanarysModelFailsOnAsScored() throws Exception {
        ModelBundle poison = Fixtures.poisonModel(Fixtures.model().card().version() + "-poison");
        for (boolean batched : new boolean[] {false, true}) {
            try (var h = withShadow(batched, poison, 1.0)) {
                h.open();
                feed(h, poisonedOnce());
                if (batched) {
                    h.endInput();
                }
                assertThat(accumulated(h, "scored_canary")).isEqualTo(179L);
                assertThat(accumulated(h, "scored_control")).isEqualTo(0L);
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
    void shouldEmitTheSameWhateverTheStateCacheHolds() throws Exception {
        // 0: RocksDB at every flush; 1: written back at every write; 7: fills many times over;
        // the default: holds every device of the stream.
        int byDefault = Fixtures.scoringDefaults().build().stateCache();
        for (int devices : new int[] {0, 1, 7, byDefault}) {
            var operator = withStateCache(devices);
            try (var h = harness(operator)) {
                h.open();
                feed(h, stream);
                if (devices == byDefault) {
                    assertThat(operator.cachedDevices())
                            .isEqualTo(stream.stream().map(e -> e.deviceId).distinct().count());
                } else {
                    assertThat(operator.cachedDevices()).isBetween(0, Math.max(devices - 1, 0));
                }
                h.endInput();

                assertThat(operator.cachedDevices()).isZero();
                Emitted.of(h).assertSameAs(reference());
            }
        }
    }

    @Test
    void shouldSnapshotMidBufferAndRestoreToTheSameOutput() throws Exception {
        for (int devices : new int[] {7, Fixtures.scoringDefaults().build().stateCache()}) {
            snapshotMidBufferAndRestore(devices);
        }
    }

    /** With a state cache that holds some devices, or (the default) every device of the stream. */
    private static void snapshotMidBufferAndRestore(int devices) throws Exception {
        int cut = stream.size() / 2 + 77; // not a multiple of the batch size
        OperatorSubtaskState snapshot;
        var first = harness(withStateCache(devices));
        first.open();
        feed(first, stream.subList(0, cut));
        first.prepareSnapshotPreBarrier(1L); // what the task does before the barrier
        snapshot = first.snapshot(1L, 0L);
        Emitted before = Emitted.of(first);
        first.close();

        restoreAndEmitTheRest(snapshot, before, cut, devices, new EmbeddedRocksDBStateBackend());
    }

    /**
     * A run restored from {@code snapshot}, taken after the stream's first {@code cut} records,
     * steps the rest of them: with what the first run emitted ({@code before}), exactly what one
     * uninterrupted run emits.
     */
    private static void restoreAndEmitTheRest(
            OperatorSubtaskState snapshot,
            Emitted before,
            int cut,
            int devices,
            StateBackend backend)
            throws Exception {
        var second = harness(withStateCache(devices), backend);
        second.initializeState(snapshot);
        second.open();
        feed(second, stream.subList(cut, stream.size()));
        second.endInput();
        Emitted after = Emitted.of(second);
        second.close();

        new Emitted(
                        concat(before.anomalies(), after.anomalies()),
                        concat(before.scores(), after.scores()),
                        concat(before.late(), after.late()))
                .assertSameAs(reference());
    }

    /**
     * Flink's heap backend keeps the state objects themselves and writes a checkpoint's copy of
     * them after the barrier, while the task goes on stepping: the state cache must never change an
     * object a pending snapshot holds. RocksDB copies them when they are written, and the cache
     * keeps stepping the same objects after the barrier. Here the operator steps the rest of the
     * stream before the snapshot's asynchronous part runs, and a run restored from that snapshot
     * must still emit exactly what one uninterrupted run does.
     */
    @ParameterizedTest(name = "heap backend: {0}")
    @ValueSource(booleans = {true, false})
    void shouldKeepAPendingSnapshotAsItWasAtTheBarrier(boolean heap) throws Exception {
        int cut = stream.size() / 2 + 77;
        int devices = Fixtures.scoringDefaults().build().stateCache();
        var operator = withStateCache(devices);
        var first = harness(operator, backend(heap));
        first.open();
        feed(first, stream.subList(0, cut));
        first.prepareSnapshotPreBarrier(1L);
        Emitted before = Emitted.of(first);
        OperatorSnapshotFutures pending =
                operator.snapshotState(
                        1L,
                        0L,
                        CheckpointOptions.forCheckpointWithDefaultLocation(),
                        new JobManagerCheckpointStorage()
                                .createCheckpointStorage(new JobID())
                                .resolveCheckpointStorageLocation(
                                        1L, CheckpointStorageLocationReference.getDefault()));
        feed(first, stream.subList(cut, stream.size())); // the devices step on
        first.endInput();
        OperatorSubtaskState snapshot =
                OperatorSnapshotFinalizer.create(pending).getJobManagerOwnedState();
        first.close();

        restoreAndEmitTheRest(snapshot, before, cut, devices, backend(heap));
    }

    private static StateBackend backend(boolean heap) {
        return heap ? new HashMapStateBackend() : new EmbeddedRocksDBStateBackend();
    }

    /**
     * On RocksDB a device that steps between every two checkpoints has its state read from the
     * backend once, at its first step; on the heap backend, whose snapshot holds the objects
     * themselves, once after every checkpoint. The output is the same either way.
     */
    @ParameterizedTest(name = "heap backend: {0}")
    @ValueSource(booleans = {true, false})
    void shouldReadEachDeviceFromTheBackendOnceWhileItStepsEveryInterval(boolean heap)
            throws Exception {
        int interval = 1_000; // records between two checkpoints: every device steps in each
        int devices = Fixtures.scoringDefaults().build().stateCache();
        var operator = withStateCache(devices);
        long stepping = 0; // devices stepping, summed over the intervals
        try (var h = harness(operator, backend(heap))) {
            h.open();
            for (int from = 0; from < stream.size(); from += interval) {
                List<TelemetryEvent> part =
                        stream.subList(from, Math.min(from + interval, stream.size()));
                feed(h, part);
                h.prepareSnapshotPreBarrier(from / interval + 1);
                stepping += part.stream().map(e -> e.deviceId).distinct().count();
            }
            h.endInput();
            Emitted.of(h).assertSameAs(reference());
        }
        long fleet = stream.stream().map(e -> e.deviceId).distinct().count();
        assertThat(stepping).isGreaterThan(fleet * 10);
        assertThat(operator.stateCacheMisses()).isEqualTo(heap ? stepping : fleet);
    }

    /**
     * A device the cache kept after a checkpoint and that then stays silent leaves the cache at the
     * next one, so that its state's time-to-live applies as without the cache: silent longer than
     * the time-to-live, its next step is a new device's.
     */
    @Test
    void shouldForgetACachedDeviceSilentForLongerThanTheTtl() throws Exception {
        ScoringSettings settings = settings(256, 0);
        var operator = new BatchedScoringOperator(Fixtures.model(), settings);
        String device = stream.get(0).deviceId;
        List<TelemetryEvent> steps =
                stream.stream().filter(e -> e.deviceId.equals(device)).limit(50).toList();
        try (var h = harness(operator)) {
            h.open();
            h.setStateTtlProcessingTime(0);
            feed(h, steps);
            h.prepareSnapshotPreBarrier(1L); // written back, and kept
            h.prepareSnapshotPreBarrier(2L); // not stepped since: dropped
            h.setStateTtlProcessingTime(settings.backendTtl().toMillis() + 1);
            feed(h, List.of(steps.get(30))); // an old step: no order guard remembers it
            h.endInput();

            assertThat(h.getSideOutput(Outputs.DEAD_LETTERS)).isNull(); // not turned away as late
            assertThat(h.getSideOutput(Outputs.SCORES)).hasSize(51);
        }
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
    void shouldFlushABufferWhenItsOwnTimeoutPassesAfterAFlushAtTheSizeLimit() throws Exception {
        try (var h = batched(16, 10)) {
            h.open();
            h.setProcessingTime(1_000);
            feed(h, stream.subList(0, 16)); // flushed at the size limit; its timer stays pending
            assertThat(h.getSideOutput(Outputs.SCORES)).hasSize(16);

            h.setProcessingTime(1_005);
            feed(h, stream.subList(16, 19)); // due at 1,015
            h.setProcessingTime(1_010); // the first buffer's timer: too early for this one
            assertThat(h.getSideOutput(Outputs.SCORES)).hasSize(16);
            h.setProcessingTime(1_014);
            assertThat(h.getSideOutput(Outputs.SCORES)).hasSize(16);
            h.setProcessingTime(1_015);
            assertThat(h.getSideOutput(Outputs.SCORES)).hasSize(19);
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

    // --- With a shadow model ---------------------------------------------------------------

    private static final double CANARY = 0.5;

    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            withShadow(boolean batched, ModelBundle shadow, double canary) throws Exception {
        ModelBundle serving = Fixtures.model();
        ScoringSettings settings =
                settings(batched ? 64 : 0, 0).toBuilder().canaryFraction(canary).build();
        return harness(
                batched
                        ? new BatchedScoringOperator(serving, shadow, settings)
                        : new GruScoringFunction.Operator(
                                new GruScoringFunction(serving, shadow, settings)));
    }

    private static Map<String, List<AnomalyEvent>> shadowAnomalies(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h) {
        Map<String, List<AnomalyEvent>> out = new LinkedHashMap<>();
        var events = h.getSideOutput(Outputs.SHADOW_ANOMALIES);
        if (events != null) {
            events.forEach(
                    r ->
                            out.computeIfAbsent(r.getValue().deviceId, k -> new ArrayList<>())
                                    .add(r.getValue()));
        }
        return out;
    }

    private static Object accumulated(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            String name) {
        var accumulator = h.getEnvironment().getAccumulatorRegistry().getUserMap().get(name);
        return accumulator == null ? null : accumulator.getLocalValue();
    }

    /**
     * The same score episodes' events, device by device. Silence events are left out: they go to
     * the anomalies topic whichever model serves a device, and {@code SilenceTest} checks them.
     */
    private static void assertSameEvents(
            Map<String, List<AnomalyEvent>> withSilences,
            Map<String, List<AnomalyEvent>> expectedWithSilences) {
        Map<String, List<AnomalyEvent>> actual = withoutSilences(withSilences);
        Map<String, List<AnomalyEvent>> expected = withoutSilences(expectedWithSilences);
        assertThat(actual.keySet()).isEqualTo(expected.keySet());
        expected.forEach(
                (device, events) ->
                        assertThat(actual.get(device))
                                .extracting(a -> a.eventId + "@" + a.ts + " " + a.modelVersion)
                                .containsExactlyElementsOf(
                                        events.stream()
                                                .map(
                                                        a ->
                                                                a.eventId
                                                                        + "@"
                                                                        + a.ts
                                                                        + " "
                                                                        + a.modelVersion)
                                                .toList()));
    }

    private static <T> Map<String, List<T>> devices(
            Map<String, List<T>> byDevice, java.util.function.Predicate<String> which) {
        Map<String, List<T>> out = new LinkedHashMap<>();
        byDevice.forEach(
                (device, values) -> {
                    if (which.test(device)) {
                        out.put(device, values);
                    }
                });
        return out;
    }

    /**
     * Closed episodes of {@code mine} during which {@code other} had one open on the same device:
     * an episode is open from its OPEN step up to, not including, its CLOSE step.
     */
    private static long shared(
            Map<String, List<AnomalyEvent>> mine, Map<String, List<AnomalyEvent>> other) {
        long n = 0;
        for (var entry : mine.entrySet()) {
            List<long[]> theirs = spans(other.getOrDefault(entry.getKey(), List.of()));
            for (long[] span : spans(entry.getValue())) {
                if (span[1] != Long.MAX_VALUE
                        && theirs.stream()
                                .anyMatch(t -> Math.max(span[0], t[0]) < Math.min(span[1], t[1]))) {
                    n++;
                }
            }
        }
        return n;
    }

    private static Map<String, List<AnomalyEvent>> withoutSilences(
            Map<String, List<AnomalyEvent>> events) {
        Map<String, List<AnomalyEvent>> out = new LinkedHashMap<>();
        events.forEach(
                (device, es) -> {
                    List<AnomalyEvent> episodes = es.stream().filter(e -> !e.isSilence()).toList();
                    if (!episodes.isEmpty()) {
                        out.put(device, episodes);
                    }
                });
        return out;
    }

    /** The spans of a device's score episodes (its silences are not episodes of its scores). */
    private static List<long[]> spans(List<AnomalyEvent> events) {
        List<long[]> spans = new ArrayList<>();
        for (AnomalyEvent e : events) {
            if (e.isSilence()) {
                continue;
            }
            if (AnomalyEvent.OPEN.equals(e.type)) {
                spans.add(new long[] {e.ts, Long.MAX_VALUE});
            } else if (AnomalyEvent.CLOSE.equals(e.type)) {
                spans.get(spans.size() - 1)[1] = e.ts;
            }
        }
        return spans;
    }

    private static long closed(Map<String, List<AnomalyEvent>> events) {
        return events.values().stream()
                .flatMap(List::stream)
                .filter(e -> AnomalyEvent.CLOSE.equals(e.type) && !e.isSilence())
                .count();
    }

    /**
     * The correlation of two runs' scores, computed apart from the operator: on log(1 + score),
     * over the steps past each device's warm-up (the test stream resets no device).
     */
    private static double correlation(
            Map<String, List<ScoredStep>> serving, Map<String, List<ScoredStep>> shadow) {
        int warmup = Fixtures.model().card().warmupSteps();
        double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        for (String device : serving.keySet()) {
            List<ScoredStep> a = serving.get(device);
            List<ScoredStep> b = shadow.get(device);
            int steps = 0; // since the device's memory was last reset
            for (int i = 0; i < a.size(); i++) {
                // A step without a forecast is the first after a reset (a gap, a restart).
                steps = Float.isNaN(a.get(i).dynamics) ? 1 : steps + 1;
                if (steps <= warmup) {
                    continue;
                }
                double x = Math.log1p(a.get(i).score);
                double y = Math.log1p(b.get(i).score);
                n++;
                sx += x;
                sy += y;
                sxx += x * x;
                syy += y * y;
                sxy += x * y;
            }
        }
        assertThat(n).isGreaterThan(20_000);
        return (sxy - sx * sy / n) / Math.sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
    }

    private static Emitted alone(ModelBundle bundle) throws Exception {
        try (var h = perRecord(bundle)) {
            h.open();
            feed(h, stream);
            return Emitted.of(h);
        }
    }

    /**
     * A shadow changes nothing the serving model emits; the shadow's events are those of its model
     * run alone; the shared episodes are those whose spans overlap, and the rest are each model's
     * own. The shadow here is the committed model with a level score: other episodes.
     */
    @Test
    void shouldServeAsWithoutAShadowAndShadowAsTheShadowModelRunAlone() throws Exception {
        Emitted candidate = alone(withLevel());
        long expectedShared = shared(reference().anomalies(), candidate.anomalies());
        long expectedShadowShared = shared(candidate.anomalies(), reference().anomalies());
        // The shadow fires wherever the serving model does, and on level shifts besides.
        assertThat(expectedShared).isPositive();
        assertThat(expectedShadowShared).isPositive().isLessThan(closed(candidate.anomalies()));
        for (boolean batched : new boolean[] {false, true}) {
            try (var h = withShadow(batched, withLevel(), 0)) {
                h.open();
                feed(h, stream);
                h.endInput();

                Emitted.of(h).assertSameAs(reference());
                assertSameEvents(shadowAnomalies(h), candidate.anomalies());
                assertThat(accumulated(h, "episodes_closed"))
                        .isEqualTo(closed(reference().anomalies()));
                assertThat(accumulated(h, "episodes_shared")).isEqualTo(expectedShared);
                assertThat(accumulated(h, "shadow_episodes_closed"))
                        .isEqualTo(closed(candidate.anomalies()));
                assertThat(accumulated(h, "shadow_episodes_shared"))
                        .isEqualTo(expectedShadowShared);
                assertThat((Double) accumulated(h, "shadow_score_correlation"))
                        .isCloseTo(
                                correlation(reference().scores(), candidate.scores()),
                                org.assertj.core.data.Offset.offset(1e-9));
                assertThat(accumulated(h, "scored_control")).isEqualTo(accumulated(h, "scored"));
                assertThat(accumulated(h, "scored_canary")).isEqualTo(0L);
            }
        }
    }

    /** The same model as its own shadow: every episode shared, the scores' correlation 1. */
    @Test
    void shouldShareEveryEpisodeWithTheSameModelAsItsShadow() throws Exception {
        ModelCard c = Fixtures.model().card();
        ModelBundle same =
                new ModelBundle(c.withVersion(c.version() + "-again"), Fixtures.model().onnx());
        try (var h = withShadow(true, same, 0)) {
            h.open();
            feed(h, stream);
            h.endInput();

            long closed = closed(reference().anomalies());
            assertThat(closed).isPositive();
            assertThat(accumulated(h, "episodes_shared")).isEqualTo(closed);
            assertThat(accumulated(h, "shadow_episodes_shared")).isEqualTo(closed);
            assertThat((Double) accumulated(h, "shadow_score_correlation"))
                    .isCloseTo(1.0, org.assertj.core.data.Offset.offset(1e-9));
        }
    }

    /**
     * A canary of half the devices: those the hash puts in it are served by the shadow model (its
     * events and scores, as run alone), the others by the serving model; each model's events for
     * the devices it does not serve go to the shadow output. Both operators alike.
     */
    @Test
    void shouldServeTheCanaryDevicesWithTheShadowModel() throws Exception {
        Emitted candidate = alone(withLevel());
        java.util.function.Predicate<String> inCanary = d -> Canary.contains(d, CANARY);
        Map<String, List<AnomalyEvent>> servedEvents =
                concat(
                        devices(reference().anomalies(), inCanary.negate()),
                        devices(candidate.anomalies(), inCanary));
        Map<String, List<AnomalyEvent>> shadowEvents =
                concat(
                        devices(candidate.anomalies(), inCanary.negate()),
                        devices(reference().anomalies(), inCanary));
        Map<String, List<ScoredStep>> servedScores =
                concat(
                        devices(reference().scores(), inCanary.negate()),
                        devices(candidate.scores(), inCanary));
        long canarySteps =
                devices(candidate.scores(), inCanary).values().stream().mapToLong(List::size).sum();
        assertThat(canarySteps).isPositive();
        assertThat(devices(reference().scores(), inCanary.negate())).isNotEmpty();
        for (boolean batched : new boolean[] {false, true}) {
            try (var h = withShadow(batched, withLevel(), CANARY)) {
                h.open();
                feed(h, stream);
                h.endInput();

                Emitted.of(h)
                        .assertSameAs(new Emitted(servedEvents, servedScores, reference().late()));
                assertSameEvents(shadowAnomalies(h), shadowEvents);
                assertThat(accumulated(h, "scored_canary")).isEqualTo(canarySteps);
                assertThat(accumulated(h, "episodes_opened_canary"))
                        .isEqualTo(
                                devices(servedEvents, inCanary).values().stream()
                                        .flatMap(List::stream)
                                        .filter(
                                                e ->
                                                        AnomalyEvent.OPEN.equals(e.type)
                                                                && !e.isSilence())
                                        .count());
            }
        }
    }

    /**
     * Rollback: a canary stopped mid-stream (in the middle of an episode the shadow model raised
     * for a canary device), restored with fraction 0. Every device, the canary's included, is
     * scored by the serving model from the first step after the restore with the memory that model
     * kept while the shadow served: its scores are those of a run that never had a canary, as are
     * the control devices' events. The episodes open on the other topic are closed there: on each
     * output, every device's OPEN and CLOSE alternate.
     */
    @Test
    void shouldRollBackACanaryWithEveryDevicesMemoryWarm() throws Exception {
        java.util.function.Predicate<String> inCanary = d -> Canary.contains(d, CANARY);
        AnomalyEvent open = firstCanaryOpen();
        int cut = after(open);
        CanaryCut before = canaryUntil(true, cut);
        try (var second = withShadow(true, withLevel(), 0)) {
            second.initializeState(before.snapshot());
            second.open();
            feed(second, stream.subList(cut, stream.size()));
            second.endInput();

            Emitted after = Emitted.of(second);
            Map<String, List<ScoredStep>> expectedScores = new LinkedHashMap<>();
            Map<String, List<AnomalyEvent>> expectedControl = new LinkedHashMap<>();
            for (String device : reference().scores().keySet()) {
                long from = tsOfFirstStepAfter(device, cut);
                expectedScores.put(
                        device,
                        reference().scores().get(device).stream()
                                .filter(st -> st.ts >= from)
                                .toList());
                if (!inCanary.test(device)) {
                    expectedControl.put(
                            device,
                            reference().anomalies().getOrDefault(device, List.of()).stream()
                                    .filter(e -> e.ts >= from)
                                    .toList());
                }
            }
            expectedScores.values().removeIf(List::isEmpty);
            expectedControl.values().removeIf(List::isEmpty);
            assertThat(after.scores().keySet()).isEqualTo(expectedScores.keySet());
            expectedScores.forEach(
                    (device, steps) -> {
                        List<ScoredStep> mine = after.scores().get(device);
                        assertThat(mine).hasSameSizeAs(steps);
                        for (int i = 0; i < steps.size(); i++) {
                            assertClose(
                                    mine.get(i).score, steps.get(i).score, device, steps.get(i).ts);
                        }
                    });
            assertSameEvents(devices(after.anomalies(), inCanary.negate()), expectedControl);
            assertClosedWhereOpened(before, second, open);
        }
    }

    /** The shadow model's first OPEN (run alone) for a device of the canary. */
    private static AnomalyEvent firstCanaryOpen() throws Exception {
        return alone(withLevel()).anomalies().entrySet().stream()
                .filter(e -> Canary.contains(e.getKey(), CANARY))
                .flatMap(e -> e.getValue().stream())
                .filter(e -> AnomalyEvent.OPEN.equals(e.type))
                .findFirst()
                .orElseThrow();
    }

    /** A canary run stopped with a snapshot, and what it sent to each topic. */
    private record CanaryCut(
            OperatorSubtaskState snapshot,
            Map<String, List<AnomalyEvent>> alerts,
            Map<String, List<AnomalyEvent>> shadowed) {}

    /** The stream up to {@code cut} with the shadow model serving the canary, then a snapshot. */
    private static CanaryCut canaryUntil(boolean batched, int cut) throws Exception {
        try (var first = withShadow(batched, withLevel(), CANARY)) {
            first.open();
            feed(first, stream.subList(0, cut));
            first.prepareSnapshotPreBarrier(1L);
            OperatorSubtaskState snapshot = first.snapshot(1L, 0L);
            return new CanaryCut(snapshot, Emitted.of(first).anomalies(), shadowAnomalies(first));
        }
    }

    /** The index in the stream right after the step that raised {@code event}. */
    private static int after(AnomalyEvent event) {
        int i = 0;
        while (!(stream.get(i).deviceId.equals(event.deviceId) && stream.get(i).ts == event.ts)) {
            i++;
        }
        return i + 1;
    }

    /**
     * The shadow removed (a restart without {@code vigil.model.shadow.dir}) while it served a
     * canary device in the middle of an episode: that episode, whose OPEN went to the anomalies
     * topic, is closed there at the device's first step after the restore, as the model that opened
     * it.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldCloseTheEpisodesOfARemovedShadowModel(boolean batched) throws Exception {
        AnomalyEvent open = firstCanaryOpen();
        int cut = after(open);
        CanaryCut before = canaryUntil(batched, cut);
        try (var second = withShadow(batched, null, 0)) {
            second.initializeState(before.snapshot());
            second.open();
            feed(second, stream.subList(cut, stream.size()));
            second.endInput();

            assertClosedWhereOpened(before, second, open);
        }
    }

    /**
     * Over both runs, on each topic every device's OPEN and CLOSE alternate, and the shadow model's
     * episode open at the cut ({@code open}) was closed on the anomalies topic, under its version.
     */
    private static void assertClosedWhereOpened(
            CanaryCut before,
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> after,
            AnomalyEvent open) {
        Map<String, List<AnomalyEvent>> allAlerts =
                concat(before.alerts(), Emitted.of(after).anomalies());
        assertEpisodesAlternate(allAlerts);
        assertEpisodesAlternate(concat(before.shadowed(), shadowAnomalies(after)));
        assertThat(allAlerts.get(open.deviceId))
                .anyMatch(
                        e ->
                                AnomalyEvent.CLOSE.equals(e.type)
                                        && e.episodeStart == open.episodeStart
                                        && e.modelVersion.equals(open.modelVersion));
    }

    /** Per device, OPEN and CLOSE alternate, each CLOSE of the episode the last OPEN began. */
    private static void assertEpisodesAlternate(Map<String, List<AnomalyEvent>> events) {
        events.forEach(
                (device, list) -> {
                    AnomalyEvent open = null;
                    for (AnomalyEvent e : list) {
                        if (e.isSilence()) {
                            continue; // a silence is its own episode, beside the score's
                        }
                        if (AnomalyEvent.OPEN.equals(e.type)) {
                            assertThat(open)
                                    .as("%s: OPEN while open: %s", device, e.eventId)
                                    .isNull();
                            open = e;
                        } else {
                            assertThat(open)
                                    .as("%s: %s outside an episode", device, e.eventId)
                                    .isNotNull();
                            assertThat(e.episodeStart).isEqualTo(open.episodeStart);
                            assertThat(e.modelVersion).isEqualTo(open.modelVersion);
                            if (AnomalyEvent.CLOSE.equals(e.type)) {
                                open = null;
                            }
                        }
                    }
                });
    }

    /** The ts of a device's first record at or after stream index {@code cut}. */
    private static long tsOfFirstStepAfter(String device, int cut) {
        for (int i = cut; i < stream.size(); i++) {
            if (stream.get(i).deviceId.equals(device)) {
                return stream.get(i).ts;
            }
        }
        return Long.MAX_VALUE;
    }
}
