package dev.vigil.tools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import dev.vigil.tools.kafka.TopicIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Warm promotion: a job runs a shadow model beside the serving one and stops with a savepoint;
 * {@code vigil promote-shadow} makes the shadow's state the serving state; restored with the
 * shadow's model, the promoted model scores every step from the first one after the restore exactly
 * as a run that served it from the start: no device warms up again.
 */
class PromoteShadowCommandITCase {

    @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = Fixtures.miniCluster(2);

    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void shouldServeThePromotedShadowFromItsFirstStepWithTheMemoryItLearned(@TempDir Path dir)
            throws Exception {
        // The candidate: the committed model under another version, with a lower threshold, so
        // that its episodes are not the serving model's.
        Path candidate = dir.resolve("candidate");
        Files.createDirectories(candidate);
        Files.copy(
                Fixtures.modelDir().resolve(ModelBundle.ONNX_FILE),
                candidate.resolve(ModelBundle.ONNX_FILE));
        ObjectNode card =
                (ObjectNode) JSON.readTree(Fixtures.modelDir().resolve(ModelCard.FILE).toFile());
        String version = card.get("version").asText().replace("+", "-candidate+");
        card.put("version", version);
        card.put("threshold", 0.7 * card.get("threshold").asDouble());
        JSON.writeValue(candidate.resolve(ModelCard.FILE).toFile(), card);
        ModelBundle serving = Fixtures.model();
        ModelBundle promoted = ModelBundle.load(candidate);

        new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(dir.resolve("fleet"));
        List<String> lines =
                Files.readAllLines(dir.resolve("fleet/test.jsonl")).stream()
                        .filter(l -> !l.isEmpty())
                        .toList();
        Path first = dir.resolve("first.jsonl");
        Path second = dir.resolve("second.jsonl");
        Files.write(first, lines.subList(0, lines.size() / 2));
        Files.write(second, lines.subList(lines.size() / 2, lines.size()));

        try (EmbeddedKafkaBroker kafka = EmbeddedKafkaBroker.start()) {
            kafka.createTopics(4, List.of("telemetry"));
            long firstHalf = TopicIO.replay(kafka.bootstrapServers(), "telemetry", first);

            // Serving the current model with the candidate as its shadow, then a savepoint
            kafka.createTopics(2, LocalRun.outputTopics("shadowed"));
            kafka.createTopics(2, List.of("anomalies-candidate"));
            Map<String, String> shadowed = config(kafka, "shadowed", dir.resolve("s"));
            shadowed.put(VigilOptions.MODEL_SHADOW_DIR.key(), candidate.toString());
            shadowed.put(VigilOptions.TOPIC_SHADOW_ANOMALIES.key(), "anomalies-candidate");
            shadowed.put(VigilOptions.KAFKA_BOUNDED.key(), "false");
            Path savepoint =
                    Path.of(
                            java.net.URI.create(
                                    LocalRun.runThenStop(
                                                    VigilConfig.of(shadowed),
                                                    serving,
                                                    firstHalf,
                                                    dir.resolve("savepoints"),
                                                    Duration.ofMinutes(2))
                                            .savepoint()));

            // inspect-savepoint shows either model's state
            CliRun shadowRows =
                    CliRun.vigil("inspect-savepoint", savepoint.toString(), "--model", "shadow");
            assertThat(shadowRows.exit()).as(shadowRows.err()).isZero();
            assertThat(shadowRows.out().lines().skip(1))
                    .hasSize(24)
                    .allMatch(l -> l.contains(version));
            assertThat(shadowRows.err()).contains("24 devices in", "the shadow model's state");

            Path written = dir.resolve("promoted");
            CliRun r =
                    CliRun.vigil(
                            "promote-shadow", savepoint.toString(), "--out", written.toString());
            assertThat(r.exit()).as(r.err()).isZero();
            assertThat(r.out()).contains("the shadow's state of 24 devices", version);
            // What was the shadow's state is now the serving one, field for field
            CliRun wasShadow =
                    CliRun.vigil(
                            "inspect-savepoint",
                            savepoint.toString(),
                            "--model",
                            "shadow",
                            "--device",
                            "pump-03");
            CliRun nowServing =
                    CliRun.vigil("inspect-savepoint", written.toString(), "--device", "pump-03");
            assertThat(wasShadow.exit()).as(wasShadow.err()).isZero();
            assertThat(JSON.readTree(nowServing.out())).isEqualTo(JSON.readTree(wasShadow.out()));
            // Promoting again trades the states back: the old model serves, warm (a rollback)
            CliRun back =
                    CliRun.vigil(
                            "promote-shadow",
                            written.toString(),
                            "--out",
                            dir.resolve("rolled-back").toString());
            assertThat(back.exit()).as(back.err()).isZero();
            assertThat(back.out())
                    .contains("the shadow's state of 24 devices", serving.card().version());

            // reset-device resets a device in both models' states: promoted, the shadow's state of
            // that device is a reset one, and every other device's is as it was
            CliRun reset =
                    CliRun.vigil(
                            "reset-device",
                            savepoint.toString(),
                            "--out",
                            dir.resolve("reset").toString(),
                            "--reset",
                            "pump-00");
            assertThat(reset.exit()).as(reset.err()).isZero();
            CliRun resetPromoted =
                    CliRun.vigil(
                            "promote-shadow",
                            dir.resolve("reset").toString(),
                            "--out",
                            dir.resolve("reset-promoted").toString());
            assertThat(resetPromoted.exit()).as(resetPromoted.err()).isZero();
            for (String device : List.of("pump-00", "pump-01")) {
                CliRun one =
                        CliRun.vigil(
                                "inspect-savepoint",
                                dir.resolve("reset-promoted").toString(),
                                "--device",
                                device);
                assertThat(one.exit()).as(one.err()).isZero();
                var state = JSON.readTree(one.out());
                assertThat(state.get("model_version").asText()).isEqualTo(version);
                if (device.equals("pump-00")) {
                    assertThat(state.get("steps").asInt()).isZero();
                    assertThat(state.get("profile_steps").asInt()).isZero();
                } else {
                    assertThat(state.get("steps").asInt()).isPositive();
                }
            }

            long secondHalf = TopicIO.replay(kafka.bootstrapServers(), "telemetry", second);

            // The candidate promoted: restored from the written savepoint, with no shadow (the
            // restored source is unbounded, as the one that took the savepoint: stopped once it
            // has read the second half)
            kafka.createTopics(2, LocalRun.outputTopics("promoted"));
            Map<String, String> resume = config(kafka, "promoted", dir.resolve("p"));
            resume.put(VigilOptions.MODEL_DIR.key(), candidate.toString());
            resume.put(VigilOptions.KAFKA_BOUNDED.key(), "false");
            resume.put(StateRecoveryOptions.SAVEPOINT_PATH.key(), written.toUri().toString());
            JobExecutionResult after =
                    LocalRun.runThenStop(
                                    VigilConfig.of(resume),
                                    promoted,
                                    secondHalf,
                                    dir.resolve("savepoints-2"),
                                    Duration.ofMinutes(2))
                            .result();

            // The candidate served from the start, over both halves
            kafka.createTopics(2, LocalRun.outputTopics("reference"));
            Map<String, String> whole = config(kafka, "reference", dir.resolve("w"));
            whole.put(VigilOptions.MODEL_DIR.key(), candidate.toString());
            VigilJob.run(VigilConfig.of(whole), promoted);

            assertThat(LocalRun.counted(after, Metrics.RESETS_MODEL_CHANGE)).isZero();
            Map<String, List<ScoredStep>> reference = scores(kafka, "reference");
            Map<String, List<ScoredStep>> restored = scores(kafka, "promoted");
            assertThat(restored).hasSize(24);
            Map<String, Long> boundary = new HashMap<>();
            restored.forEach(
                    (device, steps) -> {
                        List<ScoredStep> all = reference.get(device);
                        List<ScoredStep> tail = all.subList(all.size() - steps.size(), all.size());
                        assertThat(steps.get(0).ts).isEqualTo(tail.get(0).ts);
                        boundary.put(device, steps.get(0).ts);
                        for (int i = 0; i < steps.size(); i++) {
                            assertThat(steps.get(i).score)
                                    .as(device + "@" + steps.get(i).ts)
                                    .isCloseTo(
                                            tail.get(i).score,
                                            within(1e-4f * Math.max(1f, tail.get(i).score)));
                        }
                    });
            // Its events after the restore are the reference's after that point, and more than
            // the serving model would have raised
            List<AnomalyEvent> expected = new ArrayList<>();
            for (AnomalyEvent e : anomalies(kafka, "anomalies-reference")) {
                if (e.ts >= boundary.get(e.deviceId)) {
                    expected.add(e);
                }
            }
            Fixtures.assertSameAnomalies(anomalies(kafka, "anomalies-promoted"), expected, 1e-4f);
            assertThat(anomalies(kafka, "anomalies-promoted"))
                    .allMatch(e -> e.modelVersion.equals(version));
        }
    }

