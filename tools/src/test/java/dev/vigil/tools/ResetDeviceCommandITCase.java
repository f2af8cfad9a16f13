package dev.vigil.tools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.model.ModelBundle;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import dev.vigil.tools.kafka.TopicIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code vigil reset-device} on the newest golden savepoint: the named devices are reset or dropped
 * and nothing else changes, and the job restores from the written savepoint and continues every
 * other device exactly as an uninterrupted run does.
 */
class ResetDeviceCommandITCase {

    @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = Fixtures.miniCluster(2);

    private static final Path GOLDEN = Fixtures.repoRoot().resolve("testdata/savepoints/0.4.0");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Each device's full state in a savepoint, as inspect-savepoint prints it. */
    private static Map<String, JsonNode> devices(Path savepoint) throws Exception {
        CliRun rows = CliRun.vigil("inspect-savepoint", savepoint.toString(), "--format", "json");
        assertThat(rows.exit()).as(rows.err()).isZero();
        Map<String, JsonNode> all = new LinkedHashMap<>();
        for (String line : rows.out().lines().toList()) {
            String id = JSON.readTree(line).get("device").asText();
            CliRun one = CliRun.vigil("inspect-savepoint", savepoint.toString(), "--device", id);
            all.put(id, JSON.readTree(one.out()));
        }
        return all;
    }

