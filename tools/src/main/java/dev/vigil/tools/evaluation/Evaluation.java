package dev.vigil.tools.evaluation;

import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.testdata.FleetGenerator.Label;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * How well anomaly output matches labelled windows; the definitions are the README's
 * ("Evaluation"):
 *
 * <ul>
 *   <li>event-wise: an episode matches a label when they are on the same device and their time
 *       spans overlap; precision = episodes matching some label / episodes, recall = labels matched
 *       by some episode / labels;
 *   <li>point-wise: every scored step is positive when its score is above the threshold and
 *       labelled when it lies in a labelled window of its device;
 *   <li>detection delay: from a label's start to the OPEN of the first episode that matches it, in
 *       scored steps of that device (when step scores are given) and in milliseconds.
 * </ul>
 */
public final class Evaluation {

    private Evaluation() {}

    // The totals' key among the label kinds' in the delays and point counts: no kind read from a
    // labels file can be it.
    private static final String ALL = "\u0000all";

    /** One episode rebuilt from its events; {@code end} is its CLOSE, else its last event. */
    public record Episode(
            String deviceId,
            long start,
            long openTs,
            long end,
            boolean closed,
            float peakScore,
            int steps,
            String[] topFeatures) {}

    /** Rebuilds episodes from anomaly events in any order, by (device, episode start). */
    public static List<Episode> episodes(List<AnomalyEvent> events) {
        return episodes(events, null);
    }

    /**
     * Rebuilds episodes from anomaly events in any order, by (device, episode start). An episode
     * with no CLOSE was still open when the run ended: with {@code scores} (every scored step, or
     * null) it ends at its device's last scored step, through which it was open; without, at its
     * last event. Silence events ({@link AnomalyEvent#isSilence()}) are left out: a device that
     * stopped sending is not an anomaly in its telemetry, and labels do not mark it.
     */
    public static List<Episode> episodes(List<AnomalyEvent> events, List<ScoredStep> scores) {
        Map<String, Long> lastScored = new HashMap<>();
        if (scores != null) {
            for (ScoredStep st : scores) {
                lastScored.merge(st.deviceId, st.ts, Math::max);
            }
        }
        Map<String, List<AnomalyEvent>> byEpisode = new TreeMap<>();
        for (AnomalyEvent e : events) {
            if (e.isSilence()) {
                continue;
            }
            byEpisode
                    .computeIfAbsent(e.deviceId + "\u0000" + e.episodeStart, k -> new ArrayList<>())
                    .add(e);
        }
        List<Episode> out = new ArrayList<>();
        for (List<AnomalyEvent> es : byEpisode.values()) {
            es.sort(Comparator.comparingLong(e -> e.ts));
            AnomalyEvent first = es.get(0);
            AnomalyEvent last = es.get(es.size() - 1);
            AnomalyEvent close = find(es, AnomalyEvent.CLOSE);
            AnomalyEvent open = find(es, AnomalyEvent.OPEN);
            AnomalyEvent described = close != null ? close : last;
            out.add(
                    new Episode(
                            first.deviceId,
                            first.episodeStart,
                            open != null ? open.ts : first.ts,
                            close != null
                                    ? close.ts
                                    : Math.max(
                                            last.ts,
                                            lastScored.getOrDefault(first.deviceId, last.ts)),
                            close != null,
                            described.peakScore,
                            described.steps,
                            described.topFeatureNames));
        }
        out.sort(Comparator.comparing(Episode::deviceId).thenComparingLong(Episode::start));
        return out;
    }

    private static AnomalyEvent find(List<AnomalyEvent> events, String type) {
        return events.stream().filter(e -> type.equals(e.type)).findFirst().orElse(null);
    }

    /** The part of a device's time that is evaluated, both ends included. */
    public record Window(long from, long to) {}

    /**
     * The events, scores and labels of a run restricted to each device's window (devices without
     * one are left out): an episode counts when its span overlaps the window, as a label does, so
     * one that began before the window and lasts into it is kept whole (still open at the end of
     * the run, it spans to its device's last scored step, as {@link #episodes(List, List)} has it);
     * a step score counts inside the window, a label when it overlaps it.
     */
    public record Within(List<AnomalyEvent> events, List<ScoredStep> scores, List<Label> labels) {

