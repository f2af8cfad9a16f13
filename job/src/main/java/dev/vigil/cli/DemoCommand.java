package dev.vigil.cli;

import dev.vigil.alerts.Evaluation;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.kafka.EmbeddedKafkaBroker;
import dev.vigil.kafka.TopicIO;
import dev.vigil.model.ModelBundle;
import dev.vigil.pipeline.Metrics;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testdata.FleetGenerator.Label;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.common.JobExecutionResult;

/**
 * {@code vigil demo}: the whole path on this machine. Starts a real Kafka broker in-process,
 * replays a stream into it, runs the job on a local Flink mini cluster (RocksDB, exactly-once
 * checkpoints), reads the anomaly topic with read_committed and reports what it found.
 */
final class DemoCommand {

    static final String USAGE =
            "vigil demo [--input FILE.jsonl] [--model DIR] [--labels FILE.csv]"
                    + " [--anomalies-out FILE] [--scores-out FILE] [--report FILE]"
                    + " [--parallelism N] [--savepoint-out DIR]";

    private static final String TELEMETRY = "telemetry";
    private static final String ANOMALIES = LocalRun.topic("anomalies", "");
    private static final String DEAD_LETTERS = LocalRun.topic("dead-letters", "");
    private static final String SCORES = LocalRun.topic("scores", "");
    private static final int TOPIC_PARTITIONS = 4;

    private final PrintStream out;
    private final Path home;

    DemoCommand(PrintStream out, Path home) {
        this.out = out;
        this.home = home;
    }

