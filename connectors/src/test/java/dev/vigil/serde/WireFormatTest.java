package dev.vigil.serde;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class WireFormatTest {

    private static AnomalyEvent closeEvent() {
        AnomalyEvent e = new AnomalyEvent();
        e.type = AnomalyEvent.CLOSE;
        e.deviceId = "pump-17";
        e.episodeStart = 1_764_000_000_000L;
        e.ts = 1_764_000_600_000L;
        e.eventId = AnomalyEvent.eventId(e.deviceId, e.episodeStart, e.type, 11);
        e.score = 0.5f;
        e.threshold = 4.1f;
        e.peakScore = 9.7f;
        e.steps = 11;
        e.durationMs = 600_000L;
        e.modelVersion = "fleet-gru-2026-11-23+sha256:ab12";
        e.reason = AnomalyEvent.reason(AnomalyEvent.REASON_LEVEL);
        e.topFeatureNames = new String[] {"vibration", "temperature"};
        e.topFeatureShares = new float[] {0.81f, 0.12f};
        return e;
    }

    @Test
    void shouldWriteATelemetryRecordThatParsesBackToItself() {
        List<String> names = List.of("temperature", "vibration");
        TelemetryParser parser = new TelemetryParser(names);
        TelemetryEvent e =
                new TelemetryEvent("pump-17", 1_764_000_000_000L, 41, new float[] {0.1f, 3e38f});
        TelemetryEvent noSeq = TelemetryEvent.withoutSeq("pump-18", 5L, new float[] {-0f, 1f / 3});

        for (TelemetryEvent in : List.of(e, noSeq)) {
            TelemetryEvent back =
                    parser.parse(WireFormat.telemetry(in, names.toArray(String[]::new))).event();
            assertThat(back).usingRecursiveComparison().isEqualTo(in);
        }
    }

    @Test
    void shouldRoundTripAnAnomalyEvent() {
        AnomalyEvent e = closeEvent();

        AnomalyEvent back = WireFormat.parseAnomaly(WireFormat.anomaly(e));

        assertThat(back).usingRecursiveComparison().isEqualTo(e);
        assertThat(back.eventId).isEqualTo("pump-17:1764000000000:CLOSE");
        assertThat(back.reason).isEqualTo("level");
    }

    /** Only the CLOSE of an episode the device re-learned its normal at says so. */
    @Test
    void shouldWriteRelearnedOnlyOnTheCloseThatRelearned() throws Exception {
        AnomalyEvent e = closeEvent();
        assertThat(flat(WireFormat.anomaly(e))).doesNotContainKey("relearned");

        e.relearned = true;
        assertThat(flat(WireFormat.anomaly(e))).containsEntry("relearned", "true");
        assertThat(WireFormat.parseAnomaly(WireFormat.anomaly(e)))
                .usingRecursiveComparison()
                .isEqualTo(e);
    }

    @Test
    void shouldNameTheReasonOfEveryCombinationOfComponents() {
        assertThat(AnomalyEvent.reason(AnomalyEvent.REASON_DYNAMICS)).isEqualTo("dynamics");
        assertThat(AnomalyEvent.reason(AnomalyEvent.REASON_LEVEL)).isEqualTo("level");
        assertThat(AnomalyEvent.reason(AnomalyEvent.REASON_DYNAMICS | AnomalyEvent.REASON_LEVEL))
                .isEqualTo("dynamics+level");
        assertThat(AnomalyEvent.reason(AnomalyEvent.REASON_LEVEL | AnomalyEvent.REASON_STUCK))
                .isEqualTo("level+stuck");
        assertThat(
                        AnomalyEvent.reason(
                                AnomalyEvent.REASON_VARIABILITY | AnomalyEvent.REASON_CORRELATION))
                .isEqualTo("variability+correlation");
        assertThat(AnomalyEvent.reason(AnomalyEvent.REASON_CORRELATION)).isEqualTo("correlation");
        assertThat(AnomalyEvent.reason(0)).isEqualTo("dynamics");
    }

    @Test
    void shouldNumberUpdatesSoEachHasItsOwnId() {
        assertThat(AnomalyEvent.eventId("d", 5, AnomalyEvent.UPDATE, 20))
                .isEqualTo("d:5:UPDATE:20");
        assertThat(AnomalyEvent.eventId("d", 5, AnomalyEvent.OPEN, 2)).isEqualTo("d:5:OPEN");
    }

    @Test
    void shouldWriteDeadLettersWithTheirOriginAndRawText() throws Exception {
        RawRecord raw =
                new RawRecord("{oops".getBytes(StandardCharsets.UTF_8), "telemetry", 3, 88121, 0);
        DeadLetter d =
                new DeadLetter(DeadLetterReason.MALFORMED_JSON, "x", raw, 1_764_000_000_123L);

        Map<String, String> json = flat(WireFormat.deadLetter(d));

        assertThat(json)
                .containsEntry("reason", "MALFORMED_JSON")
                .containsEntry("raw", "{oops")
                .containsEntry("topic", "telemetry")
                .containsEntry("partition", "3")
                .containsEntry("offset", "88121")
                .containsEntry("at", "1764000000123")
                .doesNotContainKey("raw_encoding");
    }

    /** A Kafka record with no value (a tombstone) is a dead letter like any other. */
    @Test
    void shouldWriteTheDeadLetterOfARecordWithNoValue() throws Exception {
        DeadLetter d =
                new DeadLetter(
                        DeadLetterReason.MALFORMED_JSON,
                        "empty record",
                        new RawRecord(null, "telemetry", 1, 7, 0),
                        0);

        Map<String, String> json = flat(WireFormat.deadLetter(d));

        assertThat(json)
                .containsEntry("reason", "MALFORMED_JSON")
                .containsEntry("raw", "")
                .containsEntry("offset", "7")
                .doesNotContainKey("raw_truncated");
    }

    @Test
    void shouldWriteNonUtf8RawBytesAsBase64() throws Exception {
        byte[] bytes = {(byte) 0xff, (byte) 0xfe, 0x41};
        DeadLetter d =
                new DeadLetter(
                        DeadLetterReason.MALFORMED_JSON,
                        "x",
                        new RawRecord(bytes, "telemetry", 0, 1, 0),
                        0);

        Map<String, String> json = flat(WireFormat.deadLetter(d));

        assertThat(json).containsEntry("raw_encoding", "base64");
        assertThat(Base64.getDecoder().decode(json.get("raw"))).isEqualTo(bytes);
    }

    /**
     * A huge record's dead letter stays below the broker's default 1 MiB: cut at a character
     * boundary, marked, with the original length. Control characters, which JSON escapes into six
     * bytes each, are the worst case.
     */
    @Test
    void shouldCutTheRawTextOfAHugeRecordAndSaySo() throws Exception {
        byte[] huge = new byte[5 * 1024 * 1024];
        java.util.Arrays.fill(huge, (byte) 0x01); // escaped as \u0001
        byte[] euro = "\u20ac".getBytes(StandardCharsets.UTF_8); // 3 bytes across the cut
        System.arraycopy(euro, 0, huge, WireFormat.MAX_RAW_BYTES - 1, euro.length);
        DeadLetter d =
                new DeadLetter(
                        DeadLetterReason.MALFORMED_JSON,
                        "x",
                        new RawRecord(huge, "telemetry", 0, 1, 0),
                        0);

        byte[] written = WireFormat.deadLetter(d);
        Map<String, String> json = flat(written);

        assertThat(written.length).isLessThan(1024 * 1024);
        assertThat(json)
                .containsEntry("raw_truncated", "true")
                .containsEntry("raw_length", String.valueOf(huge.length))
                .doesNotContainKey("raw_encoding"); // still text: not cut inside the euro sign
        assertThat(json.get("raw").getBytes(StandardCharsets.UTF_8))
                .hasSize(WireFormat.MAX_RAW_BYTES - 1);
    }

    /**
     * A record whose {@code ts} is a string of a million backslashes (Jackson reads strings up to
     * 20 MB; JSON escapes each into two bytes) is a dead letter BAD_TS that quotes it in {@code
     * detail}: cut too, so that the letter fits the broker's default 1 MiB and cannot fail the job.
     */
    @Test
    void shouldCutAHugeDetailQuotedFromTheRecord() throws Exception {
        String backslashes = "\\".repeat(1_000_000);
        byte[] huge = new byte[5 * 1024 * 1024];
        java.util.Arrays.fill(huge, (byte) 0x01);
        DeadLetter d =
                new DeadLetter(
                        DeadLetterReason.BAD_TS,
                        "ts is not a number: " + backslashes,
                        new RawRecord(huge, "telemetry", 0, 1, 0),
                        0);

        byte[] written = WireFormat.deadLetter(d);
        String detail = flat(written).get("detail");

        assertThat(written.length).isLessThan(1024 * 1024);
        assertThat(detail)
                .startsWith("ts is not a number: \\\\")
                .endsWith("... (1000020 characters)")
                .hasSize(WireFormat.MAX_DETAIL_CHARS + "... (1000020 characters)".length());
        // A short detail is kept as it is.
        assertThat(WireFormat.cutDetail("ts is not a number: x"))
                .isEqualTo("ts is not a number: x");
    }

    @Test
    void shouldRoundTripAStepScoreWithItsComponents() throws Exception {
        ScoredStep s = new ScoredStep("pump-1", 42L, 1.25f, 1.25f, 0.5f, 0.25f, 0.125f, 0.75f);

        assertThat(WireFormat.parseScore(WireFormat.score(s)))
                .usingRecursiveComparison()
                .isEqualTo(s);
        assertThat(flat(WireFormat.score(s)))
                .containsEntry("dynamics", "1.25")
                .containsEntry("level", "0.5")
                .containsEntry("stuck", "0.25")
                .containsEntry("variability", "0.125")
                .containsEntry("correlation", "0.75");
    }

    @Test
    void shouldLeaveOutAComponentWithoutAValue() throws Exception {
        ScoredStep s = new ScoredStep("pump-1", 42L, 1.25f);

        ScoredStep back = WireFormat.parseScore(WireFormat.score(s));

        assertThat(flat(WireFormat.score(s))).containsOnlyKeys("device_id", "ts", "score");
        assertThat(back.score).isEqualTo(1.25f);
        assertThat(back.dynamics).isNaN();
        assertThat(back.level).isNaN();
        assertThat(back.variability).isNaN();
        assertThat(back.correlation).isNaN();
    }

    private static Map<String, String> flat(byte[] json) throws Exception {
        Map<String, String> out = new HashMap<>();
        try (JsonParser p = new JsonFactory().createParser(json)) {
            p.nextToken();
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String k = p.currentName();
                p.nextToken();
                out.put(k, p.getText());
            }
        }
        return out;
    }
}
