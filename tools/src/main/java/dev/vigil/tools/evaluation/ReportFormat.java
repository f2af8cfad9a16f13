package dev.vigil.tools.evaluation;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.vigil.testdata.FleetGenerator.Label;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * How an {@link Evaluation.Report} is shown: the episode table and the summary that {@code vigil
 * evaluate} and {@code vigil demo} print, and the JSON their {@code --report} files hold (the keys
 * the README lists). Ratios are rounded to three decimals in both.
 */
public final class ReportFormat {

    private static final ObjectMapper JSON =
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private ReportFormat() {}

    /** {@code v} rounded to three decimals. */
    public static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }

    /** One line per episode, with the label it matches when labels are given. */
    public static void printEpisodes(
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

    /** The summary: event-wise, point-wise, delay, then one line per label kind. */
    public static void print(PrintStream out, Evaluation.Report report) {
        Evaluation.Result r = report.result();
        out.println();
        out.printf(
                "episodes found %s, labelled %s, labels matched %s: precision %s, recall %s, f1 %s,"
                        + " at most %s episode(s) per label%n",
                r.found(),
                r.labelled(),
                r.matchedLabels(),
                round(r.precision()),
                round(r.recall()),
                round(r.f1()),
                r.maxEpisodesPerLabel());
        Evaluation.Points p = report.points();
        if (p != null) {
            out.printf(
                    "steps above threshold %s: point-wise precision %s, recall %s, f1 %s%n",
                    round(report.threshold()),
                    round(p.precision()),
                    round(p.recall()),
                    round(p.f1()));
        }
        out.printf(
                "median detection delay: %s steps (%s ms)%n",
                report.medianDelaySteps(), report.medianDelayMs());
        Evaluation.FalseAlarms fa = report.falseAlarms();
        if (fa != null) {
            out.printf(
                    "false alarms: %d episodes in %s device-days of normal operation, %s per"
                            + " device-day%n",
                    fa.episodes(), round(fa.deviceDays()), round(fa.perDeviceDay()));
        }
        out.printf(
                "%n%-20s %8s %8s %7s %13s %12s%n",
                "kind", "labelled", "matched", "recall", "point recall", "delay steps");
        report.byKind()
                .forEach(
                        (kind, k) ->
                                out.printf(
                                        "%-20s %8s %8s %7s %13s %12s%n",
                                        kind,
                                        k.labelled(),
                                        k.matched(),
                                        round(k.recall()),
                                        k.pointRecall() == null ? "-" : round(k.pointRecall()),
                                        k.medianDelaySteps()));
    }

    /**
     * The report as JSON-ready maps: {@code threshold}, {@code episodes} (event-wise, with {@code
     * by_kind}), {@code points} (when scores were given), {@code detection_delay} and {@code
     * false_alarms} (when scores were given).
     */
    public static Map<String, Object> json(Evaluation.Report report) {
        Evaluation.Result r = report.result();
        Map<String, Object> ep = new LinkedHashMap<>();
        ep.put("found", r.found());
        ep.put("labelled", r.labelled());
        ep.put("matched", r.matchedLabels());
        ep.put("matched_episodes", r.matchedEpisodes());
        ep.put("precision", round(r.precision()));
        ep.put("recall", round(r.recall()));
        ep.put("f1", round(r.f1()));
        ep.put("max_episodes_per_label", r.maxEpisodesPerLabel());
        Map<String, Object> kinds = new LinkedHashMap<>();
        report.byKind()
                .forEach(
                        (kind, k) -> {
                            Map<String, Object> m = new LinkedHashMap<>();
                            m.put("labelled", k.labelled());
                            m.put("matched", k.matched());
                            m.put("recall", round(k.recall()));
                            if (k.pointRecall() != null) {
                                m.put("point_recall", round(k.pointRecall()));
                            }
                            m.put("median_delay_steps", k.medianDelaySteps());
                            m.put("median_delay_ms", k.medianDelayMs());
                            kinds.put(kind, m);
                        });
        ep.put("by_kind", kinds);

        Map<String, Object> out = new LinkedHashMap<>();
        out.put("threshold", round(report.threshold()));
        out.put("episodes", ep);
        Evaluation.Points p = report.points();
        if (p != null) {
            Map<String, Object> pm = new LinkedHashMap<>();
            pm.put("steps", p.steps());
            pm.put("labelled", p.labelled());
            pm.put("above_threshold", p.aboveThreshold());
            pm.put("true_positives", p.truePositives());
            pm.put("precision", round(p.precision()));
            pm.put("recall", round(p.recall()));
            pm.put("f1", round(p.f1()));
            out.put("points", pm);
        }
        Map<String, Object> delay = new LinkedHashMap<>();
        delay.put("median_steps", report.medianDelaySteps());
        delay.put("median_ms", report.medianDelayMs());
        out.put("detection_delay", delay);
        Evaluation.FalseAlarms fa = report.falseAlarms();
        if (fa != null) {
            Map<String, Object> fm = new LinkedHashMap<>();
            fm.put("episodes", fa.episodes());
            fm.put("device_days", round(fa.deviceDays()));
            fm.put("per_device_day", round(fa.perDeviceDay()));
            out.put("false_alarms", fm);
        }
        return out;
    }

    /** Writes JSON-ready maps to {@code file}, indented. */
    public static void writeJson(Path file, Map<String, Object> json) throws IOException {
        JSON.writeValue(file.toFile(), json);
    }
}
