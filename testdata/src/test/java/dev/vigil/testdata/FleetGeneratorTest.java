package dev.vigil.testdata;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FleetGeneratorTest {

    private static final FleetGenerator.Spec SMALL = new FleetGenerator.Spec(5L, 6, 400, 900, 2);

    @Test
    void shouldWriteTheSameBytesForTheSameSeed(@TempDir Path a, @TempDir Path b) throws Exception {
        new FleetGenerator(SMALL).writeTo(a);
        new FleetGenerator(SMALL).writeTo(b);

        for (String f : List.of("train.jsonl", "test.jsonl", "labels.csv")) {
            assertThat(Files.readAllBytes(a.resolve(f)))
                    .isEqualTo(Files.readAllBytes(b.resolve(f)));
        }
    }

    @Test
    void shouldLabelAnomaliesOfSeveralKindsInsideTheTestPeriod(@TempDir Path dir) throws Exception {
        new FleetGenerator(SMALL).writeTo(dir);

        List<FleetGenerator.Label> labels = FleetGenerator.readLabels(dir.resolve("labels.csv"));

        assertThat(labels).hasSize(SMALL.devices() * SMALL.anomaliesPerDevice());
        assertThat(labels.stream().map(FleetGenerator.Label::kind).collect(Collectors.toSet()))
                .containsExactlyInAnyOrderElementsOf(FleetGenerator.KINDS);
        long testStart = FleetGenerator.START_TS + SMALL.trainSteps() * FleetGenerator.STEP_MS;
        assertThat(labels).allMatch(l -> l.startTs() >= testStart && l.endTs() > l.startTs());
    }

    @Test
    void shouldReadALabelsFileWrittenWithWindowsLineEnds(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("labels.csv");
        Files.writeString(
                file,
                "device_id,start_ts,end_ts,kind,feature\r\n"
                        + "pump-01,1000,2000,spike,rpm\r\n"
                        + "pump-02,3000,4000\r\n");

        assertThat(FleetGenerator.readLabels(file))
                .containsExactly(
                        new FleetGenerator.Label("pump-01", 1000, 2000, "spike", "rpm"),
                        new FleetGenerator.Label("pump-02", 3000, 4000, "", ""));
    }

    @Test
    void shouldKeepTheTrainingStreamCleanAndTheTestStreamRealisticallyDirty(@TempDir Path dir)
            throws Exception {
        new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(dir);

        List<String> train = Files.readAllLines(dir.resolve("train.jsonl"));
        List<String> test = Files.readAllLines(dir.resolve("test.jsonl"));

        assertThat(train).allMatch(l -> l.startsWith("{") && l.endsWith("}}"));
        assertThat(train.stream().distinct().count()).isEqualTo(train.size());
        assertThat(test.stream().distinct().count()).isLessThan(test.size()); // duplicates
        assertThat(test).anyMatch(l -> !l.endsWith("}}")); // truncated records
        assertThat(test.get(0)).contains("\"values\":{\"load_pct\":");
    }
}
