package dev.vigil.job;

import dev.vigil.config.ConfigException;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.kafka.KafkaConnectors;
import dev.vigil.kafka.KafkaSettings;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelException;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.pipeline.VigilPipeline.RawSource;
import dev.vigil.pipeline.VigilPipeline.Scoring;
import dev.vigil.pipeline.VigilPipeline.Sinks;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import java.time.Duration;
import java.util.List;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamSink;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The job's entry point on a cluster ({@code flink run vigil-job-flink.jar --config FILE
 * [-Dkey=value ...]}): reads the configuration and the model, refuses either with a message that
 * says what to fix, and hands the Kafka source and sinks to {@link VigilPipeline#define}.
 */
public final class VigilJob {

    public static final String JOB_NAME = "vigil";

    private static final Logger LOG = LoggerFactory.getLogger(VigilJob.class);

    private VigilJob() {}

    public static void main(String[] args) throws Exception {
        VigilConfig config;
        ModelBundle bundle;
        ModelBundle shadow;
        try {
            config = VigilConfig.fromArgs(args);
            bundle = ModelBundle.load(config.modelDir());
            shadow = shadowModel(config, bundle);
            checkAdaptiveThreshold(config, bundle, shadow);
            checkCadence(config, bundle, shadow);
        } catch (ConfigException | ModelException e) {
            cannotStart(e);
            return;
        }
        try {
            run(config, bundle, shadow);
        } catch (ConfigException e) { // the broker's check (KafkaPreflight)
            cannotStart(e);
        }
    }

    private static void cannotStart(RuntimeException e) {
        System.err.println("vigil: cannot start: " + e.getMessage());
        System.exit(2);
    }

    /**
     * The shadow model ({@code vigil.model.shadow.dir}), or null for none. It reads the records the
     * serving model reads: its features must be the serving model's, in the same order.
     */
    public static ModelBundle shadowModel(VigilConfig config, ModelBundle serving) {
        if (config.shadowModelDir().isEmpty()) {
            return null;
        }
        ModelBundle shadow;
        try {
            shadow = ModelBundle.load(config.shadowModelDir().get());
        } catch (ModelException e) {
            throw new ModelException(
                    VigilOptions.MODEL_SHADOW_DIR.key() + ": " + e.getMessage(), e);
        }
        List<String> features = serving.card().featureNames();
        if (!shadow.card().featureNames().equals(features)) {
            throw new ConfigException(
                    VigilOptions.MODEL_SHADOW_DIR.key()
                            + ": the shadow model's features "
                            + shadow.card().featureNames()
                            + " must be the serving model's, in the same order: "
                            + features);
        }
        return shadow;
    }

    /**
     * Refuses {@code vigil.alerts.adaptive-threshold} with a card it cannot act on. The adaptive
     * threshold is the card's times the device's score level, which learns scores clipped at the
     * card's threshold and starts at 1: with a threshold of 1 or less (every card trained since
     * 0.2.0, whose scores are in threshold units) it never rises above 1, so the option would do
     * nothing while looking switched on.
     */
    public static void checkAdaptiveThreshold(
            VigilConfig config, ModelBundle bundle, ModelBundle shadow) {
        if (config.scoring().adaptiveHalfLife() == 0) {
            return;
        }
        for (ModelBundle b : shadow == null ? List.of(bundle) : List.of(bundle, shadow)) {
            if (b.card().threshold() <= 1f) {
                throw new ConfigException(
                        VigilOptions.ALERTS_ADAPTIVE_THRESHOLD.key()
                                + " has no effect with model "
                                + b.card().version()
                                + ": its threshold is "
                                + b.card().threshold()
                                + " (scores in threshold units), which the adaptive threshold can"
                                + " never raise; set it to false (README, Not done yet)");
            }
        }
    }

    /**
     * Refuses a {@code vigil.scoring.gap} or a {@code vigil.alerts.silence-after} that is not above
     * the interval between the steps a model was trained on ({@link
     * dev.vigil.model.ModelCard#stepIntervalMs}, when its card says): a device stepping at that
     * cadence would be reset at every step and never alert, or be reported silent between any two
     * of its steps.
     */
    public static void checkCadence(VigilConfig config, ModelBundle bundle, ModelBundle shadow) {
        for (ModelBundle b : shadow == null ? List.of(bundle) : List.of(bundle, shadow)) {
            long step = b.card().stepIntervalMs();
            if (step == 0) {
                continue;
            }
            Duration gap = config.get(VigilOptions.SCORING_GAP);
            Duration silence = config.get(VigilOptions.ALERTS_SILENCE_AFTER);
            String trained =
                    " is not above the interval between the steps model "
                            + b.card().version()
                            + " was trained on ("
                            + Duration.ofMillis(step)
                            + ", the median in its card's training.step_interval_ms)";
            if (gap.toMillis() <= step) {
                throw new ConfigException(
                        VigilOptions.SCORING_GAP.key()
                                + " ("
                                + gap
                                + ")"
                                + trained
                                + ": a device stepping at that cadence would have its memory reset"
                                + " at every step and never alert. Set it above the devices'"
                                + " longest normal reporting interval");
            }
            if (!silence.isZero() && silence.toMillis() <= step) {
                throw new ConfigException(
                        VigilOptions.ALERTS_SILENCE_AFTER.key()
                                + " ("
                                + silence
                                + ")"
                                + trained
                                + ": a device stepping at that cadence would be reported silent"
                                + " between any two of its steps. Set it above the devices'"
                                + " longest normal reporting interval, or 0 to turn the watch off");
            }
        }
    }

    /** Builds and executes the job; returns when a bounded run finishes. */
    public static JobExecutionResult run(VigilConfig config, ModelBundle bundle) throws Exception {
        return run(config, bundle, shadowModel(config, bundle));
    }

    /**
     * {@link #run(VigilConfig, ModelBundle)} with a shadow model already loaded (or null). Checks
     * the topics and the transaction timeout against the broker first ({@link KafkaPreflight}).
     */
    public static JobExecutionResult run(VigilConfig config, ModelBundle bundle, ModelBundle shadow)
            throws Exception {
        // Secrets (Kafka passwords, JAAS lines) are masked: see VigilConfig.printable().
        LOG.info(
                "Starting {} with model {} and configuration {}",
                JOB_NAME,
                bundle.card().version(),
                config);
        LOG.info("Model {} {}", bundle.card().version(), bundle.card().describeScoring());
        if (shadow != null) {
            LOG.info(
                    "Shadow model {} {}", shadow.card().version(), shadow.card().describeScoring());
        }
        config.transactionalIdPrefixWarning().ifPresent(LOG::warn);
        config.replacedCheckpointingWarning().ifPresent(LOG::warn);
        config.silenceBeyondGapWarning().ifPresent(LOG::warn);
        KafkaPreflight.check(config, shadow != null, KafkaPreflight.TIMEOUT);
        StreamExecutionEnvironment env = VigilPipeline.environment(config);
        define(env, config, bundle, shadow);
        return env.execute(JOB_NAME);
    }

    /** The whole job from Kafka to Kafka, on {@code env}. */
    public static void define(
            StreamExecutionEnvironment env, VigilConfig config, ModelBundle bundle) {
        define(env, config, bundle, shadowModel(config, bundle));
    }

    /**
     * The whole job, with a shadow model beside the serving one when {@code shadow} is not null.
     */
    public static void define(
            StreamExecutionEnvironment env,
            VigilConfig config,
            ModelBundle bundle,
            ModelBundle shadow) {
        checkAdaptiveThreshold(config, bundle, shadow);
        checkCadence(config, bundle, shadow);
        VigilPipeline.define(
                env,
                kafkaSource(config),
                bundle,
                Scoring.of(bundle, shadow, config.scoring()),
                kafkaSinks(config),
                config.input());
    }

    /** The telemetry topic as raw records, with the job's {@link #watermarks()}. */
    public static RawSource kafkaSource(VigilConfig config) {
        return env ->
                env.fromSource(
                                KafkaConnectors.telemetrySource(
                                        config.kafka(), config.get(VigilOptions.TOPIC_TELEMETRY)),
                                watermarks(),
                                "telemetry ← Kafka")
                        .uid(VigilPipeline.UID_SOURCE);
    }

    /**
     * Per partition, the largest Kafka timestamp read less 30 s, with idleness after a minute. A
     * record's Kafka timestamp counts no further ahead than the job's clock, for the watermark and
     * as the time the record was seen (the silence watch's): a producer whose clock runs ahead,
     * writing to every partition, cannot move the watermark past the present and make the devices
     * of other producers look silent. (A {@code ts} further ahead than {@code
     * vigil.input.max-clock-skew} makes the record a dead letter FUTURE_TS as well.)
     */
    static WatermarkStrategy<RawRecord> watermarks() {
        return WatermarkStrategy.<RawRecord>forBoundedOutOfOrderness(Duration.ofSeconds(30))
                .withTimestampAssigner(
                        (record, kafkaTs) -> Math.min(kafkaTs, System.currentTimeMillis()))
                .withIdleness(Duration.ofMinutes(1));
    }

    /**
     * What the idle scores sink of a job without a scores topic is named for: not a legal Kafka
     * topic name (no ':'), so its transactional ids cannot be another sink's.
     */
    static final String NO_SCORES_TOPIC = "scores:none";

    /**
     * The Kafka sinks (exactly-once unless {@code vigil.delivery.*} says at-least-once): anomalies,
     * dead letters, the shadow's anomalies and the scores, each in the graph whether it has
     * anything to write or not (without a shadow model, or without a scores topic, its sink writes
     * nothing).
     */
    public static Sinks kafkaSinks(VigilConfig config) {
        KafkaSettings kafka = config.kafka();
        return new Sinks() {
            @Override
            public void anomalies(DataStream<AnomalyEvent> anomalies) {
                anomalySink(anomalies, VigilOptions.TOPIC_ANOMALIES)
                        .uid(VigilPipeline.UID_ANOMALIES_SINK)
                        .name("anomalies → Kafka");
            }

            /** Anomaly events to a topic, as the anomalies topic is written. */
            private DataStreamSink<AnomalyEvent> anomalySink(
                    DataStream<AnomalyEvent> events, ConfigOption<String> topic) {
                return events.sinkTo(
                        KafkaConnectors.sink(
                                kafka,
                                config.get(topic),
                                config.delivery(VigilOptions.DELIVERY_ANOMALIES),
                                a -> a.deviceId,
                                WireFormat::anomaly));
            }

            @Override
            public void deadLetters(DataStream<DeadLetter> deadLetters) {
                deadLetters
                        .sinkTo(
                                KafkaConnectors.sink(
                                        kafka,
                                        config.get(VigilOptions.TOPIC_DEAD_LETTERS),
                                        config.delivery(VigilOptions.DELIVERY_DEAD_LETTERS),
                                        d -> null,
                                        WireFormat::deadLetter))
                        .uid(VigilPipeline.UID_DEAD_LETTERS_SINK)
                        .name("dead letters → Kafka");
            }

            @Override
            public void shadowAnomalies(DataStream<AnomalyEvent> events) {
                anomalySink(events, VigilOptions.TOPIC_SHADOW_ANOMALIES)
                        .uid(VigilPipeline.UID_SHADOW_ANOMALIES_SINK)
                        .name("shadow anomalies → Kafka");
            }

            /**
             * Without a scores topic the stream is empty and the sink writes nothing, but it stays
             * in the graph, so that unsetting the topic restores a savepoint without leaving the
             * sink's state unclaimed. Its transactional ids then name {@link #NO_SCORES_TOPIC}.
             */
            @Override
            public void scores(DataStream<ScoredStep> scores) {
                String topic = config.get(VigilOptions.TOPIC_SCORES);
                scores.sinkTo(
                                KafkaConnectors.sink(
                                        kafka,
                                        topic.isBlank() ? NO_SCORES_TOPIC : topic,
                                        config.delivery(VigilOptions.DELIVERY_SCORES),
                                        s -> s.deviceId,
                                        WireFormat::score))
                        .uid(VigilPipeline.UID_SCORES_SINK)
                        .name("scores → Kafka");
            }
        };
    }
}
