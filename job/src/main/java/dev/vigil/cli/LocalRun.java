package dev.vigil.cli;

import dev.vigil.config.VigilOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The configuration of a job run on this machine against a given Kafka broker, the one that {@code
 * vigil demo}, the benchmark and the integration tests start from: a model, topics named after the
 * run, consumer group and transactional ids of its own, reading the telemetry topic from the
 * earliest offset to its end, exactly-once checkpoints. Callers add or override keys.
 */
public final class LocalRun {

    private LocalRun() {}

    /** {@code name} for the run {@code run}: {@code name-run}, or {@code name} when run is "". */
    public static String topic(String name, String run) {
        return run.isEmpty() ? name : name + "-" + run;
    }

    /** The output topics a run writes to: anomalies, dead letters, scores. */
    public static List<String> outputTopics(String run) {
        return List.of(topic("anomalies", run), topic("dead-letters", run), topic("scores", run));
    }

    public static Map<String, String> config(
            String bootstrapServers,
            Path modelDir,
            String run,
            Path checkpoints,
            String checkpointInterval,
            int parallelism) {
        Map<String, String> c = new HashMap<>();
        c.put(VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(), bootstrapServers);
        c.put(VigilOptions.MODEL_DIR.key(), modelDir.toString());
        c.put(VigilOptions.TOPIC_TELEMETRY.key(), "telemetry");
        c.put(VigilOptions.TOPIC_ANOMALIES.key(), topic("anomalies", run));
        c.put(VigilOptions.TOPIC_DEAD_LETTERS.key(), topic("dead-letters", run));
        c.put(VigilOptions.TOPIC_SCORES.key(), topic("scores", run));
        c.put(VigilOptions.KAFKA_GROUP_ID.key(), topic("vigil", run));
        c.put(VigilOptions.KAFKA_TRANSACTIONAL_ID_PREFIX.key(), topic("vigil", run));
        c.put(VigilOptions.KAFKA_START_FROM.key(), "earliest");
        c.put(VigilOptions.KAFKA_BOUNDED.key(), "true");
        c.put(VigilOptions.CHECKPOINT_INTERVAL.key(), checkpointInterval);
        c.put(VigilOptions.CHECKPOINT_DIR.key(), checkpoints.toUri().toString());
        c.put("parallelism.default", Integer.toString(parallelism));
        return c;
    }

    /** Deletes a local run's work directory and everything in it; nothing if it is not there. */
    public static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }
}
