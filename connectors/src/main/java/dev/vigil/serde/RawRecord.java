package dev.vigil.serde;

/**
 * One Kafka record as it arrived, before parsing: the bytes and where they came from, so a record
 * that fails to parse can become a dead letter that points back at its origin.
 */
public class RawRecord {
    /** The Kafka key, or null when the record had none. */
    public byte[] key;

    public byte[] value;
    public String topic;
    public int partition;
    public long offset;

    /** The Kafka record timestamp (epoch ms). */
    public long timestamp;

    public RawRecord() {}

    /** A record without a key. */
    public RawRecord(byte[] value, String topic, int partition, long offset, long timestamp) {
        this(null, value, topic, partition, offset, timestamp);
    }

    public RawRecord(
            byte[] key, byte[] value, String topic, int partition, long offset, long timestamp) {
        this.key = key;
        this.value = value;
        this.topic = topic;
        this.partition = partition;
        this.offset = offset;
        this.timestamp = timestamp;
    }
}
