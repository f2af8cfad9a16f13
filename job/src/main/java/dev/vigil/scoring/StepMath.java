package dev.vigil.scoring;

import java.nio.FloatBuffer;

/**
 * The arithmetic of one scoring step (DESIGN.md, "Scoring"), shared by the operators, the tests and
 * the golden vectors that training writes: it must stay bit-for-bit what training computes.
 */
public final class StepMath {

    private StepMath() {}

    /** x = (raw - mean) / std, written at {@code offset} of {@code out} (absolute puts). */
    public static void normalise(
            float[] raw, float[] mean, float[] std, FloatBuffer out, int offset) {
        for (int i = 0; i < raw.length; i++) {
            out.put(offset + i, (raw[i] - mean[i]) / std[i]);
        }
    }

    /**
     * Scores the observation against the forecast made at the previous step: per-feature residuals
     * scaled by the card's residual scale, score = their mean square. {@code shares} receives each
     * feature's part of the score (summing to 1, or all 0 for a perfect forecast).
     *
     * @param x normalised observation, read from {@code offset}
     */
    public static float score(
            FloatBuffer x, int offset, float[] forecast, float[] scale, float[] shares) {
        float sum = 0f;
        for (int i = 0; i < forecast.length; i++) {
            float r = (x.get(offset + i) - forecast[i]) / scale[i];
            float sq = r * r;
            shares[i] = sq;
            sum += sq;
        }
        if (sum > 0f) {
            for (int i = 0; i < shares.length; i++) {
                shares[i] /= sum;
            }
        }
        return sum / forecast.length;
    }

    /**
     * Indexes of the {@code k} largest values, largest first, into {@code out}; returns how many
     * were written (fewer when there are fewer values). Ties keep model order.
     */
    public static int topK(float[] values, int k, int[] out) {
        int n = Math.min(k, values.length);
        for (int slot = 0; slot < n; slot++) {
            int best = -1;
            for (int i = 0; i < values.length; i++) {
                if (!taken(out, slot, i) && (best < 0 || values[i] > values[best])) {
                    best = i;
                }
            }
            out[slot] = best;
        }
        return n;
    }

    private static boolean taken(int[] chosen, int count, int index) {
        for (int j = 0; j < count; j++) {
            if (chosen[j] == index) {
                return true;
            }
        }
        return false;
    }
}
