package dev.vigil.pipeline;

import dev.vigil.config.InputRules;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
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
import java.time.Duration;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ExecutionOptions;
import org.apache.flink.configuration.ExternalizedCheckpointRetention;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;

/**
 * The Vigil dataflow (DESIGN.md, "The flow"): raw records → parse + validate (dead letters) → keyBy
 * device → scoring (late/duplicates, scores) → anomaly events. {@link #define} is the one place the
 * graph is built: the cluster job calls it with Kafka ({@code VigilJob}), the tests and the
 * benchmark with their own source, sinks or scoring operator, so all of them run the same graph.
 *
 * <p>Every operator's uid below names its state in savepoints: never change one.
 */
public final class VigilPipeline {

    public static final String UID_SOURCE = "telemetry-source";
    public static final String UID_PARSE = "parse-telemetry";
    public static final String UID_SCORING = "gru-scoring";

    public static final String UID_SHADOW_ANOMALIES_SINK = "shadow-anomalies-sink";
    public static final String UID_ANOMALIES_SINK = "anomalies-sink";
    public static final String UID_DEAD_LETTERS_SINK = "dead-letters-sink";
    public static final String UID_SCORES_SINK = "scores-sink";

    private VigilPipeline() {}

    /** Where raw records come from: the telemetry topic on a cluster, anything in a test. */
    @FunctionalInterface
    public interface RawSource {
        /** Adds the source (with its uid, {@link #UID_SOURCE} for Kafka) to {@code env}. */
        DataStream<RawRecord> read(StreamExecutionEnvironment env);
    }

    /** Where the job's outputs go; each method attaches one sink (with its uid) to a stream. */
    public interface Sinks {
        void anomalies(DataStream<AnomalyEvent> anomalies);

        void deadLetters(DataStream<DeadLetter> deadLetters);

        /**
         * Every scored step, when {@link ScoringSettings#emitScores()}; else an empty stream, whose
         * sink stays in the graph all the same (as the shadow's, below).
         */
        void scores(DataStream<ScoredStep> scores);

        /**
         * The anomaly events of the model that does not serve each device ({@link
         * Outputs#SHADOW_ANOMALIES}): an empty stream when the job has no shadow model. Its sink is
         * in the graph either way, so that adding or removing a shadow leaves the graph as it was
         * and a savepoint restores without leaving any operator's state unclaimed.
         */
        void shadowAnomalies(DataStream<AnomalyEvent> events);
    }

    /**
     * The keyed operator that turns each device's events into anomaly events: the job's own ({@link
     * #of}), or the benchmark's baselines. {@link #define} gives it {@link #UID_SCORING}.
     */
    @FunctionalInterface
    public interface Scoring {
        SingleOutputStreamOperator<AnomalyEvent> apply(
                KeyedStream<TelemetryEvent, String> byDevice);

        /** The job's scoring: batched, or record by record when the batch size is 0. */
        static Scoring of(ModelBundle bundle, ScoringSettings settings) {
            return of(bundle, null, settings);
        }

        /**
         * The job's scoring with a shadow model ({@code shadow}, or null for none) scored beside
         * the serving one in the same operator, with its own state per device.
         */
        static Scoring of(ModelBundle bundle, ModelBundle shadow, ScoringSettings settings) {
            String name = shadow == null ? "GRU scoring" : "GRU scoring (with a shadow)";
            return byDevice -> {
                // Both operators keep the same state under the same uid: either can restore the
                // other.
                OneInputStreamOperator<TelemetryEvent, AnomalyEvent> operator =
                        settings.batchSize() == 0
                                ? new GruScoringFunction.Operator(
                                        new GruScoringFunction(bundle, shadow, settings))
                                : new BatchedScoringOperator(bundle, shadow, settings);
                return byDevice.transform(name, TypeInformation.of(AnomalyEvent.class), operator);
            };
        }
    }

