package dev.vigil.serde;

/**
 * Why an input record could not be scored. Each reason is counted on its own: the parser's as
 * {@code dead_letters_<reason>}, the scorer's ({@link #fromScoring()}) as {@code late_<reason>}.
 */
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
    NON_FINITE_FEATURE,
    /**
     * {@code ts} lies further ahead of the job's clock than {@code vigil.input.max-clock-skew}: a
     * device clock that is wrong. Scored, it would make every later step of its device late.
     */
    FUTURE_TS,
    /**
     * The scorer's: the same step as the last one scored for its device (equal {@code seq}, or
     * equal {@code ts} without one). Not scored again.
     */
    DUPLICATE,
    /**
     * The scorer's: before the last step scored for its device (by {@code seq}, or {@code ts}
     * without one), and not a restart of the device. Not scored.
     */
    OUT_OF_ORDER;

    /**
     * Whether the scorer decides it (a record that parsed but is not the device's next step); the
     * parser decides every other reason.
     */
    public boolean fromScoring() {
        return this == DUPLICATE || this == OUT_OF_ORDER;
    }
}
