package dev.vigil.alerts;

import dev.vigil.serde.AnomalyEvent;
import dev.vigil.testdata.FleetGenerator.Label;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Event-wise evaluation of anomaly episodes against labelled windows: an episode matches a label
 * when they are on the same device and their time spans overlap. Precision counts episodes that
 * match some label; recall counts labels matched by some episode.
 */
public final class Evaluation {

    private Evaluation() {}

    /** One episode rebuilt from its events; {@code end} is its CLOSE, else its last event. */
    public record Episode(
            String deviceId,
            long start,
            long end,
            boolean closed,
            float peakScore,
            int steps,
            String[] topFeatures) {}

    /** Recall of one anomaly kind. */
    public record KindResult(int labelled, int matched) {
        public double recall() {
            return labelled == 0 ? 0 : (double) matched / labelled;
        }
    }

    public record Result(
            int found,
            int labelled,
            int matchedEpisodes,
            int matchedLabels,
            int maxOpensPerLabel,
            Map<String, KindResult> byKind) {
        public double precision() {
            return found == 0 ? 0 : (double) matchedEpisodes / found;
        }

        public double recall() {
            return labelled == 0 ? 0 : (double) matchedLabels / labelled;
        }

        public double f1() {
            double p = precision();
            double r = recall();
            return p + r == 0 ? 0 : 2 * p * r / (p + r);
        }
    }

    /** Rebuilds episodes from anomaly events in any order, by (device, episode start). */
    public static List<Episode> episodes(List<AnomalyEvent> events) {
        Map<String, List<AnomalyEvent>> byEpisode = new TreeMap<>();
        for (AnomalyEvent e : events) {
            byEpisode
                    .computeIfAbsent(e.deviceId + "\u0000" + e.episodeStart, k -> new ArrayList<>())
                    .add(e);
        }
        List<Episode> out = new ArrayList<>();
        for (List<AnomalyEvent> es : byEpisode.values()) {
            es.sort(Comparator.comparingLong(e -> e.ts));
            AnomalyEvent last = es.get(es.size() - 1);
            AnomalyEvent close =
                    es.stream()
                            .filter(e -> AnomalyEvent.CLOSE.equals(e.type))
                            .findFirst()
                            .orElse(null);
            AnomalyEvent described = close != null ? close : last;
            out.add(
                    new Episode(
                            last.deviceId,
                            last.episodeStart,
                            described.ts,
                            close != null,
                            described.peakScore,
                            described.steps,
                            described.topFeatureNames));
        }
        out.sort(Comparator.comparing(Episode::deviceId).thenComparingLong(Episode::start));
        return out;
    }

    public static Result evaluate(List<Episode> episodes, List<Label> labels) {
        int matchedEpisodes = 0;
        for (Episode e : episodes) {
            if (labels.stream().anyMatch(l -> overlaps(e, l))) {
                matchedEpisodes++;
            }
        }
        int matchedLabels = 0;
        int maxOpens = 0;
        Map<String, int[]> kinds = new TreeMap<>();
        for (Label l : labels) {
            long opens = episodes.stream().filter(e -> overlaps(e, l)).count();
            int[] k = kinds.computeIfAbsent(l.kind(), x -> new int[2]);
            k[0]++;
            if (opens > 0) {
                matchedLabels++;
                k[1]++;
            }
            maxOpens = Math.max(maxOpens, (int) opens);
        }
        Map<String, KindResult> byKind = new LinkedHashMap<>();
        kinds.forEach((kind, k) -> byKind.put(kind, new KindResult(k[0], k[1])));
        return new Result(
                episodes.size(), labels.size(), matchedEpisodes, matchedLabels, maxOpens, byKind);
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
}
