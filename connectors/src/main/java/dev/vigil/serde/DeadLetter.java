package dev.vigil.serde;

/** A record that could not be scored, with its reason and the original bytes, losing nothing. */
public class DeadLetter {
    public DeadLetterReason reason;
    public String detail;
    public byte[] raw;
    public String topic;
    public int partition;
    public long offset;

    /** Processing time (epoch ms) at which it was rejected. */
    public long at;

    public DeadLetter() {}

    /**
     * A record the scorer turned away: {@code raw} is the record as parsed (what {@link
     * InputFormat#write} writes in the job's input format, which the job reads back as the same
     * record); where it was read from is not known past parsing (topic null, partition and offset
     * -1).
     */
    public DeadLetter(DeadLetterReason reason, String detail, byte[] raw, long at) {
        this.reason = reason;
        this.detail = detail;
        this.raw = raw;
        this.partition = -1;
        this.offset = -1;
        this.at = at;
    }

    public DeadLetter(DeadLetterReason reason, String detail, RawRecord record, long at) {
        this.reason = reason;
        this.detail = detail;
        this.raw = record.value;
        this.topic = record.topic;
        this.partition = record.partition;
        this.offset = record.offset;
        this.at = at;
    }
}
