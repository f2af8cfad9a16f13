package dev.vigil.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.vigil.config.ConfigException;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.KafkaPreflight;
import dev.vigil.testing.Fixtures;
import dev.vigil.testing.LogCapture;
import dev.vigil.tools.LocalRun;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.Consumer;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The check at start against a real broker (which, like most production brokers, creates no topic
 * on its own): a missing topic or a transaction timeout the broker refuses stops the job with a
 * message naming the option; a broker that does not answer lets it start with a warning.
 */
class KafkaPreflightITCase {

    private static final Duration TIMEOUT = Duration.ofSeconds(10);

    private static EmbeddedKafkaBroker kafka;

    @TempDir static Path dir;

    @BeforeAll
    static void startKafka() throws Exception {
        kafka = EmbeddedKafkaBroker.start();
        List<String> topics = new ArrayList<>(LocalRun.outputTopics("preflight"));
        topics.add("telemetry");
        topics.add("anomalies-shadow");
        kafka.createTopics(1, topics);
    }

    @AfterAll
    static void stopKafka() throws Exception {
        if (kafka != null) {
            kafka.close();
        }
    }

    /** The configuration of a job on the test broker whose topics all exist, changed by edit. */
    private static VigilConfig config(Consumer<Map<String, String>> edit) {
        Map<String, String> c =
                LocalRun.config(
                        kafka.bootstrapServers(), Fixtures.modelDir(), "preflight", dir, "1s", 1);
        edit.accept(c);
        return VigilConfig.of(c);
    }

    @Test
    void shouldPassWhenEveryTopicExists() {
        KafkaPreflight.check(config(c -> {}), true, TIMEOUT);
    }

    @Test
    void shouldRefuseATopicTheBrokerDoesNotHave() {
        VigilConfig misspelt =
                config(c -> c.put(VigilOptions.TOPIC_ANOMALIES.key(), "anomalys-preflight"));
        assertThatThrownBy(() -> KafkaPreflight.check(misspelt, false, TIMEOUT))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(
                        "\"anomalys-preflight\" (" + VigilOptions.TOPIC_ANOMALIES.key() + ")")
                .hasMessageContaining("auto.create.topics.enable=false");

        VigilConfig noInput = config(c -> c.put(VigilOptions.TOPIC_TELEMETRY.key(), "telemetri"));
        assertThatThrownBy(() -> KafkaPreflight.check(noInput, false, TIMEOUT))
                .hasMessageContaining("\"telemetri\" (" + VigilOptions.TOPIC_TELEMETRY.key() + ")");
    }

    /** The shadow's topic only when a shadow model runs; the scores' only when it is set. */
    @Test
    void shouldNeedTheShadowsAndTheScoresTopicsOnlyWhenTheyAreWritten() {
        VigilConfig elsewhere =
                config(
                        c -> {
                            c.put(VigilOptions.TOPIC_SHADOW_ANOMALIES.key(), "no-such-topic");
                            c.put(VigilOptions.TOPIC_SCORES.key(), "");
                        });
        KafkaPreflight.check(elsewhere, false, TIMEOUT);
        assertThatThrownBy(() -> KafkaPreflight.check(elsewhere, true, TIMEOUT))
                .hasMessageContaining(VigilOptions.TOPIC_SHADOW_ANOMALIES.key());
    }

    /** The broker's transaction.max.timeout.ms is Kafka's default, 15 minutes. */
    @Test
    void shouldRefuseATransactionTimeoutAboveTheBrokersMaximum() {
        VigilConfig longer =
                config(c -> c.put(VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key(), "20 min"));
        assertThatThrownBy(() -> KafkaPreflight.check(longer, false, TIMEOUT))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key() + " (PT20M)")
                .hasMessageContaining("transaction.max.timeout.ms (PT15M)");

