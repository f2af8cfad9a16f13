package dev.vigil.testing;

import dev.vigil.config.VigilOptions;
import dev.vigil.model.ModelBundle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobExecutionResult;

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
     * The configuration of a bounded test run of the whole job against {@code bootstrapServers}:
     * the committed model, output topics and ids suffixed with {@code run}, exactly-once
     * checkpoints into {@code checkpoints}, parallelism 2. Callers add or override keys.
     */
    public static Map<String, String> boundedRun(
            String bootstrapServers, String run, Path checkpoints, String checkpointInterval) {
        Map<String, String> c = new HashMap<>();
        c.put(VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(), bootstrapServers);
        c.put(VigilOptions.MODEL_DIR.key(), modelDir().toString());
        c.put(VigilOptions.KAFKA_GROUP_ID.key(), "vigil-" + run);
        c.put(VigilOptions.TOPIC_ANOMALIES.key(), "anomalies-" + run);
        c.put(VigilOptions.TOPIC_DEAD_LETTERS.key(), "dead-letters-" + run);
        c.put(VigilOptions.TOPIC_SCORES.key(), "scores-" + run);
        c.put(VigilOptions.KAFKA_TRANSACTIONAL_ID_PREFIX.key(), "vigil-" + run);
        c.put(VigilOptions.KAFKA_START_FROM.key(), "earliest");
        c.put(VigilOptions.KAFKA_BOUNDED.key(), "true");
        c.put(VigilOptions.CHECKPOINT_INTERVAL.key(), checkpointInterval);
        c.put(VigilOptions.CHECKPOINT_DIR.key(), checkpoints.toUri().toString());
        c.put("parallelism.default", "2");
        return c;
    }

    /** The output topics {@link #boundedRun} writes to. */
    public static List<String> outputTopics(String run) {
        return List.of("anomalies-" + run, "dead-letters-" + run, "scores-" + run);
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
}
