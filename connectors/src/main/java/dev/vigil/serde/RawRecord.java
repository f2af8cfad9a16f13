package dev.vigil.serde;

/**
 * One Kafka record as it arrived, before parsing: the bytes and where they came from, so a record
 * that fails to parse can become a dead letter that points back at its origin.
 */
public class RawRecord {
    public byte[] value;
    public String topic;
    public int partition;
    public long offset;

    /** The Kafka record timestamp (epoch ms). */
    public long timestamp;

    public RawRecord() {}

    public RawRecord(byte[] value, String topic, int partition, long offset, long timestamp) {
        this.value = value;
        this.topic = topic;
        this.partition = partition;
        this.offset = offset;
        this.timestamp = timestamp;
    }
}
