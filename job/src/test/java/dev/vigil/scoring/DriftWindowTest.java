package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.model.ModelCard;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.TelemetryParser;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The drift figures on the fleet the committed model was trained on: still for a day of its normal
 * input, moving on one feature when that feature is shifted by one training standard deviation.
 */
class DriftWindowTest {

    private static final ModelCard CARD = Fixtures.model().card();

    /** The first day of the training fleet's 24 pumps (the card's bins come from all four). */
    private static List<TelemetryEvent> day;

    @BeforeAll
    static void generateADayOfTheTrainingFleet(@TempDir Path dir) throws Exception {
        new FleetGenerator(new FleetGenerator.Spec(20261125L, 24, 1440, 1, 0)).writeTo(dir);
        TelemetryParser parser = new TelemetryParser(CARD.featureNames());
        day = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("train.jsonl"))) {
            TelemetryEvent e = parser.parse(line.getBytes(StandardCharsets.UTF_8)).event();
            if (e != null) {
                day.add(e);
            }
        }
        assertThat(day).hasSizeGreaterThan(30_000);
    }

    private static DriftWindow over(List<TelemetryEvent> events, int shifted, float byStds) {
        DriftWindow w = new DriftWindow(CARD, events.size());
        feed(w, events, shifted, byStds);
        assertThat(w.windows()).isEqualTo(1);
        return w;
    }

    private static void feed(
            DriftWindow w, List<TelemetryEvent> events, int shifted, float byStds) {
        float[] values = new float[CARD.featureCount()];
        for (TelemetryEvent e : events) {
            System.arraycopy(e.values, 0, values, 0, values.length);
            if (shifted >= 0) {
                values[shifted] += byStds * CARD.std()[shifted];
            }
            w.observe(values, Float.NaN);
        }
    }

    /**
     * Two subtasks whose devices drifted apart, one up and busy (ten windows), one down and quiet
     * (one window): the fleet's index is that of their bins' steps summed (as one window over both
     * subtasks' steps), which is what the rule {@code vigil:feature_drift_psi:fleet} computes from
     * the published counters, not the average of the two indices (1.94 here against 0.78), which
     * weighs the quiet subtask as much as the busy one.
     */
    @Test
    void shouldGiveTheFleetsIndexFromTheSubtasksBinStepsSummed() {
        int f = CARD.featureNames().indexOf("pressure_bar");
        int w = 3_000;
        List<TelemetryEvent> busy = day.subList(0, 10 * w);
        List<TelemetryEvent> quiet = day.subList(10 * w, 11 * w);
        DriftWindow up = new DriftWindow(CARD, w);
        feed(up, busy, f, 1f);
        DriftWindow down = new DriftWindow(CARD, w);
        feed(down, quiet, f, -1f);
        DriftWindow fleet = new DriftWindow(CARD, 11 * w);
        feed(fleet, busy, f, 1f);
        feed(fleet, quiet, f, -1f);
        assertThat(up.windows()).isEqualTo(10);
        assertThat(down.windows()).isEqualTo(1);
        assertThat(fleet.windows()).isEqualTo(1);

        int bins = CARD.features().get(f).bins().shares().length;
        assertThat(up.bins(f)).isEqualTo(bins);
        float[] summed = new float[bins];
        float[] expected = new float[bins];
        long total = 0;
        for (int b = 0; b < bins; b++) {
            long steps = up.binSteps(f, b) + down.binSteps(f, b);
            assertThat(steps).isEqualTo(fleet.binSteps(f, b));
            summed[b] = (float) steps / (11 * w);
            expected[b] = up.expectedShare(f, b);
            assertThat(expected[b]).isEqualTo(CARD.features().get(f).bins().shares()[b]);
            total += steps;
        }
        assertThat(total).isEqualTo(11L * w);
        assertThat((float) DriftWindow.psi(summed, expected))
                .isCloseTo(fleet.psi(f), within(1e-4f));
        // the busy subtask's drift dominates the fleet; the mean of the indices says otherwise
        assertThat(up.psi(f)).isGreaterThan(0.25f);
        assertThat(down.psi(f)).isGreaterThan(0.25f);
        assertThat(fleet.psi(f)).isGreaterThan(0.25f);
        assertThat(Math.abs(fleet.psi(f) - (up.psi(f) + down.psi(f)) / 2)).isGreaterThan(0.05f);
        assertThat(new DriftWindow(CARD, 10).binSteps(f, 0)).isZero(); // before the first window
    }

    @Test
    void shouldStayStillOnTheTrainingFleetsOwnInput() {
        DriftWindow w = over(day, -1, 0f);

        for (int f = 0; f < CARD.featureCount(); f++) {
            assertThat(CARD.features().get(f).bins()).isNotNull();
            assertThat(w.meanShift(f)).as(CARD.names()[f]).isBetween(-0.2f, 0.2f);
            assertThat(w.psi(f)).as(CARD.names()[f]).isBetween(0f, 0.05f);
        }
    }

    @Test
    void shouldMoveOnTheFeatureShiftedByOneTrainingStandardDeviation() {
        DriftWindow still = over(day, -1, 0f);
        int shifted = CARD.featureNames().indexOf("pressure_bar");
        DriftWindow w = over(day, shifted, 1f);

        assertThat(w.meanShift(shifted) - still.meanShift(shifted)).isCloseTo(1f, within(1e-3f));
        assertThat(w.psi(shifted)).isGreaterThan(0.25f); // "significant" by the usual reading
        for (int f = 0; f < CARD.featureCount(); f++) {
            if (f != shifted) {
                assertThat(w.meanShift(f)).isEqualTo(still.meanShift(f));
                assertThat(w.psi(f)).isEqualTo(still.psi(f));
            }
        }
    }

    @Test
    void shouldCountTheResidualScoresAboveTheCardsQuantile() {
        float q99 = CARD.dynamicsQuantile99();
        assertThat(q99).isPositive();
        DriftWindow w = new DriftWindow(CARD, 1_000);
        float[] values = CARD.mean().clone();
        for (int i = 0; i < 999; i++) {
            assertThat(w.shareAboveQuantile99()).isNaN(); // nothing before the first window
            w.observe(values, i % 50 == 0 ? q99 * 2 : q99 / 2); // 20 of 1,000 above
        }
        w.observe(values, Float.NaN); // a device's first step: no residual
        assertThat(w.shareAboveQuantile99()).isEqualTo(20f / 999);
        assertThat(w.meanShift(0)).isZero();
    }

    @Test
    void shouldNotLetOneAbsurdReadingMoveTheMean() {
        DriftWindow w = new DriftWindow(CARD, 10_000);
        float[] values = CARD.mean().clone();
        float[] glitch = CARD.mean().clone();
        glitch[0] = 1e9f; // finite, so scored (clamped for the model) and observed
        glitch[1] = Float.MAX_VALUE;
        float[] other = CARD.mean().clone();
        other[1] = -Float.MAX_VALUE;
        w.observe(glitch, Float.NaN);
        w.observe(other, Float.NaN);
        for (int i = 2; i < 10_000; i++) {
            w.observe(values, Float.NaN);
        }
        assertThat(w.meanShift(0)).isPositive().isLessThanOrEqualTo(0.1f); // not a page (1 std)
        assertThat(w.meanShift(1)).isZero(); // finite: the two cancel, nothing is infinite
    }

    @Test
    void shouldPutAValueInTheBinOfTheEdgesBelowIt() {
        float[] edges = {0f, 1f};
        assertThat(DriftWindow.bin(edges, -1f)).isZero();
        assertThat(DriftWindow.bin(edges, 0f)).isZero();
        assertThat(DriftWindow.bin(edges, 0.5f)).isEqualTo(1);
        assertThat(DriftWindow.bin(edges, 1f)).isEqualTo(1);
        assertThat(DriftWindow.bin(edges, 7f)).isEqualTo(2);
        assertThat(DriftWindow.bin(edges, Float.NaN)).isZero(); // above no edge
        assertThat(DriftWindow.bin(new float[] {-3f, 0f, 0.25f, 2f}, 0.3f)).isEqualTo(3);
        assertThat(DriftWindow.psi(new float[] {0.5f, 0.5f}, new float[] {0.5f, 0.5f})).isZero();
    }
}
