package dev.vigil.scoring;

import java.nio.FloatBuffer;

/**
 * The arithmetic of one scoring step (DESIGN.md, "Scoring"), shared by the operators, the tests and
 * the golden vectors that training writes: it must stay bit-for-bit what training computes.
 */
public final class StepMath {

    private StepMath() {}

    /**
     * x = (raw - mean) / std, clamped to [-bound, bound], written at {@code offset} of {@code out}
     * (absolute puts); returns how many values were clamped. A finite reading can still normalise
     * to infinity (3e38 with a std below 1): the clamp keeps every model input finite.
     */
    public static int normalise(
            float[] raw, float[] mean, float[] std, FloatBuffer out, int offset, float bound) {
        int clamped = 0;
        for (int i = 0; i < raw.length; i++) {
            float x = (raw[i] - mean[i]) / std[i];
            if (!(Math.abs(x) <= bound)) {
                x = x > 0 ? bound : -bound;
                clamped++;
            }
            out.put(offset + i, x);
        }
        return clamped;
    }

    /** Whether every value is finite (a model output or a profile that may be stored). */
    public static boolean allFinite(float[] values) {
        if (values == null) {
            return true;
        }
        for (float v : values) {
            if (!Float.isFinite(v)) {
                return false;
            }
        }
        return true;
    }

    /**
     * The dynamics score: the observation against the forecast made at the previous step, over the
     * target features: per-feature residuals scaled by the card's residual scale, score = their
     * mean square. {@code shares} receives each feature's part of the score, its squared scaled
     * residual (0 for context features); {@link #toShares} makes them shares that sum to 1 over the
     * targets, for a step whose shares are used.
     *
     * @param x normalised observation, read from {@code offset}
     * @param targets indexes of the target features, increasing
     */
    public static float score(
            FloatBuffer x,
            int offset,
            float[] forecast,
            float[] scale,
            int[] targets,
            float[] shares) {
        java.util.Arrays.fill(shares, 0f);
        float sum = 0f;
        for (int i : targets) {
            float r = (x.get(offset + i) - forecast[i]) / scale[i];
            float sq = r * r;
            shares[i] = sq;
            sum += sq;
        }
        return sum / targets.length;
    }

    /** Copies the target features' values of the row at {@code offset} into {@code z}. */
    public static void gatherTargets(FloatBuffer x, int offset, int[] targets, float[] z) {
        for (int j = 0; j < targets.length; j++) {
            z[j] = x.get(offset + targets[j]);
        }
    }

    /**
     * Moves each target's moving average {@code levelMean[j]} towards this step's normalised value
     * {@code z[j]} with weight {@code alpha}; the first step of a profile sets it.
     */
    public static void updateLevelMean(float[] z, float[] levelMean, float alpha, boolean first) {
        for (int j = 0; j < z.length; j++) {
            levelMean[j] = first ? z[j] : levelMean[j] + alpha * (z[j] - levelMean[j]);
        }
    }

    /**
     * Per-device normalisation of the targets: writes each target's fleet-normalised value {@code
     * z[j]} at {@code offset + targets[j]} of {@code out} as (z - mean) / sd in the device's own
     * units, clamped to [-bound, bound]; returns how many were clamped. The device's profile weighs
     * {@code c = profileSteps / learnSteps} (at most 1) against the fleet's (mean 0, variance 1 in
     * these units): mean = c · profileMean, variance = c · valueVar + (1 - c), so the fleet's
     * statistics stand in while the profile is learned and fade out as it is. The sd is at least
     * {@code floor}.
     */
    public static int normaliseByDevice(
            float[] z,
            int[] targets,
            float[] profileMean,
            float[] valueVar,
            int profileSteps,
            int learnSteps,
            float floor,
            FloatBuffer out,
            int offset,
            float bound) {
        float c = profileSteps >= learnSteps ? 1f : (float) profileSteps / learnSteps;
        int clamped = 0;
        for (int j = 0; j < targets.length; j++) {
            float sd = unit(c * valueVar[j] + (1f - c), floor);
            float x = (z[j] - c * profileMean[j]) / sd;
            if (!(Math.abs(x) <= bound)) {
                x = x > 0 ? bound : -bound;
                clamped++;
            }
            out.put(offset + targets[j], x);
        }
        return clamped;
    }

