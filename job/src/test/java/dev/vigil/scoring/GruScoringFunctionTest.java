package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.DeadLetterReason;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.KeyedStateBackend;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The scoring rules of DESIGN.md, one at a time, on the real model in a keyed test harness. */
class GruScoringFunctionTest {

    /** State time-to-live of these tests: an hour of processing time. */
    private static final Duration TTL = Duration.ofHours(1);

    /** The defaults (gap 10 min, reset on model change), record by record, quicker episodes. */
    private static final ScoringSettings SETTINGS =
            Fixtures.scoringDefaults()
                    .openAfter(2)
                    .closeAfter(10)
                    .emitScores(true)
                    .batch(0, 0)
                    .stateTtl(TTL)
                    .build();

    /** 400 normal steps of one pump, one a minute, with seq. */
    private static List<TelemetryEvent> normal;

    @BeforeAll
    static void generateANormalDevice(@TempDir Path dir) throws Exception {
        new FleetGenerator(new FleetGenerator.Spec(11L, 1, 400, 1, 0)).writeTo(dir);
        TelemetryParser parser = new TelemetryParser(Fixtures.model().card().featureNames());
        normal = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("train.jsonl"))) {
            normal.add(parser.parse(line.getBytes(StandardCharsets.UTF_8)).event());
        }
        assertThat(normal).hasSizeGreaterThan(350);
        for (int i = 1; i < normal.size(); i++) {
            assertThat(normal.get(i).ts - normal.get(i - 1).ts).isLessThan(SETTINGS.gapMs());
        }
    }

    private static TelemetryEvent copy(TelemetryEvent e) {
        return new TelemetryEvent(e.deviceId, e.ts, e.seq, e.values.clone());
    }

    /** A run of the operator over some events, with everything it emitted. */
    private static final class Run implements AutoCloseable {
        final KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> harness;
        final GruScoringFunction function;

        Run(ModelBundle bundle, OperatorSubtaskState restoreFrom) throws Exception {
            this(bundle, restoreFrom, SETTINGS);
        }

        Run(ModelBundle bundle, OperatorSubtaskState restoreFrom, ScoringSettings settings)
                throws Exception {
            function = new GruScoringFunction(bundle, settings);
            harness =
                    new KeyedOneInputStreamOperatorTestHarness<>(
                            new GruScoringFunction.Operator(function),
                            new VigilPipeline.DeviceKey(),
                            Types.STRING);
            // The job's backend: every state access goes through the state's serializer.
            harness.setStateBackend(new EmbeddedRocksDBStateBackend());
            if (restoreFrom != null) {
                harness.initializeState(restoreFrom);
            }
            harness.open();
        }

        Run() throws Exception {
            this(Fixtures.model(), null);
        }

        Run feed(List<TelemetryEvent> events) throws Exception {
            for (TelemetryEvent e : events) {
                harness.processElement(new StreamRecord<>(copy(e), e.ts));
            }
            return this;
        }

        List<AnomalyEvent> events() {
            return harness.extractOutputValues();
        }

        List<ScoredStep> steps() {
            List<ScoredStep> out = new ArrayList<>();
            var side = harness.getSideOutput(Outputs.SCORES);
            if (side != null) {
                side.forEach(r -> out.add(r.getValue()));
            }
            return out;
        }

        List<Float> scores() {
            List<Float> out = new ArrayList<>();
            var side = harness.getSideOutput(Outputs.SCORES);
            if (side != null) {
                side.forEach(r -> out.add(r.getValue().score));
            }
            return out;
        }

        /** A count the operator accumulated ({@code dev.vigil.metrics.Metrics}); 0 if none. */
        long count(String name) {
            var accumulator =
                    harness.getEnvironment().getAccumulatorRegistry().getUserMap().get(name);
            return accumulator == null ? 0L : ((Number) accumulator.getLocalValue()).longValue();
        }

        /** The dead letters of the records turned away as late, in order. */
        List<DeadLetter> lateLetters() {
            List<DeadLetter> out = new ArrayList<>();
            var side = harness.getSideOutput(Outputs.DEAD_LETTERS);
            if (side != null) {
                side.forEach(r -> out.add(r.getValue()));
            }
            return out;
        }

        /** The records turned away as late, read back from their dead letters. */
        List<TelemetryEvent> late() {
            TelemetryParser parser = new TelemetryParser(Fixtures.model().card().featureNames());
            return lateLetters().stream().map(d -> parser.parse(d.raw).event()).toList();
        }

        @Override
        public void close() throws Exception {
            harness.close();
        }
    }

    @Test
    void shouldScoreEveryStepOfANormalDeviceWithoutAlerting() throws Exception {
        try (Run run = new Run().feed(normal)) {
            assertThat(run.scores()).hasSize(normal.size());
            assertThat(run.scores().get(0)).isZero(); // no forecast before the first step
            assertThat(run.scores().subList(1, normal.size())).allMatch(s -> s > 0);
            assertThat(run.events()).isEmpty();
        }
    }

    @Test
    void shouldSendLateAndDuplicateEventsAsideWithoutTouchingTheMemory() throws Exception {
        List<TelemetryEvent> withFaults = new ArrayList<>();
        List<TelemetryEvent> expectedLate = new ArrayList<>();
        for (int i = 0; i < normal.size(); i++) {
            withFaults.add(normal.get(i));
            if (i % 50 == 10) {
                withFaults.add(normal.get(i)); // duplicate
                expectedLate.add(normal.get(i));
            }
            if (i % 50 == 30) {
                withFaults.add(normal.get(i - 5)); // late re-send
                expectedLate.add(normal.get(i - 5));
            }
        }
        try (Run clean = new Run().feed(normal);
                Run faulty = new Run().feed(withFaults)) {
            assertThat(faulty.late())
                    .extracting(e -> e.seq)
                    .containsExactlyElementsOf(expectedLate.stream().map(e -> e.seq).toList());
            assertThat(faulty.scores()).containsExactlyElementsOf(clean.scores());
        }
    }

    @Test
    void shouldOrderByTimestampWhenEventsCarryNoSeq() throws Exception {
        List<TelemetryEvent> noSeq = new ArrayList<>();
        for (TelemetryEvent e : normal.subList(0, 50)) {
            noSeq.add(TelemetryEvent.withoutSeq(e.deviceId, e.ts, e.values));
        }
        noSeq.add(noSeq.get(20)); // an old timestamp
        noSeq.add(noSeq.get(49)); // the same timestamp again

        try (Run run = new Run().feed(noSeq)) {
            assertThat(run.late()).hasSize(2);
            assertThat(run.scores()).hasSize(50);
        }
    }

    @Test
    void shouldResetTheMemoryAfterASilenceLongerThanTheGap() throws Exception {
        List<TelemetryEvent> withGap = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            TelemetryEvent e = copy(normal.get(i));
            if (i >= 100) {
                e.ts += 60 * 60_000L; // an hour of silence before step 100
            }
            withGap.add(e);
        }
        try (Run run = new Run().feed(withGap)) {
            assertThat(run.scores().get(100)).isZero(); // no forecast survives the reset
            assertThat(run.scores().get(101)).isPositive();
            // The hour of silence is reported (vigil.alerts.silence-after), and nothing else.
            assertThat(run.events())
                    .extracting(e -> e.type + " " + e.reason)
                    .containsExactly("OPEN silence", "CLOSE silence");
            assertThat(run.count(Metrics.RESETS_GAP)).isOne();
            assertThat(run.count(Metrics.RESETS_BEFORE_WARM)).isZero(); // it was warm
        }
    }

    /**
     * A device reporting every 15 minutes, with the gap at 10: every step after its first finds the
     * memory stale and resets it, so it never warms up and no alert can come from it. Each of those
     * resets counts as one before warm-up; with a silence period of 20 minutes (longer than the
     * gap) nothing else says so.
     */
    /**
     * A reset counts as before warm-up whatever its cause (here a restart) when the device had not
     * yet taken a warm step: after exactly the warm-up's steps it counts, one step later it does
     * not.
     */
    @Test
    void shouldCountAResetBeforeWarmUpWhateverItsCause() throws Exception {
        List<TelemetryEvent> restarted = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            TelemetryEvent e = copy(normal.get(i));
            if (i >= 5) { // the counter starts again after 5 steps while ts moves on
                e.seq = normal.get(i - 5).seq;
            }
            restarted.add(e);
        }
        try (Run run = new Run().feed(restarted)) {
            assertThat(run.count(Metrics.RESETS_RESTART)).isOne();
            assertThat(run.count(Metrics.RESETS_BEFORE_WARM)).isOne();
        }
        int warmup = Fixtures.model().card().warmupSteps();
        for (int steps : new int[] {warmup, warmup + 1}) {
            List<TelemetryEvent> withGap = new ArrayList<>();
            for (int i = 0; i <= steps; i++) {
                TelemetryEvent e = copy(normal.get(i));
                if (i == steps) {
                    e.ts += 60 * 60_000L; // an hour of silence before it
                }
                withGap.add(e);
            }
            try (Run run = new Run().feed(withGap)) {
                assertThat(run.count(Metrics.RESETS_GAP)).isOne();
                assertThat(run.count(Metrics.RESETS_BEFORE_WARM))
                        .as("a gap after %d steps", steps)
                        .isEqualTo(steps == warmup ? 1 : 0);
            }
        }
    }

    @Test
    void shouldCountTheResetsOfADeviceThatNeverWarmsUp() throws Exception {
        List<TelemetryEvent> sparse = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            TelemetryEvent e = copy(normal.get(i));
            e.ts = normal.get(0).ts + i * 15 * 60_000L;
            sparse.add(e);
        }
        ScoringSettings quiet = SETTINGS.toBuilder().silenceAfterMs(20 * 60_000L).build();
        try (Run run = new Run(Fixtures.model(), null, quiet).feed(sparse)) {
            assertThat(run.scores()).hasSize(50).containsOnly(0f); // never a forecast to score
            assertThat(run.events()).isEmpty();
            assertThat(run.count(Metrics.RESETS_GAP)).isEqualTo(49);
            assertThat(run.count(Metrics.RESETS_BEFORE_WARM)).isEqualTo(49);
        }
    }

    /** Normal steps with {@code rpm} pushed far out of its range on steps [from, to). */
    private static List<TelemetryEvent> withRpmFault(int from, int to) {
        int rpm = Fixtures.model().card().featureNames().indexOf("rpm");
        List<TelemetryEvent> out = new ArrayList<>();
        for (int i = 0; i < normal.size(); i++) {
            TelemetryEvent e = copy(normal.get(i));
            if (i >= from && i < to) {
                e.values[rpm] += 400f;
            }
            out.add(e);
        }
        return out;
    }

    @Test
    void shouldNotAlertDuringWarmup() throws Exception {
        int warmup = Fixtures.model().card().warmupSteps();

        try (Run run = new Run().feed(withRpmFault(1, warmup - 1).subList(0, warmup))) {
            assertThat(run.scores().subList(1, warmup - 1))
                    .allMatch(s -> s > Fixtures.model().card().threshold());
            assertThat(run.events()).isEmpty();
        }
    }

    @Test
    void shouldOpenAndCloseOneEpisodeAroundAFaultAndNameTheFeature() throws Exception {
        try (Run run = new Run().feed(withRpmFault(200, 215))) {
            List<AnomalyEvent> events = run.events();

            assertThat(events).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            AnomalyEvent open = events.get(0);
            AnomalyEvent close = events.get(1);
            assertThat(open.episodeStart).isEqualTo(normal.get(200).ts);
            assertThat(open.ts).isEqualTo(normal.get(201).ts);
            assertThat(open.eventId).isEqualTo(open.deviceId + ":" + open.episodeStart + ":OPEN");
            assertThat(open.topFeatureNames[0]).isEqualTo("rpm");
            assertThat(close.episodeStart).isEqualTo(open.episodeStart);
            assertThat(close.durationMs).isEqualTo(close.ts - close.episodeStart);
            assertThat(close.peakScore).isGreaterThanOrEqualTo(open.score);
            assertThat(close.topFeatureNames[0]).isEqualTo("rpm");
            assertThat(close.topFeatureShares[0]).isGreaterThan(0.3f);
        }
    }

    /**
     * The committed model with a level score (profile of 100 steps, window 10) whose raw {@code
     * scale} counts as the threshold; the forecast residual is put out of reach, so that these
     * tests see the level alone.
     */
    private static ModelBundle withLevel(float scale) {
        return withLevel(scale, null);
    }

    private static ModelBundle withLevel(float scale, ModelCard.Learning learning) {
        ModelCard c = Fixtures.model().card();
        return new ModelBundle(
                new ModelCard(
                        c.version() + (learning == null ? "-level" : "-learning"),
                        c.hiddenSize(),
                        c.features(),
                        1f,
                        c.warmupSteps(),
                        1e9f,
                        new ModelCard.Level(100, 200, 10, 0.01f, scale, learning),
                        null,
                        null),
                Fixtures.model().onnx());
    }

    /**
     * A steady device: every feature at the card's mean plus a small deterministic wobble (a tenth
     * of its std), one step a minute, with {@code feature} moved {@code delta} fleet stds in [from,
     * to). Steady, so that its profile, learned over 100 steps, is its normal.
     */
    private static List<TelemetryEvent> steady(String feature, float delta, int from, int to) {
        ModelCard card = Fixtures.model().card();
        int shifted = card.featureNames().indexOf(feature);
        List<TelemetryEvent> out = new ArrayList<>();
        long t0 = normal.get(0).ts;
        for (int i = 0; i < 400; i++) {
            float[] v = new float[card.featureCount()];
            for (int f = 0; f < v.length; f++) {
                float wobble = 0.1f * (float) Math.sin(0.7 * i + f);
                boolean moved = f == shifted && i >= from && i < to;
                v[f] = card.mean()[f] + card.std()[f] * (wobble + (moved ? delta : 0f));
            }
            out.add(new TelemetryEvent("steady-1", t0 + i * 60_000L, i, v));
        }
        return out;
    }

    /** 1.5 times the largest level (raw) the steady device reaches once its profile is learned. */
    private static float steadyLevelScale() throws Exception {
        try (Run run = new Run(withLevel(1f), null).feed(steady("ambient_c", 0f, 0, 0))) {
            List<ScoredStep> steps = run.steps();
            assertThat(steps.subList(0, 100)).allMatch(st -> Float.isNaN(st.level));
            assertThat(steps.subList(100, steps.size())).allMatch(st -> st.level >= 0f);
            double max =
                    steps.stream()
                            .mapToDouble(st -> st.level)
                            .filter(v -> !Double.isNaN(v))
                            .max()
                            .orElseThrow();
            return 1.5f * (float) max;
        }
    }

    @Test
    void shouldHoldAnEpisodeOpenByTheLevelWhileAShiftLasts() throws Exception {
        float scale = steadyLevelScale();
        List<TelemetryEvent> shifted = steady("ambient_c", 1f, 200, 320);

        try (Run run = new Run(withLevel(scale), null).feed(shifted)) {
            List<AnomalyEvent> events = run.events();
            List<ScoredStep> steps = run.steps();

            assertThat(events).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            assertThat(events.get(0).episodeStart)
                    .isBetween(shifted.get(200).ts, shifted.get(210).ts);
            // Open while the shift lasts, closed once it is over and the quiet steps have passed.
            assertThat(events.get(1).ts).isGreaterThanOrEqualTo(shifted.get(320).ts);
            assertThat(steps.subList(215, 320)).allMatch(st -> st.level > 1f);
            assertThat(events).extracting(e -> e.reason).containsOnly("level");
            assertThat(events.get(1).topFeatureNames[0]).isEqualTo("ambient_c");
        }
    }

    /**
     * With {@code vigil.alerts.relearn-after}, an episode the level holds open that long closes
     * with {@code relearned}, the device learns its moved level as its normal (nothing while it
     * stays there), and a later move from there, here back to where it was, opens a new episode,
     * which the same rule closes 30 minutes on. Without it, one episode lasts the whole shift.
     */
    @Test
    void shouldLearnTheNormalAgainOfADeviceWhoseLevelStaysMoved() throws Exception {
        float scale = steadyLevelScale();
        List<TelemetryEvent> shifted = steady("ambient_c", 1f, 150, 330);
        ScoringSettings relearning =
                SETTINGS.toBuilder().relearnAfterMs(Duration.ofMinutes(30).toMillis()).build();

        try (Run run = new Run(withLevel(scale), null, relearning).feed(shifted)) {
            List<AnomalyEvent> events = run.events();
            assertThat(events)
                    .extracting(e -> e.type)
                    .containsExactly("OPEN", "CLOSE", "OPEN", "CLOSE");
            AnomalyEvent relearned = events.get(1);
            assertThat(relearned.relearned).isTrue();
            assertThat(relearned.reason).isEqualTo("level");
            assertThat(relearned.topFeatureNames[0]).isEqualTo("ambient_c");
            assertThat(relearned.episodeStart).isBetween(shifted.get(150).ts, shifted.get(160).ts);
            // The first step at least 30 minutes (30 steps) into the episode.
            assertThat(relearned.durationMs).isEqualTo(Duration.ofMinutes(30).toMillis());
            assertThat(events.get(0).relearned).isFalse();
            // Learned again over 100 steps from there, then quiet at the moved level until it
            // moves back.
            assertThat(events.get(2).episodeStart)
                    .isBetween(shifted.get(330).ts, shifted.get(340).ts);
            assertThat(events.get(2).relearned).isFalse();
            assertThat(events.get(3).relearned).isTrue();
            assertThat(events.get(3).durationMs).isEqualTo(Duration.ofMinutes(30).toMillis());
            assertThat(run.count(Metrics.PROFILES_RELEARNED)).isEqualTo(2);
        }
        try (Run run = new Run(withLevel(scale), null).feed(shifted)) {
            assertThat(run.events()).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            assertThat(run.events().get(1).ts).isGreaterThanOrEqualTo(shifted.get(330).ts);
            assertThat(run.events()).noneMatch(e -> e.relearned);
            assertThat(run.count(Metrics.PROFILES_RELEARNED)).isZero();
        }
    }

    /**
     * Under per-device normalisation the model's inputs are normalised by the device's profile: a
     * profile learned again starts from the fleet's normalisation, so the device's memory starts
     * again with it (no forecast at the next step) and warms up, counted in {@code warming_up} as
     * after a gap; the moved level is learned as the device's normal, so the events are those of
     * the same card under the fleet's normalisation, where the memory goes on.
     */
    @Test
    void shouldStartTheMemoryAgainWhenADeviceNormalisedByItselfLearnsItsNormalAgain()
            throws Exception {
        ModelCard c = withLevel(steadyLevelScale()).card();
        ModelBundle byDevice =
                new ModelBundle(
                        c.withNormalisation(
                                c.version() + "-device", new ModelCard.DeviceNormalisation(0.1f)),
                        Fixtures.model().onnx());
        List<TelemetryEvent> shifted = steady("ambient_c", 1f, 150, 330);
        ScoringSettings relearning =
                SETTINGS.toBuilder().relearnAfterMs(Duration.ofMinutes(30).toMillis()).build();
        int warmup = c.warmupSteps();

        try (Run run = new Run(byDevice, null, relearning).feed(shifted);
                Run without = new Run(byDevice, null).feed(shifted);
                Run byFleet =
                        new Run(withLevel(steadyLevelScale()), null, relearning).feed(shifted)) {
            List<AnomalyEvent> events = run.events();
            assertThat(events)
                    .extracting(e -> e.type + (e.relearned ? " relearned" : ""))
                    .containsExactly("OPEN", "CLOSE relearned", "OPEN", "CLOSE relearned");
            assertThat(events.get(0).episodeStart)
                    .isBetween(shifted.get(150).ts, shifted.get(160).ts);
            assertThat(events.get(2).episodeStart)
                    .isBetween(shifted.get(330).ts, shifted.get(340).ts);
            assertThat(run.count(Metrics.PROFILES_RELEARNED)).isEqualTo(2);
            assertThat(run.count(Metrics.WARMING_UP))
                    .isEqualTo(without.count(Metrics.WARMING_UP) + 2L * warmup);
            // The step after each relearn has no forecast to be scored against: the memory
            // started again there (in the run without relearning it has one).
            for (AnomalyEvent close : List.of(events.get(1), events.get(3))) {
                long next = shifted.get(indexOf(shifted, close.ts) + 1).ts;
                assertThat(stepAt(run.steps(), next).dynamics).isNaN();
                assertThat(stepAt(without.steps(), next).dynamics).isNotNaN();
                assertThat(stepAt(byFleet.steps(), next).dynamics).isNotNaN();
            }
            assertThat(events)
                    .extracting(GruScoringFunctionTest::episodeEvent)
                    .containsExactlyElementsOf(
                            byFleet.events().stream()
                                    .map(GruScoringFunctionTest::episodeEvent)
                                    .toList());
        }
    }

    /** An event's type, time, episode and whether it closed to relearn. */
    private static String episodeEvent(AnomalyEvent e) {
        return e.type + "@" + e.ts + " from " + e.episodeStart + (e.relearned ? " relearned" : "");
    }

    private static ScoredStep stepAt(List<ScoredStep> steps, long ts) {
        return steps.stream().filter(st -> st.ts == ts).findFirst().orElseThrow();
    }

    private static int indexOf(List<TelemetryEvent> events, long ts) {
        for (int i = 0; i < events.size(); i++) {
            if (events.get(i).ts == ts) {
                return i;
            }
        }
        throw new AssertionError("no event at " + ts);
    }

    /**
     * The committed model with a variability score alone (profile of 100 steps, window 10) whose
     * {@code scale} counts as the threshold; the forecast residual out of reach.
     */
    private static ModelBundle withVariability(float scale) {
        ModelCard c = residualOutOfReach("-variability", null);
        return new ModelBundle(
                c.withVariability(
                        c.version(), new ModelCard.Variability(100, 200, 10, 0.1f, scale)),
                Fixtures.model().onnx());
    }

    /**
     * A reading that moves more than its device's normally does, without leaving its range: the
     * steady device's vibration alternating half a fleet std above and below its value for 60
     * steps. The variability score (learned over the steady device's first 100 steps) opens an
     * episode on it, named for the vibration, and closes it once the reading is steady again.
     */
    @Test
    void shouldSeeAReadingThatMovesMoreThanItsDeviceNormallyDoes() throws Exception {
        float scale;
        try (Run run = new Run(withVariability(1f), null).feed(steady("ambient_c", 0f, 0, 0))) {
            List<ScoredStep> steps = run.steps();
            assertThat(steps.subList(0, 100)).allMatch(st -> Float.isNaN(st.variability));
            assertThat(steps.subList(100, steps.size())).allMatch(st -> st.variability >= 0f);
            scale =
                    1.5f
                            * (float)
                                    steps.subList(100, steps.size()).stream()
                                            .mapToDouble(st -> st.variability)
                                            .max()
                                            .orElseThrow();
        }
        ModelCard card = Fixtures.model().card();
        int vibration = card.featureNames().indexOf("vibration_mm_s");
        List<TelemetryEvent> jitter = steady("ambient_c", 0f, 0, 0);
        for (int i = 200; i < 260; i++) {
            jitter.get(i).values[vibration] += card.std()[vibration] * (i % 2 == 0 ? 0.5f : -0.5f);
        }

        try (Run run = new Run(withVariability(scale), null).feed(jitter)) {
            List<AnomalyEvent> events = run.events();
            assertThat(events).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            assertThat(events.get(0).episodeStart)
                    .isBetween(jitter.get(200).ts, jitter.get(203).ts);
            assertThat(events).extracting(e -> e.reason).containsOnly("variability");
            assertThat(events).allMatch(e -> e.topFeatureNames[0].equals("vibration_mm_s"));
            assertThat(events.get(1).ts).isGreaterThan(jitter.get(260).ts);
            assertThat(run.steps().subList(205, 260)).allMatch(st -> st.variability > 1f);
        }
    }

    /**
     * The committed model with a correlation score alone, whose normal subspace is the targets
     * moving together (one row, each target 1/sqrt(8)) and whose {@code scale} counts as the
     * threshold; the forecast residual out of reach.
     */
    private static ModelBundle withCorrelation(float scale) {
        return withCorrelation(residualOutOfReach("-correlation", null), scale);
    }

    /** {@code card} with that correlation score added. */
    private static ModelBundle withCorrelation(ModelCard card, float scale) {
        float[] together = new float[card.targets().length];
        java.util.Arrays.fill(together, (float) (1 / Math.sqrt(together.length)));
        return new ModelBundle(
                card.withCorrelation(
                        card.version() + "-correlation",
                        new ModelCard.Correlation(together, 1, scale)),
                Fixtures.model().onnx());
    }

    /** 1.5 times the largest correlation distance (raw) of the steady device. */
    private static float steadyCorrelationScale() throws Exception {
        try (Run run = new Run(withCorrelation(1f), null).feed(steady("ambient_c", 0f, 0, 0))) {
            List<ScoredStep> steps = run.steps();
            assertThat(steps).hasSize(400).allMatch(st -> st.correlation >= 0f);
            assertThat(run.events()).isEmpty();
            return 1.5f
                    * (float) steps.stream().mapToDouble(st -> st.correlation).max().orElseThrow();
        }
    }

    /**
     * The correlation score measures each step against the fleet's normal relation of the targets,
     * with no state: a device whose pressure sits a fleet std above where the other targets put it
     * from its first step is in an episode from its first step past warm-up, for as long as that
     * lasts (the level, learned from the device, would take it as its normal), named for the
     * pressure; the same move for 60 steps of a steady device opens and closes with it.
     */
    @Test
    void shouldSeeAReadingOutOfLineWithTheOthersFromTheFirstStep() throws Exception {
        float scale = steadyCorrelationScale();
        int warmup = Fixtures.model().card().warmupSteps();
        List<TelemetryEvent> outOfLine = steady("pressure_bar", 1f, 0, 400);
        try (Run run = new Run(withCorrelation(scale), null).feed(outOfLine)) {
            List<AnomalyEvent> events = run.events();
            assertThat(events).extracting(e -> e.type).containsExactly("OPEN");
            assertThat(events.get(0).episodeStart).isEqualTo(outOfLine.get(warmup).ts);
            assertThat(events.get(0).reason).isEqualTo("correlation");
            assertThat(events.get(0).topFeatureNames[0]).isEqualTo("pressure_bar");
            assertThat(run.steps()).allMatch(st -> st.correlation > 1f);
        }
        List<TelemetryEvent> moved = steady("pressure_bar", 1f, 200, 260);
        try (Run run = new Run(withCorrelation(scale), null).feed(moved)) {
            List<AnomalyEvent> events = run.events();
            assertThat(events).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            assertThat(events.get(0).episodeStart).isEqualTo(moved.get(200).ts);
            assertThat(events).allMatch(e -> e.reason.equals("correlation"));
            assertThat(events).allMatch(e -> e.topFeatureNames[0].equals("pressure_bar"));
            assertThat(events.get(1).ts).isEqualTo(moved.get(269).ts);
        }
    }

    /**
     * What the correlation score sees stays out of the level's profile: a pump whose pressure sits
     * a fleet std off the others' line for its first 150 steps. With the level alone, its profile
     * (100 steps) learns the offset, and the pressure's return to normal opens an episode of the
     * level that never closes. With the correlation score too, none of those steps is learned: one
     * episode, the correlation's, while the offset lasts, and the profile learned from the normal
     * steps after it keeps the level quiet.
     */
    @Test
    void shouldKeepWhatTheCorrelationScoreSeesOutOfTheLevelProfile() throws Exception {
        ModelBundle levelled = withLevel(steadyLevelScale());
        List<TelemetryEvent> offset = steady("pressure_bar", 1f, 0, 150);
        try (Run run = new Run(levelled, null).feed(offset)) {
            assertThat(run.events()).extracting(e -> e.type).containsExactly("OPEN");
            assertThat(run.events().get(0).reason).isEqualTo("level");
            assertThat(run.events().get(0).episodeStart).isGreaterThan(offset.get(149).ts);
        }
        try (Run run =
                new Run(withCorrelation(levelled.card(), steadyCorrelationScale()), null)
                        .feed(offset)) {
            List<AnomalyEvent> events = run.events();
            assertThat(events).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            assertThat(events).allMatch(e -> e.reason.equals("correlation"));
            assertThat(events.get(1).ts).isEqualTo(offset.get(159).ts);
            List<ScoredStep> steps = run.steps();
            assertThat(steps.subList(0, 250)).allMatch(st -> Float.isNaN(st.level));
            assertThat(steps.subList(250, 400)).allMatch(st -> st.level <= 1f);
        }
    }

    /**
     * {@code vigil.alerts.relearn-after} with the variability score: a reading that goes on
     * jittering for 30 minutes closes its episode with {@code relearned}, and the device learns the
     * jitter as its normal (100 steps, nothing meanwhile, since the score has no value while it
     * learns), then stays quiet while it lasts.
     */
    @Test
    void shouldLearnTheNormalAgainOfADeviceThatKeepsMovingMore() throws Exception {
        float scale;
        try (Run run = new Run(withVariability(1f), null).feed(steady("ambient_c", 0f, 0, 0))) {
            scale =
                    1.5f
                            * (float)
                                    run.steps().subList(100, 400).stream()
                                            .mapToDouble(st -> st.variability)
                                            .max()
                                            .orElseThrow();
        }
        ModelCard card = Fixtures.model().card();
        int vibration = card.featureNames().indexOf("vibration_mm_s");
        List<TelemetryEvent> jitter = steady("ambient_c", 0f, 0, 0);
        for (int i = 150; i < 400; i++) {
            jitter.get(i).values[vibration] += card.std()[vibration] * (i % 2 == 0 ? 0.5f : -0.5f);
        }
        ScoringSettings relearning =
                SETTINGS.toBuilder().relearnAfterMs(Duration.ofMinutes(30).toMillis()).build();

        try (Run run = new Run(withVariability(scale), null, relearning).feed(jitter)) {
            List<AnomalyEvent> events = run.events();
            assertThat(events).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            assertThat(events.get(1).relearned).isTrue();
            assertThat(events.get(1).reason).isEqualTo("variability");
            assertThat(events.get(1).durationMs).isBetween(29 * 60_000L, 31 * 60_000L);
            // Learned again over the next 100 steps, then scored against the jitter as normal.
            assertThat(run.steps().subList(300, 400)).allMatch(st -> st.variability < 1f);
            assertThat(run.count(Metrics.PROFILES_RELEARNED)).isEqualTo(1);
        }
    }

    /**
     * A device's variability profile is the card's: restored into the same card it continues
     * exactly; into another version under {@code keep} (the memory carries over) it is learned
     * again, no value for the profile's 100 steps; and a state written under a card without the
     * score (as every state before format 7 was) starts learning it at its next step.
     */
    @Test
    void shouldLearnTheVariabilityAgainWhereTheCardChanges() throws Exception {
        ModelBundle variable = withVariability(1f);
        ModelCard c = variable.card();
        List<TelemetryEvent> device = steady("ambient_c", 0f, 0, 0);
        List<Float> uninterrupted;
        try (Run run = new Run(variable, null).feed(device)) {
            uninterrupted = run.steps().stream().map(st -> st.variability).toList();
        }
        OperatorSubtaskState snapshot;
        try (Run first = new Run(variable, null).feed(device.subList(0, 200))) {
            snapshot = first.harness.snapshot(1L, 0L);
        }
        try (Run same = new Run(variable, snapshot).feed(device.subList(200, 400))) {
            assertThat(same.steps().stream().map(st -> st.variability).toList())
                    .containsExactlyElementsOf(uninterrupted.subList(200, 400));
        }

        ModelBundle next = new ModelBundle(c.withVersion("next-version"), variable.onnx());
        try (Run kept =
                new Run(next, snapshot, onModelChange(ModelChange.KEEP))
                        .feed(device.subList(200, 400))) {
            assertThat(kept.count(Metrics.KEPT_MODEL_CHANGE)).isEqualTo(1);
            assertThat(kept.steps().subList(0, 100)).allMatch(st -> Float.isNaN(st.variability));
            assertThat(kept.steps().subList(100, 200)).allMatch(st -> st.variability >= 0f);
        }

        ModelBundle without =
                new ModelBundle(c.withVariability(c.version(), null), variable.onnx());
        OperatorSubtaskState before;
        try (Run first = new Run(without, null).feed(device.subList(0, 200))) {
            assertThat(first.steps()).allMatch(st -> Float.isNaN(st.variability));
            before = first.harness.snapshot(1L, 0L);
        }
        try (Run restored = new Run(variable, before).feed(device.subList(200, 400))) {
            assertThat(restored.count(Metrics.RESETS_INVALID_STATE)).isZero();
            assertThat(restored.steps().subList(0, 100))
                    .allMatch(st -> Float.isNaN(st.variability));
            assertThat(restored.steps().subList(100, 200)).allMatch(st -> st.variability >= 0f);
        }
    }

    /** As {@link #withLevel}, with a level while the profile is learned from its 20th step. */
    private static ModelBundle withLevelWhileLearning(float scale, float learningScale) {
        return withLevelWhileLearning(scale, learningScale, false);
    }

    /** The same, its learning gated by the level while learning or not. */
    private static ModelBundle withLevelWhileLearning(
            float scale, float learningScale, boolean gated) {
        float[] unit = new float[Fixtures.model().card().targets().length];
        Arrays.fill(unit, 0.1f);
        return withLevel(scale, new ModelCard.Learning(20, unit, learningScale, gated));
    }

    /**
     * 1.5 times the largest level while learning (raw) the steady device reaches: it has one from
     * its 20th step until its profile is learned at its 100th.
     */
    private static float steadyLearningScale(float scale) throws Exception {
        try (Run run =
                new Run(withLevelWhileLearning(scale, 1f), null)
                        .feed(steady("ambient_c", 0f, 0, 0))) {
            List<ScoredStep> steps = run.steps();
            assertThat(steps.subList(0, 20)).allMatch(st -> Float.isNaN(st.level));
            assertThat(steps.subList(20, 100)).allMatch(st -> st.level >= 0f);
            return 1.5f
                    * (float)
                            steps.subList(20, 100).stream()
                                    .mapToDouble(st -> st.level)
                                    .max()
                                    .orElseThrow();
        }
    }

    /**
     * A new device that shifts for good before its profile is learned. Learning every step, its
     * profile takes in the shift, and once learned it no longer sees it: the episode closes while
     * the device is still shifted. Gated (the card's {@code score.level.learning.gated}), the
     * shifted steps stay out of the profile, which is never learned: the level while learning holds
     * the episode open to the end, and the steps before the shift are the device's normal.
     */
    @Test
    void shouldKeepAShiftThatStartsWhileTheProfileIsLearnedOutOfIt() throws Exception {
        float scale = steadyLevelScale();
        float learningScale = steadyLearningScale(scale);
        List<TelemetryEvent> shifted = steady("ambient_c", 1f, 50, 400);

        try (Run learnsAll =
                        new Run(withLevelWhileLearning(scale, learningScale, false), null)
                                .feed(shifted);
                Run gated =
                        new Run(withLevelWhileLearning(scale, learningScale, true), null)
                                .feed(shifted)) {
            assertThat(learnsAll.events()).extracting(e -> e.type).contains("OPEN", "CLOSE");
            assertThat(learnsAll.steps().subList(300, 400)).allMatch(st -> st.level <= 1f);

            assertThat(gated.events()).extracting(e -> e.type).containsExactly("OPEN");
            assertThat(gated.events().get(0).episodeStart)
                    .isBetween(shifted.get(50).ts, shifted.get(60).ts);
            assertThat(gated.steps().subList(60, 400)).allMatch(st -> st.level > 1f);
            // the profile holds the steps before the shift was seen, and counts only those
            assertThat(profileSteps(learnsAll, "steady-1")).isEqualTo(100);
            assertThat(profileSteps(gated, "steady-1")).isBetween(50, 60);
        }
    }

    /** The device's {@code profileSteps} as the state backend holds it. */
    private static int profileSteps(Run run, String deviceId) throws Exception {
        return stateOf(run, deviceId).value().profileSteps;
    }

    /**
     * A new device that shifts before its profile is learned: without the card's level while
     * learning it has no level there, and the shift is learned as part of its normal; with it, the
     * profile so far (in a unit blended from the fleet's) sees the shift and opens an episode.
     */
    @Test
    void shouldSeeAShiftWhileTheProfileIsLearned() throws Exception {
        float scale = steadyLevelScale();
        float learningScale = steadyLearningScale(scale);
        List<TelemetryEvent> shifted = steady("ambient_c", 1f, 50, 90);

        try (Run before = new Run(withLevel(scale), null).feed(shifted);
                Run run =
                        new Run(withLevelWhileLearning(scale, learningScale), null).feed(shifted)) {
            assertThat(before.steps().subList(0, 100)).allMatch(st -> Float.isNaN(st.level));
            assertThat(before.events())
                    .as("blind while learning")
                    .allMatch(e -> e.episodeStart >= shifted.get(100).ts);

            List<AnomalyEvent> events = run.events();
            assertThat(events).extracting(e -> e.type).startsWith("OPEN");
            assertThat(events.get(0).episodeStart)
                    .isBetween(shifted.get(50).ts, shifted.get(60).ts);
            assertThat(events.get(0).reason).isEqualTo("level");
            assertThat(events.get(0).topFeatureNames[0]).isEqualTo("ambient_c");
            // past the profile's learning, the level is the learned one's, the same in both runs
            assertThat(run.steps().subList(100, 400))
                    .extracting(st -> st.level)
                    .containsExactlyElementsOf(
                            before.steps().subList(100, 400).stream().map(st -> st.level).toList());
        }
    }

    /**
     * Per-device normalisation is what lets one model serve devices at different levels: a device
     * whose feature sits 3 fleet stds away from its twin's for its whole life is, once its profile
     * is learned, scored as its twin is; normalised by the fleet, it is not.
     */
    @Test
    void shouldScoreADeviceAtAnotherLevelAsItsTwinWhenNormalisingByDevice() throws Exception {
        List<TelemetryEvent> twin = steady("ambient_c", 0f, 0, 0);
        List<TelemetryEvent> elsewhere = steady("ambient_c", 3f, 0, 400);
        double[] byDevice = meanDynamicsAfterLearning(true, List.of(twin, elsewhere));
        double[] byFleet = meanDynamicsAfterLearning(false, List.of(twin, elsewhere));

        assertThat(byDevice[1]).isCloseTo(byDevice[0], within(0.01 * byDevice[0]));
        assertThat(byFleet[1]).isGreaterThan(3 * byFleet[0]);
    }

    /** The mean dynamics score over steps 200 to 400 of each stream (profile learned by 100). */
    private static double[] meanDynamicsAfterLearning(
            boolean byDevice, List<List<TelemetryEvent>> streams) throws Exception {
        ModelCard c = Fixtures.model().card();
        ModelCard card =
                new ModelCard(
                        c.version() + (byDevice ? "-device" : "-fleet"),
                        c.hiddenSize(),
                        c.features(),
                        1f,
                        c.warmupSteps(),
                        1f,
                        new ModelCard.Level(100, 200, 10, 0.01f, 1e9f), // never gates learning
                        null,
                        byDevice ? new ModelCard.DeviceNormalisation(0.1f) : null);
        double[] means = new double[streams.size()];
        for (int k = 0; k < means.length; k++) {
            try (Run run =
                    new Run(new ModelBundle(card, Fixtures.model().onnx()), null)
                            .feed(streams.get(k))) {
                means[k] =
                        run.steps().subList(200, 400).stream()
                                .mapToDouble(st -> st.dynamics)
                                .average()
                                .orElseThrow();
            }
        }
        return means;
    }

    /** The committed model with a stuck score alone: the forecast residual out of reach. */
    private static ModelBundle stuckModel(float scale) {
        ModelCard c = Fixtures.model().card();
        return new ModelBundle(
                residualOutOfReach("-stuck", new ModelCard.Stuck(scale, c.featureNames())),
                Fixtures.model().onnx());
    }

    /**
     * The committed model's card with {@code stuck} (or no stuck score) and nothing else to score
     * with: threshold 1, the forecast residual's scale out of reach, no level.
     */
    private static ModelCard residualOutOfReach(String suffix, ModelCard.Stuck stuck) {
        ModelCard c = Fixtures.model().card();
        return new ModelCard(
                c.version() + suffix,
                c.hiddenSize(),
                c.features(),
                1f,
                c.warmupSteps(),
                1e9f,
                null,
                stuck,
                null);
    }

    /** Normal steps with {@code rpm} held at step 199's value on steps [200, 260). */
    private static List<TelemetryEvent> withRpmFrozen() {
        int rpm = Fixtures.model().card().featureNames().indexOf("rpm");
        List<TelemetryEvent> frozen = new ArrayList<>();
        for (int i = 0; i < normal.size(); i++) {
            TelemetryEvent e = copy(normal.get(i));
            if (i >= 200 && i < 260) {
                e.values[rpm] = normal.get(199).values[rpm];
            }
            frozen.add(e);
        }
        return frozen;
    }

    @Test
    void shouldFindAReadingThatStopsMovingAndNameIt() throws Exception {
        try (Run run = new Run(stuckModel(2f), null).feed(withRpmFrozen())) {
            List<AnomalyEvent> events = run.events();

            // From step 202 the value has repeated 3 times (over the scale of 2); two such steps
            // (open-after 2 here) open the episode at step 203.
            assertThat(events).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            assertThat(events.get(0).ts).isEqualTo(normal.get(203).ts);
            assertThat(events.get(0).episodeStart).isEqualTo(normal.get(202).ts);
            assertThat(events.get(1).ts).isGreaterThanOrEqualTo(normal.get(260).ts);
            assertThat(events).extracting(e -> e.reason).containsOnly("stuck");
            assertThat(events.get(0).topFeatureNames[0]).isEqualTo("rpm");
        }
    }

    /**
     * A reading repeated 2^31 times (25 days at 1 kHz) is still stuck: its run stays at the largest
     * int instead of wrapping to a negative count, which would end the run and close the episode.
     */
    @Test
    void shouldKeepAStuckReadingStuckWhenItsRunReachesItsLimit() throws Exception {
        // A scale above close-after (10): a run that started again would close the episode.
        ModelBundle stuck = stuckModel(20f);
        List<TelemetryEvent> frozen = withRpmFrozen();
        List<AnomalyEvent> uninterrupted = eventsOf(stuck, frozen);
        assertThat(uninterrupted).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
        try (Run run = new Run(stuck, null).feed(frozen.subList(0, 230))) {
            editState(run, s -> Arrays.fill(s.unchangedRuns, Integer.MAX_VALUE - 2));
            run.feed(frozen.subList(230, 250));
            editState(run, s -> assertThat(s.unchangedRuns).contains(Integer.MAX_VALUE));
            run.feed(frozen.subList(250, frozen.size()));

            assertThat(run.events())
                    .extracting(e -> e.type + " " + e.episodeStart + " " + e.ts)
                    .containsExactlyElementsOf(
                            uninterrupted.stream()
                                    .map(e -> e.type + " " + e.episodeStart + " " + e.ts)
                                    .toList());
        }
    }

    @Test
    void shouldKeepScoringADeviceAfterAnAbsurdButFiniteReading() throws Exception {
        List<TelemetryEvent> events = new ArrayList<>();
        for (int i = 0; i < normal.size(); i++) {
            TelemetryEvent e = copy(normal.get(i));
            if (i == 200) {
                java.util.Arrays.fill(e.values, 3e38f); // normalises to infinity
            }
            events.add(e);
        }

        try (Run run = new Run().feed(events)) {
            List<ScoredStep> steps = run.steps();

            // Every step has a finite score, the absurd one far above the threshold; the only
            // episode is the one it starts (the same device without it never alerts), so the
            // memory recovered instead of carrying a NaN.
            assertThat(steps).hasSize(normal.size()).allMatch(st -> Float.isFinite(st.score));
            assertThat(steps.get(200).score).isGreaterThan(1f);
            assertThat(run.events()).extracting(e -> e.type).containsExactly("OPEN", "CLOSE");
            assertThat(run.events())
                    .allMatch(
                            e ->
                                    e.episodeStart >= normal.get(200).ts
                                            && e.episodeStart <= normal.get(205).ts);
            assertThat(run.count(Metrics.CLAMPED_VALUES))
                    .isEqualTo((long) Fixtures.model().card().featureCount());
        }
    }

    @Test
    void shouldNotLearnALastingShiftIntoTheProfile() throws Exception {
        float scale = steadyLevelScale();

        try (Run run = new Run(withLevel(scale), null).feed(steady("ambient_c", 1f, 200, 400))) {
            List<ScoredStep> steps = run.steps();

            // 180 steps into the shift the device is as far from its normal as 20 steps in.
            assertThat(steps.get(399).level).isGreaterThan(0.9f * steps.get(220).level);
            assertThat(run.events()).extracting(e -> e.type).containsExactly("OPEN");
        }
    }

    /**
     * An episode a lasting change holds open sends nothing after its OPEN: the gauge {@code
     * episode_open_longest_ms} says how long it has been open, by the records' time.
     */
    @Test
    void shouldReportHowLongTheOldestOpenEpisodeHasBeenOpen() throws Exception {
        float scale = steadyLevelScale();
        List<TelemetryEvent> shifted = steady("ambient_c", 1f, 200, 400);

        try (Run run = new Run(withLevel(scale), null).feed(shifted.subList(0, 200))) {
            assertThat(run.function.episodeOpenLongestMs()).isZero(); // no episode yet
            run.feed(shifted.subList(200, shifted.size()));

            AnomalyEvent open = run.events().get(0);
            assertThat(open.type).isEqualTo("OPEN");
            long last = shifted.get(shifted.size() - 1).ts;
            assertThat(run.function.episodeOpenLongestMs())
                    .isEqualTo(last - open.episodeStart)
                    .isGreaterThan(0L);
        }
        try (Run run = new Run().feed(normal)) {
            assertThat(run.events()).isEmpty();
            assertThat(run.function.episodeOpenLongestMs()).isZero();
        }
    }

    @Test
    void shouldContinueAnEpisodeExactlyAfterSnapshotAndRestore() throws Exception {
        List<TelemetryEvent> stream = withRpmFault(200, 215);
        List<AnomalyEvent> uninterrupted = eventsOf(Fixtures.model(), stream);

        List<AnomalyEvent> resumed = new ArrayList<>();
        OperatorSubtaskState snapshot;
        try (Run first = new Run().feed(stream.subList(0, 205))) {
            assertThat(first.events()).extracting(e -> e.type).containsExactly("OPEN");
            resumed.addAll(first.events());
            snapshot = first.harness.snapshot(1L, 0L);
        }
        try (Run second = new Run(Fixtures.model(), snapshot)) {
            second.feed(stream.subList(205, stream.size()));
            resumed.addAll(second.events());
        }

        assertThat(resumed).usingRecursiveFieldByFieldElementComparator().isEqualTo(uninterrupted);
    }

    /** The committed model under another version: what a new release of it looks like. */
    private static ModelBundle nextVersion() {
        ModelBundle current = Fixtures.model();
        ModelCard c = current.card();
        return new ModelBundle(c.withVersion("next-version"), current.onnx());
    }

    private static ScoringSettings onModelChange(ModelChange policy) {
        return SETTINGS.toBuilder().onModelChange(policy).build();
    }

    @Test
    void shouldKeepTheMemoryAcrossAModelChangeWhenAskedTo() throws Exception {
        List<Float> uninterrupted;
        try (Run run = new Run().feed(normal.subList(0, 150))) {
            uninterrupted = run.scores();
        }
        OperatorSubtaskState snapshot;
        try (Run first = new Run().feed(normal.subList(0, 100))) {
            snapshot = first.harness.snapshot(1L, 0L);
        }

        try (Run second = new Run(nextVersion(), snapshot, onModelChange(ModelChange.KEEP))) {
            second.feed(normal.subList(100, 150));

            assertThat(second.scores()).containsExactlyElementsOf(uninterrupted.subList(100, 150));
        }
    }

    @Test
    void shouldStopNamingBothVersionsWhenAModelChangeMustFail() throws Exception {
        OperatorSubtaskState snapshot;
        try (Run first = new Run().feed(normal.subList(0, 10))) {
            snapshot = first.harness.snapshot(1L, 0L);
        }

        try (Run second = new Run(nextVersion(), snapshot, onModelChange(ModelChange.FAIL))) {
            assertThatThrownBy(() -> second.feed(normal.subList(10, 11)))
                    .hasMessageContaining("written by model " + Fixtures.model().card().version())
                    .hasMessageContaining("this job runs next-version")
                    .hasMessageContaining("vigil.model.on-change is fail");
        }
    }

    /**
     * A shadow model of another version than the shadow state's, with {@code on-change: fail}: the
     * job stops as for the serving model, and the message says it is the shadow's.
     */
    @Test
    void shouldNameTheShadowWhenItsModelChangeMustFail() throws Exception {
        OperatorSubtaskState snapshot;
        try (var h =
                SilenceTest.keyed(
                        new GruScoringFunction.Operator(
                                new GruScoringFunction(
                                        Fixtures.model(), Fixtures.model(), SETTINGS)))) {
            h.open();
            for (int i = 0; i < 5; i++) {
                h.processElement(new StreamRecord<>(copy(normal.get(i)), normal.get(i).ts));
            }
            snapshot = h.snapshot(1L, 0L);
        }
        try (var h =
                SilenceTest.keyed(
                        new GruScoringFunction.Operator(
                                new GruScoringFunction(
                                        Fixtures.model(),
                                        nextVersion(),
                                        onModelChange(ModelChange.FAIL))))) {
            h.initializeState(snapshot);
            h.open();
            StreamRecord<TelemetryEvent> next =
                    new StreamRecord<>(copy(normal.get(5)), normal.get(5).ts);
            assertThatThrownBy(() -> h.processElement(next))
                    .hasMessageContaining("has shadow-model state written by model")
                    .hasMessageContaining("runs next-version as its shadow")
                    .hasMessageContaining("or without a shadow");
        }
    }

    @Test
    void shouldResetEachDeviceOnceWhenTheModelVersionChanges() throws Exception {
        ModelBundle next = nextVersion();
        OperatorSubtaskState snapshot;
        try (Run first = new Run().feed(normal.subList(0, 100))) {
            snapshot = first.harness.snapshot(1L, 0L);
        }

        try (Run second = new Run(next, snapshot)) {
            second.feed(normal.subList(100, 150));
            second.feed(List.of(normal.get(120))); // the order guard survives the reset

            assertThat(second.scores().get(0)).isZero(); // memory of the old model dropped
            assertThat(second.scores().subList(1, 50)).allMatch(s -> s > 0);
            assertThat(second.late()).hasSize(1);
        }
    }

    /**
     * The state backend drops a device silent for its time-to-live (processing time; with the
     * silence watch on, the default, twice {@code vigil.state.ttl}: {@link
     * ScoringSettings#backendTtl}). Here no watermark comes, so the watch never forgets it.
     */
    @Test
    void shouldForgetADeviceSilentForLongerThanTheTtl() throws Exception {
        assertThat(SETTINGS.backendTtl()).isEqualTo(TTL.multipliedBy(2));
        try (Run run = new Run()) {
            run.harness.setStateTtlProcessingTime(0);
            run.feed(normal.subList(0, 50));
            run.harness.setStateTtlProcessingTime(SETTINGS.backendTtl().toMillis() + 1);
            run.feed(List.of(normal.get(30))); // an old step: no order guard remembers it

            assertThat(run.late()).isEmpty();
            assertThat(run.scores()).hasSize(51);
            assertThat(run.scores().get(50)).isZero(); // a fresh device: no forecast
        }
    }

    @Test
    void shouldNotKeepADeviceAliveByItsLateRecords() throws Exception {
        try (Run run = new Run()) {
            run.harness.setStateTtlProcessingTime(0);
            run.feed(normal.subList(0, 50));
            // Late re-sends just before the TTL runs out: turned away, and they do not refresh it.
            run.harness.setStateTtlProcessingTime(SETTINGS.backendTtl().toMillis() - 1);
            run.feed(List.of(normal.get(49), normal.get(30)));
            run.harness.setStateTtlProcessingTime(SETTINGS.backendTtl().toMillis() + 1);
            run.feed(List.of(normal.get(30))); // the state is gone: a new device's first step

            assertThat(run.late()).hasSize(2);
            assertThat(run.scores()).hasSize(51);
        }
    }

    @Test
    void shouldWriteLateRecordsAsDeadLettersThatReadBackAsTheRecords() throws Exception {
        List<TelemetryEvent> in = new ArrayList<>(normal.subList(0, 30));
        in.add(normal.get(29)); // the last scored step again
        in.add(normal.get(25)); // an older one

        try (Run run = new Run().feed(in)) {
            List<DeadLetter> letters = run.lateLetters();
            assertThat(letters)
                    .extracting(d -> d.reason)
                    .containsExactly(DeadLetterReason.DUPLICATE, DeadLetterReason.OUT_OF_ORDER);
            assertThat(letters.get(0).detail)
                    .isEqualTo("seq " + normal.get(29).seq + " was already scored for this device");
            assertThat(letters.get(1).detail)
                    .isEqualTo(
                            "seq "
                                    + normal.get(25).seq
                                    + " is before the last scored seq "
                                    + normal.get(29).seq);
            assertThat(letters).allMatch(d -> d.topic == null && d.offset == -1);
            assertThat(run.late())
                    .usingRecursiveFieldByFieldElementComparator()
                    .containsExactly(normal.get(29), normal.get(25));
        }
        // Under the Avro input format, the letters carry the records as Avro reads them back
        ScoringSettings avro = SETTINGS.toBuilder().inputFormat(InputFormat.AVRO).build();
        try (Run run = new Run(Fixtures.model(), null, avro).feed(in)) {
            InputFormat.Parser parser =
                    InputFormat.AVRO.parser(Fixtures.model().card().featureNames());
            assertThat(run.lateLetters().stream().map(d -> parser.parse(d.raw).event()))
                    .usingRecursiveFieldByFieldElementComparator()
                    .containsExactly(normal.get(29), normal.get(25));
        }
    }

    /**
     * A device that reboots and starts its seq again (its ts moving on) is a restart: its memory is
     * reset and it is scored from there, not turned away as late until its counter catches up.
     */
    @Test
    void shouldTakeASeqThatStartsAgainAsARestartOfTheDevice() throws Exception {
        List<TelemetryEvent> rebooted = new ArrayList<>(normal.subList(0, 100));
        List<TelemetryEvent> afterReboot = new ArrayList<>();
        for (int i = 100; i < 150; i++) {
            TelemetryEvent e = copy(normal.get(i));
            e.seq = i - 100; // the counter starts again at 0
            afterReboot.add(e);
        }
        rebooted.addAll(afterReboot);

        try (Run run = new Run().feed(rebooted);
                Run fresh = new Run().feed(afterReboot)) {
            assertThat(run.late()).isEmpty();
            assertThat(run.steps()).hasSize(150);
            // Memory reset: the forecast residuals are a new device's on the same steps.
            assertThat(run.steps().subList(100, 150))
                    .extracting(st -> st.dynamics)
                    .containsExactlyElementsOf(
                            fresh.steps().stream().map(st -> st.dynamics).toList());
        }
    }

    /**
     * Without seq, a clock stepped back by more than {@code vigil.scoring.restart-step-back} is a
     * restart; a step back by less is late until the clock catches up. One record stamped years
     * ahead blinds its device for one step, not for years.
     */
    @Test
    void shouldTakeAClockSteppedFarBackAsARestartAndANearStepAsLate() throws Exception {
        List<TelemetryEvent> noSeq = new ArrayList<>();
        for (TelemetryEvent e : normal.subList(0, 150)) {
            noSeq.add(TelemetryEvent.withoutSeq(e.deviceId, e.ts, e.values));
        }
        List<TelemetryEvent> farBack = new ArrayList<>();
        List<TelemetryEvent> nearBack = new ArrayList<>();
        List<TelemetryEvent> oneFromTheFuture = new ArrayList<>();
        for (int i = 0; i < 150; i++) {
            TelemetryEvent e = noSeq.get(i);
            long ts = e.ts;
            farBack.add(
                    TelemetryEvent.withoutSeq(
                            e.deviceId, i < 100 ? ts : ts - 7_200_000L, e.values)); // 2 h back
            nearBack.add(
                    TelemetryEvent.withoutSeq(
                            e.deviceId, i < 100 ? ts : ts - 600_000L, e.values)); // 10 min back
            oneFromTheFuture.add(
                    TelemetryEvent.withoutSeq(
                            e.deviceId, i == 50 ? ts + 10 * 365 * 86_400_000L : ts, e.values));
        }
        long minute = normal.get(1).ts - normal.get(0).ts;
        assertThat(minute).isEqualTo(60_000L);

        try (Run far = new Run().feed(farBack);
                Run near = new Run().feed(nearBack);
                Run future = new Run().feed(oneFromTheFuture)) {
            assertThat(far.late()).isEmpty();
            assertThat(far.steps()).hasSize(150);
            // 10 minutes back: the steps up to the last scored time are late (10 of them, the
            // one at the same time a duplicate), then scoring goes on.
            assertThat(near.lateLetters())
                    .extracting(d -> d.reason)
                    .containsOnly(DeadLetterReason.OUT_OF_ORDER, DeadLetterReason.DUPLICATE)
                    .hasSize(10)
                    .last()
                    .isEqualTo(DeadLetterReason.DUPLICATE);
            assertThat(near.steps()).hasSize(140);
            assertThat(future.late()).isEmpty();
            assertThat(future.steps()).hasSize(150);
        }
    }

    /**
     * A restored state of this model's version whose arrays do not fit the card (a savepoint of a
     * faulty build, or edited) resets the device instead of failing the job on every restart.
     */
    @Test
    void shouldResetAStoredStateThatDoesNotFitTheCard() throws Exception {
        try (Run run = new Run().feed(normal.subList(0, 50))) {
            editState(
                    run,
                    broken -> {
                        broken.hidden = new float[3]; // not the card's hidden size
                        broken.levelMean = new float[1]; // nor its targets
                    });

            run.feed(normal.subList(50, 100));

            assertThat(run.late()).isEmpty(); // the order guard survives
            assertThat(run.scores()).hasSize(100);
            assertThat(run.scores().get(50)).isZero(); // a reset: no forecast to score against
            assertThat(run.scores().subList(51, 100)).allMatch(score -> score > 0);
        }
    }

    /** The events of one uninterrupted run of {@code events}, scored by {@code bundle}. */
    private static List<AnomalyEvent> eventsOf(ModelBundle bundle, List<TelemetryEvent> events)
            throws Exception {
        try (Run run = new Run(bundle, null).feed(events)) {
            return run.events();
        }
    }

    /** Changes the stored state of the device of {@link #normal}, as a restore could bring it. */
    private static void editState(Run run, java.util.function.Consumer<DeviceState> edit)
            throws Exception {
        ValueState<DeviceState> state = stateOf(run, normal.get(0).deviceId);
        DeviceState s = state.value();
        edit.accept(s);
        state.update(s);
    }

    /** The stored state of a device, its key made the backend's current one. */
    private static ValueState<DeviceState> stateOf(Run run, String deviceId) throws Exception {
        KeyedStateBackend<String> backend = run.harness.getOperator().getKeyedStateBackend();
        backend.setCurrentKey(deviceId);
        return backend.getPartitionedState(
                VoidNamespace.INSTANCE,
                VoidNamespaceSerializer.INSTANCE,
                DeviceStateSchema.descriptor(TTL));
    }

    /**
     * A device that has stepped 2^31 times without a reset (25 days at 1 kHz) is still past its
     * warm-up: its step count stays at the largest int instead of wrapping to a negative one, which
     * would keep every later step in warm-up, where no alert can come from.
     */
    @Test
    void shouldStayPastWarmUpWhenTheStepCountReachesItsLimit() throws Exception {
        List<TelemetryEvent> stream = withRpmFault(200, 215);
        List<AnomalyEvent> uninterrupted = eventsOf(Fixtures.model(), stream);
        try (Run run = new Run().feed(stream.subList(0, 150))) {
            editState(run, s -> s.steps = Integer.MAX_VALUE - 2);
            run.feed(stream.subList(150, stream.size()));

            assertThat(run.events())
                    .usingRecursiveFieldByFieldElementComparator()
                    .isEqualTo(uninterrupted);
            editState(run, s -> assertThat(s.steps).isEqualTo(Integer.MAX_VALUE));
        }
    }

    @Test
    void shouldKeepADeviceThatKeepsTalking() throws Exception {
        try (Run run = new Run()) {
            for (int i = 0; i < 50; i++) {
                run.harness.setStateTtlProcessingTime(i * TTL.toMillis() / 2); // every half TTL
                run.feed(List.of(normal.get(i)));
            }

            assertThat(run.scores().subList(1, 50)).allMatch(score -> score > 0);
        }
    }

    @Test
    void shouldKeepDevicesApart() throws Exception {
        List<TelemetryEvent> twoDevices = new ArrayList<>();
        for (TelemetryEvent e : normal.subList(0, 100)) {
            twoDevices.add(e);
            twoDevices.add(new TelemetryEvent("other", e.ts, e.seq, e.values));
        }
        try (Run one = new Run().feed(normal.subList(0, 100));
                Run two = new Run().feed(twoDevices)) {
            List<ScoredStep> steps = new ArrayList<>();
            two.harness.getSideOutput(Outputs.SCORES).forEach(r -> steps.add(r.getValue()));
            assertThat(steps.stream().filter(s -> s.deviceId.equals("other")).map(s -> s.score))
                    .containsExactlyElementsOf(one.scores());
        }
    }
}
