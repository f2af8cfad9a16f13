package dev.vigil.serde;

import java.util.List;

/**
 * How input records are encoded ({@code vigil.input.format}): the same contract (README, Contracts)
 * as JSON text or as Avro binary. Each format reads a record into a {@link TelemetryEvent} and
 * writes one back the way it reads it (the scorer's dead letters carry the record as parsed, for a
 * consumer to send again).
 */
public enum InputFormat {
    JSON {
        @Override
        public Parser parser(List<String> features) {
            return new TelemetryParser(features);
        }

        @Override
        public byte[] write(TelemetryEvent e, String[] names) {
            return WireFormat.telemetry(e, names);
        }
    },
    AVRO {
        @Override
        public Parser parser(List<String> features) {
            return new AvroTelemetry.Parser(features);
        }

        @Override
        public byte[] write(TelemetryEvent e, String[] names) {
            return AvroTelemetry.write(e, names);
        }
    };

    /** A parser for records that carry (at least) these features, in this (card) order. */
    public abstract Parser parser(List<String> features);

    /** The record as this format encodes it, {@code values} by these names in model order. */
    public abstract byte[] write(TelemetryEvent e, String[] names);

    /** Reads one record; never throws on input. Not thread-safe: one per operator instance. */
    public interface Parser {
        TelemetryParser.Result parse(byte[] raw);
    }
}
