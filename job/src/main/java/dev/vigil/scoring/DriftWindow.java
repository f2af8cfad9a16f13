package dev.vigil.scoring;

import dev.vigil.model.ModelCard;
import java.util.Arrays;

/**
 * The fleet's input and scores against what training saw (README, "Drift"), over consecutive
 * windows of {@code windowSteps} scored steps: per feature the mean's shift in training standard
 * deviations and the population stability index over the card's bins, and the share of steps whose
 * forecast residual lies above its calibration q0.99 (about 1 % for the data the model was trained
 * on). Each figure is that of the last complete window; NaN before the first, and for what the card
 * does not say (bins, the quantile). One per scoring subtask: it sees the devices keyed to it. The
 * steps counted in each bin so far (every complete window's) are published too: the fleet's index
 * over a span of time is that of the subtasks' counts summed over it, weighted by their traffic,
 * not the average of their indices. Observing a step allocates nothing.
 */
public final class DriftWindow {

    /**
     * Shares below this count as this much in the index, so an empty bin does not make it infinite.
     */
    static final double MIN_SHARE = 1e-4;

    /**
     * A step counts at most this many training standard deviations from the card's mean in the mean
     * shift (the model's own input is clamped by default at the same, {@code
     * vigil.scoring.max-abs-normalised}): one absurd but finite reading moves a window of 10,000
     * steps by at most 0.1, where it would page on its own, and no reading makes the mean infinite
     * or NaN.
     */
    static final double MAX_DEVIATION_STDS = 1000;

    private final int windowSteps;
    private final float[] mean;
    // 1 / the card's std per feature: a multiplication per feature and step, not a division
    private final double[] inverseStd;
    private final float[][] edges; // per feature, null without bins
    private final float[][] expected;
    private final float quantile99;

    // the window being filled
    private int steps;
    private final double[] sums;
    private final int[][] counts;
    private int residuals;
    private int residualsAbove;

    // the last complete window's figures, read by the metrics reporter's thread
    private final float[] meanShift;
    private final float[] psi;
    private final float[][] shares; // per feature and bin, null without bins: the index's input
    private final long[][] binSteps; // per feature and bin, null without bins: every window's
    private volatile float shareAboveQuantile99 = Float.NaN;
    private volatile long windows;

    public DriftWindow(ModelCard card, int windowSteps) {
        if (windowSteps < 1) {
            throw new IllegalArgumentException("a drift window needs at least one step");
        }
        this.windowSteps = windowSteps;
        int n = card.featureCount();
        mean = card.mean();
        inverseStd = new double[n];
        for (int f = 0; f < n; f++) {
            inverseStd[f] = 1.0 / card.std()[f];
        }
        edges = new float[n][];
        expected = new float[n][];
        counts = new int[n][];
        for (int f = 0; f < n; f++) {
            ModelCard.Bins bins = card.features().get(f).bins();
            if (bins != null) {
                edges[f] = bins.edges();
                expected[f] = bins.shares();
                counts[f] = new int[bins.shares().length];
            }
        }
        quantile99 = card.dynamicsQuantile99();
        sums = new double[n];
        meanShift = new float[n];
        psi = new float[n];
        shares = new float[n][];
        binSteps = new long[n][];
        Arrays.fill(meanShift, Float.NaN);
        Arrays.fill(psi, Float.NaN);
        for (int f = 0; f < n; f++) {
            if (counts[f] != null) {
                shares[f] = new float[counts[f].length];
                binSteps[f] = new long[counts[f].length];
            }
        }
    }

    /**
     * One scored step: its raw values in model order and its raw forecast-residual score (NaN for a
     * step without one: a device's first).
     */
    public void observe(float[] raw, float residualScore) {
        for (int f = 0; f < raw.length; f++) {
            double z = ((double) raw[f] - mean[f]) * inverseStd[f];
            sums[f] += Math.max(-MAX_DEVIATION_STDS, Math.min(MAX_DEVIATION_STDS, z));
            if (edges[f] != null) {
                counts[f][bin(edges[f], raw[f])]++;
            }
        }
        observeResidual(residualScore);
        if (++steps == windowSteps) {
            close();
        }
    }

    /**
     * A raw forecast-residual score on its own (NaN: none), for a caller that reads steps and
     * scores apart (the demo's report); {@link #observe} counts the step's own.
     */
    public void observeResidual(float residualScore) {
        if (!Float.isNaN(residualScore)) {
            residuals++;
            if (residualScore > quantile99) {
                residualsAbove++;
            }
        }
    }

    /** Publishes the window so far (if it has a step) and starts the next. */
    public void close() {
        if (steps == 0) {
            return;
        }
        for (int f = 0; f < sums.length; f++) {
            meanShift[f] = (float) (sums[f] / steps);
            if (edges[f] != null) {
                for (int b = 0; b < counts[f].length; b++) {
                    shares[f][b] = (float) counts[f][b] / steps;
                    binSteps[f][b] += counts[f][b];
                }
                psi[f] = (float) psi(shares[f], expected[f]);
                Arrays.fill(counts[f], 0);
            }
            sums[f] = 0;
        }
        shareAboveQuantile99 =
                residuals == 0 || Float.isNaN(quantile99)
                        ? Float.NaN
                        : (float) residualsAbove / residuals;
        steps = 0;
        residuals = 0;
        residualsAbove = 0;
        windows++; // volatile write: publishes the arrays above to the reporter's thread
    }

    /**
     * The bin of {@code v}: the number of edges below it (the card's edges increase), counted over
     * every edge without a branch on the value, which no predictor could guess.
     */
    static int bin(float[] edges, float v) {
        int b = 0;
        for (float edge : edges) {
            b += v > edge ? 1 : 0;
        }
        return b;
    }

    /**
     * Σ (actual − expected) · ln(actual / expected) over the bins' shares, each floored at {@link
     * #MIN_SHARE} (as the rule {@code vigil:feature_drift_psi:fleet} does).
     */
    static double psi(float[] actual, float[] expected) {
        double sum = 0;
        for (int b = 0; b < actual.length; b++) {
            double a = Math.max(actual[b], MIN_SHARE);
            double e = Math.max(expected[b], MIN_SHARE);
            sum += (a - e) * Math.log(a / e);
        }
        return sum;
    }

    /**
     * The mean of feature {@code f} in the last window, in training standard deviations from its
     * training mean.
     */
    public float meanShift(int f) {
        return windows == 0 ? Float.NaN : meanShift[f];
    }

    /** The population stability index of feature {@code f} in the last window; NaN without bins. */
    public float psi(int f) {
        return windows == 0 ? Float.NaN : psi[f];
    }

    /** Whether the card has bins for feature {@code f}. */
    public boolean hasBins(int f) {
        return edges[f] != null;
    }

    /** The card's number of bins for feature {@code f} (0 without bins). */
    public int bins(int f) {
        return expected[f] == null ? 0 : expected[f].length;
    }

    /**
     * The steps of every complete window so far in bin {@code b} of feature {@code f}: a counter,
     * which grows by a window at a time.
     */
    public long binSteps(int f, int b) {
        return binSteps[f][b];
    }

    /** The share of training steps in bin {@code b} of feature {@code f} (the card's). */
    public float expectedShare(int f, int b) {
        return expected[f][b];
    }

    /** The share of the last window's residual scores above the card's q0.99. */
    public float shareAboveQuantile99() {
        return shareAboveQuantile99;
    }

    /** Windows completed so far. */
    public long windows() {
        return windows;
    }
}
