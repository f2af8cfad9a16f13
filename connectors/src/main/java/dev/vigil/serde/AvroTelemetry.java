package dev.vigil.serde;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

/**
 * The input contract in Avro: one record of the schema {@value #SCHEMA} per Kafka value, in Avro's
 * binary encoding with no container or registry header ({@code vigil.input.format: avro}).
 *
 * <p>Read by hand rather than with the Avro library: the job then brings no Avro of its own onto a
 * Flink cluster's classpath (where {@code flink-avro} may bring another version), and reading a
 * record allocates only the event it becomes. {@code AvroTelemetryTest} checks both directions
 * against the Avro library and the schema file.
 */
public final class AvroTelemetry {

    /** The schema's resource: producers write with it, exactly. */
    public static final String SCHEMA = "/dev/vigil/serde/telemetry.avsc";

    private AvroTelemetry() {}

    /**
     * Writes a record as the job reads it, {@code values} by the given feature names in model
     * order; the floats are written as doubles, so reading the bytes back gives the same record.
     */
    public static byte[] write(TelemetryEvent e, String[] names) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(64 + 24 * names.length);
        writeString(out, e.deviceId);
        writeLong(out, e.ts);
        if (e.hasSeq()) {
            writeLong(out, 1); // union branch 1: long
            writeLong(out, e.seq);
        } else {
            writeLong(out, 0); // union branch 0: null
        }
        if (names.length > 0) {
            writeLong(out, names.length); // one block of every entry
            for (int i = 0; i < names.length; i++) {
                writeString(out, names[i]);
                long bits = Double.doubleToLongBits(e.values[i]);
                for (int b = 0; b < 8; b++) {
                    out.write((int) (bits >>> (8 * b))); // little-endian
                }
            }
        }
        writeLong(out, 0); // end of the map
        return out.toByteArray();
    }

    private static void writeString(ByteArrayOutputStream out, String s) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        writeLong(out, bytes.length);
        out.write(bytes, 0, bytes.length);
    }

    /** Zigzag, then 7 bits per byte, low bits first. */
    private static void writeLong(ByteArrayOutputStream out, long v) {
        long z = (v << 1) ^ (v >> 63);
        while ((z & ~0x7FL) != 0) {
            out.write((int) ((z & 0x7F) | 0x80));
            z >>>= 7;
        }
        out.write((int) z);
    }

    /**
     * Reads records into {@link TelemetryEvent}s with the model's features in card order, or says
     * why it cannot, with the same reasons as the JSON parser where the contract is the same and
     * {@code MALFORMED_AVRO} where the bytes are not a record of the schema. Never throws on input.
     * Not thread-safe: one per operator instance.
     */
    public static final class Parser implements InputFormat.Parser {

        private final String[] features;
        private final byte[][] names;
        private final boolean[] seen;
        private final CharsetDecoder utf8 =
                StandardCharsets.UTF_8
                        .newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT);

        /** The record being read and where. */
        private byte[] buf;

        private int pos;

        public Parser(List<String> features) {
            this.features = features.toArray(new String[0]);
            this.names = new byte[this.features.length][];
            this.seen = new boolean[this.features.length];
            for (int i = 0; i < this.features.length; i++) {
                names[i] = this.features[i].getBytes(StandardCharsets.UTF_8);
                for (int j = 0; j < i; j++) {
                    if (this.features[j].equals(this.features[i])) {
                        throw new IllegalArgumentException(
                                "duplicate feature name: " + this.features[i]);
                    }
                }
            }
        }

        @Override
        public TelemetryParser.Result parse(byte[] raw) {
            if (raw == null || raw.length == 0) {
                return malformed("empty record");
            }
            buf = raw;
            pos = 0;
            try {
                int idStart = readLength();
                int idLength = pos - idStart;
                long ts = readLong();
                long seq = TelemetryEvent.NO_SEQ;
                long branch = readLong();
                if (branch == 1) {
                    seq = readLong();
                } else if (branch != 0) {
                    return malformed("seq: union branch " + branch + " of 2");
                }
                float[] values = new float[features.length];
                TelemetryParser.Rejection valuesRejection = readValues(values);
                if (pos != raw.length) {
                    return malformed(
                            (raw.length - pos) + " bytes after the record (" + raw.length + ")");
                }
                // The contract's order of checks, as the JSON parser's
                String deviceId = deviceId(idStart, idLength);
                if (deviceId == null) {
                    return reject(DeadLetterReason.BAD_DEVICE_ID, "not valid UTF-8");
                }
                if (deviceId.length() > TelemetryParser.MAX_DEVICE_ID_LENGTH) {
                    return reject(
                            DeadLetterReason.BAD_DEVICE_ID,
                            deviceId.length()
                                    + " characters, more than "
                                    + TelemetryParser.MAX_DEVICE_ID_LENGTH);
                }
                if (deviceId.isBlank()) {
                    return reject(DeadLetterReason.BAD_DEVICE_ID, "not a non-empty string");
                }
                if (branch == 1 && seq < 0) { // NO_SEQ too, when it was written as a seq
                    return reject(DeadLetterReason.BAD_SEQ, Long.toString(seq));
                }
                if (TelemetryParser.validTs(ts) == null) {
                    return reject(DeadLetterReason.BAD_TS, Long.toString(ts));
                }
                if (valuesRejection != null) {
                    return new TelemetryParser.Result(null, valuesRejection);
                }
                return new TelemetryParser.Result(
                        new TelemetryEvent(deviceId, ts, seq, values), null);
            } catch (Malformed e) {
                return malformed(e.getMessage());
            } finally {
                buf = null;
            }
        }

        /** The map's entries into {@code out} in card order; the first problem, or null. */
        private TelemetryParser.Rejection readValues(float[] out) {
            Arrays.fill(seen, false);
            TelemetryParser.Rejection first = null;
            int expected = 0; // producers usually write the features in card order
            long count;
            while ((count = readLong()) != 0) {
                if (count < 0) { // a block with its size in bytes
                    count = -count;
                    readLong();
                }
                for (long k = 0; k < count; k++) {
                    int keyStart = readLength();
                    int i = feature(keyStart, pos - keyStart, expected);
                    double v = readDouble();
                    if (i < 0) {
                        continue; // extra names are ignored
                    }
                    expected = i + 1;
                    seen[i] = true;
                    float f = (float) v;
                    if (Float.isFinite(f)) {
                        out[i] = f;
                    } else if (first == null) {
                        first =
                                new TelemetryParser.Rejection(
                                        DeadLetterReason.NON_FINITE_FEATURE, features[i]);
                    }
                }
            }
            if (first != null) {
                return first;
            }
            for (int i = 0; i < seen.length; i++) {
                if (!seen[i]) {
                    return new TelemetryParser.Rejection(
                            DeadLetterReason.MISSING_FEATURE, features[i]);
                }
            }
            return null;
        }

        /** The index of the feature named by the key's bytes, or -1; tries {@code hint} first. */
        private int feature(int start, int length, int hint) {
            if (hint < names.length && nameIs(hint, start, length)) {
                return hint;
            }
            for (int i = 0; i < names.length; i++) {
                if (i != hint && nameIs(i, start, length)) {
                    return i;
                }
            }
            return -1;
        }

        private boolean nameIs(int i, int start, int length) {
            byte[] name = names[i];
            return name.length == length
                    && Arrays.equals(name, 0, length, buf, start, start + length);
        }

        /** The device id's bytes as a string, or null when they are not valid UTF-8. */
        private String deviceId(int start, int length) {
            for (int i = start; i < start + length; i++) {
                if (buf[i] < 0) { // not ASCII: decode strictly
                    try {
                        return utf8.decode(ByteBuffer.wrap(buf, start, length)).toString();
                    } catch (CharacterCodingException e) {
                        return null;
                    }
                }
            }
            return new String(buf, start, length, StandardCharsets.ISO_8859_1);
        }

        /** Reads a length-prefixed string or bytes: skips it, returns where its bytes start. */
        private int readLength() {
            long n = readLong();
            if (n < 0 || n > buf.length - pos) {
                throw new Malformed(
                        "a string of " + n + " bytes at byte " + pos + " of " + buf.length);
            }
            int start = pos;
            pos += (int) n;
            return start;
        }

        private long readLong() {
            long z = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= buf.length) {
                    throw new Malformed("truncated at byte " + pos);
                }
                byte b = buf[pos++];
                z |= (long) (b & 0x7F) << shift;
                if (b >= 0) {
                    return (z >>> 1) ^ -(z & 1);
                }
            }
            throw new Malformed("a number longer than 10 bytes at byte " + pos);
        }

        private double readDouble() {
            if (buf.length - pos < 8) {
                throw new Malformed("truncated at byte " + pos);
            }
            long bits = 0;
            for (int b = 0; b < 8; b++) {
                bits |= (buf[pos + b] & 0xFFL) << (8 * b);
            }
            pos += 8;
            return Double.longBitsToDouble(bits);
        }

        private static TelemetryParser.Result malformed(String detail) {
            return reject(DeadLetterReason.MALFORMED_AVRO, detail);
        }

        private static TelemetryParser.Result reject(DeadLetterReason reason, String detail) {
            return TelemetryParser.Result.reject(reason, detail);
        }
    }

    /** Bytes that are not a record of the schema; rare, so it carries no stack trace. */
    private static final class Malformed extends RuntimeException {
        Malformed(String message) {
            super(message, null, false, false);
        }
    }
}
