package dev.vigil.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.cli.LocalRun;
import dev.vigil.kafka.TopicIO;
import dev.vigil.model.ModelBundle;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.WireFormat;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.test.junit5.MiniClusterExtension;

/** Where the committed test data lives, found from any module's working directory. */
public final class Fixtures {

    private Fixtures() {}

    /** The repository root: the first ancestor holding testdata/model. */
    public static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.isDirectory(p.resolve("testdata/model"))) {
            p = p.getParent();
        }
        if (p == null) {
            throw new IllegalStateException("cannot find testdata/model above " + Path.of(""));
        }
        return p;
    }

    public static Path modelDir() {
        return repoRoot().resolve("testdata/model");
    }

    /**
     * The configuration of a bounded test run of the whole job against {@code bootstrapServers}
     * (see {@link LocalRun}): the committed model, output topics and ids suffixed with {@code run},
     * parallelism 2. Callers add or override keys.
     */
    public static Map<String, String> boundedRun(
            String bootstrapServers, String run, Path checkpoints, String checkpointInterval) {
        return LocalRun.config(
                bootstrapServers, modelDir(), run, checkpoints, checkpointInterval, 2);
    }

    /** The output topics {@link #boundedRun} writes to. */
    public static List<String> outputTopics(String run) {
        return LocalRun.outputTopics(run);
    }

    /** A count the finished job accumulated (see {@code dev.vigil.pipeline.Metrics}). */
    public static long accumulated(JobExecutionResult result, String name) {
        return ((Number) result.getAccumulatorResult(name)).longValue();
    }

    private static ModelBundle model;

    /** The committed model, loaded once per JVM. */
    public static synchronized ModelBundle model() {
        if (model == null) {
            model = ModelBundle.load(modelDir());
        }
        return model;
    }

    /** A mini cluster of one TaskManager with {@code slots} slots (the largest parallelism). */
    public static MiniClusterExtension miniCluster(int slots) {
        return new MiniClusterExtension(
                new MiniClusterResourceConfiguration.Builder()
                        .setConfiguration(new Configuration())
                        .setNumberTaskManagers(1)
                        .setNumberSlotsPerTaskManager(slots)
                        .build());
    }

    /** The committed anomaly events of a topic, in event id order. */
    public static List<AnomalyEvent> anomalies(String bootstrapServers, String topic) {
        return TopicIO.readCommitted(bootstrapServers, topic).stream()
                .map(WireFormat::parseAnomaly)
                .sorted(Comparator.comparing((AnomalyEvent e) -> e.eventId))
                .toList();
    }

    /**
     * Nothing lost, nothing duplicated: the same events (id, time, steps) in the same order, and
     * peak scores within {@code relative} of the expected ones (batches may form differently, so
     * scores may differ in their last bits).
     */
    public static void assertSameAnomalies(
            List<AnomalyEvent> actual, List<AnomalyEvent> expected, float relative) {
        assertThat(expected).isNotEmpty();
        assertThat(actual)
                .extracting(e -> e.eventId + "@" + e.ts + "/" + e.steps)
                .containsExactlyElementsOf(
                        expected.stream()
                                .map(e -> e.eventId + "@" + e.ts + "/" + e.steps)
                                .toList());
        for (int i = 0; i < expected.size(); i++) {
            float peak = expected.get(i).peakScore;
            assertThat(actual.get(i).peakScore).isCloseTo(peak, within(relative * peak));
        }
    }
}