        public static Within of(
                Map<String, Window> windows,
                List<AnomalyEvent> events,
                List<ScoredStep> scores,
                List<Label> labels) {
            Map<String, Boolean> episodeIn = new HashMap<>();
            for (Episode e : episodes(events, scores)) {
                Window w = windows.get(e.deviceId());
                if (w != null && e.start() <= w.to() && w.from() <= e.end()) {
                    episodeIn.put(e.deviceId() + "\u0000" + e.start(), true);
                }
            }
            List<AnomalyEvent> keptEvents =
                    events.stream()
                            .filter(
                                    e ->
                                            episodeIn.containsKey(
                                                    e.deviceId + "\u0000" + e.episodeStart))
                            .toList();
            List<ScoredStep> keptScores =
                    scores == null
                            ? null
                            : scores.stream()
                                    .filter(
                                            st -> {
                                                Window w = windows.get(st.deviceId);
                                                return w != null
                                                        && st.ts >= w.from()
                                                        && st.ts <= w.to();
                                            })
                                    .toList();
            List<Label> keptLabels =
                    labels.stream()
                            .filter(
                                    l -> {
                                        Window w = windows.get(l.deviceId());
                                        return w != null
                                                && l.startTs() <= w.to()
                                                && w.from() <= l.endTs();
                                    })
                            .toList();
            return new Within(keptEvents, keptScores, keptLabels);
        }
    }

    /** Event-wise figures. */
    public record Result(
            int found,
            int labelled,
            int matchedEpisodes,
            int matchedLabels,
            int maxEpisodesPerLabel,
            Map<String, int[]> byKind) {
        public double precision() {
            return ratio(matchedEpisodes, found);
        }

        public double recall() {
            return ratio(matchedLabels, labelled);
        }

        public double f1() {
            return Evaluation.f1(precision(), recall());
        }
    }

    public static Result evaluate(List<Episode> episodes, List<Label> labels) {
        int matchedEpisodes = 0;
        for (Episode e : episodes) {
            if (matchOf(e, labels) != null) {
                matchedEpisodes++;
            }
        }
        int matchedLabels = 0;
        int maxPerLabel = 0;
        Map<String, int[]> byKind = new TreeMap<>();
        for (Label l : labels) {
            int n = (int) episodes.stream().filter(e -> overlaps(e, l)).count();
            int[] k = byKind.computeIfAbsent(l.kind(), x -> new int[2]);
            k[0]++;
            if (n > 0) {
                matchedLabels++;
                k[1]++;
            }
            maxPerLabel = Math.max(maxPerLabel, n);
        }
        return new Result(
                episodes.size(),
                labels.size(),
                matchedEpisodes,
                matchedLabels,
                maxPerLabel,
                byKind);
    }

    /** The label an episode matches first, or null. */
    public static Label matchOf(Episode e, List<Label> labels) {
        return labels.stream().filter(l -> overlaps(e, l)).findFirst().orElse(null);
    }

    static boolean overlaps(Episode e, Label l) {
        return e.deviceId().equals(l.deviceId())
                && e.start() <= l.endTs()
                && l.startTs() <= e.end();
    }

    /** Event-wise figures by label kind, with point recall and delays when known. */
    public record Kind(
            int labelled,
            int matched,
            double recall,
            Double pointRecall,
            Double medianDelaySteps,
            Double medianDelayMs) {}

    /** Point-wise figures: every scored step, positive when above the threshold. */
    public record Points(
            int steps,
            int labelled,
            int aboveThreshold,
            int truePositives,
            double precision,
            double recall,
            double f1) {}

