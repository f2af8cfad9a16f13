package dev.vigil.tools.kafka;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The replay never fails on a record the job would score or dead-letter: lines that are not UTF-8,
 * timestamps the broker refuses (years ahead, negative), Windows line ends; each line's bytes
 * arrive as they were.
 */
class TopicIOITCase {

    @Test
    void shouldReplayEveryLineAsItsBytesWhateverItHolds(@TempDir Path dir) throws Exception {
        byte[] latin1 =
                "{\"device_id\":\"caf\u00e9\",\"ts\":1}".getBytes(StandardCharsets.ISO_8859_1);
        String future =
                "{\"device_id\":\"pump-01\",\"ts\":" + Long.MAX_VALUE / 2 + ",\"values\":{}}";
        String negative = "{\"device_id\":\"pump-01\",\"ts\":-5,\"values\":{}}";
        String plain = "{\"device_id\":\"pump-02\",\"ts\":1764000000000,\"values\":{}}";
        ByteArrayOutputStream file = new ByteArrayOutputStream();
        file.write(latin1);
        file.write('\n');
        file.write((future + "\r\n" + negative + "\n\n" + plain).getBytes(StandardCharsets.UTF_8));
        Path jsonl = dir.resolve("hostile.jsonl");
        Files.write(jsonl, file.toByteArray());

        try (EmbeddedKafkaBroker kafka = EmbeddedKafkaBroker.start()) {
            kafka.createTopics(2, List.of("telemetry"));
            long produced = TopicIO.replay(kafka.bootstrapServers(), "telemetry", jsonl);
            List<byte[]> back = TopicIO.readCommitted(kafka.bootstrapServers(), "telemetry");

            assertThat(produced).isEqualTo(4); // the empty line is skipped
            assertThat(back)
                    .extracting(b -> new String(b, StandardCharsets.ISO_8859_1))
                    .containsExactlyInAnyOrder(
                            new String(latin1, StandardCharsets.ISO_8859_1),
                            future,
                            negative,
                            plain);
        }
    }

    @Test
    void shouldSplitLinesOnNewlinesOnly() throws Exception {
        var in = new ByteArrayInputStream("a\r\nb\rc\n\nd".getBytes(StandardCharsets.UTF_8));
        assertThat(new String(TopicIO.nextLine(in), StandardCharsets.UTF_8)).isEqualTo("a");
        assertThat(new String(TopicIO.nextLine(in), StandardCharsets.UTF_8)).isEqualTo("b\rc");
        assertThat(TopicIO.nextLine(in)).isEmpty();
        assertThat(new String(TopicIO.nextLine(in), StandardCharsets.UTF_8)).isEqualTo("d");
        assertThat(TopicIO.nextLine(in)).isNull();
    }
}