    /**
     * The level score: the largest deviation of a target's moving average from the device's normal
     * value, in the device's own unit (the root of {@code profileVar}, at least {@code floor}).
     * {@code shares} receives each target's part, its squared deviation (0 for context features;
     * {@link #toShares} makes them shares).
     */
    public static float level(
            float[] levelMean,
            float[] profileMean,
            float[] profileVar,
            float floor,
            int[] targets,
            float[] shares) {
        return levelWhileLearning(
                levelMean, profileMean, profileVar, null, 1f, floor, targets, shares);
    }

    /**
     * The level score while the profile is learned: as {@link #level}, against the profile learned
     * so far, in a unit blended from the fleet's: the root of {@code c · profileVar + (1 - c) ·
     * fleetUnit²} (at least {@code floor}), where {@code c} is the share of the profile's steps
     * learned. A profile of a few steps has a variance near 0; the fleet's unit stands in for it
     * and fades out as it is learned. With {@code fleetUnit} null, {@link #level}.
     */
    public static float levelWhileLearning(
            float[] levelMean,
            float[] profileMean,
            float[] profileVar,
            float[] fleetUnit,
            float c,
            float floor,
            int[] targets,
            float[] shares) {
        java.util.Arrays.fill(shares, 0f);
        float max = 0f;
        for (int j = 0; j < targets.length; j++) {
            float variance =
                    fleetUnit == null
                            ? profileVar[j]
                            : c * profileVar[j] + (1f - c) * (fleetUnit[j] * fleetUnit[j]);
            float d = Math.abs(levelMean[j] - profileMean[j]) / unit(variance, floor);
            max = Math.max(max, d);
            shares[targets[j]] = d * d;
        }
        return max;
    }

    /**
     * The correlation score's distance: how far the targets' inputs {@code z} (one per target, as
     * the model sees them) lie from the normal subspace spanned by the {@code components}
     * orthonormal rows of {@code basis} (row-major, one value per target each): the root of |z|²
     * less the squares of its coordinates along the rows, what the subspace leaves of it (in
     * double; the card's rows are orthonormal within 1e-5, so that this is the residual's length
     * that {@code train.py} computes, within as much of |z|²). The per-target parts are {@link
     * #correlationParts}'s, for the steps whose explanation uses them.
     */
    public static float correlation(float[] z, float[] basis, int components) {
        double norm = 0;
        for (float v : z) {
            norm += (double) v * v;
        }
        double kept = 0;
        for (int k = 0; k < components; k++) {
            double p = coordinate(z, basis, k);
            kept += p * p;
        }
        return (float) Math.sqrt(Math.max(0.0, norm - kept));
    }

    /**
     * Each target's part of {@link #correlation}: {@code parts[targets[j]]} receives the square of
     * what the subspace leaves of target j, {@code z[j]} less its projection on the rows ({@code
     * projection} receives the coordinates); context features' parts are left as they are. The
     * parts sum to the distance's square; {@link #toShares} makes them shares.
     */
    public static void correlationParts(
            float[] z,
            float[] basis,
            int components,
            float[] projection,
            int[] targets,
            float[] parts) {
        int n = z.length;
        for (int k = 0; k < components; k++) {
            projection[k] = (float) coordinate(z, basis, k);
        }
        for (int j = 0; j < n; j++) {
            float r = z[j];
            for (int k = 0; k < components; k++) {
                r -= projection[k] * basis[k * n + j];
            }
            parts[targets[j]] = r * r;
        }
    }

    /** The coordinate of {@code z} along row {@code k} of {@code basis}, in double. */
    private static double coordinate(float[] z, float[] basis, int k) {
        int n = z.length;
        int row = k * n;
        double p = 0;
        for (int j = 0; j < n; j++) {
            p += (double) basis[row + j] * z[j];
        }
        return p;
    }

    /**
     * Turns the targets' parts into shares of their sum, added in the targets' order (left as they
     * are when the sum is 0, or not a number).
     */
    public static void toShares(float[] shares, int[] targets) {
        float sum = 0f;
        for (int i : targets) {
            sum += shares[i];
        }
        if (sum > 0f) {
            for (int i : targets) {
                shares[i] /= sum;
            }
        }
    }

    private static float unit(float variance, float floor) {
        float sd = (float) Math.sqrt(variance);
        return sd > floor ? sd : floor;
    }

