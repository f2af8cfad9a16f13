package dev.vigil.kafka;

import dev.vigil.serde.RawRecord;
import java.util.Properties;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.KafkaSourceBuilder;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.util.Collector;
import org.apache.flink.util.function.SerializableFunction;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/** Builds the job's Kafka source and its exactly-once sinks from {@link KafkaSettings}. */
public final class KafkaConnectors {

    private KafkaConnectors() {}

    /** The telemetry source: raw records with their origin, parsed later so bad ones survive. */
    public static KafkaSource<RawRecord> telemetrySource(KafkaSettings settings, String topic) {
        Properties props = new Properties();
        // Never read what an upstream transactional producer aborted.
        props.setProperty(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.putAll(settings.clientProperties());
        KafkaSourceBuilder<RawRecord> builder =
                KafkaSource.<RawRecord>builder()
                        .setBootstrapServers(settings.bootstrapServers())
                        .setGroupId(settings.groupId())
                        .setTopics(topic)
                        .setProperties(props)
                        .setStartingOffsets(startingOffsets(settings.startFrom()))
                        .setDeserializer(new RawRecordDeserializer());
        if (settings.bounded()) {
            builder.setBounded(OffsetsInitializer.latest());
        }
        return builder.build();
    }

    /** How a sink delivers: in Kafka transactions committed at checkpoints, or as produced. */
    public enum Delivery {
        /**
         * Visible to a {@code read_committed} consumer when the checkpoint that covers it completes
         * (every {@code vigil.checkpoint.interval}); never duplicated.
         */
        EXACTLY_ONCE,
        /**
         * Sent as produced (flushed at every checkpoint); after a failure, what was sent since the
         * last checkpoint is sent again: consumers de-duplicate (by {@code event_id} for events).
         */
        AT_LEAST_ONCE
    }

    /**
     * A sink writing each element as the value {@code valueOf} gives, keyed by {@code keyOf} (the
     * device id, so one device's outputs stay in one partition, in order), with {@code delivery}.
     */
    public static <T> KafkaSink<T> sink(
            KafkaSettings settings,
            String topic,
            Delivery delivery,
            SerializableFunction<T, String> keyOf,
            SerializableFunction<T, byte[]> valueOf) {
        Properties props = new Properties();
        props.putAll(settings.clientProperties());
        var builder =
                KafkaSink.<T>builder()
                        .setBootstrapServers(settings.bootstrapServers())
                        .setRecordSerializer(new JsonRecordSerializer<>(topic, keyOf, valueOf));
        if (delivery == Delivery.AT_LEAST_ONCE) {
            return builder.setKafkaProducerConfig(props)
                    .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                    .build();
        }
        props.setProperty(
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG,
                Long.toString(settings.transactionTimeoutMs()));
        return builder.setKafkaProducerConfig(props)
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                // Unique per sink: two sinks sharing a prefix would fence each other.
                .setTransactionalIdPrefix(settings.transactionalIdPrefix() + "-" + topic)
                .build();
    }

    private static OffsetsInitializer startingOffsets(KafkaSettings.StartFrom startFrom) {
        return switch (startFrom) {
            case COMMITTED -> OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST);
            case EARLIEST -> OffsetsInitializer.earliest();
            case LATEST -> OffsetsInitializer.latest();
        };
    }

    private static final class RawRecordDeserializer
            implements KafkaRecordDeserializationSchema<RawRecord> {
        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<RawRecord> out) {
            out.collect(
                    new RawRecord(
                            record.key(),
                            record.value(),
                            record.topic(),
                            record.partition(),
                            record.offset(),
                            record.timestamp()));
        }

        @Override
        public TypeInformation<RawRecord> getProducedType() {
            return TypeInformation.of(RawRecord.class);
        }
    }

    /**
     * An output record's Kafka timestamp: its input record's, or null (the producer stamps its own
     * time) for none or a negative one. A record read with no Kafka timestamp (-1: a topic written
     * before message format 2) carries -1 through the job, and the producer refuses it.
     */
    static Long outputTimestamp(Long inputTimestamp) {
        return inputTimestamp == null || inputTimestamp < 0 ? null : inputTimestamp;
    }

    private static final class JsonRecordSerializer<T>
            implements KafkaRecordSerializationSchema<T> {
        private final String topic;
        private final SerializableFunction<T, String> keyOf;
        private final SerializableFunction<T, byte[]> valueOf;
        private transient StringSerializer keys;

        JsonRecordSerializer(
                String topic,
                SerializableFunction<T, String> keyOf,
                SerializableFunction<T, byte[]> valueOf) {
            this.topic = topic;
            this.keyOf = keyOf;
            this.valueOf = valueOf;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(
                T element, KafkaSinkContext context, Long timestamp) {
            if (keys == null) {
                keys = new StringSerializer();
            }
            String key = keyOf.apply(element);
            return new ProducerRecord<>(
                    topic,
                    null,
                    outputTimestamp(timestamp),
                    key == null ? null : keys.serialize(topic, key),
                    valueOf.apply(element));
        }
    }
}
