package dev.vigil.serde;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.util.ByteArrayBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * The JSON of Vigil's outputs (anomaly events, dead letters, step scores), written and read in one
 * place so the job, the demo and the tests agree on every field name (see DESIGN.md, Contracts).
 */
public final class WireFormat {

    private static final JsonFactory JSON = new JsonFactory();

    private WireFormat() {}

    @FunctionalInterface
    private interface Writer {
        void write(JsonGenerator g) throws IOException;
    }

    private static byte[] write(Writer writer) {
        try (ByteArrayBuilder out = new ByteArrayBuilder(256);
                JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            writer.write(g);
            g.writeEndObject();
            g.flush();
            return out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e); // writing to memory: cannot happen
        }
    }

    public static byte[] anomaly(AnomalyEvent e) {
        return write(
                g -> {
                    g.writeStringField("event_id", e.eventId);
                    g.writeStringField("type", e.type);
                    g.writeStringField("device_id", e.deviceId);
                    g.writeNumberField("ts", e.ts);
                    g.writeNumberField("episode_start", e.episodeStart);
                    g.writeNumberField("score", e.score);
                    g.writeNumberField("threshold", e.threshold);
                    g.writeNumberField("peak_score", e.peakScore);
                    g.writeNumberField("steps", e.steps);
                    if (AnomalyEvent.CLOSE.equals(e.type)) {
                        g.writeNumberField("duration_ms", e.durationMs);
                    }
                    if (e.relearned) {
                        g.writeBooleanField("relearned", true);
                    }
                    g.writeStringField("model_version", e.modelVersion);
                    if (e.reason != null) {
                        g.writeStringField("reason", e.reason);
                    }
                    g.writeArrayFieldStart("top_features");
                    for (int i = 0; i < e.topFeatureNames.length; i++) {
                        g.writeStartObject();
                        g.writeStringField("name", e.topFeatureNames[i]);
                        g.writeNumberField("share", e.topFeatureShares[i]);
                        g.writeEndObject();
                    }
                    g.writeEndArray();
                });
    }

    public static AnomalyEvent parseAnomaly(byte[] json) {
        AnomalyEvent e = new AnomalyEvent();
        List<String> names = new ArrayList<>();
        List<Float> shares = new ArrayList<>();
        try (JsonParser p = JSON.createParser(json)) {
            expect(p.nextToken(), JsonToken.START_OBJECT);
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                switch (field) {
                    case "event_id" -> e.eventId = p.getText();
                    case "type" -> e.type = p.getText();
                    case "device_id" -> e.deviceId = p.getText();
                    case "ts" -> e.ts = p.getLongValue();
                    case "episode_start" -> e.episodeStart = p.getLongValue();
                    case "score" -> e.score = p.getFloatValue();
                    case "threshold" -> e.threshold = p.getFloatValue();
                    case "peak_score" -> e.peakScore = p.getFloatValue();
                    case "steps" -> e.steps = p.getIntValue();
                    case "duration_ms" -> e.durationMs = p.getLongValue();
                    case "relearned" -> e.relearned = p.getBooleanValue();
                    case "model_version" -> e.modelVersion = p.getText();
                    case "reason" -> e.reason = p.getText();
                    case "top_features" -> {
                        while (p.nextToken() == JsonToken.START_OBJECT) {
                            while (p.nextToken() == JsonToken.FIELD_NAME) {
                                String f = p.currentName();
                                p.nextToken();
                                if (f.equals("name")) {
                                    names.add(p.getText());
                                } else if (f.equals("share")) {
                                    shares.add(p.getFloatValue());
                                } else {
                                    p.skipChildren();
                                }
                            }
                        }
                    }
                    default -> p.skipChildren();
                }
            }
        } catch (IOException ex) {
            throw new IllegalArgumentException("not an anomaly event: " + ex.getMessage(), ex);
        }
        e.topFeatureNames = names.toArray(new String[0]);
        e.topFeatureShares = new float[shares.size()];
        for (int i = 0; i < shares.size(); i++) {
            e.topFeatureShares[i] = shares.get(i);
        }
        return e;
    }

    /**
     * A telemetry record as the job reads it (README, "Contracts"): {@code device_id}, {@code ts}
     * in epoch ms, {@code seq} when it has one, and {@code values} by the given feature names in
     * model order. Float values are written as the floats the job scored, so reading the bytes back
     * gives the same record.
     */
    public static byte[] telemetry(TelemetryEvent e, String[] names) {
        return write(
                g -> {
                    g.writeStringField("device_id", e.deviceId);
                    g.writeNumberField("ts", e.ts);
                    if (e.hasSeq()) {
                        g.writeNumberField("seq", e.seq);
                    }
                    g.writeObjectFieldStart("values");
                    for (int i = 0; i < names.length; i++) {
                        g.writeNumberField(names[i], e.values[i]);
                    }
                    g.writeEndObject();
                });
    }

    /**
     * The most bytes of a record a dead letter keeps: JSON escapes a byte into at most six, so a
     * dead letter stays below the broker's default 1 MiB limit for any record. A longer one is cut
     * (at a character boundary) and says so: {@code raw_truncated} and {@code raw_length}.
     */
    public static final int MAX_RAW_BYTES = 128 * 1024;

    /**
     * The most characters of a dead letter's {@code detail}, which may quote the record (a {@code
     * ts} or {@code seq} that is no number): a longer one is cut and ends with the length it had,
     * so that {@code raw} and {@code detail} together stay below 1 MiB whatever the record.
     */
    public static final int MAX_DETAIL_CHARS = 1000;

    static String cutDetail(String detail) {
        if (detail == null || detail.length() <= MAX_DETAIL_CHARS) {
            return detail;
        }
        int end = MAX_DETAIL_CHARS;
        if (Character.isHighSurrogate(detail.charAt(end - 1))) {
            end--; // not inside a character
        }
        return detail.substring(0, end) + "... (" + detail.length() + " characters)";
    }

    public static byte[] deadLetter(DeadLetter d) {
        byte[] raw = d.raw == null ? new byte[0] : d.raw; // a Kafka record with no value
        int length = raw.length;
        boolean truncated = length > MAX_RAW_BYTES;
        if (truncated) {
            int end = MAX_RAW_BYTES;
            while (end > 0 && (raw[end] & 0xC0) == 0x80) {
                end--; // not inside a UTF-8 character
            }
            raw = java.util.Arrays.copyOf(raw, end);
        }
        byte[] kept = raw;
        return write(
                g -> {
                    g.writeStringField("reason", d.reason.name());
                    g.writeStringField("detail", cutDetail(d.detail));
                    if (truncated) {
                        g.writeBooleanField("raw_truncated", true);
                        g.writeNumberField("raw_length", length);
                    }
                    String utf8 = utf8OrNull(kept);
                    if (utf8 != null) {
                        g.writeStringField("raw", utf8);
                    } else {
                        g.writeStringField("raw", Base64.getEncoder().encodeToString(kept));
                        g.writeStringField("raw_encoding", "base64");
                    }
                    g.writeStringField("topic", d.topic);
                    g.writeNumberField("partition", d.partition);
                    g.writeNumberField("offset", d.offset);
                    g.writeNumberField("at", d.at);
                });
    }

    public static byte[] score(ScoredStep s) {
        return write(
                g -> {
                    g.writeStringField("device_id", s.deviceId);
                    g.writeNumberField("ts", s.ts);
                    g.writeNumberField("score", s.score);
                    if (!Float.isNaN(s.dynamics)) {
                        g.writeNumberField("dynamics", s.dynamics);
                    }
                    if (!Float.isNaN(s.level)) {
                        g.writeNumberField("level", s.level);
                    }
                    if (!Float.isNaN(s.stuck)) {
                        g.writeNumberField("stuck", s.stuck);
                    }
                    if (!Float.isNaN(s.variability)) {
                        g.writeNumberField("variability", s.variability);
                    }
                    if (!Float.isNaN(s.correlation)) {
                        g.writeNumberField("correlation", s.correlation);
                    }
                });
    }

    public static ScoredStep parseScore(byte[] json) {
        ScoredStep s = new ScoredStep();
        try (JsonParser p = JSON.createParser(json)) {
            expect(p.nextToken(), JsonToken.START_OBJECT);
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                switch (field) {
                    case "device_id" -> s.deviceId = p.getText();
                    case "ts" -> s.ts = p.getLongValue();
                    case "score" -> s.score = p.getFloatValue();
                    case "dynamics" -> s.dynamics = p.getFloatValue();
                    case "level" -> s.level = p.getFloatValue();
                    case "stuck" -> s.stuck = p.getFloatValue();
                    case "variability" -> s.variability = p.getFloatValue();
                    case "correlation" -> s.correlation = p.getFloatValue();
                    default -> p.skipChildren();
                }
            }
        } catch (IOException ex) {
            throw new IllegalArgumentException("not a step score: " + ex.getMessage(), ex);
        }
        return s;
    }

    /** The record's text when it is valid UTF-8, else null (it is then written as base64). */
    static String utf8OrNull(byte[] raw) {
        if (raw == null) {
            return "";
        }
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(raw))
                    .toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }

    private static void expect(JsonToken actual, JsonToken expected) throws IOException {
        if (actual != expected) {
            throw new IOException("expected " + expected + " but found " + actual);
        }
    }
}
