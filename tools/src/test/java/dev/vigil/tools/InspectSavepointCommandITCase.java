package dev.vigil.tools;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.vigil.testing.Fixtures;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@code vigil inspect-savepoint} on the committed golden savepoint (24 pumps, 7 in an episode).
 */
class InspectSavepointCommandITCase {

    private static final Path GOLDEN = Fixtures.repoRoot().resolve("testdata/savepoints/0.1.0");

    @Test
    void shouldPrintOneCsvRowPerDeviceAndASummary() {
        CliRun r = CliRun.vigil("inspect-savepoint", GOLDEN.toString());

        assertThat(r.exit()).as(r.err()).isZero();
        List<String> lines = r.out().lines().toList();
        assertThat(lines.get(0))
                .isEqualTo("device,model_version,steps,last_event_time,episode_open,hidden_norm");
        assertThat(lines).hasSize(25);
        assertThat(lines.subList(1, 25))
                .allMatch(
                        l ->
                                l.matches(
                                        "pump-\\d\\d,fleet-gru-[^,]+,\\d+,2025-[^,]+Z,(true|false),[0-9.]+"));
        assertThat(lines.stream().filter(l -> l.contains(",true,"))).hasSize(7);
        assertThat(r.err()).contains("24 devices in", "(7 with an open episode)");
    }

    @Test
    void shouldPrintJsonRowsAndOneDeviceInFull() throws Exception {
        ObjectMapper json = new ObjectMapper();
        CliRun rows = CliRun.vigil("inspect-savepoint", GOLDEN.toString(), "--format", "json");
        assertThat(rows.exit()).as(rows.err()).isZero();
        List<JsonNode> devices = new ArrayList<>();
        for (String l : rows.out().lines().toList()) {
            devices.add(json.readTree(l));
        }
        assertThat(devices).hasSize(24);
        assertThat(devices).allMatch(d -> d.get("hidden_norm").asDouble() > 0);

        // The last device read with an open episode: one late in the scan, with episode fields.
        JsonNode last =
                devices.stream()
                        .filter(d -> d.get("episode_open").asBoolean())
                        .reduce((a, b) -> b)
                        .orElseThrow();
        String id = last.get("device").asText();
        // As Flink prints savepoint paths: a file: URI.
        CliRun one = CliRun.vigil("inspect-savepoint", GOLDEN.toUri().toString(), "--device", id);
        assertThat(one.exit()).as(one.err()).isZero();
        JsonNode full = json.readTree(one.out());
        assertThat(full.get("device").asText()).isEqualTo(id);
        assertThat(full.get("steps").asInt()).isEqualTo(last.get("steps").asInt());
        assertThat(full.get("episode_open").asBoolean()).isTrue();
        assertThat(full.get("episode_start").asText()).startsWith("2025-");
        assertThat(full.get("episode_steps").asInt()).isPositive();
        assertThat(full.get("hidden")).hasSize(64);
        assertThat(full.get("forecast")).hasSize(8);
        assertThat(full.get("episode_shares")).hasSize(8);
        assertThat(full.has("score_level")).isTrue();
        assertThat(one.err()).contains("1 devices");
    }

    @Test
    void shouldSayWhatIsWrongWithTheArguments() {
        CliRun missing =
                CliRun.vigil("inspect-savepoint", GOLDEN.toString(), "--device", "pump-99");
        assertThat(missing.exit()).isEqualTo(1);
        assertThat(missing.err()).contains("no device 'pump-99'");

        CliRun noSavepoint = CliRun.vigil("inspect-savepoint", GOLDEN.resolve("model").toString());
        assertThat(noSavepoint.exit()).isEqualTo(2);
        assertThat(noSavepoint.err()).contains("no savepoint at", "_metadata");

        CliRun badFormat = CliRun.vigil("inspect-savepoint", GOLDEN.toString(), "--format", "xml");
        assertThat(badFormat.exit()).isEqualTo(2);
        assertThat(badFormat.err()).contains("--format is csv or json");
    }
}
