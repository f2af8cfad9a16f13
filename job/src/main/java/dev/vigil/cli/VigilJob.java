package dev.vigil.cli;

import dev.vigil.config.ConfigException;
import dev.vigil.config.VigilConfig;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelException;
import dev.vigil.pipeline.VigilPipeline;
import org.apache.flink.api.common.JobExecutionResult;
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
}
