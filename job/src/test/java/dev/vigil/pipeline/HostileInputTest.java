package dev.vigil.pipeline;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.config.InputRules;
import dev.vigil.model.ModelCard;
import dev.vigil.scoring.BatchedScoringOperator;
import dev.vigil.scoring.Outputs;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.DeadLetterReason;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.RawRecord;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.testing.Fixtures;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.junit.jupiter.api.Test;

/**
 * A seeded fuzz of the input path: valid records mutated at random (bytes flipped, cut or inserted,
 * invalid UTF-8, extreme and mistyped values, timestamps and sequence numbers, device ids, keys,
 * nesting) through the parse operator and the batched scoring operator on the real model. Neither
 * may throw, and every record must end in exactly one place: scored, late, or a dead letter.
 */
class HostileInputTest {

    private static final int RECORDS = 20_000;
    private static final String[] DEVICES = {"pump-01", "pump-02", "pump-03", "pümp-04", "p5"};

    private static final String[] ODD_NUMBERS = {
        "1e39", "-1e39", "3e38", "-3.4028235e38", "1e-45", "-0.0", "NaN", "Infinity", "-Infinity",
        "\"12\"", "null", "true", "[]", "{}", "99999999999999999999999999", "0x10", "1.", ".5",
        "1e", "--1"
    };

    @Test
    void shouldPutEveryHostileRecordInExactlyOnePlaceAndNeverThrow() throws Exception {
        ModelCard card = Fixtures.model().card();
        SplittableRandom random = new SplittableRandom(20261201L);
        List<RawRecord> records = new ArrayList<>();
        long ts = 1_764_000_000_000L;
        for (int i = 0; i < RECORDS; i++) {
            String device = DEVICES[random.nextInt(DEVICES.length)];
            ts += random.nextInt(3) * 60_000L;
            String json = record(card, device, ts, i, random);
            byte[] value = mutate(json.getBytes(StandardCharsets.UTF_8), random);
            byte[] key =
                    random.nextInt(20) == 0
                            ? null
                            : (random.nextInt(20) == 0 ? "other" : device)
                                    .getBytes(StandardCharsets.UTF_8);
            records.add(new RawRecord(key, value, "telemetry", 0, i, ts));
        }

        List<TelemetryEvent> parsed = new ArrayList<>();
        List<DeadLetter> deadLetters = new ArrayList<>();
        try (OneInputStreamOperatorTestHarness<RawRecord, TelemetryEvent> parse =
                ProcessFunctionTestHarnesses.forProcessFunction(
                        new ParseTelemetry(
                                card.featureNames(),
                                new InputRules(InputFormat.JSON, Duration.ofHours(1), true)))) {
            for (RawRecord r : records) {
                parse.processElement(new StreamRecord<>(r));
            }
            parsed.addAll(parse.extractOutputValues());
            parse.getSideOutput(ParseTelemetry.DEAD_LETTERS)
                    .forEach(r -> deadLetters.add(r.getValue()));
        }
        assertThat(parsed.size() + deadLetters.size()).isEqualTo(RECORDS);

        List<DeadLetter> scorerLetters = new ArrayList<>();
        int scored;
        try (KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> score =
                new KeyedOneInputStreamOperatorTestHarness<>(
                        new BatchedScoringOperator(
                                Fixtures.model(),
                                Fixtures.scoringDefaults().emitScores(true).batch(64, 0).build()),
                        new VigilPipeline.DeviceKey(),
                        Types.STRING)) {
            score.setStateBackend(new EmbeddedRocksDBStateBackend());
            score.open();
            for (TelemetryEvent e : parsed) {
                score.processElement(new StreamRecord<>(e, e.ts));
            }
            score.endInput();
            scored = score.getSideOutput(Outputs.SCORES).size();
            score.getSideOutput(Outputs.DEAD_LETTERS).forEach(r -> scorerLetters.add(r.getValue()));
        }
        assertThat(scored + scorerLetters.size()).isEqualTo(parsed.size());

        // The fuzz reaches every kind of place, and most of the parser's reasons.
        Map<DeadLetterReason, Integer> reasons = new EnumMap<>(DeadLetterReason.class);
        deadLetters.forEach(d -> reasons.merge(d.reason, 1, Integer::sum));
        scorerLetters.forEach(d -> reasons.merge(d.reason, 1, Integer::sum));
        assertThat(scored).isGreaterThan(RECORDS / 4);
        assertThat(reasons)
                .containsKeys(
                        DeadLetterReason.MALFORMED_JSON,
                        DeadLetterReason.BAD_DEVICE_ID,
                        DeadLetterReason.BAD_TS,
                        DeadLetterReason.BAD_SEQ,
                        DeadLetterReason.BAD_FEATURE,
                        DeadLetterReason.NON_FINITE_FEATURE,
                        DeadLetterReason.KEY_MISMATCH,
                        DeadLetterReason.FUTURE_TS,
                        DeadLetterReason.OUT_OF_ORDER);
    }