    /**
     * Everything {@code vigil evaluate} and the demo report: event-wise ({@code result}, with
     * {@code byKind}), point-wise ({@code points}, null without scores), and the median detection
     * delay in steps (null without scores) and milliseconds. {@link ReportFormat} prints it and
     * turns it into JSON.
     */
    public record Report(
            float threshold,
            Result result,
            Map<String, Kind> byKind,
            Points points,
            Double medianDelaySteps,
            Double medianDelayMs,
            FalseAlarms falseAlarms) {}

    /**
     * Episodes that match no label, per device-day of normal operation: the scored steps outside
     * labelled windows, each counted as its device's median step interval (null without scores).
     */
    public record FalseAlarms(int episodes, double deviceDays) {
        public double perDeviceDay() {
            return deviceDays == 0 ? 0 : episodes / deviceDays;
        }
    }

    /**
     * Evaluates anomaly events (and, if given, every scored step) against labels.
     *
     * @param scores every scored step, or null
     */
    public static Report report(
            List<AnomalyEvent> events,
            List<Label> labels,
            List<ScoredStep> scores,
            float threshold) {
        scores = distinctSteps(scores);
        List<Episode> episodes = episodes(events, scores);
        Result r = evaluate(episodes, labels);
        Map<String, List<Double>> delaySteps = new TreeMap<>();
        Map<String, List<Double>> delayMs = new TreeMap<>();
        delays(episodes, labels, scores, delaySteps, delayMs);
        Map<String, int[]> points = scores == null ? null : pointCounts(scores, labels, threshold);

        Map<String, Kind> kinds = new LinkedHashMap<>();
        r.byKind()
                .forEach(
                        (kind, k) -> {
                            Double pointRecall = null;
                            if (points != null) {
                                int[] p = points.get(kind);
                                pointRecall = ratio(p == null ? 0 : p[1], p == null ? 0 : p[0]);
                            }
                            kinds.put(
                                    kind,
                                    new Kind(
                                            k[0],
                                            k[1],
                                            ratio(k[1], k[0]),
                                            pointRecall,
                                            median(delaySteps.get(kind)),
                                            median(delayMs.get(kind))));
                        });
        Points pointFigures = null;
        if (points != null) {
            int[] all = points.get(ALL);
            double precision = ratio(all[1], all[3]);
            double recall = ratio(all[1], all[0]);
            pointFigures =
                    new Points(
                            all[2],
                            all[0],
                            all[3],
                            all[1],
                            precision,
                            recall,
                            f1(precision, recall));
        }
        return new Report(
                threshold,
                r,
                kinds,
                pointFigures,
                median(delaySteps.get(ALL)),
                median(delayMs.get(ALL)),
                scores == null ? null : falseAlarms(r, labels, scores));
    }

    /** The episodes of {@code r} that match no label, per device-day of normal {@code scores}. */
    public static FalseAlarms falseAlarms(Result r, List<Label> labels, List<ScoredStep> scores) {
        return new FalseAlarms(r.found() - r.matchedEpisodes(), normalDeviceDays(scores, labels));
    }

    /** Device-days of normal operation: each device's unlabelled steps times its step interval. */
    private static double normalDeviceDays(List<ScoredStep> scores, List<Label> labels) {
        Map<String, List<Long>> times = new HashMap<>();
        for (ScoredStep s : scores) {
            times.computeIfAbsent(s.deviceId, k -> new ArrayList<>()).add(s.ts);
        }
        double ms = 0;
        for (Map.Entry<String, List<Long>> device : times.entrySet()) {
            List<Long> ts = device.getValue();
            ts.sort(null);
            if (ts.size() < 2) {
                continue;
            }
            List<Double> gaps = new ArrayList<>();
            for (int i = 1; i < ts.size(); i++) {
                gaps.add((double) (ts.get(i) - ts.get(i - 1)));
            }
            List<Label> own =
                    labels.stream().filter(l -> l.deviceId().equals(device.getKey())).toList();
            long normal =
                    ts.stream()
                            .filter(
                                    t ->
                                            own.stream()
                                                    .noneMatch(
                                                            l ->
                                                                    t >= l.startTs()
                                                                            && t <= l.endTs()))
                            .count();
            ms += normal * median(gaps);
        }
        return ms / 86_400_000.0;
    }

