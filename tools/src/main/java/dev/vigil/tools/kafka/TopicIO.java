package dev.vigil.tools.kafka;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.Utils;

/**
 * Replays a JSONL stream into a topic and reads a topic back whole: what an operator does with a
 * console producer and a {@code read_committed} console consumer, for the demo and the tests.
 */
public final class TopicIO {

    private static final JsonFactory JSON = new JsonFactory();

    private TopicIO() {}

    /**
     * Produces every line of {@code jsonl} as one record, its bytes as they are, keyed by its
     * {@code device_id} (so one device stays in one partition, in order) and stamped with its
     * {@code ts} when that is a time the broker accepts (not negative, not in the future; else with
     * the last such time before it, or, for a first line, the time it is sent). Lines that are not
     * valid JSON or not UTF-8 are produced too, unkeyed: the job must turn them into dead letters.
     * So the replay never fails on a record the job would score or dead-letter.
     *
     * @return the number of records produced
     */
    public static long replay(String bootstrapServers, String topic, Path jsonl)
            throws IOException {
        return replay(bootstrapServers, new Properties(), topic, jsonl);
    }

    /**
     * {@link #replay(String, String, Path)} with the given client properties (security settings)
     * added to the producer's.
     */
    public static long replay(String bootstrapServers, Properties client, String topic, Path jsonl)
            throws IOException {
        return replay(bootstrapServers, client, topic, jsonl, UnaryOperator.identity());
    }

    /**
     * How a JSONL line is produced in an input format: as it is for JSON; for Avro, a line the
     * job's JSON parser reads (with these features) becomes that record in Avro, and any other line
     * is produced as it is, so that it stays a record the job dead-letters.
     */
    public static UnaryOperator<byte[]> encoder(InputFormat format, List<String> features) {
        if (format == InputFormat.JSON) {
            return UnaryOperator.identity();
        }
        InputFormat.Parser json = InputFormat.JSON.parser(features);
        String[] names = features.toArray(String[]::new);
        return line -> {
            TelemetryEvent e = json.parse(line).event();
            return e == null ? line : format.write(e, names);
        };
    }

