package dev.vigil.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.scoring.Canary;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import dev.vigil.tools.LocalRun;
import dev.vigil.tools.evaluation.Evaluation;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import dev.vigil.tools.kafka.TopicIO;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.runtime.testutils.InMemoryReporter;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole job on real parts: an in-process Kafka broker, a local Flink mini cluster with RocksDB
 * and exactly-once checkpoints, ONNX Runtime with the committed model, and the generated test fleet
 * replayed into the input topic.
 */
class KafkaPipelineITCase {

    /** Keeps every metric of the finished jobs, for the metrics assertions. */
    private static final int PARALLELISM = 2;

    private static final InMemoryReporter REPORTER = InMemoryReporter.createWithRetainedMetrics();

    /**
     * The mini cluster the jobs run on: the job's own environment code picks it up, so the tests
     * run exactly what {@code VigilJob} runs.
     */
    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER =
            Fixtures.miniCluster(2, REPORTER.addToConfiguration(new Configuration()));

    private static EmbeddedKafkaBroker kafka;
    private static Path fleet;
    private static long produced;
    private static ModelBundle bundle;

    @BeforeAll
    static void startKafkaAndReplayTheFleet(@TempDir Path dir) throws Exception {
        fleet = dir;
        new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(fleet);
        bundle = Fixtures.model();
        kafka = EmbeddedKafkaBroker.start();
        kafka.createTopics(4, List.of("telemetry"));
        produced =
                TopicIO.replay(kafka.bootstrapServers(), "telemetry", fleet.resolve("test.jsonl"));
    }

    @AfterAll
    static void stopKafka() throws Exception {
        if (kafka != null) {
            kafka.close();
        }
    }

    /** A bounded run's configuration, writing to topics with the given suffix. */
    private static VigilConfig config(String run, Path checkpoints) throws Exception {
        return config(run, checkpoints, Map.of());
    }

    private static VigilConfig config(String run, Path checkpoints, Map<String, String> extra)
            throws Exception {
        kafka.createTopics(4, LocalRun.outputTopics(run));
        Map<String, String> c =
                LocalRun.config(
                        kafka.bootstrapServers(),
                        Fixtures.modelDir(),
                        run,
                        checkpoints,
                        "200ms",
                        PARALLELISM);
        c.put("restart-strategy.type", "fixed-delay");
        c.put("restart-strategy.fixed-delay.attempts", "3");
        c.put("restart-strategy.fixed-delay.delay", "500ms");
        c.putAll(extra);
        return VigilConfig.of(c);
    }

    private static List<String> committed(String topic) {
        return TopicIO.readCommitted(kafka.bootstrapServers(), topic).stream()
                .map(v -> new String(v, StandardCharsets.UTF_8))
                .sorted()
                .toList();
    }

    /** Every counter of the job's {@code vigil} groups, summed over subtasks and labels. */
    private static Map<String, Long> counters(InMemoryReporter reporter, JobID job) {
        Map<String, Long> sums = new HashMap<>();
        reporter.getMetricsByIdentifiers(job)
                .forEach(
                        (id, metric) -> {
                            if (metric instanceof Counter c
                                    && id.contains("." + Metrics.GROUP + ".")) {
                                sums.merge(
                                        id.substring(id.lastIndexOf('.') + 1),
                                        c.getCount(),
                                        Long::sum);
                            }
                        });
        return sums;
    }

