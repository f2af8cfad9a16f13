package dev.vigil.config;

import dev.vigil.serde.InputFormat;
import java.io.Serializable;
import java.time.Duration;

/**
 * How input records are read ({@code vigil.input.format}) and what a parsed record must also
 * satisfy before it is scored: a {@code ts} at most {@code maxClockSkew} ahead of the clock ({@code
 * vigil.input.max-clock-skew}), and a Kafka key equal to its {@code device_id}, a missing key
 * allowed unless {@code requireKey} ({@code vigil.input.require-key}).
 */
public record InputRules(InputFormat format, Duration maxClockSkew, boolean requireKey)
        implements Serializable {}