    @Test
    void shouldResetAndDropTheNamedDevicesAndRestoreLikeAnyOtherSavepoint(@TempDir Path dir)
            throws Exception {
        // A savepoint of a job without a shadow model holds nothing to promote
        CliRun none =
                CliRun.vigil(
                        "promote-shadow", GOLDEN.toString(), "--out", dir.resolve("x").toString());
        assertThat(none.exit()).isNotZero();
        assertThat(none.err()).contains("holds no state of a shadow model");
        assertThat(dir.resolve("x")).doesNotExist();
        CliRun noShadow = CliRun.vigil("inspect-savepoint", GOLDEN.toString(), "--model", "shadow");
        assertThat(noShadow.exit()).isEqualTo(1);
        assertThat(noShadow.err()).contains("holds no state of a shadow model");

        Map<String, JsonNode> before = devices(GOLDEN);
        // Each device of the golden savepoint has its silence timer pending (format 4), which
        // the rewrite must keep: compared below with every other field.
        assertThat(before.values())
                .allSatisfy(
                        d ->
                                assertThat(d.get("event_timers"))
                                        .containsExactly(d.get("silence_timer")));
        String reset =
                before.values().stream()
                        .filter(d -> d.get("episode_open").asBoolean())
                        .findFirst()
                        .orElseThrow()
                        .get("device")
                        .asText();
        String drop = before.keySet().stream().filter(d -> !d.equals(reset)).findFirst().get();
        Path written = dir.resolve("reset");

        CliRun r =
                CliRun.vigil(
                        "reset-device",
                        GOLDEN.toString(),
                        "--out",
                        written.toString(),
                        "--reset",
                        reset,
                        "--drop",
                        drop + ",no-such-pump");

        assertThat(r.exit()).as("a named device was not there").isEqualTo(1);
        assertThat(r.err()).contains("[no-such-pump]");
        assertThat(r.out()).contains("reset [" + reset + "], dropped [" + drop + "]");
        Map<String, JsonNode> after = devices(written);
        assertThat(after.keySet()).doesNotContain(drop).hasSize(before.size() - 1);
        JsonNode wasReset = after.get(reset);
        assertThat(wasReset.get("steps").asInt()).isZero();
        assertThat(wasReset.get("episode_open").asBoolean()).isFalse();
        assertThat(wasReset.get("hidden_norm").asDouble()).isZero();
        assertThat(wasReset.get("profile_steps").asInt()).isZero();
        assertThat(before.get(reset).get("dynamics_steps").asInt()).isPositive();
        assertThat(wasReset.get("dynamics_steps").asInt()).isZero();
        assertThat(wasReset.get("dynamics_rms").isNull()).isTrue();
        assertThat(wasReset.get("last_event_time"))
                .isEqualTo(before.get(reset).get("last_event_time"));
        assertThat(wasReset.get("model_version")).isEqualTo(before.get(reset).get("model_version"));
        after.forEach(
                (id, state) -> {
                    if (!id.equals(reset)) {
                        assertThat(state).as(id).isEqualTo(before.get(id));
                    }
                });

        // The job restores the written savepoint: every other device continues as in an
        // uninterrupted run; the reset and the dropped one start again.
        SavepointManifest manifest = SavepointManifest.read(GOLDEN);
        ModelBundle model = ModelBundle.load(GOLDEN.resolve("model"));
        new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(dir.resolve("fleet"));
        Path stream = dir.resolve("fleet/test.jsonl");
        long total;
        try (Stream<String> lines = Files.lines(stream)) {
            total = lines.filter(l -> !l.isEmpty()).count();
        }
        try (EmbeddedKafkaBroker kafka = EmbeddedKafkaBroker.start()) {
            kafka.createTopics(manifest.partitions(), List.of(manifest.topic()));
            TopicIO.replay(kafka.bootstrapServers(), manifest.topic(), stream);
            kafka.createTopics(2, LocalRun.outputTopics("whole"));
            VigilJob.run(
                    VigilConfig.of(config(kafka, manifest.topic(), "whole", dir.resolve("w"))),
                    model);
            kafka.createTopics(2, LocalRun.outputTopics("restored"));
            Map<String, String> resume =
                    config(kafka, manifest.topic(), "restored", dir.resolve("r"));
            resume.put(StateRecoveryOptions.SAVEPOINT_PATH.key(), written.toUri().toString());
            resume.put(VigilOptions.KAFKA_BOUNDED.key(), "false");
            LocalRun.runThenStop(
                    VigilConfig.of(resume),
                    model,
                    total - manifest.records(),
                    dir.resolve("savepoints"),
                    Duration.ofMinutes(2));

            Map<String, List<ScoredStep>> whole = scores(kafka, "whole");
            Map<String, List<ScoredStep>> restored = scores(kafka, "restored");
            restored.forEach(
                    (device, steps) -> {
                        List<ScoredStep> all = whole.get(device);
                        List<ScoredStep> tail = all.subList(all.size() - steps.size(), all.size());
                        if (device.equals(reset) || device.equals(drop)) {
                            assertThat(steps.get(0).score).as(device + ": no forecast").isZero();
                            assertThat(tail.get(0).score).isPositive();
                        } else {
                            for (int i = 0; i < steps.size(); i++) {
                                assertThat(steps.get(i).score)
                                        .as(device + "@" + steps.get(i).ts)
                                        .isCloseTo(
                                                tail.get(i).score,
                                                within(1e-4f * tail.get(i).score));
                            }
                        }
                    });
            assertThat(restored).containsKeys(reset, drop).hasSize(before.size());
        }
    }

    private static Map<String, String> config(
            EmbeddedKafkaBroker kafka, String topic, String run, Path checkpoints) {
        Map<String, String> c =
                new HashMap<>(
                        LocalRun.config(
                                kafka.bootstrapServers(),
                                Fixtures.modelDir(),
                                run,
                                checkpoints,
                                "1s",
                                2));
        c.put(VigilOptions.TOPIC_TELEMETRY.key(), topic);
        c.put(VigilOptions.STATE_TTL.key(), "36500 d");
        return c;
    }

    /** Each device's scored steps of a run, in time order. */
    private static Map<String, List<ScoredStep>> scores(EmbeddedKafkaBroker kafka, String run) {
        Map<String, List<ScoredStep>> byDevice = new HashMap<>();
        for (byte[] v : TopicIO.readCommitted(kafka.bootstrapServers(), "scores-" + run)) {
            ScoredStep s = WireFormat.parseScore(v);
            byDevice.computeIfAbsent(s.deviceId, k -> new java.util.ArrayList<>()).add(s);
        }
        byDevice.values().forEach(l -> l.sort(java.util.Comparator.comparingLong(s -> s.ts)));
        return byDevice;
    }
}