    @Test
    void shouldFindTheLabelledAnomaliesAndAccountForEveryRecord(@TempDir Path checkpoints)
            throws Exception {
        JobExecutionResult result = VigilJob.run(config("plain", checkpoints), bundle);

        long in = LocalRun.counted(result, Metrics.RECORDS_IN);
        long scored = LocalRun.counted(result, Metrics.SCORED);
        long late = LocalRun.counted(result, Metrics.LATE);
        long dead = LocalRun.counted(result, Metrics.DEAD_LETTERS);
        assertThat(in).isEqualTo(produced);
        assertThat(in).isEqualTo(scored + late + dead);
        assertThat(late).isPositive(); // the fleet's feed carries duplicates and late re-sends
        assertThat(dead).isPositive(); // and malformed records
        // The dead-letter topic holds the parser's dead letters and the late records.
        assertThat(committed("dead-letters-plain")).hasSize((int) (dead + late));

        // The same story from the job's metrics, as a dashboard would read it.
        Map<String, Long> counters = counters(REPORTER, result.getJobID());
        assertThat(counters.get(Metrics.RECORDS_IN)).isEqualTo(in);
        assertThat(counters.get(Metrics.SCORED)).isEqualTo(scored);
        assertThat(counters.get(Metrics.LATE)).isEqualTo(late);
        assertThat(counters.get(Metrics.DEAD_LETTERS)).isEqualTo(dead);
        assertThat(counters.get(Metrics.DEAD_LETTERS_BY_REASON)).isEqualTo(dead);
        assertThat(counters.get(Metrics.LATE_BY_REASON)).isEqualTo(late);
        assertThat(counters.get(Metrics.EPISODES_OPENED)).isPositive();
        List<ScoredStep> steps = scores("scores-plain"); // by device, then ts
        assertThat(steps).hasSize((int) scored);
        // The state cache was written back (at the checkpoints, and at end of input: empty then).
        Map<String, Long> writeBacks = new HashMap<>();
        Map<String, Integer> cached = new HashMap<>();
        REPORTER.getMetricsByIdentifiers(result.getJobID())
                .forEach(
                        (id, metric) -> {
                            if (id.endsWith("." + Metrics.STATE_CACHE_WRITE_BACK_MS)) {
                                writeBacks.put(id, ((Histogram) metric).getCount());
                            } else if (id.endsWith("." + Metrics.STATE_CACHE_DEVICES)) {
                                cached.put(id, (Integer) ((Gauge<?>) metric).getValue());
                            }
                        });
        assertThat(writeBacks)
                .hasSize(PARALLELISM)
                .allSatisfy((id, n) -> assertThat(n).isPositive());
        assertThat(cached).hasSize(PARALLELISM).allSatisfy((id, n) -> assertThat(n).isZero());
        // Each device's first step read RocksDB; the cache served most of the others.
        long devices = steps.stream().map(step -> step.deviceId).distinct().count();
        assertThat(counters.get(Metrics.STATE_CACHE_MISSES))
                .isGreaterThanOrEqualTo(devices)
                .isLessThan(scored / 10);

        List<AnomalyEvent> events =
                committed("anomalies-plain").stream()
                        .map(s -> WireFormat.parseAnomaly(s.getBytes(StandardCharsets.UTF_8)))
                        .toList();
        Evaluation.Result eval =
                Evaluation.evaluate(
                        Evaluation.episodes(events),
                        FleetGenerator.readLabels(fleet.resolve("labels.csv")));
        assertThat(eval.precision()).isGreaterThanOrEqualTo(0.9);
        assertThat(eval.recall()).isGreaterThanOrEqualTo(0.75);
        assertThat(events).extracting(e -> e.eventId).doesNotHaveDuplicates();

        // Every silence of a device (no step scored for vigil.alerts.silence-after) is one silence
        // event pair: OPEN at its last step plus the period, CLOSE at its next step. The gaps are
        // found in the scores topic, apart from the job's events (the replay stamps each record
        // with its ts, so the Kafka time the watch measures is the steps' time).
        long period = VigilOptions.ALERTS_SILENCE_AFTER.defaultValue().toMillis();
        List<String> gaps = new ArrayList<>();
        ScoredStep previous = null;
        for (ScoredStep step : steps) {
            if (previous != null
                    && previous.deviceId.equals(step.deviceId)
                    && step.ts - previous.ts > period) {
                gaps.add(step.deviceId + " " + previous.ts + " " + step.ts);
            }
            previous = step;
        }
        List<String> opens = new ArrayList<>();
        List<String> silences = new ArrayList<>();
        for (AnomalyEvent e : events) {
            if (e.isSilence() && AnomalyEvent.OPEN.equals(e.type)) {
                assertThat(e.ts).as(e.eventId).isEqualTo(e.episodeStart + period);
                opens.add(e.deviceId + " " + e.episodeStart);
            } else if (e.isSilence()) {
                assertThat(e.durationMs).as(e.eventId).isEqualTo(e.ts - e.episodeStart);
                silences.add(e.deviceId + " " + e.episodeStart + " " + e.ts);
            }
        }
        // Each CLOSE has its OPEN.
        assertThat(silences)
                .extracting(c -> c.substring(0, c.lastIndexOf(' ')))
                .containsExactlyInAnyOrderElementsOf(opens);
        assertThat(gaps).isNotEmpty();
        assertThat(silences).containsExactlyInAnyOrderElementsOf(gaps);
        assertThat(LocalRun.counted(result, Metrics.SILENCES_OPENED)).isEqualTo(gaps.size());
        assertThat(LocalRun.counted(result, Metrics.SILENCES_CLOSED)).isEqualTo(gaps.size());

        // The steps no alert can come from: the first warmup_steps of each device's run of steps,
        // a run ending at a gap longer than vigil.scoring.gap (its memory is reset then).
        long gap = VigilOptions.SCORING_GAP.defaultValue().toMillis();
        long warming = 0;
        int sinceReset = 0;
        long runs = 0;
        previous = null;
        for (ScoredStep step : steps) {
            boolean reset =
                    previous == null
                            || !previous.deviceId.equals(step.deviceId)
                            || step.ts - previous.ts > gap;
            sinceReset = reset ? 1 : sinceReset + 1;
            runs += reset ? 1 : 0;
            if (sinceReset <= bundle.card().warmupSteps()) {
                warming++;
            }
            previous = step;
        }
        assertThat(runs).isGreaterThan(24); // 24 devices, and gaps that reset some of them
        assertThat(LocalRun.counted(result, Metrics.WARMING_UP)).isEqualTo(warming);
        assertThat(counters.get(Metrics.WARMING_UP)).isEqualTo(warming);
    }

