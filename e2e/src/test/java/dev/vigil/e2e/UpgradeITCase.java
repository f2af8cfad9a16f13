package dev.vigil.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import dev.vigil.tools.LocalRun;
import dev.vigil.tools.LocalRun.Stopped;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import dev.vigil.tools.kafka.TopicIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Upgrades as operators do them, on a real broker and mini cluster: the stream arrives in three
 * parts; after each of the first two the job is stopped with a savepoint and started again from it
 * at another parallelism (2, then 3, then 1), the middle part without a scores topic and on Flink's
 * heap backend (RocksDB before and after it: the state moves between the two). The anomaly output
 * of the whole sequence equals an uninterrupted run's; with a new model version under {@code
 * reset}, every device's memory is reset once and nothing is lost. No restore allows unclaimed
 * state: unsetting the scores topic and setting it again leaves every operator in the graph.
 */
class UpgradeITCase {

    @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = Fixtures.miniCluster(3);

    private static final Duration WAIT = Duration.ofMinutes(2);

    private static EmbeddedKafkaBroker kafka;
    private static List<Path> parts;
    private static long total;

    @BeforeAll
    static void startKafkaAndSplitTheFleet(@TempDir Path dir) throws Exception {
        new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(dir);
        List<String> lines = Files.readAllLines(dir.resolve("test.jsonl"));
        total = lines.size();
        int third = lines.size() / 3;
        parts =
                List.of(
                        Files.write(dir.resolve("part1.jsonl"), lines.subList(0, third)),
                        Files.write(dir.resolve("part2.jsonl"), lines.subList(third, 2 * third)),
                        Files.write(
                                dir.resolve("part3.jsonl"),
                                lines.subList(2 * third, lines.size())));
        kafka = EmbeddedKafkaBroker.start();
    }

    @AfterAll
    static void stopKafka() throws Exception {
        if (kafka != null) {
            kafka.close();
        }
    }

    private static Map<String, String> run(
            String input, String run, int parallelism, Path dir, boolean bounded) throws Exception {
        kafka.createTopics(4, LocalRun.outputTopics(run));
        Map<String, String> c =
                LocalRun.config(
                        kafka.bootstrapServers(), Fixtures.modelDir(), run, dir, "500ms", 2);
        c.put(VigilOptions.TOPIC_TELEMETRY.key(), input);
        c.put(VigilOptions.KAFKA_BOUNDED.key(), Boolean.toString(bounded));
        c.put("parallelism.default", Integer.toString(parallelism));
        return c;
    }

    /**
     * Unbounded throughout: a Kafka source restored from an unbounded job's savepoint keeps
     * reading, bounded or not.
     */
    private static Stopped runThenStop(Map<String, String> config, ModelBundle model, long records)
            throws Exception {
        Path savepoints =
                Path.of(java.net.URI.create(config.get(VigilOptions.CHECKPOINT_DIR.key())))
                        .resolveSibling("savepoints");
        return LocalRun.runThenStop(VigilConfig.of(config), model, records, savepoints, WAIT);
    }

    /** Runs the three parts with savepoints between them; returns the run's anomaly events. */
    private List<AnomalyEvent> upgradeSequence(String name, ModelBundle last, Path dir)
            throws Exception {
        String input = "telemetry-" + name;
        kafka.createTopics(4, List.of(input));
        String run = "upgrade-" + name;
        long one = TopicIO.replay(kafka.bootstrapServers(), input, parts.get(0));
        Stopped first =
                runThenStop(run(input, run, 2, dir.resolve("cp1"), false), Fixtures.model(), one);

        long two = TopicIO.replay(kafka.bootstrapServers(), input, parts.get(1));
        Map<String, String> second = run(input, run, 3, dir.resolve("cp2"), false);
        second.put(StateRecoveryOptions.SAVEPOINT_PATH.key(), first.savepoint());
        second.put(VigilOptions.TOPIC_SCORES.key(), "");
        // The middle part on Flink's heap backend: a canonical savepoint moves between the two
        second.put(StateBackendOptions.STATE_BACKEND.key(), "hashmap");
        Stopped middle = runThenStop(second, Fixtures.model(), two);

        long three = TopicIO.replay(kafka.bootstrapServers(), input, parts.get(2));
        Map<String, String> third = run(input, run, 1, dir.resolve("cp3"), false);
        third.put(StateRecoveryOptions.SAVEPOINT_PATH.key(), middle.savepoint());
        Stopped last3 = runThenStop(third, last, three);
        resetsOnLastPart = LocalRun.counted(last3.result(), Metrics.RESETS_MODEL_CHANGE);
        readOnAllParts = 0;
        for (Stopped part : List.of(first, middle, last3)) {
            readOnAllParts += LocalRun.counted(part.result(), Metrics.RECORDS_IN);
        }
        return anomalies("anomalies-" + run);
    }

    private long resetsOnLastPart;

    /** Records the three jobs read: each restored from its savepoint's offsets, none twice. */
    private long readOnAllParts;

    private static List<AnomalyEvent> anomalies(String topic) {
        return LocalRun.committedAnomalies(kafka.bootstrapServers(), topic);
    }

    /** The whole stream in one bounded run, from the same topic. */
    private static List<AnomalyEvent> uninterrupted(String name, Path dir) throws Exception {
        String run = "whole-" + name;
        VigilJob.run(VigilConfig.of(run("telemetry-" + name, run, 2, dir, true)), Fixtures.model());
        return anomalies("anomalies-" + run);
    }

    @Test
    void shouldGiveTheSameAnomaliesThroughSavepointsAndRescaling(@TempDir Path dir)
            throws Exception {
        List<AnomalyEvent> upgraded =
                upgradeSequence("rescale", Fixtures.model(), dir.resolve("u"));
        List<AnomalyEvent> whole = uninterrupted("rescale", dir.resolve("w"));

        Fixtures.assertSameAnomalies(upgraded, whole, 1e-4f);
        assertThat(resetsOnLastPart).isZero();
        assertThat(readOnAllParts).isEqualTo(total);
    }

    @Test
    void shouldResetEveryDeviceOnceWhenTheModelVersionChanges(@TempDir Path dir) throws Exception {
        ModelCard c = Fixtures.model().card();
        ModelBundle next =
                new ModelBundle(c.withVersion(c.version() + "-next"), Fixtures.model().onnx());

        List<AnomalyEvent> upgraded = upgradeSequence("model", next, dir);

        // Every device of the fleet had state, and each is reset exactly once.
        assertThat(resetsOnLastPart).isEqualTo(FleetGenerator.Spec.defaults().devices());
        assertThat(upgraded).anyMatch(e -> e.modelVersion.equals(next.card().version()));
        assertThat(upgraded).extracting(e -> e.eventId).doesNotHaveDuplicates();
        assertThat(readOnAllParts).isEqualTo(total);
    }
}
