package dev.vigil.serde;

/** Why an input record could not be scored. Each reason is counted on its own. */
public enum DeadLetterReason {
    /** Not a JSON object: empty, truncated, not UTF-8, or not JSON at all. */
    MALFORMED_JSON,
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
    NON_FINITE_FEATURE
}