    private static boolean referenceRun;

    /** A failure-free run into the "reference" topics, once for the tests that compare with it. */
    private static synchronized void runTheReference(Path dir) throws Exception {
        if (!referenceRun) {
            VigilJob.run(config("reference", dir), bundle);
            referenceRun = true;
        }
    }

    /** The whole job, failing once mid-stream after a checkpoint (then restoring from it). */
    private static void runFailingOnce(VigilConfig failing) throws Exception {
        FailOnceAfterACheckpoint.FAILED.set(false);
        StreamExecutionEnvironment env = VigilPipeline.environment(failing);
        VigilPipeline.define(
                env,
                e ->
                        VigilJob.kafkaSource(failing)
                                .read(e)
                                .map(new FailOnceAfterACheckpoint(produced / 4))
                                .uid("fail-once"),
                bundle,
                VigilPipeline.Scoring.of(bundle, failing.scoring()),
                VigilJob.kafkaSinks(failing),
                failing.input());
        env.execute("vigil-with-failure");
        assertThat(FailOnceAfterACheckpoint.FAILED.get()).isTrue();
    }

    /**
     * At-least-once delivery writes events as they are produced; a failure writes those since the
     * last checkpoint again, with the same ids: the distinct events are exactly a failure-free
     * run's, which is how a consumer de-duplicating by event_id sees them.
     */
    @Test
    void shouldWriteEveryAnomalyAtLeastOnceWithStableIdsWhenTheJobFailsMidStream(@TempDir Path dir)
            throws Exception {
        runTheReference(dir.resolve("a"));
        Map<String, String> atLeastOnce =
                Map.of(
                        VigilOptions.DELIVERY_ANOMALIES.key(), "at-least-once",
                        VigilOptions.DELIVERY_SCORES.key(), "at-least-once",
                        VigilOptions.DELIVERY_DEAD_LETTERS.key(), "at-least-once");
        runFailingOnce(config("atleastonce", dir.resolve("b"), atLeastOnce));

        List<AnomalyEvent> expected = anomalies("anomalies-reference");
        List<AnomalyEvent> written = anomalies("anomalies-atleastonce");
        Map<String, AnomalyEvent> distinct = new java.util.TreeMap<>();
        written.forEach(e -> distinct.putIfAbsent(e.eventId, e));
        assertThat(distinct.keySet())
                .containsExactlyElementsOf(expected.stream().map(e -> e.eventId).toList());
        Fixtures.assertSameAnomalies(List.copyOf(distinct.values()), expected, 1e-5f);
        assertThat(steps("scores-atleastonce")).isEqualTo(steps("scores-reference"));
    }