    private static Map<String, String> config(EmbeddedKafkaBroker kafka, String run, Path cp) {
        Map<String, String> c =
                new HashMap<>(
                        LocalRun.config(
                                kafka.bootstrapServers(), Fixtures.modelDir(), run, cp, "1s", 2));
        c.put(VigilOptions.TOPIC_TELEMETRY.key(), "telemetry");
        c.put(VigilOptions.STATE_TTL.key(), "36500 d");
        return c;
    }

    private static List<AnomalyEvent> anomalies(EmbeddedKafkaBroker kafka, String topic) {
        return TopicIO.readCommitted(kafka.bootstrapServers(), topic).stream()
                .map(WireFormat::parseAnomaly)
                .sorted(Comparator.comparing((AnomalyEvent e) -> e.eventId))
                .toList();
    }

    private static Map<String, List<ScoredStep>> scores(EmbeddedKafkaBroker kafka, String run) {
        Map<String, List<ScoredStep>> byDevice = new HashMap<>();
        for (byte[] v : TopicIO.readCommitted(kafka.bootstrapServers(), "scores-" + run)) {
            ScoredStep s = WireFormat.parseScore(v);
            byDevice.computeIfAbsent(s.deviceId, k -> new ArrayList<>()).add(s);
        }
        byDevice.values().forEach(l -> l.sort(Comparator.comparingLong(s -> s.ts)));
        return byDevice;
    }
}
