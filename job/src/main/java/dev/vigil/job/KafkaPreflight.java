package dev.vigil.job;

import dev.vigil.config.ConfigException;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.kafka.KafkaSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.flink.configuration.ConfigOption;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Checks at start, against the broker, what would otherwise fail long after it: a sink's topic that
 * does not exist on a broker that creates none fails the job at its first record there (the first
 * anomaly, perhaps days later), and then at every restart; a telemetry topic that does not exist
 * fails the source at every start (it describes its topic, which creates none); a transaction
 * timeout above the broker's {@code transaction.max.timeout.ms} fails every exactly-once sink at
 * start, and again at every restart. Each refuses the job with a message naming the option to fix.
 * A client that cannot be made here (a bootstrap name or a truststore only the cluster has: {@code
 * flink run} calls the job's main where it is submitted), a broker that does not answer in time, or
 * credentials that may not list topics or read the broker's configuration are logged, and the job
 * starts without that part of the check: the sources and sinks will say more. Committed offsets
 * below what the telemetry topic retains, which the consumer would skip without a word, are logged
 * as a warning.
 */
public final class KafkaPreflight {

    private static final Logger LOG = LoggerFactory.getLogger(KafkaPreflight.class);

    /** How long the check waits for the broker at start. */
    public static final Duration TIMEOUT = Duration.ofSeconds(15);

    private KafkaPreflight() {}

    /**
     * Checks {@code config}'s topics and transaction timeout; {@code shadow}: a shadow model runs.
     * Returns within {@code timeout} and a second more whatever the client does (on a thread of its
     * own, left to end by itself: closing a Kafka client waits for its network thread, which a
     * hanging name lookup can hold); only a {@link ConfigException} is thrown.
     */
    public static void check(VigilConfig config, boolean shadow, Duration timeout) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        Thread thread =
                new Thread(
                        () -> {
                            try {
                                checkNow(config, shadow, timeout);
                                done.complete(null);
                            } catch (Throwable t) {
                                done.completeExceptionally(t);
                            }
                        },
                        "vigil-kafka-preflight");
        thread.setDaemon(true);
        thread.start();
        try {
            done.get(timeout.toMillis() + 1_000, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof ConfigException refused) {
                throw refused;
            }
            LOG.warn(
                    "The check of the Kafka topics and transaction timeout failed ({}): the job"
                            + " starts without it",
                    reason(e, timeout));
        } catch (TimeoutException | InterruptedException e) {
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            LOG.warn(
                    "The check of the Kafka topics and transaction timeout did not end within {}:"
                            + " the job starts without it",
                    timeout);
        }
    }

    private static void checkNow(VigilConfig config, boolean shadow, Duration timeout) {
        KafkaSettings kafka = config.kafka();
        Properties props = new Properties();
        Set<String> adminConfigs = AdminClientConfig.configNames();
        kafka.clientProperties()
                .forEach(
                        (k, v) -> {
                            if (adminConfigs.contains(String.valueOf(k))) {
                                props.put(k, v);
                            }
                        });
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) timeout.toMillis());
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) timeout.toMillis());
        long deadline = System.nanoTime() + timeout.toNanos();
        Admin admin;
        try {
            admin = Admin.create(props);
        } catch (RuntimeException e) {
            LOG.warn(
                    "Could not make a Kafka client for {} here ({}): the job starts without"
                            + " checking that its topics exist and that the broker accepts its"
                            + " transaction timeout",
                    kafka.bootstrapServers(),
                    reason(e, timeout));
            return;
        }
        try {
            Set<String> topics;
            try {
                topics = get(admin.listTopics().names(), deadline);
            } catch (Exception e) {
                LOG.warn(
                        "Could not list the topics of {} at start ({}): the job starts without"
                                + " checking that its topics exist and that the broker accepts its"
                                + " transaction timeout",
                        kafka.bootstrapServers(),
                        reason(e, timeout));
                return;
            }
            Config broker = brokerConfig(admin, kafka.bootstrapServers(), deadline, timeout);
            checkTopics(config, shadow, topics, broker);
            checkTransactionTimeout(config, broker);
            checkRetainedOffsets(admin, config, deadline, timeout);
        } finally {
            admin.close(Duration.ZERO); // a request still waiting for the broker is dropped
        }
    }

    /** One broker's configuration, or null when it cannot be read (logged). */
    private static Config brokerConfig(
            Admin admin, String bootstrap, long deadline, Duration timeout) {
        try {
            Node node = get(admin.describeCluster().nodes(), deadline).iterator().next();
            ConfigResource resource =
                    new ConfigResource(ConfigResource.Type.BROKER, node.idString());
            return get(admin.describeConfigs(List.of(resource)).all(), deadline).get(resource);
        } catch (Exception e) {
            LOG.warn(
                    "Could not read the configuration of a broker of {} at start ({}): the job"
                            + " starts without checking its transaction timeout against the"
                            + " broker's transaction.max.timeout.ms, and takes a missing output"
                            + " topic for one the broker creates",
                    bootstrap,
                    reason(e, timeout));
            return null;
        }
    }

    private static void checkTopics(
            VigilConfig config, boolean shadow, Set<String> existing, Config broker) {
        String telemetry = config.get(VigilOptions.TOPIC_TELEMETRY);
        if (!existing.contains(telemetry)) {
            throw new ConfigException(
                    "the telemetry topic \""
                            + telemetry
                            + "\" ("
                            + VigilOptions.TOPIC_TELEMETRY.key()
                            + ") does not exist on "
                            + config.kafka().bootstrapServers()
                            + ": create it, or correct the name. The source describes its topic,"
                            + " which creates none, and would fail at every start");
        }
        Map<ConfigOption<String>, String> needed = new LinkedHashMap<>();
        needed.put(VigilOptions.TOPIC_ANOMALIES, config.get(VigilOptions.TOPIC_ANOMALIES));
        needed.put(VigilOptions.TOPIC_DEAD_LETTERS, config.get(VigilOptions.TOPIC_DEAD_LETTERS));
        if (!config.get(VigilOptions.TOPIC_SCORES).isBlank()) {
            needed.put(VigilOptions.TOPIC_SCORES, config.get(VigilOptions.TOPIC_SCORES));
        }
        if (shadow) {
            needed.put(
                    VigilOptions.TOPIC_SHADOW_ANOMALIES,
                    config.get(VigilOptions.TOPIC_SHADOW_ANOMALIES));
        }
        List<String> missing = new ArrayList<>();
        needed.forEach(
                (option, topic) -> {
                    if (!existing.contains(topic)) {
                        missing.add("\"" + topic + "\" (" + option.key() + ")");
                    }
                });
        if (missing.isEmpty()) {
            return;
        }
        String creates = value(broker, "auto.create.topics.enable");
        String what =
                (missing.size() == 1 ? "topic " : "topics ")
                        + String.join(", ", missing)
                        + (missing.size() == 1 ? " does" : " do")
                        + " not exist on "
                        + config.kafka().bootstrapServers();
        if (creates == null || Boolean.parseBoolean(creates)) {
            LOG.warn(
                    "The {}; the job starts, counting on the broker to create what it writes to{}"
                            + " (with its default partitions and retention): check the names",
                    what,
                    creates == null ? " (its auto.create.topics.enable could not be read)" : "");
            return;
        }
        throw new ConfigException(
                "the "
                        + what
                        + ", which does not create topics (auto.create.topics.enable=false):"
                        + " create them, or correct the names. A sink without its topic would fail"
                        + " the job at its first record, and at every restart after");
    }

    private static void checkTransactionTimeout(VigilConfig config, Config broker) {
        String max = value(broker, "transaction.max.timeout.ms");
        if (!config.transactional() || max == null) {
            return;
        }
        long timeoutMs = config.kafka().transactionTimeoutMs();
        if (timeoutMs > Long.parseLong(max)) {
            throw new ConfigException(
                    VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key()
                            + " ("
                            + Duration.ofMillis(timeoutMs)
                            + ") is above the broker's transaction.max.timeout.ms ("
                            + Duration.ofMillis(Long.parseLong(max))
                            + "), which refuses every exactly-once sink's transactions: lower it"
                            + " (it must still exceed the checkpoint interval plus"
                            + " execution.checkpointing.timeout), or raise the broker's");
        }
    }

    /**
     * Warns when the consumer group's committed offsets (those of the job's last completed
     * checkpoint) point below what the telemetry topic still retains: the records between were
     * deleted unread, and the consumer, finding its offset out of range, continues at the earliest
     * retained record (the latest with {@code start-from: latest}) without a word. A savepoint's
     * own offsets are not known here; they are usually older still.
     */
    private static void checkRetainedOffsets(
            Admin admin, VigilConfig config, long deadline, Duration timeout) {
        String topic = config.get(VigilOptions.TOPIC_TELEMETRY);
        String group = config.kafka().groupId();
        Map<TopicPartition, OffsetSpec> partitions = new HashMap<>();
        Map<TopicPartition, Long> committed = new HashMap<>();
        try {
            get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(), deadline)
                    .forEach(
                            (tp, offset) -> {
                                if (offset != null && tp.topic().equals(topic)) {
                                    committed.put(tp, offset.offset());
                                    partitions.put(tp, OffsetSpec.earliest());
                                }
                            });
            if (committed.isEmpty()) {
                LOG.info(
                        "The consumer group \"{}\" has no committed offsets of topic \"{}\":"
                                + " nothing to compare with what the topic retains (a group's"
                                + " offsets expire offsets.retention.minutes after its last"
                                + " commit, so after a downtime that long too)",
                        group,
                        topic);
                return;
            }
            Map<Integer, Long> lost = new TreeMap<>();
            get(admin.listOffsets(partitions).all(), deadline)
                    .forEach(
                            (tp, earliest) -> {
                                long gap = earliest.offset() - committed.get(tp);
                                if (gap > 0) {
                                    lost.put(tp.partition(), gap);
                                }
                            });
            if (lost.isEmpty()) {
                return;
            }
            long records = lost.values().stream().mapToLong(Long::longValue).sum();
            LOG.warn(
                    "The consumer group \"{}\" ({}) committed offsets of telemetry topic \"{}\""
                            + " that it no longer retains: {} records of partitions {} (offsets,"
                            + " so at most that many records) were deleted before the job read"
                            + " them. Restored from its last checkpoint, or started from the"
                            + " committed offsets, the job continues in those partitions {}"
                            + " without them: their devices' steps in between are never scored."
                            + " Keep the topic's retention.ms above the longest downtime and"
                            + " backlog",
                    group,
                    VigilOptions.KAFKA_GROUP_ID.key(),
                    topic,
                    records,
                    lost.keySet(),
                    config.kafka().startFrom() == KafkaSettings.StartFrom.LATEST
                            ? "at the end (vigil.kafka.start-from: latest), skipping every"
                                    + " record still retained too,"
                            : "at the earliest retained record");
        } catch (Exception e) {
            LOG.warn(
                    "Could not compare the consumer group \"{}\"'s committed offsets with what"
                            + " topic \"{}\" retains ({}): the job starts without that check",
                    group,
                    topic,
                    reason(e, timeout));
        }
    }

    /** A broker configuration's value, or null when unknown. */
    private static String value(Config broker, String name) {
        if (broker == null) {
            return null;
        }
        ConfigEntry entry = broker.get(name);
        return entry == null ? null : entry.value();
    }

    /** The future's value, waiting at most until {@code deadline} ({@link System#nanoTime}). */
    private static <T> T get(org.apache.kafka.common.KafkaFuture<T> future, long deadline)
            throws InterruptedException, ExecutionException, TimeoutException {
        return future.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
    }

    /** Why a request failed: Kafka's error, or no answer within {@code timeout}. */
    private static String reason(Exception e, Duration timeout) {
        Throwable cause =
                e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        if (e instanceof InterruptedException) {
            Thread.currentThread().interrupt();
        }
        if (cause instanceof TimeoutException
                || cause instanceof org.apache.kafka.common.errors.TimeoutException) {
            return "no answer within " + timeout;
        }
        return cause.getClass().getSimpleName() + ": " + cause.getMessage();
    }
}