    @Test
    void shouldWriteTheSameAnomaliesExactlyOnceWhenTheJobFailsMidStream(@TempDir Path dir)
            throws Exception {
        runTheReference(dir.resolve("a"));
        VigilConfig failing = config("failing", dir.resolve("b"));
        runFailingOnce(failing);

        // Nothing lost, nothing duplicated: the same events, ids and order per device. Scores may
        // differ in their last bits, as batches form differently after the restore.
        List<AnomalyEvent> expected = anomalies("anomalies-reference");
        List<AnomalyEvent> actual = anomalies("anomalies-failing");
        Fixtures.assertSameAnomalies(actual, expected, 1e-5f);
        List<ScoredStep> expectedScores = scores("scores-reference");
        List<ScoredStep> actualScores = scores("scores-failing");
        assertThat(actualScores)
                .extracting(st -> st.deviceId + "@" + st.ts)
                .containsExactlyElementsOf(
                        expectedScores.stream().map(st -> st.deviceId + "@" + st.ts).toList());
        for (int i = 0; i < expectedScores.size(); i++) {
            float e = expectedScores.get(i).score;
            assertThat(actualScores.get(i).score).isCloseTo(e, within(1e-5f * Math.max(1f, e)));
        }
        assertThat(committed("dead-letters-failing"))
                .hasSameSizeAs(committed("dead-letters-reference"));
    }

    /**
     * The same feed in the Avro input format: every line the JSON parser reads becomes that record
     * in Avro, every other line is sent as it is (and is no Avro record either). The job must score
     * it exactly as it scores the JSON feed, and dead-letter as many records.
     */
    @Test
    void shouldScoreTheFeedInAvroAsItScoresItInJson(@TempDir Path dir) throws Exception {
        runTheReference(dir.resolve("a"));
        kafka.createTopics(4, List.of("telemetry-avro"));
        long sent =
                TopicIO.replay(
                        kafka.bootstrapServers(),
                        new java.util.Properties(),
                        "telemetry-avro",
                        fleet.resolve("test.jsonl"),
                        TopicIO.encoder(InputFormat.AVRO, bundle.card().featureNames()));
        assertThat(sent).isEqualTo(produced);
        VigilConfig avro =
                config(
                        "avro",
                        dir.resolve("b"),
                        Map.of(
                                VigilOptions.INPUT_FORMAT.key(), "avro",
                                VigilOptions.TOPIC_TELEMETRY.key(), "telemetry-avro"));

        JobExecutionResult result = VigilJob.run(avro, bundle);

        assertThat(LocalRun.counted(result, Metrics.RECORDS_IN)).isEqualTo(produced);
        Fixtures.assertSameAnomalies(
                anomalies("anomalies-avro"), anomalies("anomalies-reference"), 1e-5f);
        assertThat(steps("scores-avro")).isEqualTo(steps("scores-reference"));
        assertThat(committed("dead-letters-avro"))
                .hasSameSizeAs(committed("dead-letters-reference"));
    }

