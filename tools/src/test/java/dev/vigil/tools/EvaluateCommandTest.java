package dev.vigil.tools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** How {@code vigil evaluate} reads its JSON Lines files. */
class EvaluateCommandTest {

    private static final String STEP = "{\"device_id\":\"pump-01\",\"ts\":60000,\"score\":0.5}";

    @Test
    void shouldReadEveryLineAndSkipBlankOnes(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("scores.jsonl");
        Files.writeString(file, STEP + "\n\n" + STEP.replace("60000", "120000") + "\n");

        List<ScoredStep> steps =
                EvaluateCommand.readJsonl(file, WireFormat::parseScore, st -> st.deviceId);

        assertThat(steps).extracting(st -> st.ts).containsExactly(60_000L, 120_000L);
    }

    @Test
    void shouldNameTheFileAndLineOfARecordCutShort(@TempDir Path dir) throws Exception {
        // A consumer killed while writing leaves its last line cut.
        Path file = dir.resolve("scores.jsonl");
        Files.writeString(file, STEP + "\n" + STEP.substring(0, 20) + "\n");

        assertThatThrownBy(
                        () ->
                                EvaluateCommand.readJsonl(
                                        file, WireFormat::parseScore, st -> st.deviceId))
                .isInstanceOf(Args.UsageException.class)
                .hasMessageStartingWith(file + " line 2: not a step score");
    }

    @Test
    void shouldRefuseAnEventWithoutADevice(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("anomalies.jsonl");
        Files.writeString(file, "{\"type\":\"OPEN\",\"ts\":60000,\"episode_start\":0}\n");

        assertThatThrownBy(
                        () ->
                                EvaluateCommand.<AnomalyEvent>readJsonl(
                                        file, WireFormat::parseAnomaly, e -> e.deviceId))
                .isInstanceOf(Args.UsageException.class)
                .hasMessage(file + " line 1: no device_id");
    }
}
