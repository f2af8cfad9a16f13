package dev.vigil.tools;

import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testdata.FleetGenerator.Label;
import dev.vigil.tools.evaluation.DriftSummary;
import dev.vigil.tools.evaluation.Evaluation;
import dev.vigil.tools.evaluation.ReportFormat;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import dev.vigil.tools.kafka.TopicIO;
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
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
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
                    + " [--parallelism N] [--savepoint-out DIR] [--input-format json|avro]"
                    + " [--shadow-model DIR] [--set KEY=VALUE]...";

    private static final String TELEMETRY = "telemetry";
    private static final String ANOMALIES = LocalRun.topic("anomalies", "");
    private static final String DEAD_LETTERS = LocalRun.topic("dead-letters", "");
    private static final String SCORES = LocalRun.topic("scores", "");
    private static final String SHADOW_ANOMALIES = LocalRun.topic("anomalies-shadow", "");
    private static final int TOPIC_PARTITIONS = 4;

    private final PrintStream out;
    private final Path home;

    DemoCommand(PrintStream out, Path home) {
        this.out = out;
        this.home = home;
    }

    /** What the user asked for, with the defaults filled in. */
    private record Options(
            Path input,
            Path modelDir,
            List<Label> labels,
            int parallelism,
            Path savepointOut,
            Path anomaliesOut,
            Path scoresOut,
            Path report,
            InputFormat inputFormat,
            Path shadowModel,
            ModelCard shadowCard,
            Map<String, String> settings) {}

    /** What the job left in Kafka, read back with read_committed. */
    private record Output(
            List<AnomalyEvent> events,
            int deadLetterRecords,
            List<byte[]> scores,
            List<AnomalyEvent> shadowEvents) {}

    int run(String[] argv) throws Exception {
        long started = System.nanoTime();
        Options options = options(argv);
        ModelBundle bundle = ModelBundle.load(options.modelDir());
        out.printf(
                "model %s (%d features, hidden %d, threshold %.3f)%n",
                bundle.card().version(),
                bundle.card().featureCount(),
                bundle.card().hiddenSize(),
                bundle.card().threshold());
        out.println(bundle.card().describeScoring());
        Path work = Files.createTempDirectory("vigil-demo-");
        try (EmbeddedKafkaBroker kafka = EmbeddedKafkaBroker.start()) {
            out.println("kafka broker up at " + kafka.bootstrapServers());
            kafka.createTopics(
                    TOPIC_PARTITIONS,
                    List.of(TELEMETRY, ANOMALIES, DEAD_LETTERS, SCORES, SHADOW_ANOMALIES));
            long produced =
                    TopicIO.replay(
                            kafka.bootstrapServers(),
                            new Properties(),
                            TELEMETRY,
                            options.input(),
                            TopicIO.encoder(options.inputFormat(), bundle.card().featureNames()));
            out.printf(
                    "replayed %d records from %s into '%s' (%s)%n",
                    produced,
                    options.input(),
                    TELEMETRY,
                    options.inputFormat().name().toLowerCase(Locale.ROOT));

            long jobStart = System.nanoTime();
            JobExecutionResult result = runJob(kafka, options, bundle, produced, work);
            double jobSeconds = (System.nanoTime() - jobStart) / 1e9;

            Output output = readBack(kafka.bootstrapServers(), options.shadowModel() != null);
            Map<String, Object> report = report(options, bundle, produced, result, output);
            report.put("job_seconds", ReportFormat.round(jobSeconds));
            report.put("events_per_second", Math.round(produced / jobSeconds));
            List<ScoredStep> steps = new ArrayList<>();
            output.scores().forEach(v -> steps.add(WireFormat.parseScore(v)));
            evaluate(options, bundle, output, steps, report);
            if (options.shadowModel() != null) {
                report.put("shadow", shadow(options, result, output, steps));
            }
            DriftSummary drift = DriftSummary.of(bundle.card(), options.input(), steps);
            out.println(drift.line());
            report.put("drift", drift.json());
            report.put("seconds_total", ReportFormat.round((System.nanoTime() - started) / 1e9));
            printSummary(report);
            write(options, output, report);
            return accountFor(report, produced);
        } finally {
            LocalRun.deleteRecursively(work);
        }
    }

    /** Parses the arguments; without --input, generates the labelled test fleet if missing. */
    private Options options(String[] argv) throws IOException {
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
                                "--savepoint-out",
                                "--input-format",
                                "--shadow-model",
                                Args.SET));
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
        Path shadowModel = args.path("--shadow-model");
        String format = args.get("--input-format");
        InputFormat inputFormat;
        try {
            inputFormat =
                    format == null
                            ? InputFormat.JSON
                            : InputFormat.valueOf(format.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--input-format must be json or avro, was " + format);
        }
        return new Options(
                input,
                modelDir != null ? modelDir : home.resolve("testdata/model"),
                labelsFile == null ? null : FleetGenerator.readLabels(labelsFile),
                args.intValue("--parallelism", 2),
                args.path("--savepoint-out"),
                args.path("--anomalies-out"),
                args.path("--scores-out"),
                args.path("--report"),
                inputFormat,
                shadowModel,
                // Read once, here: a card that does not load stops the demo before the broker.
                shadowModel == null ? null : ModelCard.load(shadowModel),
                args.settings());
    }

    /**
     * Runs the job until it has read the replayed stream: bounded, or with --savepoint-out
     * unbounded and stopped with a savepoint (and its manifest) once it has read everything.
     */
    private JobExecutionResult runJob(
            EmbeddedKafkaBroker kafka,
            Options options,
            ModelBundle bundle,
            long produced,
            Path work)
            throws Exception {
        Map<String, String> conf =
                LocalRun.config(
                        kafka.bootstrapServers(),
                        options.modelDir(),
                        "",
                        work.resolve("checkpoints"),
                        "1s",
                        options.parallelism());
        conf.put("io.tmp.dirs", work.resolve("tmp").toString());
        conf.put(VigilOptions.INPUT_FORMAT.key(), options.inputFormat().name());
        if (options.shadowModel() != null) {
            conf.put(VigilOptions.MODEL_SHADOW_DIR.key(), options.shadowModel().toString());
            conf.put(VigilOptions.TOPIC_SHADOW_ANOMALIES.key(), SHADOW_ANOMALIES);
            out.println("shadow model " + options.shadowCard().version());
            out.println(options.shadowCard().describeScoring());
        }
        // The user's job options last: they may change any of the above.
        options.settings().forEach((k, v) -> out.println("option " + k + " = " + v));
        conf.putAll(options.settings());
        out.printf(
                "running the job on a local Flink mini cluster (parallelism %d, RocksDB,"
                        + " exactly-once checkpoints every 1 s) ...%n",
                options.parallelism());
        if (options.savepointOut() == null) {
            return VigilJob.run(VigilConfig.of(conf), bundle);
        }
        // Unbounded, so that the job is still running to take the savepoint.
        conf.put(VigilOptions.KAFKA_BOUNDED.key(), "false");
        LocalRun.Stopped stopped =
                LocalRun.runThenStop(
                        VigilConfig.of(conf),
                        bundle,
                        produced,
                        options.savepointOut(),
                        Duration.ofMinutes(10));
        Path savepoint = Path.of(URI.create(stopped.savepoint()));
        SavepointManifest.write(
                savepoint,
                bundle.card().version(),
                TELEMETRY,
                TOPIC_PARTITIONS,
                produced,
                LocalRun.counted(stopped.result(), Metrics.SCORED));
        out.println("stopped with a savepoint in " + savepoint);
        out.println("  inspect it: ./vigil inspect-savepoint " + savepoint);
        return stopped.result();
    }

    private static Output readBack(String bootstrapServers, boolean shadow) {
        return new Output(
                LocalRun.committedAnomalies(bootstrapServers, ANOMALIES),
                TopicIO.readCommitted(bootstrapServers, DEAD_LETTERS).size(),
                TopicIO.readCommitted(bootstrapServers, SCORES),
                shadow
                        ? LocalRun.committedAnomalies(bootstrapServers, SHADOW_ANOMALIES)
                        : List.of());
    }

    /**
     * The shadow model against the serving one (README, "Upgrading"), from the job's counts: the
     * closed episodes both raised, only one raised, and the correlation of their scores; with
     * labels, how the shadow's episodes match them (an episode still open at the end lasting to its
     * device's last step, which both models scored).
     */
    private Map<String, Object> shadow(
            Options options, JobExecutionResult result, Output output, List<ScoredStep> steps) {
        long shared = LocalRun.counted(result, Metrics.EPISODES_SHARED);
        long closed = LocalRun.counted(result, Metrics.EPISODES_CLOSED);
        long shadowShared = LocalRun.counted(result, "shadow_" + Metrics.EPISODES_SHARED);
        long shadowClosed = LocalRun.counted(result, "shadow_" + Metrics.EPISODES_CLOSED);
        Object correlation = result.getAccumulatorResult("shadow_" + Metrics.SCORE_CORRELATION);
        Map<String, Object> shadow = new LinkedHashMap<>();
        shadow.put("model_version", options.shadowCard().version());
        shadow.put("anomaly_events", output.shadowEvents().size());
        shadow.put("episodes_both", shared);
        shadow.put("episodes_serving_only", closed - shared);
        shadow.put("episodes_shadow_only", shadowClosed - shadowShared);
        shadow.put(
                "score_correlation",
                correlation instanceof Double d && Double.isFinite(d)
                        ? ReportFormat.round(d)
                        : null);
        String line =
                String.format(
                        Locale.ROOT,
                        "shadow %s: closed episodes both %d, serving only %d, shadow only %d;"
                                + " score correlation %s",
                        shadow.get("model_version"),
                        shared,
                        closed - shared,
                        shadowClosed - shadowShared,
                        shadow.get("score_correlation"));
        if (options.labels() != null) {
            Evaluation.Result r =
                    Evaluation.evaluate(
                            Evaluation.episodes(output.shadowEvents(), steps), options.labels());
            shadow.put("precision", ReportFormat.round(r.precision()));
            shadow.put("recall", ReportFormat.round(r.recall()));
            shadow.put("f1", ReportFormat.round(r.f1()));
            shadow.put("episodes_unmatched", r.found() - r.matchedEpisodes());
            // Both models scored every step: the serving model's steps give the normal time.
            double falseAlarms = Evaluation.falseAlarms(r, options.labels(), steps).perDeviceDay();
            shadow.put("false_alarms_per_device_day", ReportFormat.round(falseAlarms));
            line +=
                    String.format(
                            Locale.ROOT,
                            "; against the labels precision %.3f, recall %.3f, F1 %.3f, false"
                                    + " alarms %.3f per device-day",
                            r.precision(),
                            r.recall(),
                            r.f1(),
                            falseAlarms);
        }
        out.println(line);
        return shadow;
    }

    /** Where every record went, from the job's counts and the topics. */
    private static Map<String, Object> report(
            Options options,
            ModelBundle bundle,
            long produced,
            JobExecutionResult result,
            Output output) {
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("model_version", bundle.card().version());
        report.put("input", options.input().toString());
        report.put("input_format", options.inputFormat().name().toLowerCase(Locale.ROOT));
        report.put("records_produced", produced);
        report.put("records_in", LocalRun.counted(result, Metrics.RECORDS_IN));
        report.put("scored", LocalRun.counted(result, Metrics.SCORED));
        report.put("late", LocalRun.counted(result, Metrics.LATE));
        report.put("dead_letters", LocalRun.counted(result, Metrics.DEAD_LETTERS));
        report.put("dead_letter_records", output.deadLetterRecords());
        report.put("score_records", output.scores().size());
        report.put("warming_up", LocalRun.counted(result, Metrics.WARMING_UP));
        report.put("resets_gap", LocalRun.counted(result, Metrics.RESETS_GAP));
        report.put("anomaly_events", output.events().size());
        report.put("silences_opened", LocalRun.counted(result, Metrics.SILENCES_OPENED));
        return report;
    }

    /** Prints the episodes and, with labels, the evaluation; adds its figures to the report. */
    private void evaluate(
            Options options,
            ModelBundle bundle,
            Output output,
            List<ScoredStep> steps,
            Map<String, Object> report) {
        List<Evaluation.Episode> episodes = Evaluation.episodes(output.events(), steps);
        ReportFormat.printEpisodes(out, episodes, options.labels());
        if (options.labels() == null) {
            report.put("episodes", Map.of("found", episodes.size()));
            return;
        }
        Evaluation.Report evaluation =
                Evaluation.report(
                        output.events(), options.labels(), steps, bundle.card().threshold());
        report.putAll(ReportFormat.json(evaluation));
        ReportFormat.print(out, evaluation);
    }

    private void printSummary(Map<String, Object> report) {
        out.println();
        out.printf(
                "records in %s = scored %s + late/duplicate %s + dead letters %s"
                        + " (dead-letter topic: %s records, the late ones included)%n",
                report.get("records_in"),
                report.get("scored"),
                report.get("late"),
                report.get("dead_letters"),
                report.get("dead_letter_records"));
        out.printf(
                "steps in warm-up %s (after a start or a gap reset: no alert possible; %s gap"
                        + " resets)%n",
                report.get("warming_up"), report.get("resets_gap"));
        out.printf(
                "anomaly events %s (devices reported silent: %s); job ran %s s (%s events/s)%n",
                report.get("anomaly_events"),
                report.get("silences_opened"),
                report.get("job_seconds"),
                report.get("events_per_second"));
    }

    private void write(Options options, Output output, Map<String, Object> report)
            throws IOException {
        if (options.anomaliesOut() != null) {
            writeLines(
                    options.anomaliesOut(),
                    output.events().stream().map(WireFormat::anomaly).toList());
        }
        if (options.scoresOut() != null) {
            writeLines(options.scoresOut(), output.scores());
        }
        if (options.report() != null) {
            ReportFormat.writeJson(options.report(), report);
            out.println("report written to " + options.report());
        }
    }

    /**
     * 0 when every record produced was read and ended in exactly one place (and every record not
     * scored is in the dead-letter topic), else 1.
     */
    private int accountFor(Map<String, Object> report, long produced) {
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
        long letters = (Long) report.get("late") + (Long) report.get("dead_letters");
        if (((Number) report.get("dead_letter_records")).longValue() != letters) {
            out.printf(
                    "MISMATCH: the dead-letter topic holds %s records, not late + dead letters"
                            + " %d%n",
                    report.get("dead_letter_records"), letters);
            return 1;
        }
        return 0;
    }

    private static void writeLines(Path file, List<byte[]> lines) throws IOException {
        try (BufferedWriter w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            for (byte[] l : lines) {
                w.write(new String(l, StandardCharsets.UTF_8));
                w.write('\n');
            }
        }
    }
}