    /**
     * A shadow model beside the serving one (here the same model under another version): its
     * episodes go to the shadow topic only, the same as the serving model's, and nothing of the
     * job's accounting is counted twice. Then a canary: half the devices served by it.
     */
    @Test
    void shouldScoreAShadowModelBesideTheServingOneIntoItsOwnTopic(@TempDir Path dir)
            throws Exception {
        runTheReference(dir.resolve("a"));
        Path shadowDir = dir.resolve("shadow-model");
        Files.createDirectories(shadowDir);
        for (String file : List.of(ModelBundle.ONNX_FILE, ModelCard.FILE)) {
            Files.copy(Fixtures.modelDir().resolve(file), shadowDir.resolve(file));
        }
        String shadowVersion = bundle.card().version().replace("+", "-shadow+");
        Path card = shadowDir.resolve(ModelCard.FILE);
        Files.writeString(
                card,
                Files.readString(card)
                        .replace(
                                "\"" + bundle.card().version() + "\"",
                                "\"" + shadowVersion + "\""));
        kafka.createTopics(2, List.of("anomalies-shadow-run"));
        VigilConfig withShadow =
                config(
                        "shadow",
                        dir.resolve("b"),
                        Map.of(
                                VigilOptions.MODEL_SHADOW_DIR.key(),
                                shadowDir.toString(),
                                VigilOptions.TOPIC_SHADOW_ANOMALIES.key(),
                                "anomalies-shadow-run"));

        JobExecutionResult result = VigilJob.run(withShadow, bundle);

        long scored = LocalRun.counted(result, Metrics.SCORED);
        assertThat(LocalRun.counted(result, Metrics.RECORDS_IN)).isEqualTo(produced);
        assertThat(LocalRun.counted(result, Metrics.RECORDS_IN))
                .isEqualTo(
                        scored
                                + LocalRun.counted(result, Metrics.LATE)
                                + LocalRun.counted(result, Metrics.DEAD_LETTERS));
        assertThat(LocalRun.counted(result, "shadow_" + Metrics.SCORED)).isEqualTo(scored);
        Fixtures.assertSameAnomalies(
                anomalies("anomalies-shadow"), anomalies("anomalies-reference"), 1e-5f);
        List<AnomalyEvent> shadowEvents = anomalies("anomalies-shadow-run");
        assertThat(shadowEvents).allMatch(e -> e.modelVersion.equals(shadowVersion));
        // A device's silences go to the anomalies topic only, whichever model serves it.
        Fixtures.assertSameAnomalies(shadowEvents, scoreEpisodes("anomalies-reference"), 1e-5f);
        assertThat(committed("dead-letters-shadow"))
                .hasSameSizeAs(committed("dead-letters-reference"));

        // A canary of half the fleet: its devices' alerts come from the shadow model, the others'
        // from the serving one, and each model's events for the devices it does not serve go to
        // the shadow topic (the same weights: the same episodes either way).
        kafka.createTopics(2, List.of("anomalies-shadow-canary"));
        VigilConfig canary =
                config(
                        "canary",
                        dir.resolve("c"),
                        Map.of(
                                VigilOptions.MODEL_SHADOW_DIR.key(),
                                shadowDir.toString(),
                                VigilOptions.TOPIC_SHADOW_ANOMALIES.key(),
                                "anomalies-shadow-canary",
                                VigilOptions.MODEL_CANARY_FRACTION.key(),
                                "0.5"));

        JobExecutionResult canaryRun = VigilJob.run(canary, bundle);

        List<AnomalyEvent> alerts = anomalies("anomalies-canary");
        Fixtures.assertSameAnomalies(alerts, anomalies("anomalies-reference"), 1e-5f);
        Fixtures.assertSameAnomalies(
                anomalies("anomalies-shadow-canary"), scoreEpisodes("anomalies-reference"), 1e-5f);
        for (AnomalyEvent e : alerts) {
            boolean inCanary = Canary.contains(e.deviceId, 0.5);
            assertThat(e.modelVersion)
                    .as(e.eventId)
                    .isEqualTo(inCanary ? shadowVersion : bundle.card().version());
        }
        assertThat(alerts).anyMatch(e -> e.modelVersion.equals(shadowVersion));
        assertThat(alerts).anyMatch(e -> e.modelVersion.equals(bundle.card().version()));
        assertThat(anomalies("anomalies-shadow-canary"))
                .allMatch(
                        e ->
                                e.modelVersion.equals(
                                        Canary.contains(e.deviceId, 0.5)
                                                ? bundle.card().version()
                                                : shadowVersion));
        long canarySteps = LocalRun.counted(canaryRun, Metrics.SCORED + "_canary");
        assertThat(canarySteps).isPositive();
        assertThat(canarySteps + LocalRun.counted(canaryRun, Metrics.SCORED + "_control"))
                .isEqualTo(LocalRun.counted(canaryRun, Metrics.SCORED));
        assertThat(steps("scores-canary")).isEqualTo(steps("scores-reference"));
        assertThat(committed("dead-letters-canary"))
                .hasSameSizeAs(committed("dead-letters-reference"));
    }

