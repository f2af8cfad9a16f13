package dev.vigil.tools;

import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.WireFormat;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testdata.FleetGenerator.Label;
import dev.vigil.tools.evaluation.Evaluation;
import dev.vigil.tools.evaluation.ReportFormat;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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
        Evaluation.Report report = Evaluation.report(events, labels, scores, threshold);
        ReportFormat.printEpisodes(out, Evaluation.episodes(events), labels);
        ReportFormat.print(out, report);
        Path file =
                args.path("--report") != null ? args.path("--report") : Path.of("evaluation.json");
        ReportFormat.writeJson(file, ReportFormat.json(report));
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
}
