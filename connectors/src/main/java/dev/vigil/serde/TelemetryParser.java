package dev.vigil.serde;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import java.io.IOException;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Turns the input contract's JSON into a {@link TelemetryEvent} with the model's features in card
 * order, or says exactly why it cannot: it never throws on bad input and never fills a missing
 * feature with a default. Not thread-safe: one per operator instance.
 */
public final class TelemetryParser implements InputFormat.Parser {

    /**
     * The longest {@code device_id} accepted (characters): a device id is a key of the state, of
     * every output record and of the Kafka partitioner, and one without bound could make an output
     * record larger than the broker accepts.
     */
    public static final int MAX_DEVICE_ID_LENGTH = 256;

    private static final JsonFactory JSON =
            JsonFactory.builder()
                    .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
                    // FastDoubleParser: the same correctly rounded doubles as Double.parseDouble,
                    // in less time (ParserBenchmark)
                    .enable(StreamReadFeature.USE_FAST_DOUBLE_PARSER)
                    .build();

    private final String[] features;
    private final Map<String, Integer> featureIndex;

    /** Which features a record had; reused, so a parser serves one thread. */
    private final boolean[] seen;

    /** Reads the common shape of record without Jackson, or gives it up to {@link #parseJson}. */
    private final JsonFastPath fast;

    /**
     * @param features the feature names the model needs, in the model card's order
     */
    public TelemetryParser(List<String> features) {
        this.features = features.toArray(new String[0]);
        this.featureIndex = new HashMap<>();
        this.seen = new boolean[this.features.length];
        for (int i = 0; i < this.features.length; i++) {
            if (featureIndex.put(this.features[i], i) != null) {
                throw new IllegalArgumentException("duplicate feature name: " + this.features[i]);
            }
        }
        this.fast = new JsonFastPath(features);
    }

    /** Why a record was rejected. */
    public record Rejection(DeadLetterReason reason, String detail) {}

    /** The outcome of parsing one record: exactly one of the two is set. */
    public record Result(TelemetryEvent event, Rejection rejection) {
        static Result reject(DeadLetterReason reason, String detail) {
            return new Result(null, new Rejection(reason, detail));
        }
    }

    @Override
    public Result parse(byte[] raw) {
        if (raw == null || raw.length == 0) {
            return Result.reject(DeadLetterReason.MALFORMED_JSON, "empty record");
        }
        return fast.read(raw, fields) ? fields.result() : parseJson(raw);
    }

