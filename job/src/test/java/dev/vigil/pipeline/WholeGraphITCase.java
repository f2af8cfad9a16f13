package dev.vigil.pipeline;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.config.VigilConfig;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job's whole graph ({@link VigilPipeline#define}) without a broker: the generated test fleet
 * from a bounded in-memory source, every output collected in memory, on a mini cluster with RocksDB
 * and checkpoints. What reaches Kafka in production reaches these sinks here.
 */
class WholeGraphITCase {

    @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = Fixtures.miniCluster(2);

    /** What the sinks of each run received, by run and output. */
    private static final Map<String, Queue<Object>> COLLECTED = new ConcurrentHashMap<>();

    private static List<RawRecord> input;

    @BeforeAll
    static void readTheFleet(@TempDir Path dir) throws Exception {
        new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(dir);
        input = new ArrayList<>();
        long offset = 0;
        // Keyed by device_id as a producer keys them (a record without one goes unkeyed).
        TelemetryParser ids = new TelemetryParser(List.of());
        for (String line : Files.readAllLines(dir.resolve("test.jsonl"))) {
            byte[] value = line.getBytes(StandardCharsets.UTF_8);
            TelemetryEvent e = ids.parse(value).event();
            byte[] key = e == null ? null : e.deviceId.getBytes(StandardCharsets.UTF_8);
            input.add(new RawRecord(key, value, "telemetry", 0, offset++, 0L));
        }
    }

    /** Runs the graph over the fleet with batch size {@code batchSize}; returns the job result. */
    private static JobExecutionResult run(String name, int batchSize, Path checkpoints)
            throws Exception {
        VigilConfig config = VigilConfig.of(Fixtures.brokerFreeRun(checkpoints));
        ModelBundle bundle = Fixtures.model();
        StreamExecutionEnvironment env = VigilPipeline.environment(config);
        VigilPipeline.define(
                env,
                // One reader, then partitioned by device as a keyed Kafka topic is: each
                // device's records reach the parser, and the scoring, in their order.
                e ->
                        e.fromData(input)
                                .setParallelism(1)
                                .name("fleet")
                                .partitionCustom(
                                        (String device, int n) ->
                                                Math.floorMod(device.hashCode(), n),
                                        WholeGraphITCase::deviceOf),
                bundle,
                VigilPipeline.Scoring.of(
                        bundle,
                        config.scoring().toBuilder().emitScores(true).batch(batchSize, 10).build()),
                new VigilPipeline.Sinks() {
                    @Override
                    public void anomalies(DataStream<AnomalyEvent> s) {
                        s.sinkTo(new Collect<>(name + "/anomalies"));
                    }

                    @Override
                    public void deadLetters(DataStream<DeadLetter> s) {
                        s.sinkTo(new Collect<>(name + "/dead-letters"));
                    }

                    @Override
                    public void scores(DataStream<ScoredStep> s) {
                        s.sinkTo(new Collect<>(name + "/scores"));
                    }

                    @Override
                    public void shadowAnomalies(DataStream<AnomalyEvent> s) {
                        s.sinkTo(new Collect<>(name + "/shadow-anomalies"));
                    }
                },
                config.input());
        return env.execute("whole-graph-" + name);
    }

    private static final Pattern DEVICE_ID = Pattern.compile("\"device_id\"\\s*:\\s*\"([^\"]*)\"");

    /** The record's device id as a producer keys it; "" for a record without one. */
    private static String deviceOf(RawRecord r) {
        Matcher m = DEVICE_ID.matcher(new String(r.value, StandardCharsets.UTF_8));
        return m.find() ? m.group(1) : "";
    }

    @SuppressWarnings("unchecked")
    private static <T> List<T> collected(String key) {
        return new ArrayList<>(
                (Queue<T>) (Queue<?>) COLLECTED.getOrDefault(key, new ConcurrentLinkedQueue<>()));
    }

    private static List<String> eventKeys(String run) {
        List<AnomalyEvent> events = collected(run + "/anomalies");
        return events.stream()
                .sorted(Comparator.comparing((AnomalyEvent e) -> e.eventId))
                .map(e -> e.eventId + "@" + e.ts + "/" + e.steps)
                .toList();
    }

    @Test
    void shouldScoreTheFleetAndAccountForEveryRecordWithoutABroker(@TempDir Path dir)
            throws Exception {
        JobExecutionResult result = run("batched", 256, dir);

        long in = Fixtures.accumulated(result, Metrics.RECORDS_IN);
        long scored = Fixtures.accumulated(result, Metrics.SCORED);
        long late = Fixtures.accumulated(result, Metrics.LATE);
        long dead = Fixtures.accumulated(result, Metrics.DEAD_LETTERS);
        assertThat(in).isEqualTo(input.size());
        assertThat(in).isEqualTo(scored + late + dead);
        assertThat(late).isPositive(); // the fleet carries duplicates and late re-sends
        assertThat(dead).isPositive(); // and malformed records
        // One dead-letter stream: the parser's and the scorer's late ones, each with its reason.
        List<DeadLetter> letters = collected("batched/dead-letters");
        assertThat(letters).hasSize((int) (dead + late));
        assertThat(letters)
                .filteredOn(d -> d.reason.fromScoring())
                .hasSize((int) late)
                .allMatch(d -> d.topic == null);
        assertThat(collected("batched/scores")).hasSize((int) scored);

        List<AnomalyEvent> events = collected("batched/anomalies");
        assertThat(events).extracting(e -> e.eventId).doesNotHaveDuplicates();
        assertThat(events)
                .filteredOn(e -> AnomalyEvent.OPEN.equals(e.type))
                .hasSize((int) Fixtures.accumulated(result, Metrics.EPISODES_OPENED))
                .isNotEmpty();
    }

    @Test
    void shouldGiveTheSameEventsRecordByRecordAsBatched(@TempDir Path dir) throws Exception {
        run("per-record", 0, dir.resolve("a"));
        run("batched-64", 64, dir.resolve("b"));

        assertThat(eventKeys("per-record")).isNotEmpty();
        assertThat(eventKeys("batched-64")).containsExactlyElementsOf(eventKeys("per-record"));
    }

    /** Adds everything it receives to {@link #COLLECTED} under its key. */
    private static final class Collect<T> implements Sink<T> {
        private final String key;

        Collect(String key) {
            this.key = key;
        }

        @Override
        public SinkWriter<T> createWriter(WriterInitContext context) {
            Queue<Object> into = COLLECTED.computeIfAbsent(key, k -> new ConcurrentLinkedQueue<>());
            return new SinkWriter<>() {
                @Override
                public void write(T element, Context ctx) {
                    into.add(element);
                }

                @Override
                public void flush(boolean endOfInput) {}

                @Override
                public void close() {}
            };
        }
    }
}
