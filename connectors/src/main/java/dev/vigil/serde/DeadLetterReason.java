package dev.vigil.serde;

/**
 * Why an input record could not be scored. Each reason is counted on its own: as {@code
 * dead_letters_<reason>}, except the order guard's ({@link #late()}), counted as {@code
 * late_<reason>}.
 */
public enum DeadLetterReason {
    /** Not a JSON object: empty, truncated, not UTF-8, or not JSON at all. */
    MALFORMED_JSON,
    /**
     * Under {@code vigil.input.format: avro}: not a record of the input schema (empty, truncated, a
     * length or union branch out of range, bytes after the record).
     */
    MALFORMED_AVRO,
    /** No {@code device_id}. */
    MISSING_DEVICE_ID,
    /** {@code device_id} is not a non-empty string. */
    BAD_DEVICE_ID,
    /** No {@code ts}. */
    MISSING_TS,
    /** {@code ts} is neither epoch milliseconds nor an ISO-8601 instant. */
    BAD_TS,
    /** {@code seq} is present but not a non-negative integer. */
    BAD_SEQ,
    /** No {@code values} object. */
    MISSING_VALUES,
    /** A feature the model needs is absent from {@code values}; the detail names it. */
    MISSING_FEATURE,
    /** A feature the model needs is not a number (null, string, object); the detail names it. */
    BAD_FEATURE,
    /** A feature the model needs is NaN or infinite (or overflows a float); the detail names it. */
    NON_FINITE_FEATURE,
    /**
     * {@code ts} lies further ahead of the job's clock than {@code vigil.input.max-clock-skew}: a
     * device clock that is wrong. Scored, it would make every later step of its device late.
     */
    FUTURE_TS,
    /**
     * The record's Kafka key is not its {@code device_id} (or it has none, unless {@code
     * vigil.input.require-key} is false): a producer that keys otherwise spreads one device over
     * partitions, and the reordering would turn its steps late.
     */
    KEY_MISMATCH,
    /**
     * The scorer's: the same step as the last one scored for its device (equal {@code seq}, or
     * equal {@code ts} without one). Not scored again.
     */
    DUPLICATE,
    /**
     * The scorer's: before the last step scored for its device (by {@code seq}, or {@code ts}
     * without one), and not a restart of the device. Not scored.
     */
    OUT_OF_ORDER,
    /**
     * The scorer's: ONNX Runtime failed on this record's step, alone as well as in its batch (the
     * rest of the batch is scored); the detail gives the error. The device's memory is reset.
     */
    MODEL_ERROR;

    /**
     * Whether the scorer decides it (a record that parsed but could not be scored as its device's
     * next step); the parser decides every other reason.
     */
    public boolean fromScoring() {
        return this == DUPLICATE || this == OUT_OF_ORDER || this == MODEL_ERROR;
    }

    /** Whether it is counted as {@code late} (the order guard's) rather than as a dead letter. */
    public boolean late() {
        return this == DUPLICATE || this == OUT_OF_ORDER;
    }
}