    /**
     * The record read by Jackson alone: every record the fast path gives up, the reference the fast
     * path is tested against, and the baseline it is measured against ({@code ParserBenchmark}).
     */
    public Result parseJson(byte[] raw) {
        try (JsonParser p = JSON.createParser(raw)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return Result.reject(DeadLetterReason.MALFORMED_JSON, "not a JSON object");
            }
            return parseObject(p);
        } catch (IOException | RuntimeException e) {
            return Result.reject(DeadLetterReason.MALFORMED_JSON, firstLine(e.getMessage()));
        }
    }

    /** The top-level fields of one record as they are read; reused, cleared per record. */
    static final class Fields {
        String deviceId;
        boolean badDeviceId;
        int deviceIdTooLong; // its length, when longer than MAX_DEVICE_ID_LENGTH
        long ts;
        boolean hasTs;
        String badTs;
        long seq;
        String badSeq;
        float[] values;
        Rejection valuesRejection;

        void clear() {
            deviceId = null;
            badDeviceId = false;
            deviceIdTooLong = 0;
            ts = 0;
            hasTs = false;
            badTs = null;
            seq = TelemetryEvent.NO_SEQ;
            badSeq = null;
            values = null;
            valuesRejection = null;
        }

        void readDeviceId(JsonParser p, JsonToken v) throws IOException {
            if (v == JsonToken.VALUE_STRING && !p.getText().isBlank()) {
                if (p.getTextLength() > MAX_DEVICE_ID_LENGTH) {
                    deviceIdTooLong = p.getTextLength();
                } else {
                    deviceId = p.getText();
                }
            } else {
                badDeviceId = true;
                p.skipChildren();
            }
        }

        void readTs(JsonParser p, JsonToken v) throws IOException {
            hasTs = true;
            Long parsed =
                    v == JsonToken.VALUE_NUMBER_INT
                            ? validTs(p.getLongValue())
                            : v == JsonToken.VALUE_STRING ? parseInstant(p.getText()) : null;
            if (parsed == null) {
                badTs = p.getText();
                p.skipChildren();
            } else {
                ts = parsed;
            }
        }

        void readSeq(JsonParser p, JsonToken v) throws IOException {
            if (v == JsonToken.VALUE_NUMBER_INT && p.getLongValue() >= 0) {
                seq = p.getLongValue();
            } else if (v != JsonToken.VALUE_NULL) {
                badSeq = p.getText();
                p.skipChildren();
            }
        }

        /** The event, or the first problem in the contract's order of checks. */
        Result result() {
            if (deviceIdTooLong > 0) {
                return Result.reject(
                        DeadLetterReason.BAD_DEVICE_ID,
                        deviceIdTooLong + " characters, more than " + MAX_DEVICE_ID_LENGTH);
            }
            if (badDeviceId) { // also beside a valid one: a repeated device_id names no device
                return Result.reject(DeadLetterReason.BAD_DEVICE_ID, "not a non-empty string");
            }
            if (deviceId == null) {
                return Result.reject(DeadLetterReason.MISSING_DEVICE_ID, "device_id");
            }
            if (!hasTs) {
                return Result.reject(DeadLetterReason.MISSING_TS, "ts");
            }
            if (badTs != null) {
                return Result.reject(DeadLetterReason.BAD_TS, badTs);
            }
            if (badSeq != null) {
                return Result.reject(DeadLetterReason.BAD_SEQ, badSeq);
            }
            if (values == null) {
                return Result.reject(DeadLetterReason.MISSING_VALUES, "values");
            }
            if (valuesRejection != null) {
                return new Result(null, valuesRejection);
            }
            return new Result(new TelemetryEvent(deviceId, ts, seq, values), null);
        }
    }

    private final Fields fields = new Fields();

    private Result parseObject(JsonParser p) throws IOException {
        Fields f = fields;
        f.clear();
        JsonToken t;
        while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken v = p.nextToken();
            switch (field) {
                case "device_id" -> f.readDeviceId(p, v);
                case "ts" -> f.readTs(p, v);
                case "seq" -> f.readSeq(p, v);
                case "values" -> {
                    if (v == JsonToken.START_OBJECT) {
                        f.values = new float[features.length];
                        f.valuesRejection = parseValues(p, f.values);
                    } else {
                        p.skipChildren();
                    }
                }
                default -> p.skipChildren();
            }
        }
        if (t != JsonToken.END_OBJECT) {
            return Result.reject(DeadLetterReason.MALFORMED_JSON, "unexpected " + t);
        }
        if (p.nextToken() != null) {
            return Result.reject(DeadLetterReason.MALFORMED_JSON, "trailing content after object");
        }
        return f.result();
    }

    /** Fills {@code out} in card order; returns the first problem, or null. */
    private Rejection parseValues(JsonParser p, float[] out) throws IOException {
        java.util.Arrays.fill(seen, false);
        Rejection first = null;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            Integer i = featureIndex.get(p.currentName());
            JsonToken v = p.nextToken();
            if (i == null) {
                p.skipChildren(); // extra names are ignored
                continue;
            }
            seen[i] = true;
            if (v == JsonToken.VALUE_NUMBER_INT || v == JsonToken.VALUE_NUMBER_FLOAT) {
                float f = (float) p.getDoubleValue();
                if (Float.isFinite(f)) {
                    out[i] = f;
                } else if (first == null) {
                    first = new Rejection(DeadLetterReason.NON_FINITE_FEATURE, features[i]);
                }
            } else {
                if (first == null) {
                    first = new Rejection(DeadLetterReason.BAD_FEATURE, features[i]);
                }
                p.skipChildren();
            }
        }
        if (first != null) {
            return first;
        }
        for (int i = 0; i < seen.length; i++) {
            if (!seen[i]) {
                return new Rejection(DeadLetterReason.MISSING_FEATURE, features[i]);
            }
        }
        return null;
    }

    /**
     * An ISO-8601 instant or offset date-time as epoch milliseconds (the contract's string form of
     * {@code ts}), or null when it is neither or lies beyond what a {@code ts} can hold (a year
     * past about 292 million, or {@link Long#MIN_VALUE}, which the scorer reads as "never").
     */
    public static Long parseInstant(String text) {
        try {
            return validTs(Instant.parse(text).toEpochMilli());
        } catch (DateTimeParseException e) {
            try {
                return validTs(OffsetDateTime.parse(text).toInstant().toEpochMilli());
            } catch (DateTimeParseException | ArithmeticException e2) {
                return null;
            }
        } catch (ArithmeticException e) {
            return null; // parsed, but not as milliseconds in a long
        }
    }

    /**
     * {@code ts}, or null for {@link Long#MIN_VALUE}: the scorer's "no step yet", so a record
     * carrying it would pass every duplicate and order check.
     */
    static Long validTs(long ts) {
        return ts == Long.MIN_VALUE ? null : ts;
    }

    private static String firstLine(String message) {
        if (message == null) {
            return "unreadable";
        }
        int nl = message.indexOf('\n');
        return nl < 0 ? message : message.substring(0, nl);
    }
}