    /**
     * {@link #replay(String, Properties, String, Path)} with each line's value produced as {@code
     * encode} turns it (another input format: {@code vigil.input.format}), keyed and stamped as the
     * line says.
     */
    public static long replay(
            String bootstrapServers,
            Properties client,
            String topic,
            Path jsonl,
            UnaryOperator<byte[]> encode)
            throws IOException {
        Properties props = clientProperties(bootstrapServers, client);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        // One request in flight: a batch retried after NOT_LEADER_OR_FOLLOWER (a topic created a
        // moment ago) can never be overtaken by the next one. With five in flight, Kafka 4.2's
        // producer was seen looping on OUT_OF_ORDER_SEQUENCE_NUMBER until the batch expired.
        props.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "1");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.BATCH_SIZE_CONFIG, "262144");
        long count = 0;
        AtomicReference<Exception> failure = new AtomicReference<>();
        try (KafkaProducer<byte[], byte[]> producer =
                        new KafkaProducer<>(
                                props, new ByteArraySerializer(), new ByteArraySerializer());
                InputStream in = new BufferedInputStream(Files.newInputStream(jsonl), 1 << 16)) {
            int partitions = producer.partitionsFor(topic).size();
            Long clock = null;
            byte[] line;
            while ((line = nextLine(in)) != null) {
                if (line.length == 0) {
                    continue;
                }
                Header h = header(line);
                byte[] value = encode.apply(line);
                // Kafka refuses a negative timestamp, and the broker one more than an hour ahead
                // (message.timestamp.after.max.ms): such a record is the job's to dead-letter. It
                // takes the replay's clock, the last good record's time (the broker's own time
                // for a first one), so that the replayed history's watermark is never pulled to
                // the present: the job's silence watch follows it.
                boolean usable = h.ts != null && h.ts >= 0 && h.ts <= System.currentTimeMillis();
                if (usable) {
                    clock = h.ts;
                }
                Long ts = usable ? h.ts : clock;
                byte[] key =
                        h.deviceId == null ? null : h.deviceId.getBytes(StandardCharsets.UTF_8);
                // Keyless records too go to a partition fixed by their bytes, not by the sticky
                // partitioner's timing, so that a replay always gives every record the same offset
                // (the golden savepoints rely on it).
                Integer partition =
                        key == null ? Utils.toPositive(Utils.murmur2(value)) % partitions : null;
                producer.send(
                        new ProducerRecord<>(topic, partition, ts, key, value),
                        (metadata, e) -> {
                            if (e != null) {
                                failure.compareAndSet(null, e);
                            }
                        });
                count++;
            }
            producer.flush();
        }
        if (failure.get() != null) {
            throw new IOException("could not replay " + jsonl + " into " + topic, failure.get());
        }
        return count;
    }

    /**
     * The next line's bytes without its end ({@code \n} or {@code \r\n}), or null at the end of the
     * input. Bytes, not characters: a line that is not UTF-8 is replayed as it is.
     */
    static byte[] nextLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream(512);
        int b;
        while ((b = in.read()) != -1 && b != '\n') {
            line.write(b);
        }
        if (b == -1 && line.size() == 0) {
            return null;
        }
        byte[] bytes = line.toByteArray();
        int n = bytes.length;
        return n > 0 && bytes[n - 1] == '\r' ? java.util.Arrays.copyOf(bytes, n - 1) : bytes;
    }

    /** The key and timestamp of a line, as far as they can be read; nulls otherwise. */
    private record Header(String deviceId, Long ts) {}

    private static Header header(byte[] value) {
        String deviceId = null;
        Long ts = null;
        try (JsonParser p = JSON.createParser(value)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return new Header(null, null);
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken t = p.nextToken();
                if (field.equals("device_id") && t == JsonToken.VALUE_STRING) {
                    deviceId = p.getText();
                } else if (field.equals("ts") && t == JsonToken.VALUE_NUMBER_INT) {
                    ts = p.getLongValue();
                } else if (field.equals("ts") && t == JsonToken.VALUE_STRING) {
                    ts = TelemetryParser.parseInstant(p.getText()); // the job's string forms
                } else {
                    p.skipChildren();
                }
            }
        } catch (IOException | RuntimeException e) {
            // a malformed line keeps whatever was read before the fault
        }
        return new Header(deviceId != null && !deviceId.isEmpty() ? deviceId : null, ts);
    }

    /**
     * Every committed record of {@code topic}, read with {@code read_committed}, values only, in
     * partition then offset order. Waits (up to a minute) until no transaction is open on the
     * topic, so a commit still in flight when the writer finished is not missed; fails if one stays
     * open.
     */
    public static List<byte[]> readCommitted(String bootstrapServers, String topic) {
        return readCommitted(bootstrapServers, new Properties(), topic);
    }

    /**
     * {@link #readCommitted(String, String)} with the given client properties (security settings)
     * added to the consumer's and the admin client's.
     */
    public static List<byte[]> readCommitted(
            String bootstrapServers, Properties client, String topic) {
        awaitNoOpenTransaction(bootstrapServers, client, topic, Duration.ofMinutes(1));
        Properties props = clientProperties(bootstrapServers, client);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "5000");
        Map<TopicPartition, List<byte[]>> byPartition = new HashMap<>();
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(
                        props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofSeconds(30));
            Set<TopicPartition> partitions =
                    infos.stream()
                            .map(i -> new TopicPartition(topic, i.partition()))
                            .collect(Collectors.toSet());
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            // With read_committed these are the last stable offsets: nothing open is waited for.
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
            long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
            while (!reached(consumer, end)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("timed out reading " + topic + " to " + end);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    byPartition
                            .computeIfAbsent(
                                    new TopicPartition(r.topic(), r.partition()),
                                    k -> new ArrayList<>())
                            .add(r.value());
                }
            }
        }
        List<byte[]> all = new ArrayList<>();
        byPartition.keySet().stream()
                .sorted((a, b) -> Integer.compare(a.partition(), b.partition()))
                .forEach(tp -> all.addAll(byPartition.get(tp)));
        return all;
    }

    /** The caller's client properties with the bootstrap servers set. */
    private static Properties clientProperties(String bootstrapServers, Properties client) {
        Properties props = new Properties();
        props.putAll(client);
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        return props;
    }

    private static void awaitNoOpenTransaction(
            String bootstrapServers, Properties client, String topic, Duration timeout) {
        Properties props = clientProperties(bootstrapServers, client);
        long deadline = System.nanoTime() + timeout.toNanos();
        try (Admin admin = Admin.create(props)) {
            Map<TopicPartition, OffsetSpec> latest =
                    admin
                            .describeTopics(List.of(topic))
                            .allTopicNames()
                            .get()
                            .get(topic)
                            .partitions()
                            .stream()
                            .collect(
                                    Collectors.toMap(
                                            p -> new TopicPartition(topic, p.partition()),
                                            p -> OffsetSpec.latest()));
            while (true) {
                Map<TopicPartition, Long> all =
                        offsets(admin, latest, IsolationLevel.READ_UNCOMMITTED);
                Map<TopicPartition, Long> stable =
                        offsets(admin, latest, IsolationLevel.READ_COMMITTED);
                if (all.equals(stable)) {
                    return;
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException(
                            "a transaction stays open on "
                                    + topic
                                    + ": written up to "
                                    + all
                                    + ", committed up to "
                                    + stable);
                }
                Thread.sleep(200);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted waiting for " + topic, e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException("cannot read the offsets of " + topic, e);
        }
    }

    private static Map<TopicPartition, Long> offsets(
            Admin admin, Map<TopicPartition, OffsetSpec> spec, IsolationLevel level)
            throws InterruptedException, java.util.concurrent.ExecutionException {
        Map<TopicPartition, Long> out = new HashMap<>();
        admin.listOffsets(spec, new ListOffsetsOptions(level))
                .all()
                .get()
                .forEach((tp, info) -> out.put(tp, info.offset()));
        return out;
    }

    private static boolean reached(
            KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> end) {
        for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
            if (consumer.position(e.getKey()) < e.getValue()) {
                return false;
            }
        }
        return true;
    }
}
