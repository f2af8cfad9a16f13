package dev.vigil.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.vigil.testing.Fixtures;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The alert rules under Prometheus's own tools: {@code promtool check rules} and {@code promtool
 * test rules} with the input series of {@code deploy/prometheus/alerts.test.yaml}, which must test
 * every alert. promtool comes with Debian's {@code prometheus} package, which {@code .ci/run}
 * installs; without it these tests are skipped, saying so.
 */
class AlertRulesTest {

    private static final Path PROMETHEUS = Fixtures.repoRoot().resolve("deploy/prometheus");
    private static final Path ALERTS = PROMETHEUS.resolve("alerts.yaml");
    private static final Path TESTS = PROMETHEUS.resolve("alerts.test.yaml");

    @Test
    void shouldTestEveryAlertInTheRulesUnitTests() throws IOException {
        YAMLMapper yaml = new YAMLMapper();
        Set<String> alerts = new TreeSet<>();
        for (JsonNode group : yaml.readTree(ALERTS.toFile()).path("groups")) {
            for (JsonNode rule : group.path("rules")) {
                if (rule.has("alert")) { // not a recording rule
                    alerts.add(rule.path("alert").asText());
                }
            }
        }
        Set<String> tested = new TreeSet<>();
        for (JsonNode test : yaml.readTree(TESTS.toFile()).path("tests")) {
            for (JsonNode t : test.path("alert_rule_test")) {
                if (!t.path("exp_alerts").isEmpty()) {
                    tested.add(t.path("alertname").asText());
                }
            }
        }

        assertThat(alerts).hasSizeGreaterThan(10);
        assertThat(tested).as("alerts that a test in %s expects to fire", TESTS).isEqualTo(alerts);
    }

    @Test
    void shouldPassPromtoolsCheckAndUnitTests() throws Exception {
        Assumptions.assumeTrue(
                promtoolAvailable(), "promtool is not installed: apt-get install prometheus");

        assertThat(promtool("check", "rules", ALERTS.toString())).contains("SUCCESS: ");
        assertThat(promtool("test", "rules", TESTS.toString())).contains("SUCCESS");
    }

    private static boolean promtoolAvailable() {
        try {
            return new ProcessBuilder("promtool", "--version")
                            .redirectErrorStream(true)
                            .start()
                            .waitFor()
                    == 0;
        } catch (IOException | InterruptedException e) {
            return false;
        }
    }

    /** Runs promtool; returns its output, failing the test (with the output) on a non-zero exit. */
    private static String promtool(String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of("promtool"));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(1, TimeUnit.MINUTES)).isTrue();
        assertThat(p.exitValue()).as("%s:%n%s", String.join(" ", command), out).isZero();
        return out;
    }
}
