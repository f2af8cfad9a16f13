package dev.vigil.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.vigil.kafka.KafkaSettings;
import dev.vigil.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.flink.configuration.ConfigOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VigilConfigTest {

    private static final String BOOTSTRAP = "broker-1:9093";

    @Test
    void shouldReadAFileAndLetCommandLineValuesWin(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("vigil.yaml");
        Files.writeString(
                file,
                String.join(
                        "\n",
                        "# a comment",
                        "vigil.kafka.bootstrap-servers: " + BOOTSTRAP,
                        "vigil.model.dir: \"/models/fleet\"",
                        "vigil.alerts.open-after: 3",
                        "vigil.kafka.properties.security.protocol: SASL_SSL",
                        "parallelism.default: 4"));

        VigilConfig config =
                VigilConfig.fromArgs(
                        new String[] {"--config", file.toString(), "-Dvigil.alerts.open-after=5"});

        assertThat(config.get(VigilOptions.ALERTS_OPEN_AFTER)).isEqualTo(5);
        assertThat(config.modelDir()).isEqualTo(Path.of("/models/fleet"));
        KafkaSettings kafka = config.kafka();
        assertThat(kafka.bootstrapServers()).isEqualTo(BOOTSTRAP);
        assertThat(kafka.clientProperties()).containsEntry("security.protocol", "SASL_SSL");
        assertThat(kafka.startFrom()).isEqualTo(KafkaSettings.StartFrom.COMMITTED);
        assertThat(config.flinkConfiguration().toMap()).containsEntry("parallelism.default", "4");
    }

    private static Map<String, String> valid() {
        return new java.util.HashMap<>(
                Map.of(
                        VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(),
                        BOOTSTRAP,
                        VigilOptions.MODEL_DIR.key(),
                        Fixtures.modelDir().toString()));
    }

    @Test
    void shouldNameAMissingRequiredOption() {
        Map<String, String> values = valid();
        values.remove(VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key());

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("missing required option 'vigil.kafka.bootstrap-servers'");
    }

    @Test
    void shouldRefuseAnUnknownVigilOption() {
        Map<String, String> values = valid();
        values.put("vigil.alerts.open-afterr", "3");

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("unknown option 'vigil.alerts.open-afterr'");
    }

    @Test
    void shouldNameAValueOfTheWrongType() {
        Map<String, String> values = valid();
        values.put(VigilOptions.ALERTS_OPEN_AFTER.key(), "often");

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("'vigil.alerts.open-after' has an invalid value");
    }

    @Test
    void shouldRefuseAnUnknownStartingPoint() {
        Map<String, String> values = valid();
        values.put(VigilOptions.KAFKA_START_FROM.key(), "yesterday");

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("must be committed, earliest or latest, was 'yesterday'");
    }

    @Test
    void shouldRefuseAMalformedConfigLine(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("bad.yaml");
        Files.writeString(file, "vigil.model.dir /models\n");

        assertThatThrownBy(() -> VigilConfig.fromArgs(new String[] {"--config", file.toString()}))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("line 1: expected 'key: value'");
    }

    /** The README's table is this one, so the documentation cannot drift from the code. */
    @Test
    void shouldDocumentEveryOptionInTheReadme() throws Exception {
        String readme = Files.readString(Fixtures.repoRoot().resolve("README.md"));
        String table = optionsTable();

        assertThat(readme)
                .as("README.md must contain this configuration table:\n%s", table)
                .contains(table);
    }

    static String optionsTable() {
        return "| option | default | description |\n| --- | --- | --- |\n"
                + VigilOptions.all().stream()
                        .map(VigilConfigTest::row)
                        .collect(Collectors.joining("\n"))
                + "\n";
    }

    private static String row(ConfigOption<?> o) {
        String def;
        if (!o.hasDefaultValue()) {
            def = "(none)";
        } else if (o.defaultValue() instanceof java.time.Duration d) {
            def = org.apache.flink.util.TimeUtils.formatWithHighestUnit(d);
        } else if (String.valueOf(o.defaultValue()).isEmpty()) {
            def = "(empty)";
        } else {
            def = String.valueOf(o.defaultValue());
        }
        return "| `" + o.key() + "` | " + def + " | " + VigilOptions.describe(o) + " |";
    }
}