    /**
     * Learns one step into the device's profile: while {@code steps} (before this one) is below
     * {@code profileSteps}, the running mean and mean squares (Welford); after that an exponential
     * average with weight {@code beta}. The mean learns the observation {@code z}; {@code
     * profileVar} the moving average's deviation from the updated mean; {@code valueVar} (when not
     * null: per-device normalisation) the observation's.
     */
    public static void learnProfile(
            float[] z,
            float[] levelMean,
            float[] profileMean,
            float[] profileVar,
            float[] valueVar,
            int steps,
            int profileSteps,
            float beta) {
        float w = steps < profileSteps ? 1f / (steps + 1) : beta;
        for (int j = 0; j < z.length; j++) {
            profileMean[j] += w * (z[j] - profileMean[j]);
            float dm = levelMean[j] - profileMean[j];
            profileVar[j] += w * (dm * dm - profileVar[j]);
            if (valueVar != null) {
                float dv = z[j] - profileMean[j];
                valueVar[j] += w * (dv * dv - valueVar[j]);
            }
        }
    }

    /**
     * The smallest variance of a target's log variability: a target that never moved in its learned
     * steps (a constant, or one held at the floor) measures others in spreads of 0.1.
     */
    public static final float VARIABILITY_MIN_VAR = 0.01f;

    /**
     * Moves each target's variability by one step ({@code training/train.py} {@code
     * variability_stream}): its change {@code d} from {@code last} (0 at a device's first step
     * after a start or reset, {@code first}), the moving average of {@code d²} with weight {@code
     * alpha}, and into {@code logs} the log of that plus {@code floorSquared}; {@code last} takes
     * {@code z}.
     */
    public static void updateVariability(
            float[] z,
            float[] last,
            float[] meanSquare,
            float alpha,
            float floorSquared,
            boolean first,
            float[] logs) {
        for (int j = 0; j < z.length; j++) {
            float d = first ? 0f : z[j] - last[j];
            last[j] = z[j];
            meanSquare[j] += alpha * (d * d - meanSquare[j]);
            logs[j] = (float) Math.log(meanSquare[j] + floorSquared);
        }
    }

    /**
     * The variability score once its profile is learned: the largest over targets of {@code |log -
     * mean| / sqrt(var)}, each target's distance into {@code distances} (which {@link
     * #adaptVariability} gates on) and its square, its part, into {@code shares} ({@link
     * #toShares}).
     */
    public static float variability(
            float[] logs,
            float[] mean,
            float[] var,
            int[] targets,
            float[] distances,
            float[] shares) {
        java.util.Arrays.fill(shares, 0f);
        float max = 0f;
        for (int j = 0; j < targets.length; j++) {
            float d = Math.abs(logs[j] - mean[j]) / (float) Math.sqrt(var[j]);
            distances[j] = d;
            max = Math.max(max, d);
            shares[targets[j]] = d * d;
        }
        return max;
    }

    /**
     * Learns one step into the variability profile while it is learned: Welford's running mean and
     * sum of squares, {@code learned} steps before this one; at the {@code last} step the sum
     * becomes the mean square, at least {@link #VARIABILITY_MIN_VAR}.
     */
    public static void learnVariability(
            float[] logs, float[] mean, float[] var, int learned, boolean last) {
        float w = 1f / (learned + 1);
        for (int j = 0; j < logs.length; j++) {
            float dl = logs[j] - mean[j];
            mean[j] += w * dl;
            var[j] += dl * (logs[j] - mean[j]);
            if (last) {
                var[j] = Math.max(var[j] * w, VARIABILITY_MIN_VAR);
            }
        }
    }

    /**
     * Adapts the learned variability profile with weight {@code beta}, target by target, where the
     * target's own distance (as {@link #variability} left it in {@code distances}) divided by
     * {@code scale} is at or below {@code threshold}: a lasting change never becomes the device's
     * normal.
     */
    public static void adaptVariability(
            float[] logs,
            float[] distances,
            float[] mean,
            float[] var,
            float beta,
            float scale,
            float threshold) {
        for (int j = 0; j < logs.length; j++) {
            if (!(distances[j] / scale > threshold)) {
                float m = mean[j] + beta * (logs[j] - mean[j]);
                float dv = logs[j] - m;
                mean[j] = m;
                var[j] = Math.max(var[j] + beta * (dv * dv - var[j]), VARIABILITY_MIN_VAR);
            }
        }
    }

    /**
     * The weight of each new step in a mean that forgets with a half-life of {@code halfLifeSteps}
     * steps ({@code 1 - 0.5^(1/halfLifeSteps)}); 0 for none (0 or less: the mean never moves).
     */
    public static float halfLifeRate(int halfLifeSteps) {
        return halfLifeSteps <= 0 ? 0f : (float) (1 - Math.pow(0.5, 1.0 / halfLifeSteps));
    }

