package dev.vigil.pipeline;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.config.InputRules;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.DeadLetterReason;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.TelemetryEvent;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.junit.jupiter.api.Test;

/**
 * The parse operator's own rules beyond the parser's (a ts too far ahead of the clock, the Kafka
 * key), and the input format it reads.
 */
class ParseTelemetryTest {

    private static RawRecord record(long ts, long offset) {
        String json =
                "{\"device_id\":\"pump-01\",\"ts\":" + ts + ",\"values\":{\"temperature\":21.5}}";
        return new RawRecord(json.getBytes(StandardCharsets.UTF_8), "telemetry", 3, offset, ts);
    }

    @Test
    void shouldDeadLetterATimestampFurtherAheadThanTheAllowedSkew() throws Exception {
        long now = System.currentTimeMillis();
        try (OneInputStreamOperatorTestHarness<RawRecord, TelemetryEvent> h =
                ProcessFunctionTestHarnesses.forProcessFunction(
                        new ParseTelemetry(
                                List.of("temperature"),
                                new InputRules(InputFormat.JSON, Duration.ofHours(1), false)))) {
            h.processElement(new StreamRecord<>(record(now - 86_400_000L, 1))); // a day old
            h.processElement(new StreamRecord<>(record(now + 1_800_000L, 2))); // 30 min ahead
            h.processElement(new StreamRecord<>(record(now + 7_200_000L, 3))); // 2 h ahead
            h.processElement(new StreamRecord<>(record(Long.MAX_VALUE, 4)));

            assertThat(h.extractOutputValues()).extracting(e -> e.ts).hasSize(2);
            List<DeadLetter> letters = new ArrayList<>();
            h.getSideOutput(ParseTelemetry.DEAD_LETTERS).forEach(r -> letters.add(r.getValue()));
            assertThat(letters).extracting(d -> d.offset).containsExactly(3L, 4L);
            assertThat(letters).allMatch(d -> d.reason == DeadLetterReason.FUTURE_TS);
            assertThat(letters.get(0).detail)
                    .containsPattern("is (PT1H59M5\\dS|PT2H) ahead of this job's clock")
                    .contains("vigil.input.max-clock-skew is PT1H");
        }
    }

    private static RawRecord keyed(String key, String deviceId, long offset) {
        String json =
                "{\"device_id\":\""
                        + deviceId
                        + "\",\"ts\":1764000000000,\"values\":{\"temperature\":21.5}}";
        return new RawRecord(
                key == null ? null : key.getBytes(StandardCharsets.UTF_8),
                json.getBytes(StandardCharsets.UTF_8),
                "telemetry",
                0,
                offset,
                0L);
    }

    @Test
    void shouldDeadLetterARecordKeyedByAnythingButItsDeviceId() throws Exception {
        for (boolean requireKey : new boolean[] {true, false}) {
            try (OneInputStreamOperatorTestHarness<RawRecord, TelemetryEvent> h =
                    ProcessFunctionTestHarnesses.forProcessFunction(
                            new ParseTelemetry(
                                    List.of("temperature"),
                                    new InputRules(
                                            InputFormat.JSON, Duration.ofHours(1), requireKey)))) {
                h.processElement(new StreamRecord<>(keyed("pump-01", "pump-01", 1)));
                h.processElement(new StreamRecord<>(keyed("pümp-02", "pümp-02", 2)));
                h.processElement(new StreamRecord<>(keyed("pump-03", "pump-01", 3)));
                h.processElement(new StreamRecord<>(keyed("pump-0", "pump-01", 4)));
                h.processElement(new StreamRecord<>(keyed(null, "pump-01", 5)));

                List<DeadLetter> letters = new ArrayList<>();
                h.getSideOutput(ParseTelemetry.DEAD_LETTERS)
                        .forEach(r -> letters.add(r.getValue()));
                assertThat(letters).allMatch(d -> d.reason == DeadLetterReason.KEY_MISMATCH);
                if (requireKey) {
                    assertThat(h.extractOutputValues()).hasSize(2);
                    assertThat(letters).extracting(d -> d.offset).containsExactly(3L, 4L, 5L);
                    assertThat(letters.get(2).detail).contains("vigil.input.require-key");
                } else {
                    assertThat(h.extractOutputValues()).hasSize(3); // the unkeyed one too
                    assertThat(letters).extracting(d -> d.offset).containsExactly(3L, 4L);
                }
            }
        }
    }

    @Test
    void shouldReadTheConfiguredInputFormat() throws Exception {
        String[] names = {"temperature"};
        TelemetryEvent e =
                new TelemetryEvent("pump-01", 1_764_000_000_000L, 7, new float[] {21.5f});
        byte[] key = "pump-01".getBytes(StandardCharsets.UTF_8);
        byte[] json = InputFormat.JSON.write(e, names);
        byte[] avro = InputFormat.AVRO.write(e, names);
        try (OneInputStreamOperatorTestHarness<RawRecord, TelemetryEvent> h =
                ProcessFunctionTestHarnesses.forProcessFunction(
                        new ParseTelemetry(
                                List.of("temperature"),
                                new InputRules(InputFormat.AVRO, Duration.ofHours(1), true)))) {
            h.processElement(new StreamRecord<>(new RawRecord(key, avro, "telemetry", 0, 1, 0L)));
            h.processElement(new StreamRecord<>(new RawRecord(key, json, "telemetry", 0, 2, 0L)));
            h.processElement(
                    new StreamRecord<>(
                            new RawRecord("pump-02".getBytes(), avro, "telemetry", 0, 3, 0L)));

            assertThat(h.extractOutputValues())
                    .usingRecursiveFieldByFieldElementComparator()
                    .containsExactly(e);
            List<DeadLetter> letters = new ArrayList<>();
            h.getSideOutput(ParseTelemetry.DEAD_LETTERS).forEach(r -> letters.add(r.getValue()));
            assertThat(letters)
                    .extracting(d -> d.reason)
                    .containsExactly(
                            DeadLetterReason.MALFORMED_AVRO, DeadLetterReason.KEY_MISMATCH);
            assertThat(letters.get(0).raw).isEqualTo(json); // the original bytes, kept
        }
    }
}