    /**
     * A streaming environment with the job's fixed choices: RocksDB state, exactly-once checkpoints
     * (incremental unless configured), Kryo disabled (a state type that would need it fails at
     * start, not at a restore), and the maximum parallelism set once.
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
        if (!c.contains(CheckpointingOptions.INCREMENTAL_CHECKPOINTS)) {
            // Flink 2 snapshots RocksDB by its files either way; a full checkpoint uploads every
            // live file again, up to 4 times the state before RocksDB compacts, where an
            // incremental one uploads the files new since the last (bench/RESULTS.md).
            c.set(CheckpointingOptions.INCREMENTAL_CHECKPOINTS, true);
        }
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
        if (!c.contains(PipelineOptions.OBJECT_REUSE)) {
            // Chained operators hand records on without a copy. Safe here: no operator keeps a
            // record it was handed after returning (the sinks serialize in write(), the parser
            // keeps nothing), and what the batched scorer buffers comes from the network input,
            // which Flink always deserializes into fresh objects.
            c.set(PipelineOptions.OBJECT_REUSE, true);
        }
        c.set(PipelineOptions.MAX_PARALLELISM, config.get(VigilOptions.MAX_PARALLELISM));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(c);
        if (env.getConfiguration().getOptional(RestartStrategyOptions.RESTART_STRATEGY).isEmpty()) {
            // Neither the job's config nor the client's Flink config chose one: Flink's default for
            // a checkpointing job restarts forever, so a failure that repeats (a poison pill, a
            // wrong password) would loop without ever failing the job. This gives up after
            // DEFAULT_RESTART_ATTEMPTS restarts in a row (backoff 1 s doubling to 1 min).
            env.configure(defaultRestarts());
        }
        return env;
    }

    /** Restarts in a row (without an hour of stable running between them) before the job fails. */
    public static final int DEFAULT_RESTART_ATTEMPTS = 10;

    static Configuration defaultRestarts() {
        Configuration r = new Configuration();
        r.set(RestartStrategyOptions.RESTART_STRATEGY, "exponential-delay");
        r.set(
                RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_INITIAL_BACKOFF,
                Duration.ofSeconds(1));
        r.set(
                RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_MAX_BACKOFF,
                Duration.ofMinutes(1));
        r.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_BACKOFF_MULTIPLIER, 2.0);
        r.set(
                RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_ATTEMPTS,
                DEFAULT_RESTART_ATTEMPTS);
        return r;
    }

    /**
     * The whole graph: reads {@code source}, parses and validates against the model's features (a
     * {@code ts} more than {@code maxClockSkew} ahead of the clock is a dead letter), keys by
     * device, scores with {@code scoring}, and hands every output to {@code sinks}.
     */
    public static void define(
            StreamExecutionEnvironment env,
            RawSource source,
            ModelBundle bundle,
            Scoring scoring,
            Sinks sinks,
            InputRules input) {
        SingleOutputStreamOperator<TelemetryEvent> parsed =
                source.read(env)
                        .process(new ParseTelemetry(bundle.card().featureNames(), input))
                        .uid(UID_PARSE)
                        .name("parse + validate");
        KeyedStream<TelemetryEvent, String> byDevice = parsed.keyBy(new DeviceKey());
        SingleOutputStreamOperator<AnomalyEvent> anomalies =
                scoring.apply(byDevice).uid(UID_SCORING);
        sinks.anomalies(anomalies);
        sinks.shadowAnomalies(anomalies.getSideOutput(Outputs.SHADOW_ANOMALIES));
        // One dead-letter topic: what the parser refused and what the scorer could not score.
        sinks.deadLetters(
                parsed.getSideOutput(ParseTelemetry.DEAD_LETTERS)
                        .union(anomalies.getSideOutput(Outputs.DEAD_LETTERS)));
        sinks.scores(anomalies.getSideOutput(Outputs.SCORES));
    }

    /** Keys telemetry by device: one device's steps meet its state, in order. */
    public static final class DeviceKey implements KeySelector<TelemetryEvent, String> {
        @Override
        public String getKey(TelemetryEvent e) {
            return e.deviceId;
        }
    }
}