    /**
     * How many times the mean of the other blocks a block's mean square must exceed to be left out
     * of the level (one of the largest two). Probed at 3, 5, 10 and 20 (EVALUATION.md): 5 to 20
     * gave the same on SMAP, MSL and the synthetic fleet.
     */
    public static final float LEVEL_OUTLIER = 10f;

    /**
     * The blocks a level learned over {@code steps} steps is cut into: the card's {@code blocks},
     * at most one per step.
     */
    public static int levelBlocks(int steps, int blocks) {
        return Math.min(blocks, steps);
    }

    /**
     * The block (from 0) the {@code i}-th learned step (from 0) falls in: blocks of near equal
     * length.
     */
    public static int levelBlock(int i, int steps, int blocks) {
        return (int) ((long) i * levelBlocks(steps, blocks) / steps);
    }

    /** The first step (from 0) of block {@code block}. */
    public static int levelBlockStart(int block, int steps, int blocks) {
        int n = levelBlocks(steps, blocks);
        return (int) (((long) block * steps + n - 1) / n);
    }

    /**
     * Adds a completed block's mean square to {@code blocks}: {sum, largest, second largest} of the
     * blocks so far.
     */
    public static void addLevelBlock(float[] blocks, float meanSquare) {
        blocks[0] += meanSquare;
        if (meanSquare > blocks[1]) {
            blocks[2] = blocks[1];
            blocks[1] = meanSquare;
        } else if (meanSquare > blocks[2]) {
            blocks[2] = meanSquare;
        }
    }

    /**
     * The level (mean square) of {@code count} completed blocks: their mean, leaving out the
     * largest, and the second largest, when above {@link #LEVEL_OUTLIER} times the mean of the
     * other blocks. With two blocks or fewer, their plain mean.
     */
    public static float trimmedLevel(float[] blocks, int count) {
        float sum = blocks[0];
        if (count <= 2) {
            return sum / count;
        }
        float rest = Math.max(0f, sum - blocks[1] - blocks[2]) / (count - 2);
        float kept = sum;
        int n = count;
        if (blocks[1] > LEVEL_OUTLIER * rest) {
            kept -= blocks[1];
            n--;
        }
        if (blocks[2] > LEVEL_OUTLIER * rest) {
            kept -= blocks[2];
            n--;
        }
        return Math.max(0f, kept / n);
    }

    /**
     * What a device's dynamics score is divided by under the card's per-device scale: {@code
     * max(floor, min(ceiling, sqrt(meanSquare) / rms))}, the device's root mean square of the score
     * over the fleet's. Never below {@code floor} (at most 1): a device quieter than the fleet is
     * made at most {@code 1 / floor} times as sensitive (with {@code floor} 1, it keeps the fleet's
     * scale); never above {@code ceiling} (at least 1; infinite for none): a device noisier than
     * the fleet, or one that learned its level while faulty, is made at most that many times less
     * sensitive.
     */
    public static float deviceDivisor(float meanSquare, float rms, float floor, float ceiling) {
        float ratio = Math.min((float) Math.sqrt(meanSquare) / rms, ceiling);
        return ratio > floor ? ratio : floor;
    }

    /**
     * The stuck score: counts, per target, the consecutive steps that repeated the raw value
     * exactly ({@code runs[j]} is -1 before the first value), remembers this step's values, and
     * returns the longest run; {@code shares} receives 1 for the target(s) with that run (split
     * evenly), 0 elsewhere.
     */
    public static float unchangedRun(
            float[] raw, int[] targets, float[] lastValues, int[] runs, float[] shares) {
        int longest = 0;
        for (int j = 0; j < targets.length; j++) {
            float v = raw[targets[j]];
            // Bits, not ==: a repeated NaN never reaches here, and -0.0 and 0.0 are two readings.
            boolean same =
                    runs[j] >= 0 && Float.floatToIntBits(v) == Float.floatToIntBits(lastValues[j]);
            // A run stops counting at the largest int: wrapping to a negative count would end it.
            runs[j] = same ? (runs[j] == Integer.MAX_VALUE ? runs[j] : runs[j] + 1) : 0;
            lastValues[j] = v;
            longest = Math.max(longest, runs[j]);
        }
        java.util.Arrays.fill(shares, 0f);
        if (longest > 0) {
            int ties = 0;
            for (int run : runs) {
                ties += run == longest ? 1 : 0;
            }
            for (int j = 0; j < targets.length; j++) {
                shares[targets[j]] = runs[j] == longest ? 1f / ties : 0f;
            }
        }
        return longest;
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
