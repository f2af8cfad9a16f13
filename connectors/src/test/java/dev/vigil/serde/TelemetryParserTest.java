package dev.vigil.serde;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TelemetryParserTest {

    private static final TelemetryParser PARSER =
            new TelemetryParser(List.of("temperature", "vibration", "pressure"));

    private static final long TS = 1_764_000_000_000L;

    private static TelemetryParser.Result parse(String json) {
        return PARSER.parse(json.getBytes(StandardCharsets.UTF_8));
    }

    private static String event(String values) {
        return "{\"device_id\":\"pump-17\",\"ts\":"
                + TS
                + ",\"seq\":4711,\"values\":"
                + values
                + "}";
    }

    @Test
    void shouldParseTheContractExampleInCardOrder() {
        TelemetryParser.Result r =
                parse(
                        event(
                                "{\"pressure\":2.4,\"extra\":{\"a\":[1,2]},\"temperature\":71.2,"
                                        + "\"vibration\":0.031}"));

        assertThat(r.rejection()).isNull();
        assertThat(r.event().deviceId).isEqualTo("pump-17");
        assertThat(r.event().ts).isEqualTo(TS);
        assertThat(r.event().seq).isEqualTo(4711);
        assertThat(r.event().values).containsExactly(71.2f, 0.031f, 2.4f);
    }

    @Test
    void shouldAcceptAnIsoTimestampAndNoSeq() {
        TelemetryParser.Result r =
                parse(
                        "{\"device_id\":\"d\",\"ts\":\"2025-11-24T16:00:00Z\",\"values\":"
                                + "{\"temperature\":1,\"vibration\":2,\"pressure\":3}}");

        assertThat(r.event().ts).isEqualTo(TS);
        assertThat(r.event().hasSeq()).isFalse();
    }

    @Test
    void shouldAcceptAnIsoTimestampWithOffset() {
        TelemetryParser.Result r =
                parse(
                        "{\"device_id\":\"d\",\"ts\":\"2025-11-24T17:00:00+01:00\",\"values\":"
                                + "{\"temperature\":1,\"vibration\":2,\"pressure\":3}}");

        assertThat(r.event().ts).isEqualTo(TS);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(
            delimiter = '|',
            value = {
                "MALFORMED_JSON     | {\"device_id\":\"d\",\"ts\":1                | ",
                "MALFORMED_JSON     | [1,2,3]                                       | ",
                "MALFORMED_JSON     | {\"device_id\":\"d\"} trailing                | ",
                "MISSING_DEVICE_ID  | {\"ts\":1,\"values\":{}}                       | ",
                "BAD_DEVICE_ID      | {\"device_id\":\"\",\"ts\":1,\"values\":{}}     | ",
                "BAD_DEVICE_ID      | {\"device_id\":17,\"ts\":1,\"values\":{}}       | ",
                "BAD_DEVICE_ID      | {\"device_id\":\"d\",\"ts\":1,\"device_id\":17,\"values\":{}} | not a non-empty string",
                "BAD_DEVICE_ID      | {\"device_id\":17,\"ts\":1,\"device_id\":\"d\",\"values\":{}} | not a non-empty string",
                "MISSING_TS         | {\"device_id\":\"d\",\"values\":{}}             | ts",
                "BAD_TS             | {\"device_id\":\"d\",\"ts\":\"yesterday\",\"values\":{}} | yesterday",
                "BAD_TS             | {\"device_id\":\"d\",\"ts\":1.5,\"values\":{}}  | 1.5",
                "BAD_TS             | {\"device_id\":\"d\",\"ts\":\"+999999999-12-31T23:59:59Z\",\"values\":{}} | +999999999-12-31T23:59:59Z",
                "BAD_TS             | {\"device_id\":\"d\",\"ts\":\"+999999999-12-31T23:59:59+01:00\",\"values\":{}} | +999999999-12-31T23:59:59+01:00",
                "BAD_TS             | {\"device_id\":\"d\",\"ts\":-9223372036854775808,\"values\":{}} | -9223372036854775808",
                "BAD_SEQ            | {\"device_id\":\"d\",\"ts\":1,\"seq\":-3,\"values\":{}} | -3",
                "BAD_SEQ            | {\"device_id\":\"d\",\"ts\":1,\"seq\":\"x\",\"values\":{}} | x",
                "MISSING_VALUES     | {\"device_id\":\"d\",\"ts\":1}                 | values",
                "MISSING_VALUES     | {\"device_id\":\"d\",\"ts\":1,\"values\":[1]}  | values",
                "MISSING_FEATURE    | {\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"pressure\":3}} | vibration",
                "BAD_FEATURE        | {\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":null,\"pressure\":3}} | vibration",
                "BAD_FEATURE        | {\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":\"hot\",\"vibration\":1,\"pressure\":3}} | temperature",
                "NON_FINITE_FEATURE | {\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":NaN,\"pressure\":3}} | vibration",
                "NON_FINITE_FEATURE | {\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":Infinity}} | pressure",
                "NON_FINITE_FEATURE | {\"device_id\":\"d\",\"ts\":1,\"values\":{\"temperature\":1e300,\"vibration\":2,\"pressure\":3}} | temperature",
            })
    void shouldRejectWithReason(DeadLetterReason reason, String json, String detail) {
        TelemetryParser.Result r = parse(json);

        assertThat(r.event()).isNull();
        assertThat(r.rejection().reason()).isEqualTo(reason);
        if (detail != null) {
            assertThat(r.rejection().detail()).isEqualTo(detail);
        }
    }

    @Test
    void shouldRejectADeviceIdLongerThanTheLimitWithoutEchoingIt() {
        String longest = "d".repeat(TelemetryParser.MAX_DEVICE_ID_LENGTH);
        String values = ",\"ts\":1,\"values\":{\"temperature\":1,\"vibration\":2,\"pressure\":3}}";

        assertThat(parse("{\"device_id\":\"" + longest + "\"" + values).event().deviceId)
                .isEqualTo(longest);
        TelemetryParser.Result r = parse("{\"device_id\":\"" + longest + "x\"" + values);
        assertThat(r.rejection().reason()).isEqualTo(DeadLetterReason.BAD_DEVICE_ID);
        assertThat(r.rejection().detail()).isEqualTo("257 characters, more than 256");
    }

    @Test
    void shouldRejectEmptyAndNonUtf8Records() {
        assertThat(PARSER.parse(new byte[0]).rejection().reason())
                .isEqualTo(DeadLetterReason.MALFORMED_JSON);
        assertThat(PARSER.parse(null).rejection().reason())
                .isEqualTo(DeadLetterReason.MALFORMED_JSON);
        byte[] latin1 = "{\"device_id\":\"caf\u00e9\"}".getBytes(StandardCharsets.ISO_8859_1);
        assertThat(PARSER.parse(latin1).rejection().reason())
                .isEqualTo(DeadLetterReason.MALFORMED_JSON);
    }

    @Test
    void shouldCoverEveryReasonInThisTest() {
        // A new reason of the parser's must get a case above: the enum and this list change
        // together. FUTURE_TS and KEY_MISMATCH are decided after parsing (ParseTelemetryTest),
        // DUPLICATE, OUT_OF_ORDER and MODEL_ERROR by the scorer; MALFORMED_AVRO is the Avro
        // format's (AvroTelemetryTest).
        assertThat(DeadLetterReason.values()).hasSize(16);
    }
}
