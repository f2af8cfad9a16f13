package dev.vigil.serde;

/**
 * One validated telemetry step of one device: the model's features already picked out of the
 * input's {@code values} and put in the model card's order. Never holds a missing or non-finite
 * value: the parser turns those into dead letters.
 */
public class TelemetryEvent {

    /**
     * Marks {@link #seq} when the input carried no sequence number; callers ask {@link #hasSeq()}.
     */
    static final long NO_SEQ = Long.MIN_VALUE;

    public String deviceId;

    /** Event time, epoch milliseconds. */
    public long ts;

    /** Strictly increasing per device when present; {@link #NO_SEQ} otherwise. */
    public long seq;

    /** Raw (not normalised) feature values in model card order. */
    public float[] values;

    public TelemetryEvent() {}

    public TelemetryEvent(String deviceId, long ts, long seq, float[] values) {
        this.deviceId = deviceId;
        this.ts = ts;
        this.seq = seq;
        this.values = values;
    }

    /** An event whose input carried no sequence number. */
    public static TelemetryEvent withoutSeq(String deviceId, long ts, float[] values) {
        return new TelemetryEvent(deviceId, ts, NO_SEQ, values);
    }

    public boolean hasSeq() {
        return seq != NO_SEQ;
    }
}
