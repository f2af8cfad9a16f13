package dev.vigil.pipeline;

import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.kafka.KafkaConnectors;
import dev.vigil.kafka.KafkaSettings;
import dev.vigil.model.ModelBundle;
import dev.vigil.scoring.BatchedScoringOperator;
import dev.vigil.scoring.GruScoringFunction;
import dev.vigil.scoring.Outputs;
import dev.vigil.scoring.ScoringSettings;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.WireFormat;
import java.time.Duration;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ExecutionOptions;
import org.apache.flink.configuration.ExternalizedCheckpointRetention;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * The Vigil dataflow (DESIGN.md, "The flow"): raw records → parse + validate (dead letters) → keyBy
 * device → GRU scoring (late/duplicates, scores) → anomaly events. Sources and sinks are attached
 * by the caller, so tests and the demo run exactly the job that clusters run.
 *
 * <p>Every operator's uid below names its state in savepoints: never change one.
 */
public final class VigilPipeline {

    public static final String UID_SOURCE = "telemetry-source";
    public static final String UID_PARSE = "parse-telemetry";
    public static final String UID_SCORING = "gru-scoring";
    public static final String UID_ANOMALIES_SINK = "anomalies-sink";
    public static final String UID_DEAD_LETTERS_SINK = "dead-letters-sink";
    public static final String UID_SCORES_SINK = "scores-sink";

    private VigilPipeline() {}

    /** The streams the scoring leaves behind, for sinks to attach to. */
    public record Streams(
            DataStream<AnomalyEvent> anomalies,
            DataStream<DeadLetter> deadLetters,
            DataStream<TelemetryEvent> late,
            DataStream<ScoredStep> scores) {}

    /**
     * A streaming environment with the job's fixed choices: RocksDB state, exactly-once
     * checkpoints, Kryo disabled (a state type that would need it fails at start, not at a
     * restore), and the maximum parallelism set once.
     */
    public static StreamExecutionEnvironment environment(VigilConfig config) {
        Configuration c = new Configuration(config.flinkConfiguration());
        if (!c.contains(StateBackendOptions.STATE_BACKEND)) {
            c.set(StateBackendOptions.STATE_BACKEND, "rocksdb");
        }
        c.set(
                CheckpointingOptions.CHECKPOINTING_INTERVAL,
                config.get(VigilOptions.CHECKPOINT_INTERVAL));
        c.set(CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE, CheckpointingMode.EXACTLY_ONCE);
        c.set(
                CheckpointingOptions.EXTERNALIZED_CHECKPOINT_RETENTION,
                ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION);
        String dir = config.flinkConfiguration().get(VigilOptions.CHECKPOINT_DIR);
        if (dir != null && !dir.isBlank()) {
            c.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, dir);
        }
        if (!c.contains(ExecutionOptions.BUFFER_TIMEOUT)) {
            // Flink's 100 ms default holds a half-full network buffer that long at moderate
            // rates; under load buffers fill first, so this costs little throughput.
            c.set(ExecutionOptions.BUFFER_TIMEOUT, Duration.ofMillis(10));
        }
        c.set(PipelineOptions.GENERIC_TYPES, false);
        c.set(PipelineOptions.MAX_PARALLELISM, config.get(VigilOptions.MAX_PARALLELISM));
        return StreamExecutionEnvironment.getExecutionEnvironment(c);
    }

    /** The telemetry topic as raw records, with per-partition watermarks and idleness. */
    public static DataStream<RawRecord> readKafka(
            StreamExecutionEnvironment env, VigilConfig config) {
        WatermarkStrategy<RawRecord> watermarks =
                WatermarkStrategy.<RawRecord>forBoundedOutOfOrderness(Duration.ofSeconds(30))
                        .withIdleness(Duration.ofMinutes(1));
        return env.fromSource(
                        KafkaConnectors.telemetrySource(
                                config.kafka(), config.get(VigilOptions.TOPIC_TELEMETRY)),
                        watermarks,
                        "telemetry ← Kafka")
                .uid(UID_SOURCE);
    }

    /** Parses and validates raw records against the model's features; bad ones go aside. */
    public static SingleOutputStreamOperator<TelemetryEvent> parse(
            DataStream<RawRecord> raw, ModelBundle bundle) {
        return raw.process(new ParseTelemetry(bundle.card().featureNames()))
                .uid(UID_PARSE)
                .name("parse + validate");
    }

    /** Parses, validates and scores raw records. */
    public static Streams score(
            DataStream<RawRecord> raw, ModelBundle bundle, ScoringSettings settings) {
        SingleOutputStreamOperator<TelemetryEvent> parsed = parse(raw, bundle);
        KeyedStream<TelemetryEvent, String> byDevice = parsed.keyBy(new DeviceKey());
        // Both operators keep the same state under the same uid: either can restore the other.
        SingleOutputStreamOperator<AnomalyEvent> anomalies =
                (settings.batchSize() == 0
                                ? byDevice.process(new GruScoringFunction(bundle, settings))
                                : byDevice.transform(
                                        "GRU scoring",
                                        TypeInformation.of(AnomalyEvent.class),
                                        new BatchedScoringOperator(bundle, settings)))
                        .uid(UID_SCORING)
                        .name("GRU scoring");
        return new Streams(
                anomalies,
                parsed.getSideOutput(ParseTelemetry.DEAD_LETTERS),
                anomalies.getSideOutput(Outputs.LATE),
                anomalies.getSideOutput(Outputs.SCORES));
    }

    /** Attaches the exactly-once Kafka sinks: anomalies, dead letters and, if set, scores. */
    public static void writeKafka(Streams streams, VigilConfig config) {
        KafkaSettings kafka = config.kafka();
        streams.anomalies()
                .sinkTo(
                        KafkaConnectors.exactlyOnceSink(
                                kafka,
                                config.get(VigilOptions.TOPIC_ANOMALIES),
                                a -> a.deviceId,
                                WireFormat::anomaly))
                .uid(UID_ANOMALIES_SINK)
                .name("anomalies → Kafka");
        streams.deadLetters()
                .sinkTo(
                        KafkaConnectors.exactlyOnceSink(
                                kafka,
                                config.get(VigilOptions.TOPIC_DEAD_LETTERS),
                                d -> null,
                                WireFormat::deadLetter))
                .uid(UID_DEAD_LETTERS_SINK)
                .name("dead letters → Kafka");
        String scoresTopic = config.get(VigilOptions.TOPIC_SCORES);
        if (!scoresTopic.isBlank()) {
            streams.scores()
                    .sinkTo(
                            KafkaConnectors.exactlyOnceSink(
                                    kafka, scoresTopic, s -> s.deviceId, WireFormat::score))
                    .uid(UID_SCORES_SINK)
                    .name("scores → Kafka");
        }
    }

    /** The whole job from Kafka to Kafka. */
    public static void defineKafkaJob(
            StreamExecutionEnvironment env, VigilConfig config, ModelBundle bundle) {
        writeKafka(score(readKafka(env, config), bundle, config.scoring()), config);
    }

    /** Keys telemetry by device: one device's steps meet its state, in order. */
    public static final class DeviceKey implements KeySelector<TelemetryEvent, String> {
        @Override
        public String getKey(TelemetryEvent e) {
            return e.deviceId;
        }
    }
}
