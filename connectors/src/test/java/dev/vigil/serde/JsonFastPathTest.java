package dev.vigil.serde;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The fast path reads every record it accepts exactly as Jackson does (same event, bit for bit, or
 * same rejection), and accepts the records producers write.
 */
class JsonFastPathTest {

    private static final List<String> FEATURES = List.of("temperature", "vibration", "pressure");

    private final TelemetryParser parser = new TelemetryParser(FEATURES);
    private final JsonFastPath fast = new JsonFastPath(FEATURES);
    private final TelemetryParser.Fields fields = new TelemetryParser.Fields();

    @Test
    void shouldReadWhatTheWireFormatWritesWithoutGivingUp() {
        SplittableRandom random = new SplittableRandom(7);
        String[] names = FEATURES.toArray(String[]::new);
        for (int i = 0; i < 10_000; i++) {
            float[] values = new float[names.length];
            for (int f = 0; f < values.length; f++) {
                values[f] = randomFloat(random);
            }
            TelemetryEvent e =
                    i % 2 == 0
                            ? new TelemetryEvent("pump-" + i, 1_764_000_000_000L + i, i, values)
                            : TelemetryEvent.withoutSeq("pump-" + i, i, values);
            byte[] raw = WireFormat.telemetry(e, names);

            assertThat(fast.read(raw, fields)).as(new String(raw, StandardCharsets.UTF_8)).isTrue();
            TelemetryParser.Result r = fields.result();
            assertThat(r.event().deviceId).isEqualTo(e.deviceId);
            assertThat(r.event().ts).isEqualTo(e.ts);
            assertThat(r.event().seq).isEqualTo(e.seq);
            assertThat(r.event().values).isEqualTo(values);
            assertSameAsJackson(raw);
        }
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":-0,\"vibration\":-0.0,\"pressure\":0e5}}",
                "{\"device_id\":\"d\",\"ts\":-0,\"seq\":-0,\"values\":{\"temperature\":1E+2,\"vibration\":1e-2,\"pressure\":123456789012345678}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1.00000000000000000000001,\"vibration\":1e-45,\"pressure\":3.4028235e38}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":0.000000000000000001,\"vibration\":9007199254740993,\"pressure\":4.9e-324}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":3.5e38,\"vibration\":1e400,\"pressure\":NaN}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":01,\"vibration\":1.,\"pressure\":.5}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":+1,\"vibration\":1e,\"pressure\":-}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"temperature\":2,\"vibration\":2,\"pressure\":3}}",
                "{\"device_id\":\"d\",\"device_id\":\"e\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3},\"values\":{}}",
                "{\"device_id\":\"caf\u00e9\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3}}",
                "{\"device_id\":\"a\\\"b\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temp\\u0065rature\":1,\"vibration\":2,\"pressure\":3}}",
                "{\"device_id\":\"   \",\"ts\":1,\"values\":{}}",
                "{\"device_id\":\"d\",\"ts\":\"2025-11-24T16:00:00Z\",\"seq\":null,\"values\":{}}",
                "{\"device_id\":\"d\",\"ts\":\"yesterday\",\"values\":{\"temperature\":1}}",
                "{\"device_id\":\"d\",\"ts\":12345678901234567890,\"values\":{}}",
                "{\"device_id\":\"d\",\"ts\":1,\"site\":\"x\",\"n\":1.5e3,\"on\":true,\"off\":false,\"z\":null,\"values\":{\"x\":\"y\",\"temperature\":1,\"vibration\":2,\"pressure\":3}}",
                "{\"device_id\":\"d\",\"ts\":1,\"meta\":{\"a\":[1,2]},\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3}}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3}} x",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3},}",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3,}}",
                "\ufeff{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3}}",
                " \t\r\n{ \"device_id\" : \"d\" , \"ts\" : 1 , \"values\" : { \"temperature\" : 1 , \"vibration\" : 2 , \"pressure\" : 3 } } \n",
                "{\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":truex,\"vibration\":2,\"pressure\":3}}",
                "{\"device_id\":\"d\",\"ts\":1,\"x\":nul,\"values\":{}}",
                "{}",
                "{\"\":1}",
                "{\"device_id\":\"d\"",
                "[1,2,3]",
            })
    void shouldReadEveryRecordItAcceptsAsJacksonDoes(String json) {
        assertSameAsJackson(json.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void shouldReadGeneratedAndCutRecordsAsJacksonDoes() {
        SplittableRandom random = new SplittableRandom(11);
        int accepted = 0;
        int n = 50_000;
        for (int i = 0; i < n; i++) {
            byte[] raw = randomRecord(random).getBytes(StandardCharsets.UTF_8);
            if (random.nextInt(10) == 0) {
                raw = java.util.Arrays.copyOf(raw, 1 + random.nextInt(raw.length));
            }
            accepted += assertSameAsJackson(raw) ? 1 : 0;
        }
        // Most generated records are of the common shape: the comparison above is not vacuous.
        assertThat(accepted).isGreaterThan(n / 4);
    }

    /** Compares the two readings; returns whether the fast path accepted the record. */
    private boolean assertSameAsJackson(byte[] raw) {
        TelemetryParser.Result jackson = parser.parseJson(raw);
        TelemetryParser.Result viaParse = parser.parse(raw);
        boolean accepted = fast.read(raw, fields);
        String as = new String(raw, StandardCharsets.UTF_8);
        for (TelemetryParser.Result r :
                accepted ? List.of(fields.result(), viaParse) : List.of(viaParse)) {
            assertThat(r.rejection()).as(as).isEqualTo(jackson.rejection());
            if (jackson.event() == null) {
                assertThat(r.event()).as(as).isNull();
            } else {
                assertThat(r.event().deviceId).as(as).isEqualTo(jackson.event().deviceId);
                assertThat(r.event().ts).as(as).isEqualTo(jackson.event().ts);
                assertThat(r.event().seq).as(as).isEqualTo(jackson.event().seq);
                // float[] equality by bits: -0.0 and 0.0 differ, as the stuck score sees them
                assertThat(r.event().values).as(as).isEqualTo(jackson.event().values);
            }
        }
        return accepted;
    }

    private static String randomRecord(SplittableRandom random) {
        List<String> members = new ArrayList<>();
        if (random.nextInt(20) != 0) {
            members.add(
                    "\"device_id\":"
                            + mostly(
                                    random,
                                    "\"pump-" + random.nextInt(100) + "\"",
                                    "\"\"",
                                    "\"  \"",
                                    "\"" + "d".repeat(256) + "\"",
                                    "\"" + "d".repeat(257) + "\"",
                                    "\"caf\u00e9\"",
                                    "\"a\\\"b\"",
                                    "17",
                                    "null"));
        }
        if (random.nextInt(20) != 0) {
            members.add(
                    "\"ts\":"
                            + mostly(
                                    random,
                                    Long.toString(random.nextLong(2_000_000_000_000L)),
                                    "-5",
                                    "\"2025-11-24T16:00:00Z\"",
                                    "\"2025-11-24T17:00:00+01:00\"",
                                    "\"yesterday\"",
                                    "1.5",
                                    "12345678901234567890",
                                    "null",
                                    "{}"));
        }
        if (random.nextBoolean()) {
            members.add(
                    "\"seq\":"
                            + mostly(
                                    random,
                                    Integer.toString(random.nextInt(1_000_000)),
                                    "-3",
                                    "-0",
                                    "null",
                                    "\"x\"",
                                    "1.0"));
        }
        if (random.nextInt(20) != 0) {
            members.add("\"values\":" + randomValues(random));
        }
        if (random.nextInt(4) == 0) {
            members.add(
                    pick(
                            random,
                            "\"site\":\"x\"",
                            "\"n\":1.5e3",
                            "\"on\":true",
                            "\"z\":null",
                            "\"meta\":{\"a\":[1,2]}",
                            "\"device_id\":\"again\""));
        }
        Collections.shuffle(members, new java.util.Random(random.nextLong()));
        StringBuilder s = new StringBuilder(space(random)).append('{');
        for (int i = 0; i < members.size(); i++) {
            s.append(i == 0 ? "" : ",").append(space(random)).append(members.get(i));
        }
        s.append(space(random)).append('}').append(space(random));
        if (random.nextInt(50) == 0) {
            s.append(pick(random, "x", "}", ",", "{}"));
        }
        return s.toString();
    }

    private static String randomValues(SplittableRandom random) {
        if (random.nextInt(30) == 0) {
            return pick(random, "[1]", "null", "\"v\"", "{}");
        }
        List<String> members = new ArrayList<>();
        for (String name : FEATURES) {
            if (random.nextInt(30) != 0) {
                members.add("\"" + name + "\":" + space(random) + randomNumber(random));
            }
        }
        if (random.nextInt(5) == 0) {
            members.add("\"" + FEATURES.get(random.nextInt(FEATURES.size())) + "\":4");
        }
        if (random.nextInt(5) == 0) {
            members.add(
                    "\"extra\":" + pick(random, "1", "\"x\"", "true", "null", "[1]", "{\"a\":1}"));
        }
        Collections.shuffle(members, new java.util.Random(random.nextLong()));
        return "{" + String.join("," + space(random), members) + "}";
    }

    private static String randomNumber(SplittableRandom random) {
        float f = randomFloat(random);
        double d = random.nextDouble(-1e6, 1e6) * Math.pow(10, random.nextInt(-30, 30));
        String plain =
                pick(
                        random,
                        Float.toString(f),
                        Float.toString(f),
                        Double.toString(d),
                        String.format(java.util.Locale.ROOT, "%.17g", d),
                        String.format(java.util.Locale.ROOT, "%.3e", d).replace("e+", "E"),
                        Long.toString(random.nextLong()),
                        Integer.toString(random.nextInt(-1000, 1000)),
                        "-0",
                        "-0.0",
                        "0.000" + random.nextInt(1, 1_000_000),
                        "1e" + random.nextInt(-60, 60));
        return mostly(
                random,
                plain,
                "3.5e38",
                "1e400",
                "NaN",
                "-Infinity",
                "01",
                "1.",
                ".5",
                "+1",
                "null",
                "\"hot\"",
                "true",
                "[1]");
    }

    /** A finite float: typical readings, any bits, integers, tiny and huge magnitudes. */
    private static float randomFloat(SplittableRandom random) {
        float f;
        do {
            f =
                    switch (random.nextInt(4)) {
                        case 0 -> (float) random.nextGaussian() * 10 + 50;
                        case 1 -> Float.intBitsToFloat(random.nextInt());
                        case 2 -> (float) random.nextInt(-100, 100);
                        default ->
                                (float)
                                        (random.nextDouble()
                                                * Math.pow(10, random.nextInt(-45, 39)));
                    };
        } while (!Float.isFinite(f));
        return f;
    }

    private static String space(SplittableRandom random) {
        return random.nextInt(8) == 0 ? pick(random, " ", "\n", "\t ", "\r\n  ") : "";
    }

    /** The first option 9 times in 10, else any. */
    @SafeVarargs
    private static <T> T mostly(SplittableRandom random, T... options) {
        return random.nextInt(10) != 0 ? options[0] : pick(random, options);
    }

    @SafeVarargs
    private static <T> T pick(SplittableRandom random, T... options) {
        return options[random.nextInt(options.length)];
    }
}
