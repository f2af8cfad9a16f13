package dev.vigil.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.vigil.alerts.Evaluation;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testdata.FleetGenerator.Label;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * {@code vigil evaluate}: scores anomaly output against labelled windows (see {@link Evaluation}
 * for the definitions), prints a table and writes the figures as JSON. The demo prints the same
 * way.
 */
final class EvaluateCommand {

    static final String USAGE =
            "vigil evaluate --anomalies FILE --labels FILE [--scores FILE] [--threshold X]"
                    + " [--model DIR] [--report FILE]";

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
                                "--report"));
        if (args.path("--anomalies") == null || args.path("--labels") == null) {
            throw new Args.UsageException("needs --anomalies and --labels\n  " + USAGE);
        }
        List<AnomalyEvent> events = readJsonl(args.path("--anomalies"), WireFormat::parseAnomaly);
        List<Label> labels = FleetGenerator.readLabels(args.path("--labels"));
        List<ScoredStep> scores =
                args.path("--scores") == null
                        ? null
                        : readJsonl(args.path("--scores"), WireFormat::parseScore);
        float threshold;
        if (args.get("--threshold") != null) {
            try {
                threshold = Float.parseFloat(args.get("--threshold"));
            } catch (NumberFormatException e) {
                throw new Args.UsageException("--threshold needs a number");
            }
        } else {
            Path model =
                    args.path("--model") != null
                            ? args.path("--model")
                            : home.resolve("testdata/model");
            threshold = ModelCard.load(model).threshold();
        }
        Map<String, Object> report = Evaluation.report(events, labels, scores, threshold);
        printEpisodes(out, Evaluation.episodes(events), labels);
        printEvaluation(out, report);
        Path file =
                args.path("--report") != null ? args.path("--report") : Path.of("evaluation.json");
        writeJson(file, report);
        out.println("report written to " + file);
        return 0;
    }

    static <T> List<T> readJsonl(Path file, Function<byte[], T> parse) throws IOException {
        List<T> out = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (!line.isBlank()) {
                out.add(parse.apply(line.getBytes(StandardCharsets.UTF_8)));
            }
        }
        return out;
    }

    static void writeJson(Path file, Map<String, Object> json) throws IOException {
        new ObjectMapper()
                .enable(SerializationFeature.INDENT_OUTPUT)
                .writeValue(file.toFile(), json);
    }

    static void printEpisodes(
            PrintStream out, List<Evaluation.Episode> episodes, List<Label> labels) {
        out.println();
        out.printf(
                "%-10s %-20s %8s %9s %-7s %-40s %s%n",
                "device", "start (UTC)", "minutes", "peak", "state", "top features", "label");
        for (Evaluation.Episode e : episodes) {
            Label match = labels == null ? null : Evaluation.matchOf(e, labels);
            out.printf(
                    Locale.ROOT,
                    "%-10s %-20s %8.0f %9.1f %-7s %-40s %s%n",
                    e.deviceId(),
                    Instant.ofEpochMilli(e.start()).toString().replace("T", " ").replace("Z", ""),
                    (e.end() - e.start()) / 60_000.0,
                    e.peakScore(),
                    e.closed() ? "closed" : "open",
                    String.join(", ", e.topFeatures()),
                    labels == null
                            ? ""
                            : match == null ? "(no label)" : match.kind() + " " + match.feature());
        }
    }

    @SuppressWarnings("unchecked")
    static void printEvaluation(PrintStream out, Map<String, Object> report) {
        Map<String, Object> ep = (Map<String, Object>) report.get("episodes");
        out.println();
        out.printf(
                "episodes found %s, labelled %s, labels matched %s: precision %s, recall %s, f1 %s,"
                        + " at most %s episode(s) per label%n",
                ep.get("found"),
                ep.get("labelled"),
                ep.get("matched"),
                ep.get("precision"),
                ep.get("recall"),
                ep.get("f1"),
                ep.get("max_episodes_per_label"));
        if (report.get("points") instanceof Map<?, ?> p) {
            out.printf(
                    "steps above threshold %s: point-wise precision %s, recall %s, f1 %s%n",
                    report.get("threshold"), p.get("precision"), p.get("recall"), p.get("f1"));
        }
        Map<String, Object> delay = (Map<String, Object>) report.get("detection_delay");
        out.printf(
                "median detection delay: %s steps (%s ms)%n",
                delay.get("median_steps"), delay.get("median_ms"));
        out.printf(
                "%n%-20s %8s %8s %7s %13s %12s%n",
                "kind", "labelled", "matched", "recall", "point recall", "delay steps");
        ((Map<String, Map<String, Object>>) ep.get("by_kind"))
                .forEach(
                        (kind, k) ->
                                out.printf(
                                        "%-20s %8s %8s %7s %13s %12s%n",
                                        kind,
                                        k.get("labelled"),
                                        k.get("matched"),
                                        k.get("recall"),
                                        k.getOrDefault("point_recall", "-"),
                                        k.get("median_delay_steps")));
    }
}