    /**
     * For each matched label, from its start to the OPEN of the earliest episode that matches it:
     * in scored steps of its device (when it has scores) and in milliseconds; under {@link #ALL}
     * and under the label's kind.
     */
    private static void delays(
            List<Episode> episodes,
            List<Label> labels,
            List<ScoredStep> scores,
            Map<String, List<Double>> delaySteps,
            Map<String, List<Double>> delayMs) {
        Map<String, List<Long>> stepTimes = new HashMap<>();
        if (scores != null) {
            for (ScoredStep s : scores) {
                stepTimes.computeIfAbsent(s.deviceId, k -> new ArrayList<>()).add(s.ts);
            }
            stepTimes.values().forEach(l -> l.sort(null));
        }
        for (Label l : labels) {
            Episode first =
                    episodes.stream()
                            .filter(e -> overlaps(e, l))
                            .min(Comparator.comparingLong(Episode::openTs))
                            .orElse(null);
            if (first == null) {
                continue;
            }
            // In steps only where the device has scored steps to count (none: no figure, not 0).
            List<Long> times = stepTimes.get(l.deviceId());
            for (String key : List.of(ALL, l.kind())) {
                delayMs.computeIfAbsent(key, k -> new ArrayList<>())
                        .add((double) (first.openTs() - l.startTs()));
                if (times != null) {
                    delaySteps
                            .computeIfAbsent(key, k -> new ArrayList<>())
                            .add((double) stepsBetween(times, l.startTs(), first.openTs()));
                }
            }
        }
    }

    /**
     * Per kind and {@link #ALL}: [labelled steps, labelled steps above threshold]; {@link #ALL}
     * also holds [2] every step and [3] every step above threshold.
     */
    private static Map<String, int[]> pointCounts(
            List<ScoredStep> scores, List<Label> labels, float threshold) {
        Map<String, List<Label>> byDevice = new HashMap<>();
        labels.forEach(l -> byDevice.computeIfAbsent(l.deviceId(), k -> new ArrayList<>()).add(l));
        Map<String, int[]> counts = new HashMap<>();
        int[] all = new int[4];
        counts.put(ALL, all);
        for (ScoredStep s : scores) {
            boolean positive = s.score > threshold;
            all[2]++;
            if (positive) {
                all[3]++;
            }
            for (Label l : byDevice.getOrDefault(s.deviceId, List.of())) {
                if (s.ts >= l.startTs() && s.ts <= l.endTs()) {
                    int[] k = counts.computeIfAbsent(l.kind(), x -> new int[2]);
                    k[0]++;
                    all[0]++;
                    if (positive) {
                        k[1]++;
                        all[1]++;
                    }
                    break;
                }
            }
        }
        return counts;
    }

    /**
     * One step per device and {@code ts}, the first: an at-least-once scores topic may hold a step
     * twice (README, "Delivery"), which must count once in the point-wise figures, the normal time
     * and the delays. Null stays null.
     */
    static List<ScoredStep> distinctSteps(List<ScoredStep> scores) {
        if (scores == null) {
            return null;
        }
        Set<String> seen = new HashSet<>();
        List<ScoredStep> out = new ArrayList<>(scores.size());
        for (ScoredStep s : scores) {
            if (seen.add(s.deviceId + "\u0000" + s.ts)) {
                out.add(s);
            }
        }
        return out;
    }

    private static long stepsBetween(List<Long> times, long from, long to) {
        long n =
                times.stream()
                        .filter(t -> t >= Math.min(from, to) && t < Math.max(from, to))
                        .count();
        return to >= from ? n : -n;
    }

    private static Double median(List<Double> values) {
        if (values == null || values.isEmpty()) {
            return null;
        }
        List<Double> sorted = new ArrayList<>(values);
        sorted.sort(null);
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }

    private static double ratio(int a, int b) {
        return b == 0 ? 0 : (double) a / b;
    }

    private static double f1(double p, double r) {
        return p + r == 0 ? 0 : 2 * p * r / (p + r);
    }
}
