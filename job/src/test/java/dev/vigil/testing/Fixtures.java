package dev.vigil.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.model.ModelBundle;
import dev.vigil.scoring.ScoringSettings;
import dev.vigil.serde.AnomalyEvent;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.test.junit5.MiniClusterExtension;

/**
 * The shared test fixtures of every module (published as the job's test-jar): where the committed
 * test data lives, found from any module's working directory; the committed model; the mini cluster
 * the job tests run on; and the one "same anomalies" assertion.
 */
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
     * The configuration of a test job that reads no Kafka (its source and sinks are injected): the
     * committed model, checkpoints every 200 ms under {@code checkpoints}, parallelism 2. The
     * bootstrap address is required by the options but never contacted. Callers add keys.
     */
    public static Map<String, String> brokerFreeRun(Path checkpoints) {
        Map<String, String> c = new HashMap<>();
        c.put(VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(), "127.0.0.1:9");
        c.put(VigilOptions.MODEL_DIR.key(), modelDir().toString());
        c.put(VigilOptions.CHECKPOINT_INTERVAL.key(), "200ms");
        c.put(VigilOptions.CHECKPOINT_DIR.key(), checkpoints.toUri().toString());
        c.put("parallelism.default", "2");
        return c;
    }

    /**
     * The scoring settings a job gets from the options' defaults (see {@code VigilOptions}), to
     * change the few fields a test cares about.
     */
    public static ScoringSettings.Builder scoringDefaults() {
        Map<String, String> c = new HashMap<>();
        c.put(VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(), "127.0.0.1:9");
        c.put(VigilOptions.MODEL_DIR.key(), modelDir().toString());
        return VigilConfig.of(c).scoring().toBuilder();
    }

    /** A count the finished job accumulated (see {@code dev.vigil.metrics.Metrics}). */
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

    /**
     * A model that fails on a row whose first input is normalised to 4 or more (the committed 1.5
     * KB poison model), with the committed model's card under {@code version}.
     */
    public static ModelBundle poisonModel(String version) throws IOException {
        return new ModelBundle(
                model().card().withVersion(version),
                Files.readAllBytes(Path.of("src/test/resources/poison-model/model.onnx")));
    }

    /** A mini cluster of one TaskManager with {@code slots} slots (the largest parallelism). */
    public static MiniClusterExtension miniCluster(int slots) {
        return miniCluster(slots, new Configuration());
    }

    /** {@link #miniCluster(int)} with a cluster configuration (for example a metric reporter's). */
    public static MiniClusterExtension miniCluster(int slots, Configuration configuration) {
        return new MiniClusterExtension(
                new MiniClusterResourceConfiguration.Builder()
                        .setConfiguration(configuration)
                        .setNumberTaskManagers(1)
                        .setNumberSlotsPerTaskManager(slots)
                        .build());
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
