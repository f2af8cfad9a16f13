package dev.vigil.tools.evaluation;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.ScoredStep;
import dev.vigil.testdata.FleetGenerator.Label;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class EvaluationTest {

    private static final long MIN = 60_000L;

    private static AnomalyEvent event(String device, String type, long start, long ts) {
        AnomalyEvent e = new AnomalyEvent();
        e.deviceId = device;
        e.type = type;
        e.episodeStart = start;
        e.ts = ts;
        e.eventId = AnomalyEvent.eventId(device, start, type, 1);
        e.topFeatureNames = new String[] {"rpm"};
        e.topFeatureShares = new float[] {1f};
        return e;
    }

    /** Device a: label [10, 20] found by an episode [12, 25]; a false episode at [50, 55]. */
    private static final List<AnomalyEvent> EVENTS =
            List.of(
                    event("a", AnomalyEvent.OPEN, 12 * MIN, 14 * MIN),
                    event("a", AnomalyEvent.CLOSE, 12 * MIN, 25 * MIN),
                    event("a", AnomalyEvent.OPEN, 50 * MIN, 51 * MIN),
                    event("a", AnomalyEvent.CLOSE, 50 * MIN, 55 * MIN));

    private static final List<Label> LABELS =
            List.of(
                    new Label("a", 10 * MIN, 20 * MIN, "spike", "rpm"),
                    new Label("b", 10 * MIN, 20 * MIN, "stuck", "rpm"));

    /** One step a minute for 60 minutes on both devices; scores 9 in [12, 20] on a, else 1. */
    private static List<ScoredStep> scores() {
        List<ScoredStep> out = new ArrayList<>();
        for (long m = 0; m < 60; m++) {
            out.add(new ScoredStep("a", m * MIN, m >= 12 && m <= 20 ? 9f : 1f));
            out.add(new ScoredStep("b", m * MIN, 1f));
        }
        return out;
    }

    @Test
    void shouldRebuildEpisodesFromTheirEvents() {
        List<Evaluation.Episode> episodes = Evaluation.episodes(EVENTS);

        assertThat(episodes).hasSize(2);
        assertThat(episodes.get(0).start()).isEqualTo(12 * MIN);
        assertThat(episodes.get(0).openTs()).isEqualTo(14 * MIN);
        assertThat(episodes.get(0).end()).isEqualTo(25 * MIN);
        assertThat(episodes.get(0).closed()).isTrue();
    }

    /** A device's silence (its OPEN and CLOSE) is not an episode of its telemetry: left out. */
    @Test
    void shouldLeaveSilencesOutOfTheEpisodes() {
        List<AnomalyEvent> events = new ArrayList<>(EVENTS);
        for (String type : List.of(AnomalyEvent.OPEN, AnomalyEvent.CLOSE)) {
            AnomalyEvent silence =
                    event("b", type, 11 * MIN, (type.equals(AnomalyEvent.OPEN) ? 21 : 40) * MIN);
            silence.reason = AnomalyEvent.SILENCE;
            silence.eventId = AnomalyEvent.silenceId("b", 11 * MIN, type);
            events.add(silence);
        }

        assertThat(Evaluation.episodes(events, scores()))
                .hasSize(2)
                .allMatch(e -> e.deviceId().equals("a"));
        assertThat(Evaluation.evaluate(Evaluation.episodes(events), LABELS).recall())
                .isEqualTo(0.5);
    }

    /**
     * An episode that never closed was open through its device's last scored step: with step scores
     * it ends there and matches a label that starts after its OPEN (device b's, [10, 20]); without,
     * it ends at its last event and does not.
     */
    @Test
    void shouldLetAnEpisodeStillOpenAtTheEndLastToItsDevicesLastStep() {
        List<AnomalyEvent> events = List.of(event("b", AnomalyEvent.OPEN, 3 * MIN, 5 * MIN));

        Evaluation.Episode withScores = Evaluation.episodes(events, scores()).get(0);
        assertThat(withScores.closed()).isFalse();
        assertThat(withScores.end()).isEqualTo(59 * MIN);
        assertThat(Evaluation.evaluate(List.of(withScores), LABELS).recall()).isEqualTo(0.5);

        Evaluation.Episode without = Evaluation.episodes(events).get(0);
        assertThat(without.end()).isEqualTo(5 * MIN);
        assertThat(Evaluation.evaluate(List.of(without), LABELS).recall()).isZero();

        Evaluation.Report report = Evaluation.report(events, LABELS, scores(), 4f);
        assertThat(report.result().matchedLabels()).isEqualTo(1);
    }

    @Test
    void shouldReportEventWiseAndPointWiseFiguresAndDelays() {
        Evaluation.Report report = Evaluation.report(EVENTS, LABELS, scores(), 4f);

        Evaluation.Result r = report.result();
        assertThat(r.found()).isEqualTo(2);
        assertThat(r.labelled()).isEqualTo(2);
        assertThat(r.matchedLabels()).isEqualTo(1);
        assertThat(r.precision()).isEqualTo(0.5);
        assertThat(r.recall()).isEqualTo(0.5);
        assertThat(r.maxEpisodesPerLabel()).isEqualTo(1);
        assertThat(report.byKind().get("spike").recall()).isEqualTo(1.0);
        assertThat(report.byKind().get("spike").medianDelaySteps()).isEqualTo(4.0);
        assertThat(report.byKind().get("stuck").recall()).isEqualTo(0.0);

        // 11 + 11 labelled steps; a's steps 12..20 are above the threshold, all labelled.
        Evaluation.Points points = report.points();
        assertThat(points.labelled()).isEqualTo(22);
        assertThat(points.aboveThreshold()).isEqualTo(9);
        assertThat(points.truePositives()).isEqualTo(9);
        assertThat(points.precision()).isEqualTo(1.0);
        assertThat(points.recall()).isEqualTo(9.0 / 22);
        assertThat(report.medianDelaySteps()).isEqualTo(4.0);
        assertThat(report.medianDelayMs()).isEqualTo(4.0 * MIN);
        // One episode matches nothing; normal time: (60 - 11) + (60 - 11) one-minute steps.
        assertThat(report.falseAlarms().episodes()).isEqualTo(1);
        assertThat(report.falseAlarms().deviceDays()).isCloseTo(98.0 / 1440, within(1e-12));
        assertThat(report.falseAlarms().perDeviceDay()).isCloseTo(1440.0 / 98, within(1e-9));
    }

    @Test
    @SuppressWarnings("unchecked")
    void shouldRenderTheReportAsTheJsonTheReadmeDescribes() {
        Map<String, Object> json =
                ReportFormat.json(Evaluation.report(EVENTS, LABELS, scores(), 4f));

        assertThat(json)
                .containsOnlyKeys(
                        "threshold", "episodes", "points", "detection_delay", "false_alarms");
        Map<String, Object> episodes = (Map<String, Object>) json.get("episodes");
        assertThat(episodes)
                .containsEntry("found", 2)
                .containsEntry("labelled", 2)
                .containsEntry("matched", 1)
                .containsEntry("precision", 0.5)
                .containsEntry("recall", 0.5)
                .containsEntry("max_episodes_per_label", 1);
        Map<String, Map<String, Object>> kinds =
                (Map<String, Map<String, Object>>) episodes.get("by_kind");
        assertThat(kinds.get("spike"))
                .containsEntry("recall", 1.0)
                .containsEntry("point_recall", 0.818)
                .containsEntry("median_delay_steps", 4.0);
        Map<String, Object> points = (Map<String, Object>) json.get("points");
        assertThat(points).containsEntry("recall", 0.409).containsEntry("true_positives", 9);
        Map<String, Object> delay = (Map<String, Object>) json.get("detection_delay");
        assertThat(delay).containsEntry("median_steps", 4.0).containsEntry("median_ms", 4.0 * MIN);
    }

    @Test
    void shouldLeavePointFiguresOutWithoutScores() {
        Evaluation.Report report = Evaluation.report(EVENTS, LABELS, null, 4f);

        assertThat(report.points()).isNull();
        assertThat(report.medianDelaySteps()).isNull();
        assertThat(report.falseAlarms()).isNull();
        assertThat(ReportFormat.json(report)).doesNotContainKeys("points", "false_alarms");
    }

    @Test
    void shouldCountEveryEpisodeThatOverlapsALabel() {
        List<AnomalyEvent> split = new ArrayList<>(EVENTS.subList(0, 2));
        split.add(event("a", AnomalyEvent.OPEN, 18 * MIN, 19 * MIN));

        Evaluation.Result r = Evaluation.evaluate(Evaluation.episodes(split), LABELS);

        assertThat(r.maxEpisodesPerLabel()).isEqualTo(2);
        assertThat(r.precision()).isEqualTo(1.0);
    }

    @Test
    void shouldKeepOnlyWhatFallsInEachDevicesWindow() {
        // Device a is evaluated from minute 22: the episode [12, 25] reaches into it, the one at
        // [50, 55] lies in it; device b has no window at all.
        Map<String, Evaluation.Window> windows =
                Map.of("a", new Evaluation.Window(22 * MIN, 60 * MIN));

        Evaluation.Within within = Evaluation.Within.of(windows, EVENTS, scores(), LABELS);

        assertThat(within.events()).hasSize(4);
        assertThat(within.labels()).isEmpty(); // a's label ends at 20, b has no window
        assertThat(within.scores()).hasSize(38).allMatch(st -> st.deviceId.equals("a"));

        Map<String, Evaluation.Window> later =
                Map.of("a", new Evaluation.Window(30 * MIN, 60 * MIN));
        assertThat(Evaluation.Within.of(later, EVENTS, null, LABELS).events())
                .extracting(e -> e.episodeStart)
                .containsOnly(50 * MIN);
    }

    @Test
    void shouldKeepAnEpisodeOpenedBeforeTheWindowAndStillOpenInIt() {
        // Opened at minute 5 and never closed: it spans to a's last scored step (59), across
        // the window from minute 30, though its only event lies before it.
        List<AnomalyEvent> open = List.of(event("a", AnomalyEvent.OPEN, 3 * MIN, 5 * MIN));
        Map<String, Evaluation.Window> windows =
                Map.of("a", new Evaluation.Window(30 * MIN, 60 * MIN));
        List<Label> late = List.of(new Label("a", 40 * MIN, 45 * MIN, "drift", "rpm"));

        Evaluation.Within within = Evaluation.Within.of(windows, open, scores(), late);

        assertThat(within.events()).hasSize(1);
        Evaluation.Report report =
                Evaluation.report(within.events(), within.labels(), within.scores(), 4f);
        assertThat(report.result().recall()).isEqualTo(1.0);
        // Without step scores it ends at its last event, before the window.
        assertThat(Evaluation.Within.of(windows, open, null, late).events()).isEmpty();
    }

    @Test
    void shouldCountAStepDeliveredTwiceOnce() {
        List<ScoredStep> twice = new ArrayList<>(scores());
        twice.addAll(scores()); // an at-least-once scores topic read after a restart

        Evaluation.Report once = Evaluation.report(EVENTS, LABELS, scores(), 4f);
        Evaluation.Report report = Evaluation.report(EVENTS, LABELS, twice, 4f);

        assertThat(report.points()).isEqualTo(once.points());
        assertThat(report.medianDelaySteps()).isEqualTo(4.0);
        assertThat(report.falseAlarms()).isEqualTo(once.falseAlarms());
    }

    @Test
    void shouldGiveNoDelayInStepsForALabelOnADeviceWithoutScores() {
        // b's label is found 4 minutes late, but b has no scored steps to count them in.
        List<AnomalyEvent> events = List.of(event("b", AnomalyEvent.OPEN, 12 * MIN, 14 * MIN));
        List<ScoredStep> onlyA = scores().stream().filter(st -> st.deviceId.equals("a")).toList();

        Evaluation.Report report = Evaluation.report(events, LABELS, onlyA, 4f);

        assertThat(report.result().matchedLabels()).isEqualTo(1);
        assertThat(report.medianDelayMs()).isEqualTo(4.0 * MIN);
        assertThat(report.medianDelaySteps()).isNull();
    }

    @Test
    void shouldKeepALabelKindNamedAllApartFromTheTotals() {
        List<Label> labels =
                List.of(
                        new Label("a", 10 * MIN, 20 * MIN, "all", "rpm"),
                        new Label("b", 10 * MIN, 20 * MIN, "stuck", "rpm"));

        Evaluation.Report report = Evaluation.report(EVENTS, labels, scores(), 4f);

        assertThat(report.points().labelled()).isEqualTo(22);
        assertThat(report.points().precision()).isEqualTo(1.0);
        assertThat(report.byKind().get("all").pointRecall()).isEqualTo(9.0 / 11);
    }
}
