package dev.vigil.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import dev.vigil.tools.LocalRun;
import dev.vigil.tools.SavepointManifest;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import dev.vigil.tools.kafka.TopicIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every golden savepoint committed under {@code testdata/savepoints/} (one per state format ever
 * released, each from the first part of the test fleet's stream; see the README there) restores in
 * the current code and continues exactly where it stopped: on a fresh broker holding the whole
 * stream, the restored job (at another parallelism) scores the rest of it to the same scores and
 * anomaly events as one uninterrupted run of the current code.
 */
class GoldenSavepointsITCase {

    @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = Fixtures.miniCluster(3);

    private static Path stream;
    private static long total;

    /** A broker per savepoint: each one resumes at its own offsets of a topic of its own name. */
    private EmbeddedKafkaBroker kafka;

    @BeforeAll
    static void generateTheFleet(@TempDir Path dir) throws Exception {
        new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(dir);
        stream = dir.resolve("test.jsonl");
        try (Stream<String> lines = Files.lines(stream)) {
            total = lines.filter(l -> !l.isEmpty()).count();
        }
    }

    @BeforeEach
    void startKafka() throws Exception {
        kafka = EmbeddedKafkaBroker.start();
    }

    @AfterEach
    void stopKafka() throws Exception {
        if (kafka != null) {
            kafka.close();
        }
    }

    static List<Path> goldenSavepoints() throws Exception {
        try (Stream<Path> dirs = Files.list(Fixtures.repoRoot().resolve("testdata/savepoints"))) {
            List<Path> all =
                    dirs.filter(d -> Files.isRegularFile(d.resolve("_metadata"))).sorted().toList();
            assertThat(all).as("committed golden savepoints").isNotEmpty();
            return all;
        }
    }

    @ParameterizedTest(name = "savepoint {0}")
    @MethodSource("goldenSavepoints")
    void shouldRestoreAndContinueLikeAnUninterruptedRun(Path golden, @TempDir Path dir)
            throws Exception {
        // One of a job with a shadow model is restored without it, as when the shadow is removed:
        // the shadow's sink is in the graph either way (no state is left unclaimed, which Flink
        // would refuse), and the serving model continues as always.
        restoreAndCompare(golden, dir, Map.of(), Map.of());
    }

    /** The golden savepoints of a job that ran a shadow model (with a {@code shadow-model/}). */
    static List<Path> shadowedGoldenSavepoints() throws Exception {
        return goldenSavepoints().stream()
                .filter(d -> Files.isDirectory(d.resolve("shadow-model")))
                .toList();
    }

    /**
     * A savepoint of a job that ran a shadow model, restored with the same shadow ({@code
     * 0.4.0-shadow} kept each model's state under its own name; since format 5 they share one
     * entry): the shadow continues from the memory it had, as in an uninterrupted run with the
     * shadow from the start. No device's shadow warms up again (but after a gap, as the serving
     * model), and the shadow's episodes after the savepoint are that run's.
     */
    @ParameterizedTest(name = "savepoint {0}")
    @MethodSource("shadowedGoldenSavepoints")
    void shouldRestoreAShadowedSavepointAndContinueTheShadowFromItsMemory(
            Path golden, @TempDir Path dir) throws Exception {
        String shadowDir = golden.resolve("shadow-model").toString();
        kafka.createTopics(2, List.of("shadow-whole", "shadow-restored"));
        JobExecutionResult result =
                restoreAndCompare(
                        golden,
                        dir,
                        Map.of(
                                VigilOptions.MODEL_SHADOW_DIR.key(),
                                shadowDir,
                                VigilOptions.TOPIC_SHADOW_ANOMALIES.key(),
                                "shadow-whole"),
                        Map.of(
                                VigilOptions.MODEL_SHADOW_DIR.key(),
                                shadowDir,
                                VigilOptions.TOPIC_SHADOW_ANOMALIES.key(),
                                "shadow-restored"));

        assertThat(LocalRun.counted(result, "shadow_" + Metrics.RESETS_MODEL_CHANGE)).isZero();
        // Warm-ups after the restore are the gap resets of the stream's rest, as for the serving
        // model: a shadow restored without its memory would warm up every device again.
        assertThat(LocalRun.counted(result, "shadow_" + Metrics.WARMING_UP))
                .isEqualTo(LocalRun.counted(result, Metrics.WARMING_UP));
        assertThat(LocalRun.counted(result, "shadow_" + Metrics.SCORED))
                .isEqualTo(LocalRun.counted(result, Metrics.SCORED));
        Map<String, Float> after = scores("restored-" + golden.getFileName());
        List<AnomalyEvent> expected =
                LocalRun.committedAnomalies(kafka.bootstrapServers(), "shadow-whole").stream()
                        .filter(e -> after.containsKey(e.deviceId + "@" + e.ts))
                        .toList();
        assertThat(expected).as("the shadow's episodes after the savepoint").isNotEmpty();
        Fixtures.assertSameAnomalies(
                LocalRun.committedAnomalies(kafka.bootstrapServers(), "shadow-restored"),
                expected,
                1e-4f);
    }

    /**
     * The newest golden savepoint of a job without a shadow ({@code 0.4.0}; {@code 0.5.0} has one)
     * restored with a shadow model added (its model under another version): the shadow's state of
     * every device starts empty beside the restored one, and the serving model continues exactly as
     * without it.
     */
    @Test
    void shouldRestoreTheNewestWithoutAShadowWithOneAddedAndServeAsWithoutIt(@TempDir Path dir)
            throws Exception {
        Path golden = Fixtures.repoRoot().resolve("testdata/savepoints/0.4.0"); // format 4
        Path shadowDir = dir.resolve("shadow-model");
        Files.createDirectories(shadowDir);
        Files.copy(
                golden.resolve("model").resolve(ModelBundle.ONNX_FILE),
                shadowDir.resolve(ModelBundle.ONNX_FILE));
        ModelCard card = ModelBundle.load(golden.resolve("model")).card();
        String text = Files.readString(golden.resolve("model").resolve(ModelCard.FILE));
        Files.writeString(
                shadowDir.resolve(ModelCard.FILE),
                text.replace("\"" + card.version() + "\"", "\"" + card.version() + "-shadow\""));
        kafka.createTopics(2, List.of("anomalies-shadow-restored"));

        JobExecutionResult result =
                restoreAndCompare(
                        golden,
                        dir,
                        Map.of(),
                        Map.of(
                                VigilOptions.MODEL_SHADOW_DIR.key(),
                                shadowDir.toString(),
                                VigilOptions.TOPIC_SHADOW_ANOMALIES.key(),
                                "anomalies-shadow-restored"));

        // Every device met the shadow for the first time: a new state, no model change
        assertThat(LocalRun.counted(result, "shadow_" + Metrics.RESETS_MODEL_CHANGE)).isZero();
        assertThat(LocalRun.counted(result, "shadow_" + Metrics.SCORED))
                .isEqualTo(LocalRun.counted(result, Metrics.SCORED));
    }

    /**
     * The newest golden savepoint (canonical, as every savepoint the job takes by default) restored
     * on Flink's heap backend, which the README suggests for a shorter checkpoint pause when a
     * fleet's state fits in the heap: the same state format is read through the heap backend's own
     * time-to-live wrapper, and the state cache hands it objects (no serialization) and keeps none
     * after a write-back; the rest of the stream is scored as one uninterrupted run on RocksDB
     * scores it.
     */
    @Test
    void shouldRestoreTheNewestOnTheHeapBackendAndContinueAsOnRocksDb(@TempDir Path dir)
            throws Exception {
        Path newest =
                goldenSavepoints().stream()
                        .filter(d -> d.getFileName().toString().matches("\\d+\\.\\d+\\.\\d+"))
                        .max(Comparator.comparing(GoldenSavepointsITCase::release, Arrays::compare))
                        .orElseThrow();
        restoreAndCompare(
                newest, dir, Map.of(), Map.of(StateBackendOptions.STATE_BACKEND.key(), "hashmap"));
    }

    /** A golden savepoint's release, {@code 0.6.0} as {0, 6, 0}. */
    private static int[] release(Path golden) {
        return Arrays.stream(golden.getFileName().toString().split("\\."))
                .mapToInt(Integer::parseInt)
                .toArray();
    }

    /**
     * The newest golden savepoint written before the variability score ({@code 0.6.0}, format 6)
     * restored with its own model's card given a variability section (the same model otherwise, and
     * the same version): every device starts learning its variability profile at its first step
     * after the restore (scored from the step after its profile's last), and continues all else
     * from its saved state. Against the same savepoint restored with its own card: every step after
     * it has the same level, and the same forecast residual until the device's variability first
     * crosses the threshold (from there the device's scale of forecast residual adapts on other
     * steps); no device is reset or warms up again.
     */
    @Test
    void shouldRestoreAStateWithoutTheVariabilityIntoACardWithItAndLearnItThere(@TempDir Path dir)
            throws Exception {
        Path golden = Fixtures.repoRoot().resolve("testdata/savepoints/0.6.0");
        ModelBundle own = ModelBundle.load(golden.resolve("model"));
        assertThat(own.card().variability()).isNull();
        ModelCard.Variability variability =
                ModelBundle.load(Fixtures.repoRoot().resolve("testdata/savepoints/0.8.0/model"))
                        .card()
                        .variability();
        ModelBundle withIt =
                new ModelBundle(
                        own.card().withVariability(own.card().version(), variability), own.onnx());
        SavepointManifest manifest = SavepointManifest.read(golden);
        kafka.createTopics(manifest.partitions(), List.of(manifest.topic()));
        assertThat(TopicIO.replay(kafka.bootstrapServers(), manifest.topic(), stream))
                .isEqualTo(total);

        JobExecutionResult asBefore = restore(golden, own, "as-before", dir, Map.of()).result();
        JobExecutionResult learning = restore(golden, withIt, "learning", dir, Map.of()).result();

        for (JobExecutionResult result : List.of(asBefore, learning)) {
            assertThat(LocalRun.counted(result, Metrics.RESETS_MODEL_CHANGE)).isZero();
            assertThat(LocalRun.counted(result, Metrics.RESETS_INVALID_STATE)).isZero();
            assertThat(LocalRun.counted(result, Metrics.RESETS_NON_FINITE)).isZero();
        }
        assertThat(LocalRun.counted(learning, Metrics.WARMING_UP))
                .isEqualTo(LocalRun.counted(asBefore, Metrics.WARMING_UP));
        Map<String, ScoredStep> before = steps("as-before");
        Map<String, ScoredStep> after = steps("learning");
        assertThat(after.keySet()).isEqualTo(before.keySet());
        Map<String, Integer> stepsOfDevice = new HashMap<>();
        Map<String, Integer> firstScored = new HashMap<>();
        Set<String> crossed = new HashSet<>();
        float threshold = own.card().threshold();
        int[] sameDynamics = {0};
        after.values().stream()
                .sorted(Comparator.comparingLong((ScoredStep s) -> s.ts))
                .forEach(
                        s -> {
                            String step = s.deviceId + "@" + s.ts;
                            ScoredStep b = before.get(step);
                            assertThat(b.variability).isNaN();
                            // The device's scale of forecast residual, once learned, adapts on the
                            // steps whose combined score is at or below the threshold: the same
                            // steps until the variability first crosses it, not after.
                            if (!crossed.contains(s.deviceId)) {
                                assertSameComponent(s.dynamics, b.dynamics, "dynamics " + step);
                                sameDynamics[0]++;
                            }
                            assertSameComponent(s.level, b.level, "level " + step);
                            if (s.variability > threshold) {
                                crossed.add(s.deviceId);
                            }
                            int n = stepsOfDevice.merge(s.deviceId, 1, Integer::sum);
                            if (!Float.isNaN(s.variability)) {
                                firstScored.putIfAbsent(s.deviceId, n);
                            }
                        });
        // Every device that stepped past its profile after the restore has its variability
        // scored from the step after the profile's last: it learned from its first step on.
        stepsOfDevice.forEach(
                (device, n) -> {
                    if (n > variability.profileSteps()) {
                        assertThat(firstScored.get(device))
                                .as(device)
                                .isEqualTo(variability.profileSteps() + 1);
                    } else {
                        assertThat(firstScored).as(device).doesNotContainKey(device);
                    }
                });
        assertThat(firstScored).isNotEmpty();
        assertThat(sameDynamics[0]).isGreaterThan(after.size() / 2);
    }

    /**
     * Restores {@code golden} with {@code extra} options into a job of the current code and checks
     * that it continues as an uninterrupted run (with {@code wholeExtra}); returns the restored
     * run's result.
     */
    private JobExecutionResult restoreAndCompare(
            Path golden, Path dir, Map<String, String> wholeExtra, Map<String, String> extra)
            throws Exception {
        SavepointManifest manifest = SavepointManifest.read(golden);
        ModelBundle model = ModelBundle.load(golden.resolve("model"));
        String release = golden.getFileName().toString();
        // The savepoint's Kafka source resumes at its offsets in this topic: same name, same
        // partitions, the same records in the same order.
        String topic = manifest.topic();
        kafka.createTopics(manifest.partitions(), List.of(topic));
        assertThat(TopicIO.replay(kafka.bootstrapServers(), topic, stream)).isEqualTo(total);

        String whole = "whole-" + release;
        kafka.createTopics(4, LocalRun.outputTopics(whole));
        Map<String, String> uninterrupted = config(topic, whole, dir.resolve("whole"));
        uninterrupted.putAll(wholeExtra);
        VigilJob.run(VigilConfig.of(uninterrupted), model);

        String restored = "restored-" + release;
        LocalRun.Stopped stopped = restore(golden, model, restored, dir, extra);

        // Every device continued from its saved memory: nothing was reset or re-warmed.
        assertThat(LocalRun.counted(stopped.result(), Metrics.RESETS_MODEL_CHANGE)).isZero();
        Map<String, Float> before = scores(whole);
        Map<String, Float> after = scores(restored);
        assertThat(after).hasSize(before.size() - (int) manifest.scored());
        after.forEach(
                (step, score) ->
                        assertThat(score)
                                .as(step)
                                .isCloseTo(before.get(step), within(1e-4f * before.get(step))));
        // The events of the steps after the savepoint; a silence's, of the step it began after.
        List<AnomalyEvent> expected =
                anomalies(whole).stream()
                        .filter(
                                e ->
                                        after.containsKey(
                                                e.deviceId
                                                        + "@"
                                                        + (e.isSilence() ? e.episodeStart : e.ts)))
                        .toList();
        List<AnomalyEvent> actual = anomalies(restored);
        Fixtures.assertSameAnomalies(actual, expected, 1e-4f);
        for (int i = 0; i < expected.size(); i++) {
            AnomalyEvent want = expected.get(i);
            AnomalyEvent got = actual.get(i);
            // The explanation: a CLOSE's comes from the episode's shares kept in the state.
            assertThat(got.topFeatureNames).as(want.eventId).containsExactly(want.topFeatureNames);
            for (int f = 0; f < want.topFeatureShares.length; f++) {
                assertThat(got.topFeatureShares[f])
                        .isCloseTo(want.topFeatureShares[f], within(1e-4f));
            }
        }
        return stopped.result();
    }

    private static void assertSameComponent(float got, float want, String what) {
        if (Float.isNaN(want)) {
            assertThat(got).as(what).isNaN();
        } else {
            assertThat(got).as(what).isCloseTo(want, within(1e-4f * want));
        }
    }

    /**
     * Restores {@code golden} (its stream already in its topic) with {@code model} and {@code
     * extra} options at another parallelism, into the output topics of {@code run}, and stops it
     * with a savepoint once it has read the rest of the stream.
     */
    private LocalRun.Stopped restore(
            Path golden, ModelBundle model, String run, Path dir, Map<String, String> extra)
            throws Exception {
        SavepointManifest manifest = SavepointManifest.read(golden);
        kafka.createTopics(4, LocalRun.outputTopics(run));
        Map<String, String> resume = config(manifest.topic(), run, dir.resolve(run));
        resume.put(StateRecoveryOptions.SAVEPOINT_PATH.key(), golden.toUri().toString());
        resume.put(VigilOptions.KAFKA_BOUNDED.key(), "false");
        resume.put("parallelism.default", "3");
        resume.putAll(extra);
        return LocalRun.runThenStop(
                VigilConfig.of(resume),
                model,
                total - manifest.records(),
                dir.resolve(run + "-savepoints"),
                Duration.ofMinutes(2));
    }

    /**
     * A run of the whole job from the stream's topic. State time-to-live is set long: the golden
     * savepoint's devices were last written when it was made, and must not expire with age.
     */
    private Map<String, String> config(String topic, String run, Path checkpoints) {
        Map<String, String> c =
                new HashMap<>(
                        LocalRun.config(
                                kafka.bootstrapServers(),
                                Fixtures.modelDir(),
                                run,
                                checkpoints,
                                "1s",
                                2));
        c.put(VigilOptions.TOPIC_TELEMETRY.key(), topic);
        c.put(VigilOptions.STATE_TTL.key(), "36500 d");
        return c;
    }

    /** Each scored step of a run, as "device@ts" to score. */
    private Map<String, Float> scores(String run) {
        Map<String, Float> scores = new HashMap<>();
        steps(run).forEach((step, s) -> scores.put(step, s.score));
        return scores;
    }

    /** Each scored step of a run, as "device@ts" to the step with its components. */
    private Map<String, ScoredStep> steps(String run) {
        Map<String, ScoredStep> steps = new HashMap<>();
        for (byte[] v : TopicIO.readCommitted(kafka.bootstrapServers(), "scores-" + run)) {
            ScoredStep s = WireFormat.parseScore(v);
            assertThat(steps.put(s.deviceId + "@" + s.ts, s)).as("duplicate").isNull();
        }
        return steps;
    }

    private List<AnomalyEvent> anomalies(String run) {
        return LocalRun.committedAnomalies(kafka.bootstrapServers(), "anomalies-" + run);
    }
}
