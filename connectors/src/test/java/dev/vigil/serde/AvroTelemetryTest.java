package dev.vigil.serde;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.avro.LogicalTypes;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.util.Utf8;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The input's Avro format against the Avro library and the schema file that producers use: what the
 * library writes with the schema, the job reads; what the job writes, the library reads.
 */
class AvroTelemetryTest {

    private static final List<String> FEATURES = List.of("temperature", "vibration", "pressure");
    private static final InputFormat.Parser PARSER = InputFormat.AVRO.parser(FEATURES);
    private static final long TS = 1_764_000_000_000L;
    private static final Schema SCHEMA = schema();

    private static Schema schema() {
        try (InputStream in = AvroTelemetry.class.getResourceAsStream(AvroTelemetry.SCHEMA)) {
            return new Schema.Parser().parse(in);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A record as a producer with the Avro library writes it. */
    private static byte[] avro(Object deviceId, long ts, Long seq, Map<String, Double> values) {
        return avro(deviceId, ts, seq, values, false);
    }

    private static byte[] avro(
            Object deviceId, long ts, Long seq, Map<String, Double> values, boolean blocking) {
        GenericRecord r = new GenericData.Record(SCHEMA);
        r.put("device_id", deviceId);
        r.put("ts", ts);
        r.put("seq", seq);
        r.put("values", values);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            BinaryEncoder encoder =
                    blocking
                            ? EncoderFactory.get().blockingBinaryEncoder(out, null)
                            : EncoderFactory.get().binaryEncoder(out, null);
            new GenericDatumWriter<GenericRecord>(SCHEMA).write(r, encoder);
            encoder.flush();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return out.toByteArray();
    }

    private static Map<String, Double> values(
            double temperature, double vibration, double pressure) {
        Map<String, Double> m = new LinkedHashMap<>();
        m.put("pressure", pressure); // not card order, and an extra name
        m.put("extra", 42.0);
        m.put("temperature", temperature);
        m.put("vibration", vibration);
        return m;
    }

    @Test
    void shouldBeTheSchemaTheParserReads() {
        assertThat(SCHEMA.getFields().stream().map(Schema.Field::name))
                .containsExactly("device_id", "ts", "seq", "values");
        assertThat(SCHEMA.getField("device_id").schema().getType()).isEqualTo(Schema.Type.STRING);
        Schema ts = SCHEMA.getField("ts").schema();
        assertThat(ts.getType()).isEqualTo(Schema.Type.LONG);
        assertThat(ts.getLogicalType()).isEqualTo(LogicalTypes.timestampMillis());
        assertThat(SCHEMA.getField("seq").schema().getTypes().stream().map(Schema::getType))
                .containsExactly(Schema.Type.NULL, Schema.Type.LONG);
        Schema values = SCHEMA.getField("values").schema();
        assertThat(values.getType()).isEqualTo(Schema.Type.MAP);
        assertThat(values.getValueType().getType()).isEqualTo(Schema.Type.DOUBLE);
    }

    @ParameterizedTest(name = "blocking encoder: {0}")
    @ValueSource(booleans = {false, true})
    void shouldReadWhatTheAvroLibraryWrites(boolean blocking) {
        TelemetryParser.Result r =
                PARSER.parse(avro("pump-17", TS, 4711L, values(71.2, 0.031, 2.4), blocking));

        assertThat(r.rejection()).isNull();
        assertThat(r.event().deviceId).isEqualTo("pump-17");
        assertThat(r.event().ts).isEqualTo(TS);
        assertThat(r.event().seq).isEqualTo(4711);
        assertThat(r.event().values).containsExactly(71.2f, 0.031f, 2.4f);

        TelemetryParser.Result noSeq =
                PARSER.parse(avro("pompe-\u00e9t\u00e9", -5, null, values(1, 2, 3), blocking));
        assertThat(noSeq.event().hasSeq()).isFalse();
        assertThat(noSeq.event().deviceId).isEqualTo("pompe-\u00e9t\u00e9");
        assertThat(noSeq.event().ts).isEqualTo(-5);
    }

    @Test
    void shouldWriteWhatTheAvroLibraryAndTheParserRead() throws IOException {
        String[] names = FEATURES.toArray(String[]::new);
        for (TelemetryEvent e :
                List.of(
                        new TelemetryEvent("pump-17", TS, 4711, new float[] {71.2f, 0.031f, 2.4f}),
                        TelemetryEvent.withoutSeq("d", 0, new float[] {-0f, 1e-30f, 3e38f}))) {
            byte[] bytes = AvroTelemetry.write(e, names);

            GenericRecord r =
                    new GenericDatumReader<GenericRecord>(SCHEMA)
                            .read(null, DecoderFactory.get().binaryDecoder(bytes, null));
            assertThat(r.get("device_id").toString()).isEqualTo(e.deviceId);
            assertThat(r.get("ts")).isEqualTo(e.ts);
            assertThat(r.get("seq")).isEqualTo(e.hasSeq() ? e.seq : null);
            Map<?, ?> values = (Map<?, ?>) r.get("values");
            for (int i = 0; i < names.length; i++) {
                assertThat(values.get(new Utf8(names[i]))).isEqualTo((double) e.values[i]);
            }

            TelemetryEvent back = PARSER.parse(bytes).event();
            assertThat(back.deviceId).isEqualTo(e.deviceId);
            assertThat(back.ts).isEqualTo(e.ts);
            assertThat(back.seq).isEqualTo(e.seq);
            assertThat(back.values).containsExactly(e.values);
        }
    }

    @Test
    void shouldRejectWithTheJsonContractsReasons() {
        assertRejected(
                avro("", 1, null, values(1, 2, 3)), "BAD_DEVICE_ID", "not a non-empty string");
        assertRejected(avro("  ", 1, null, values(1, 2, 3)), "BAD_DEVICE_ID", null);
        assertRejected(
                avro(
                        "d".repeat(TelemetryParser.MAX_DEVICE_ID_LENGTH + 1),
                        1,
                        null,
                        values(1, 2, 3)),
                "BAD_DEVICE_ID",
                "257 characters, more than 256");
        assertThat(
                        PARSER.parse(
                                        avro(
                                                "d".repeat(TelemetryParser.MAX_DEVICE_ID_LENGTH),
                                                1,
                                                null,
                                                values(1, 2, 3)))
                                .event())
                .isNotNull();
        assertRejected(
                avro(new Utf8(new byte[] {'d', (byte) 0xC3, '('}), 1, null, values(1, 2, 3)),
                "BAD_DEVICE_ID",
                "not valid UTF-8");
        assertRejected(avro("d", 1, -3L, values(1, 2, 3)), "BAD_SEQ", "-3");
        assertRejected( // the value that means "no seq" inside the job, written as a seq
                avro("d", 1, Long.MIN_VALUE, values(1, 2, 3)),
                "BAD_SEQ",
                Long.toString(Long.MIN_VALUE));
        assertRejected( // the value that means "never scored" inside the job
                avro("d", Long.MIN_VALUE, null, values(1, 2, 3)),
                "BAD_TS",
                Long.toString(Long.MIN_VALUE));
        Map<String, Double> missing = values(1, 2, 3);
        missing.remove("vibration");
        assertRejected(avro("d", 1, null, missing), "MISSING_FEATURE", "vibration");
        assertRejected(
                avro("d", 1, null, values(1, Double.NaN, 3)), "NON_FINITE_FEATURE", "vibration");
        assertRejected(
                avro("d", 1, null, values(1, 2, Double.NEGATIVE_INFINITY)),
                "NON_FINITE_FEATURE",
                "pressure");
        assertRejected(
                avro("d", 1, null, values(1e300, 2, 3)), "NON_FINITE_FEATURE", "temperature");
    }

    @Test
    void shouldRejectBytesThatAreNotARecordOfTheSchema() {
        byte[] good = avro("pump-17", TS, 4711L, values(71.2, 0.031, 2.4));
        assertThat(PARSER.parse(good).event()).isNotNull();
        for (int n = 0; n < good.length; n++) {
            assertRejected(Arrays.copyOf(good, n), "MALFORMED_AVRO", null); // every truncation
        }
        assertRejected(
                Arrays.copyOf(good, good.length + 1),
                "MALFORMED_AVRO",
                "1 bytes after the record (" + (good.length + 1) + ")");
        assertRejected(null, "MALFORMED_AVRO", "empty record");
        byte[] branch = good.clone();
        branch[1 + "pump-17".length() + 6] = 4; // the union's branch (zigzag 2): there are two
        assertRejected(branch, "MALFORMED_AVRO", "seq: union branch 2 of 2");
        byte[] huge = {(byte) 0xFE, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x0F}; // 2^31-1 bytes
        assertRejected(huge, "MALFORMED_AVRO", "a string of 2147483647 bytes at byte 5 of 5");
        byte[] endless = new byte[12];
        Arrays.fill(endless, (byte) 0x80);
        assertRejected(endless, "MALFORMED_AVRO", "a number longer than 10 bytes at byte 10");
        assertThat(PARSER.parse("{\"device_id\":\"d\"}".getBytes()).event()).isNull();
    }

    @Test
    void shouldNeverThrowOnDamagedOrRandomBytes() {
        byte[] good = avro("pump-17", TS, 4711L, values(71.2, 0.031, 2.4));
        SplittableRandom random = new SplittableRandom(7);
        for (int i = 0; i < 20_000; i++) {
            byte[] bytes;
            if (i % 2 == 0) {
                bytes = good.clone();
                for (int k = random.nextInt(1, 4); k > 0; k--) {
                    bytes[random.nextInt(bytes.length)] = (byte) random.nextInt(256);
                }
            } else {
                bytes = new byte[random.nextInt(1, 80)];
                for (int k = 0; k < bytes.length; k++) {
                    bytes[k] = (byte) random.nextInt(256);
                }
            }
            TelemetryParser.Result r = PARSER.parse(bytes);
            assertThat(r.event() == null).isNotEqualTo(r.rejection() == null);
            if (r.event() != null) {
                assertThat(r.event().deviceId).isNotBlank();
                for (float v : r.event().values) {
                    assertThat(Float.isFinite(v)).isTrue();
                }
            }
        }
    }

    private static void assertRejected(byte[] bytes, String reason, String detail) {
        TelemetryParser.Result r = PARSER.parse(bytes);
        assertThat(r.event()).isNull();
        assertThat(r.rejection().reason().name()).isEqualTo(reason);
        if (detail != null) {
            assertThat(r.rejection().detail()).isEqualTo(detail);
        }
    }
}