    /** A valid record, or one with a field made odd (a third of them). */
    private static String record(
            ModelCard card, String device, long ts, long seq, SplittableRandom random) {
        String tsField = String.valueOf(ts);
        String seqField = String.valueOf(seq);
        String deviceField = "\"" + device + "\"";
        int odd = random.nextInt(3) == 0 ? random.nextInt(4) : -1;
        if (odd == 0) {
            tsField =
                    switch (random.nextInt(6)) {
                        case 0 -> String.valueOf(Long.MAX_VALUE);
                        case 1 -> String.valueOf(-random.nextLong(1L << 50));
                        case 2 -> "\"2025-13-45T99:00:00Z\"";
                        case 3 -> "1.5e12";
                        case 4 -> String.valueOf(System.currentTimeMillis() + 86_400_000L);
                        default -> String.valueOf(ts - random.nextInt(1_000) * 60_000L);
                    };
        } else if (odd == 1) {
            seqField =
                    switch (random.nextInt(5)) {
                        case 0 -> "-1";
                        case 1 -> String.valueOf(Long.MAX_VALUE);
                        case 2 -> "\"x\"";
                        case 3 -> "1.5";
                        default -> String.valueOf(seq - random.nextInt(100));
                    };
        } else if (odd == 2) {
            deviceField =
                    switch (random.nextInt(4)) {
                        case 0 -> "\"\"";
                        case 1 -> "\"" + "d".repeat(300) + "\"";
                        case 2 -> "17";
                        default -> "null";
                    };
        }
        StringBuilder values = new StringBuilder();
        for (int i = 0; i < card.featureCount(); i++) {
            String v =
                    String.format(
                            Locale.ROOT,
                            "%.4f",
                            card.mean()[i] + card.std()[i] * random.nextGaussian());
            if (odd == 3 && random.nextInt(card.featureCount()) == 0) {
                v = ODD_NUMBERS[random.nextInt(ODD_NUMBERS.length)];
            }
            if (i > 0) {
                values.append(',');
            }
            values.append('"').append(card.names()[i]).append("\":").append(v);
        }
        return "{\"device_id\":"
                + deviceField
                + ",\"ts\":"
                + tsField
                + ",\"seq\":"
                + seqField
                + ",\"values\":{"
                + values
                + "}}";
    }

    /** The bytes as they are (most), or flipped, cut, grown, nested or emptied. */
    private static byte[] mutate(byte[] bytes, SplittableRandom random) {
        switch (random.nextInt(12)) {
            case 0 -> {
                byte[] out = bytes.clone();
                for (int k = 0; k < 1 + random.nextInt(3); k++) {
                    out[random.nextInt(out.length)] = (byte) random.nextInt(256);
                }
                return out;
            }
            case 1 -> {
                return java.util.Arrays.copyOf(bytes, random.nextInt(bytes.length));
            }
            case 2 -> {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                int at = random.nextInt(bytes.length);
                out.write(bytes, 0, at);
                byte[][] inserts = {{(byte) 0xC3, 0x28}, {(byte) 0xFF}, {0}, {'\n'}, {'"'}};
                out.writeBytes(inserts[random.nextInt(inserts.length)]);
                out.write(bytes, at, bytes.length - at);
                return out.toByteArray();
            }
            case 3 -> {
                return random.nextBoolean()
                        ? new byte[0]
                        : ("[".repeat(5_000)).getBytes(StandardCharsets.UTF_8);
            }
            default -> {
                return bytes;
            }
        }
    }
}
