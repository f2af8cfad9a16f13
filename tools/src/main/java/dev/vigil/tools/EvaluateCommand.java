package dev.vigil.tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryParser;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testdata.FleetGenerator.Label;
import dev.vigil.tools.evaluation.DriftSummary;
import dev.vigil.tools.evaluation.Evaluation;
import dev.vigil.tools.evaluation.ReportFormat;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * {@code vigil evaluate}: scores anomaly output against labelled windows (see {@link Evaluation}
 * for the definitions), prints a table and writes the figures as JSON ({@link ReportFormat}, as the
 * demo does).
 */
final class EvaluateCommand {

    static final String USAGE =
            "vigil evaluate --anomalies FILE --labels FILE [--scores FILE] [--threshold X]"
                    + " [--model DIR] [--within FILE.jsonl] [--report FILE]";

    private final PrintStream out;
    private final Path home;

    EvaluateCommand(PrintStream out, Path home) {
        this.out = out;
        this.home = home;
    }

    int run(String[] argv) throws IOException {
        Args args =
                new Args(
                        "evaluate",
                        argv,
                        Set.of(
                                "--anomalies",
                                "--labels",
                                "--scores",
                                "--threshold",
                                "--model",
                                "--within",
                                "--report"));
        if (args.path("--anomalies") == null || args.path("--labels") == null) {
            throw new Args.UsageException("needs --anomalies and --labels\n  " + USAGE);
        }
        List<AnomalyEvent> events =
                readJsonl(args.path("--anomalies"), WireFormat::parseAnomaly, e -> e.deviceId);
        List<Label> labels = FleetGenerator.readLabels(args.path("--labels"));
        List<ScoredStep> scores =
                args.path("--scores") == null
                        ? null
                        : readJsonl(
                                args.path("--scores"), WireFormat::parseScore, st -> st.deviceId);
        Path model =
                args.path("--model") != null
                        ? args.path("--model")
                        : home.resolve("testdata/model");
        // The card, read once, when the threshold or the drift summary needs it
        ModelCard card =
                args.get("--threshold") == null || args.path("--within") != null
                        ? ModelCard.load(model)
                        : null;
        float threshold;
        if (args.get("--threshold") != null) {
            try {
                threshold = Float.parseFloat(args.get("--threshold"));
            } catch (NumberFormatException e) {
                throw new Args.UsageException("--threshold needs a number");
            }
        } else {
            threshold = card.threshold();
        }
        if (args.path("--within") != null) {
            // Only each device's time span in that stream (for example a test split replayed
            // after its train split): episodes, steps and labels elsewhere do not count.
            Evaluation.Within within =
                    Evaluation.Within.of(windows(args.path("--within")), events, scores, labels);
            events = within.events();
            scores = within.scores();
            labels = within.labels();
            out.printf(
                    "evaluating within each device's span in %s: %d labels%n",
                    args.path("--within"), labels.size());
        }
        Evaluation.Report report = Evaluation.report(events, labels, scores, threshold);
        ReportFormat.printEpisodes(out, Evaluation.episodes(events, scores), labels);
        ReportFormat.print(out, report);
        Map<String, Object> json = ReportFormat.json(report);
        if (args.path("--within") != null) {
            // The stream scored, against the model's training data
            DriftSummary drift = DriftSummary.of(card, args.path("--within"), scores);
            out.println(drift.line());
            json.put("drift", drift.json());
        }
        Path file =
                args.path("--report") != null ? args.path("--report") : Path.of("evaluation.json");
        ReportFormat.writeJson(file, json);
        out.println("report written to " + file);
        return 0;
    }

    /** Each device's first and last {@code ts} in a telemetry stream; unreadable lines skipped. */
    static Map<String, Evaluation.Window> windows(Path jsonl) throws IOException {
        Map<String, Evaluation.Window> windows = new HashMap<>();
        ObjectMapper json = new ObjectMapper();
        try (var lines = Files.lines(jsonl, StandardCharsets.UTF_8)) {
            for (String line : (Iterable<String>) lines::iterator) {
                JsonNode e;
                try {
                    e = json.readTree(line);
                } catch (IOException bad) {
                    continue;
                }
                if (e == null || !e.path("device_id").isTextual()) {
                    continue;
                }
                JsonNode tsNode = e.path("ts");
                Long ts =
                        tsNode.isIntegralNumber()
                                ? Long.valueOf(tsNode.asLong())
                                : tsNode.isTextual()
                                        ? TelemetryParser.parseInstant(tsNode.asText())
                                        : null;
                if (ts != null) {
                    windows.merge(
                            e.get("device_id").asText(),
                            new Evaluation.Window(ts, ts),
                            (a, b) ->
                                    new Evaluation.Window(
                                            Math.min(a.from(), b.from()),
                                            Math.max(a.to(), b.to())));
                }
            }
        }
        return windows;
    }

    /**
     * Every non-blank line of a JSON Lines file, parsed. A line that does not parse, or names no
     * device, stops the evaluation with the file and line (a consumer killed mid-write leaves a cut
     * last line): counting around it would give figures for less than the file holds.
     */
    static <T> List<T> readJsonl(Path file, Function<byte[], T> parse, Function<T, String> device)
            throws IOException {
        List<T> out = new ArrayList<>();
        int n = 0;
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            n++;
            if (line.isBlank()) {
                continue;
            }
            T value;
            try {
                value = parse.apply(line.getBytes(StandardCharsets.UTF_8));
            } catch (IllegalArgumentException e) {
                throw new Args.UsageException(file + " line " + n + ": " + e.getMessage());
            }
            if (device.apply(value) == null) {
                throw new Args.UsageException(file + " line " + n + ": no device_id");
            }
            out.add(value);
        }
        return out;
    }
}