    private static List<AnomalyEvent> anomalies(String topic) {
        return committed(topic).stream()
                .map(s -> WireFormat.parseAnomaly(s.getBytes(StandardCharsets.UTF_8)))
                .sorted(Comparator.comparing((AnomalyEvent e) -> e.eventId))
                .toList();
    }

    /** The events of a topic's score episodes: its silence events left out. */
    private static List<AnomalyEvent> scoreEpisodes(String topic) {
        return anomalies(topic).stream().filter(e -> !e.isSilence()).toList();
    }

    /** The distinct steps a scores topic holds, as "device@ts". */
    private static java.util.Set<String> steps(String topic) {
        return scores(topic).stream()
                .map(st -> st.deviceId + "@" + st.ts)
                .collect(java.util.stream.Collectors.toSet());
    }

    private static List<ScoredStep> scores(String topic) {
        return committed(topic).stream()
                .map(s -> WireFormat.parseScore(s.getBytes(StandardCharsets.UTF_8)))
                .sorted(
                        Comparator.comparing((ScoredStep s) -> s.deviceId)
                                .thenComparingLong(s -> s.ts))
                .toList();
    }

    /**
     * Throws once, in one subtask, after a checkpoint has completed and N records have passed: the
     * job must restore from that checkpoint and replay from its offsets. It paces the stream (at
     * most {@value #PER_MS} records a millisecond per subtask) so that checkpoints complete while
     * input remains, however fast the machine.
     */
    static final class FailOnceAfterACheckpoint extends RichMapFunction<RawRecord, RawRecord>
            implements CheckpointListener {
        static final AtomicBoolean FAILED = new AtomicBoolean();
        private static final int PER_MS = 10;
        private final long after;
        private transient long seen;
        private transient long startNanos;
        private transient boolean checkpointed;

        FailOnceAfterACheckpoint(long after) {
            this.after = after;
        }

        @Override
        public void open(OpenContext ctx) {
            seen = 0;
            checkpointed = false;
        }

        @Override
        public RawRecord map(RawRecord r) {
            if (seen == 0) {
                startNanos = System.nanoTime();
            }
            seen++;
            long due = startNanos + seen * 1_000_000L / PER_MS;
            long now;
            while (!FAILED.get() && (now = System.nanoTime()) < due) {
                LockSupport.parkNanos(due - now);
            }
            if (seen >= after / 2 && checkpointed && FAILED.compareAndSet(false, true)) {
                throw new IllegalStateException("injected failure after " + seen + " records");
            }
            return r;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            checkpointed = true;
        }
    }
}