    int run(String[] argv) throws Exception {
        Args args =
                new Args(
                        "demo",
                        argv,
                        Set.of(
                                "--input",
                                "--model",
                                "--labels",
                                "--anomalies-out",
                                "--scores-out",
                                "--report",
                                "--parallelism",
                                "--savepoint-out"));
        long started = System.nanoTime();
        Path generated = home.resolve("testdata/generated");
        Path input = args.path("--input");
        Path labelsFile = args.path("--labels");
        if (input == null) {
            input = generated.resolve("test.jsonl");
            if (!Files.isRegularFile(input)) {
                out.println("generating the test fleet into " + generated + " ...");
                new FleetGenerator(FleetGenerator.Spec.defaults()).writeTo(generated);
            }
            if (labelsFile == null) {
                labelsFile = generated.resolve("labels.csv");
            }
        }
        if (!Files.isRegularFile(input)) {
            throw new Args.UsageException("no input stream at " + input);
        }
        Path modelDir = args.path("--model");
        if (modelDir == null) {
            modelDir = home.resolve("testdata/model");
        }
        ModelBundle bundle = ModelBundle.load(modelDir);
        List<Label> labels = labelsFile == null ? null : FleetGenerator.readLabels(labelsFile);
        int parallelism = args.intValue("--parallelism", 2);

        Path work = Files.createTempDirectory("vigil-demo-");
        out.printf(
                "model %s (%d features, hidden %d, threshold %.3f)%n",
                bundle.card().version(),
                bundle.card().featureCount(),
                bundle.card().hiddenSize(),
                bundle.card().threshold());
        try (EmbeddedKafkaBroker kafka = EmbeddedKafkaBroker.start()) {
            out.println("kafka broker up at " + kafka.bootstrapServers());
            kafka.createTopics(
                    TOPIC_PARTITIONS, List.of(TELEMETRY, ANOMALIES, DEAD_LETTERS, SCORES));
            long produced = TopicIO.replay(kafka.bootstrapServers(), TELEMETRY, input);
            out.printf("replayed %d records from %s into '%s'%n", produced, input, TELEMETRY);

            Map<String, String> conf =
                    LocalRun.config(
                            kafka.bootstrapServers(),
                            modelDir,
                            "",
                            work.resolve("checkpoints"),
                            "1s",
                            parallelism);
            conf.put("io.tmp.dirs", work.resolve("tmp").toString());
            long jobStart = System.nanoTime();
            out.printf(
                    "running the job on a local Flink mini cluster (parallelism %d, RocksDB,"
                            + " exactly-once checkpoints every 1 s) ...%n",
                    parallelism);
            Path savepointOut = args.path("--savepoint-out");
            JobExecutionResult result;
            if (savepointOut == null) {
                result = VigilJob.run(VigilConfig.of(conf), bundle);
            } else {
                // Unbounded, so that the job is still running to take the savepoint.
                conf.put(VigilOptions.KAFKA_BOUNDED.key(), "false");
                VigilJob.Stopped stopped =
                        VigilJob.runThenStop(
                                VigilConfig.of(conf),
                                bundle,
                                produced,
                                savepointOut,
                                Duration.ofMinutes(10));
                result = stopped.result();
                Path savepoint = Path.of(URI.create(stopped.savepoint()));
                SavepointManifest.write(
                        savepoint,
                        bundle.card().version(),
                        TELEMETRY,
                        TOPIC_PARTITIONS,
                        produced,
                        counter(result, Metrics.SCORED));
                out.println("stopped with a savepoint in " + savepoint);
                out.println("  inspect it: ./vigil inspect-savepoint " + savepoint);
            }
            double jobSeconds = (System.nanoTime() - jobStart) / 1e9;

            List<AnomalyEvent> events = new ArrayList<>();
            for (byte[] v : TopicIO.readCommitted(kafka.bootstrapServers(), ANOMALIES)) {
                events.add(WireFormat.parseAnomaly(v));
            }
            int deadLetterRecords =
                    TopicIO.readCommitted(kafka.bootstrapServers(), DEAD_LETTERS).size();
            List<byte[]> scores = TopicIO.readCommitted(kafka.bootstrapServers(), SCORES);

            Map<String, Object> report = new LinkedHashMap<>();
            report.put("model_version", bundle.card().version());
            report.put("input", input.toString());
            report.put("records_produced", produced);
            report.put("records_in", counter(result, Metrics.RECORDS_IN));
            report.put("scored", counter(result, Metrics.SCORED));
            report.put("late", counter(result, Metrics.LATE));
            report.put("dead_letters", counter(result, Metrics.DEAD_LETTERS));
            report.put("dead_letter_records", deadLetterRecords);
            report.put("score_records", scores.size());
            report.put("resets_gap", counter(result, Metrics.RESETS_GAP));
            report.put("anomaly_events", events.size());
            report.put("job_seconds", round(jobSeconds));
            report.put("events_per_second", Math.round(produced / jobSeconds));

            EvaluateCommand.printEpisodes(out, Evaluation.episodes(events), labels);
            if (labels != null) {
                List<ScoredStep> steps = new ArrayList<>();
                scores.forEach(v -> steps.add(WireFormat.parseScore(v)));
                Map<String, Object> evaluation =
                        Evaluation.report(events, labels, steps, bundle.card().threshold());
                report.putAll(evaluation);
                EvaluateCommand.printEvaluation(out, evaluation);
            } else {
                report.put("episodes", Map.of("found", Evaluation.episodes(events).size()));
            }
            report.put("seconds_total", round((System.nanoTime() - started) / 1e9));
            printSummary(report);

            if (args.path("--anomalies-out") != null) {
                writeLines(
                        args.path("--anomalies-out"),
                        events.stream().map(WireFormat::anomaly).toList());
            }
            if (args.path("--scores-out") != null) {
                writeLines(args.path("--scores-out"), scores);
            }
            if (args.path("--report") != null) {
                EvaluateCommand.writeJson(args.path("--report"), report);
                out.println("report written to " + args.path("--report"));
            }
            long in = (Long) report.get("records_in");
            long accounted =
                    (Long) report.get("scored")
                            + (Long) report.get("late")
                            + (Long) report.get("dead_letters");
            if (in != produced || accounted != in) {
                out.printf(
                        "MISMATCH: produced %d, read %d, accounted %d: records were lost%n",
                        produced, in, accounted);
                return 1;
            }
            return 0;
        } finally {
            LocalRun.deleteRecursively(work);
        }
    }

    private static long counter(JobExecutionResult result, String name) {
        Object v = result.getAccumulatorResult(name);
        return v == null ? 0L : ((Number) v).longValue();
    }

    private void printSummary(Map<String, Object> report) {
        out.println();
        out.printf(
                "records in %s = scored %s + late/duplicate %s + dead letters %s%n",
                report.get("records_in"),
                report.get("scored"),
                report.get("late"),
                report.get("dead_letters"));
        out.printf(
                "anomaly events %s; job ran %s s (%s events/s)%n",
                report.get("anomaly_events"),
                report.get("job_seconds"),
                report.get("events_per_second"));
    }

    private static void writeLines(Path file, List<byte[]> lines) throws IOException {
        try (BufferedWriter w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            for (byte[] l : lines) {
                w.write(new String(l, StandardCharsets.UTF_8));
                w.write('\n');
            }
        }
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }
}
