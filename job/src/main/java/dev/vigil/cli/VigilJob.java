package dev.vigil.cli;

import dev.vigil.config.ConfigException;
import dev.vigil.config.VigilConfig;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelException;
import dev.vigil.pipeline.Metrics;
import dev.vigil.pipeline.VigilPipeline;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The job's entry point on a cluster ({@code flink run vigil-job-flink.jar --config FILE
 * [-Dkey=value ...]}): reads the configuration and the model, refuses either with a message that
 * says what to fix, and runs the pipeline from Kafka to Kafka.
 */
public final class VigilJob {

    public static final String JOB_NAME = "vigil";

    private static final Logger LOG = LoggerFactory.getLogger(VigilJob.class);

    private VigilJob() {}

    public static void main(String[] args) throws Exception {
        VigilConfig config;
        ModelBundle bundle;
        try {
            config = VigilConfig.fromArgs(args);
            bundle = ModelBundle.load(config.modelDir());
        } catch (ConfigException | ModelException e) {
            System.err.println("vigil: cannot start: " + e.getMessage());
            System.exit(2);
            return;
        }
        run(config, bundle);
    }

    /** Builds and executes the job; returns when a bounded run finishes. */
    public static JobExecutionResult run(VigilConfig config, ModelBundle bundle) throws Exception {
        // Secrets (Kafka passwords, JAAS lines) are masked: see VigilConfig.printable().
        LOG.info(
                "Starting {} with model {} and configuration {}",
                JOB_NAME,
                bundle.card().version(),
                config);
        StreamExecutionEnvironment env = VigilPipeline.environment(config);
        VigilPipeline.defineKafkaJob(env, config, bundle);
        return env.execute(JOB_NAME);
    }

    /** A job stopped with a savepoint: where the savepoint is, and the job's final counts. */
    public record Stopped(String savepoint, JobExecutionResult result) {}

    /**
     * Runs the job (unbounded) until it has read {@code records} records from Kafka, then stops it
     * with a savepoint in Flink's canonical format under {@code savepointDir}; the savepoint also
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
        VigilPipeline.defineKafkaJob(env, config, bundle);
        JobClient job = env.executeAsync(JOB_NAME);
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
}
