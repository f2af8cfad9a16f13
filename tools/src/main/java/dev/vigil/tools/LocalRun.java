package dev.vigil.tools;

import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.WireFormat;
import dev.vigil.tools.kafka.TopicIO;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * The configuration of a job run on this machine against a given Kafka broker, the one that {@code
 * vigil demo}, the benchmark and the end-to-end tests start from: a model, topics named after the
 * run, consumer group and transactional ids of its own, reading the telemetry topic from the
 * earliest offset to its end, exactly-once checkpoints. Callers add or override keys. Also how such
 * a run is stopped with a savepoint, and its anomaly events read back.
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
        // RocksDB's memory (write buffers and block cache) comes from the TaskManager's managed
        // memory: the mini cluster's default, 128 MB for all slots, fills a slot's write buffers
        // every few tens of thousands of steps, and the reads after each flush go to files. With a
        // shadow model each device's value is twice as long and they fill twice as often
        // (bench/RESULTS.md: 512 MB made the shadowed runs 26 % faster, serving alone 9 %).
        c.put("taskmanager.memory.managed.size", "512m");
        // The mini cluster's own servers (blob server, REST endpoint) listen on 127.0.0.1 only,
        // as the in-process broker does: a local run exposes nothing to the network.
        c.put("jobmanager.bind-host", "127.0.0.1");
        c.put("rest.bind-address", "127.0.0.1");
        return c;
    }

    /** A job stopped with a savepoint: where the savepoint is, and the job's final counts. */
    public record Stopped(String savepoint, JobExecutionResult result) {}

    /**
     * Runs the Kafka job (unbounded) until it has read {@code records} records, then stops it with
     * a savepoint in Flink's canonical format under {@code savepointDir}; the savepoint also
     * commits the job's last output. Fails if the job ends, or has not read the records within
     * {@code timeout}.
     */
    public static Stopped runThenStop(
            VigilConfig config,
            ModelBundle bundle,
            long records,
            Path savepointDir,
            Duration timeout)
            throws Exception {
        StreamExecutionEnvironment env = VigilPipeline.environment(config);
        VigilJob.define(env, config, bundle);
        JobClient job = env.executeAsync(VigilJob.JOB_NAME);
        long deadline = System.nanoTime() + timeout.toNanos();
        long read;
        while ((read = readSoFar(job)) < records) {
            if (job.getJobStatus().get().isGloballyTerminalState()) {
                job.getJobExecutionResult().get(); // throws the job's failure, if it failed
                throw new IllegalStateException(
                        "the job ended after reading " + read + " of " + records + " records");
            }
            if (System.nanoTime() > deadline) {
                job.cancel().get();
                throw new IllegalStateException(
                        "the job read " + read + " of " + records + " records in " + timeout);
            }
            LockSupport.parkNanos(200_000_000L); // poll, not spin: the job needs the cores
        }
        String savepoint =
                job.stopWithSavepoint(
                                false,
                                savepointDir.toAbsolutePath().toUri().toString(),
                                SavepointFormatType.CANONICAL)
                        .get();
        return new Stopped(savepoint, job.getJobExecutionResult().get());
    }

    private static long readSoFar(JobClient job) throws Exception {
        Object v = job.getAccumulators().get().get(Metrics.RECORDS_IN);
        return v == null ? 0 : ((Number) v).longValue();
    }

    /** A count a finished job accumulated (see {@link Metrics}); 0 when nothing counted it. */
    public static long counted(JobExecutionResult result, String name) {
        Object v = result.getAccumulatorResult(name);
        return v == null ? 0L : ((Number) v).longValue();
    }

    /** The committed anomaly events of a topic, in event id order. */
    public static List<AnomalyEvent> committedAnomalies(String bootstrapServers, String topic) {
        return TopicIO.readCommitted(bootstrapServers, topic).stream()
                .map(WireFormat::parseAnomaly)
                .sorted(Comparator.comparing((AnomalyEvent e) -> e.eventId))
                .toList();
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