        VigilConfig noTransactions =
                config(
                        c -> {
                            c.put(VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key(), "20 min");
                            for (var option :
                                    List.of(
                                            VigilOptions.DELIVERY_ANOMALIES,
                                            VigilOptions.DELIVERY_SCORES,
                                            VigilOptions.DELIVERY_DEAD_LETTERS)) {
                                c.put(option.key(), "at-least-once");
                            }
                        });
        KafkaPreflight.check(noTransactions, false, TIMEOUT);
    }

    /**
     * The group committed offset 2 of a partition whose records before offset 6 retention then
     * deleted: a restore would continue at 6 without the 4 records between, so the check warns,
     * naming them; at offset 7, inside what is retained, it says nothing.
     */
    @Test
    void shouldWarnWhenTheCommittedOffsetsAreNoLongerRetained() throws Exception {
        String topic = "telemetry-retained";
        String group = "preflight-retained";
        kafka.createTopics(1, List.of(topic));
        TopicPartition partition = new TopicPartition(topic, 0);
        Properties producer = new Properties();
        producer.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        try (var p =
                new KafkaProducer<>(producer, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, "device", "{}")).get();
            }
        }
        VigilConfig config =
                config(
                        c -> {
                            c.put(VigilOptions.TOPIC_TELEMETRY.key(), topic);
                            c.put(VigilOptions.KAFKA_GROUP_ID.key(), group);
                        });
        try (Admin admin = kafka.admin()) {
            admin.alterConsumerGroupOffsets(group, Map.of(partition, new OffsetAndMetadata(2)))
                    .all()
                    .get();
            admin.deleteRecords(Map.of(partition, RecordsToDelete.beforeOffset(6))).all().get();

            try (LogCapture log = LogCapture.start()) {
                KafkaPreflight.check(config, false, TIMEOUT);
                assertThat(log.events())
                        .filteredOn(e -> e.startsWith("WARN " + KafkaPreflight.class.getName()))
                        .singleElement()
                        .asString()
                        .contains(
                                "\"" + group + "\"",
                                "\"" + topic + "\"",
                                "4 records of partitions [0]",
                                "at the earliest retained record");
            }

            admin.alterConsumerGroupOffsets(group, Map.of(partition, new OffsetAndMetadata(7)))
                    .all()
                    .get();
            try (LogCapture log = LogCapture.start()) {
                KafkaPreflight.check(config, false, TIMEOUT);
                assertThat(log.events())
                        .noneMatch(e -> e.startsWith("WARN " + KafkaPreflight.class.getName()));
            }
        }
    }

    @Test
    void shouldStartWithAWarningWhenTheBrokerDoesNotAnswer() throws Exception {
        int closed;
        try (ServerSocket s = new ServerSocket(0)) {
            closed = s.getLocalPort();
        }
        VigilConfig nowhere =
                config(
                        c ->
                                c.put(
                                        VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(),
                                        "127.0.0.1:" + closed));
        try (LogCapture log = LogCapture.start()) {
            long started = System.nanoTime();
            KafkaPreflight.check(nowhere, false, Duration.ofSeconds(2));
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(TIMEOUT);
            assertThat(log.events())
                    .anyMatch(
                            e ->
                                    e.startsWith("WARN")
                                            && e.contains("Could not list the topics")
                                            && e.contains("no answer within PT2S"));
        }
    }

    /**
     * A bootstrap name only the cluster resolves ({@code flink run} calls the job's main where it
     * is submitted): the client cannot even be made here, and the job starts with a warning.
     */
    @Test
    void shouldStartWithAWarningWhenNoClientCanBeMadeHere() {
        VigilConfig elsewhere =
                config(
                        c ->
                                c.put(
                                        VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(),
                                        "kafka.cluster-only.invalid:9092"));
        try (LogCapture log = LogCapture.start()) {
            KafkaPreflight.check(elsewhere, false, Duration.ofSeconds(2));
            assertThat(log.events())
                    .anyMatch(
                            e ->
                                    e.startsWith("WARN")
                                            && e.contains("Could not make a Kafka client"));
        }
    }
}
