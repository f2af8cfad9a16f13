package dev.vigil.bench;

import dev.vigil.model.ModelCard;
import dev.vigil.scoring.DriftWindow;
import dev.vigil.scoring.StepMath;
import java.nio.FloatBuffer;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * What the score components cost per event, at 16 target features, on the arithmetic the operators
 * run ({@link StepMath}): the forecast residual alone (what every card pays) and the residual plus
 * the level score (move the moving average, score against the profile, learn the step), side by
 * side. The difference is the level score's cost per event, before state bytes. The stuck score and
 * per-device normalisation (the targets normalised again by the device's profile, which then also
 * learns the device's spread) are each measured on top of the level score; the per-device scale of
 * the forecast residual on top of the residual alone. While a device learns (cards since 0.7.0):
 * the level against the profile so far, and the residual held to the blocks learned so far.
 *
 * <p>Each component's shares are left as parts, as the operators leave them on a step out of an
 * episode (until 2026-12-03 every step divided them, and these figures included it). On one state
 * that stays in the core's caches: {@code ScorerBenchmark} times the scorer as a fleet runs it.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class ScoreComponentsBenchmark {

    @Param({"16"})
    public int features;

    private FloatBuffer x;
    private float[] forecast;
    private float[] scale;
    private int[] targets;
    private float[] shares;
    private float[] levelShares;
    private float[] levelMean;
    private float[] profileMean;
    private float[] profileVar;
    private float[] valueVar;
    private float[] z;
    private FloatBuffer byDevice;
    private float[] raw;
    private float[] lastValues;
    private int[] runs;
    private float[] runShares;
    private int step;
    private DriftWindow drift;
    private float[] fleetUnit;
    private float[] blocks;
    private float[] variabilityLast;
    private float[] variabilityMeanSquare;
    private float[] variabilityMean;
    private float[] variabilityVar;
    private float[] variabilityLogs;
    private float[] variabilityDistances;
    private float[] variabilityShares;
    private float[] basis;

    @Setup(Level.Trial)
    public void setUp() {
        SplittableRandom r = new SplittableRandom(3);
        x = FloatBuffer.allocate(features * 64);
        for (int i = 0; i < x.capacity(); i++) {
            x.put(i, (float) r.nextGaussian());
        }
        forecast = new float[features];
        scale = new float[features];
        profileMean = new float[features];
        profileVar = new float[features];
        levelMean = new float[features];
        valueVar = new float[features];
        z = new float[features];
        byDevice = FloatBuffer.allocate(features);
        for (int i = 0; i < features; i++) {
            forecast[i] = (float) r.nextGaussian() * 0.1f;
            scale[i] = 0.05f;
            profileVar[i] = 0.04f;
            valueVar[i] = 0.8f;
        }
        targets = java.util.stream.IntStream.range(0, features).toArray();
        fleetUnit = new float[features];
        java.util.Arrays.fill(fleetUnit, 0.2f);
        blocks = new float[3];
        for (float meanSquare : new float[] {0.04f, 0.05f, 0.9f, 0.03f, 0.06f}) {
            StepMath.addLevelBlock(blocks, meanSquare);
        }
        variabilityLast = new float[features];
        variabilityMeanSquare = new float[features];
        variabilityMean = new float[features];
        variabilityVar = new float[features];
        variabilityLogs = new float[features];
        variabilityDistances = new float[features];
        variabilityShares = new float[features];
        java.util.Arrays.fill(variabilityMean, -4f);
        java.util.Arrays.fill(variabilityVar, 0.25f);
        // 4 directions (bench/model's card has 4 of 16): rows of a Hadamard matrix, orthonormal
        basis = new float[4 * features];
        for (int k = 0; k < 4; k++) {
            for (int j = 0; j < features; j++) {
                basis[k * features + j] =
                        (Integer.bitCount(k & j) % 2 == 0 ? 1f : -1f) / (float) Math.sqrt(features);
            }
        }
        shares = new float[features];
        levelShares = new float[features];
        raw = new float[features];
        lastValues = new float[features];
        runs = new int[features];
        runShares = new float[features];
        java.util.List<ModelCard.Feature> cardFeatures = new java.util.ArrayList<>();
        float[] edges = {-1.28f, -0.84f, -0.52f, -0.25f, 0f, 0.25f, 0.52f, 0.84f, 1.28f};
        float[] tenths = new float[10];
        java.util.Arrays.fill(tenths, 0.1f);
        for (int i = 0; i < features; i++) {
            cardFeatures.add(
                    new ModelCard.Feature(
                            "f" + i,
                            0f,
                            1f,
                            1f,
                            ModelCard.Role.TARGET,
                            new ModelCard.Bins(edges, tenths)));
        }
        drift =
                new DriftWindow(
                        new ModelCard(
                                "bench",
                                64,
                                cardFeatures,
                                1f,
                                20,
                                4.5f,
                                null,
                                null,
                                null,
                                4.5f,
                                null,
                                0L),
                        10_000);
    }

    /** The next of 64 prepared observations, so that no two calls see the same row. */
    private int offset() {
        step = (step + 1) & 63;
        return step * features;
    }

    @Benchmark
    public float dynamicsOnly() {
        return StepMath.score(x, offset(), forecast, scale, targets, shares);
    }

    /**
     * The forecast residual held to the device's own level once learned (a card's {@code
     * score.dynamics.device_steps}): what {@link #dynamicsOnly()} costs plus the divisor.
     */
    @Benchmark
    public float dynamicsScaledByDevice() {
        float dynamics = StepMath.score(x, offset(), forecast, scale, targets, shares) / 4.5f;
        return dynamics / StepMath.deviceDivisor(0.16f + (step & 7) * 0.01f, 0.3f, 1f, 4f);
    }

    /**
     * While the device learns its level of forecast residual (a card's {@code
     * device_learning_blocks}): the divisor from the blocks so far, 5 of 10 complete.
     */
    @Benchmark
    public float dynamicsScaledByBlocksSoFar() {
        float dynamics = StepMath.score(x, offset(), forecast, scale, targets, shares) / 4.5f;
        int complete = StepMath.levelBlock(500 + (step & 63), 1000, 10);
        return dynamics
                / StepMath.deviceDivisor(StepMath.trimmedLevel(blocks, complete), 0.3f, 0.5f, 4f);
    }

    @Benchmark
    public float dynamicsAndLevel() {
        return dynamicsAndLevel(offset());
    }

    /**
     * While the profile is learned (a card's {@code score.level.learning}): the level against the
     * profile so far, in a unit blended from the fleet's, and the step learned by the running mean.
     */
    @Benchmark
    public float dynamicsAndLevelWhileLearning() {
        int offset = offset();
        float dynamics = StepMath.score(x, offset, forecast, scale, targets, shares);
        StepMath.gatherTargets(x, offset, targets, z);
        StepMath.updateLevelMean(z, levelMean, 2f / 61, false);
        float level =
                StepMath.levelWhileLearning(
                        levelMean,
                        profileMean,
                        profileVar,
                        fleetUnit,
                        0.5f,
                        0.01f,
                        targets,
                        levelShares);
        StepMath.learnProfile(z, levelMean, profileMean, profileVar, null, 500, 1000, 3.5e-4f);
        return Math.max(dynamics / 4.5f, level / 5f);
    }

    private float dynamicsAndLevel(int offset) {
        float dynamics = StepMath.score(x, offset, forecast, scale, targets, shares);
        StepMath.gatherTargets(x, offset, targets, z);
        StepMath.updateLevelMean(z, levelMean, 2f / 61, false);
        float level =
                StepMath.level(levelMean, profileMean, profileVar, 0.01f, targets, levelShares);
        StepMath.learnProfile(z, levelMean, profileMean, profileVar, null, 5000, 1000, 3.5e-4f);
        return Math.max(dynamics / 4.5f, level / 4.1f);
    }

    /** The drift window's share of a step (README, "Drift"): on top of whatever the card scores. */
    @Benchmark
    public long drift() {
        int offset = offset();
        x.get(offset, raw);
        drift.observe(raw, forecast[step & 15]);
        return drift.windows();
    }

    /**
     * The correlation score on top of the forecast residual and the level (a card with {@code
     * score.correlation}, 0.9.0): the targets' distance from a normal subspace of 4 directions (a
     * step out of an episode: its parts are not computed).
     */
    @Benchmark
    public float dynamicsLevelAndCorrelation() {
        float score = dynamicsAndLevel(offset());
        return Math.max(score, StepMath.correlation(z, basis, 4) / 2f);
    }

    @Benchmark
    public float dynamicsLevelAndStuck() {
        int offset = offset();
        float score = dynamicsAndLevel(offset);
        x.get(offset, raw); // the raw values the stuck score compares
        float run = StepMath.unchangedRun(raw, targets, lastValues, runs, runShares);
        return Math.max(score, run / 2f);
    }

    /**
     * The variability score on top of the forecast residual, the level and the stuck score (what a
     * card from {@code ./vigil train} since 0.8.0 scores): each target's change and its moving
     * average, one log per target, the distance from the learned profile, and its adaptation.
     */
    @Benchmark
    public float dynamicsLevelStuckAndVariability() {
        int offset = offset();
        float score = dynamicsAndLevel(offset);
        x.get(offset, raw);
        float run = StepMath.unchangedRun(raw, targets, lastValues, runs, runShares);
        StepMath.updateVariability(
                z, variabilityLast, variabilityMeanSquare, 2f / 51, 0.01f, false, variabilityLogs);
        float variability =
                StepMath.variability(
                        variabilityLogs,
                        variabilityMean,
                        variabilityVar,
                        targets,
                        variabilityDistances,
                        variabilityShares);
        StepMath.adaptVariability(
                variabilityLogs,
                variabilityDistances,
                variabilityMean,
                variabilityVar,
                3.5e-4f,
                4.7f,
                1f);
        return Math.max(Math.max(score, run / 2f), variability / 4.7f);
    }

    @Benchmark
    public float dynamicsAndLevelByDevice() {
        int offset = offset();
        StepMath.gatherTargets(x, offset, targets, z);
        StepMath.updateLevelMean(z, levelMean, 2f / 61, false);
        float level =
                StepMath.level(levelMean, profileMean, profileVar, 0.01f, targets, levelShares);
        StepMath.normaliseByDevice(
                z, targets, profileMean, valueVar, 1000, 1000, 0.1f, byDevice, 0, 1000f);
        float dynamics = StepMath.score(byDevice, 0, forecast, scale, targets, shares);
        StepMath.learnProfile(z, levelMean, profileMean, profileVar, valueVar, 5000, 1000, 3.5e-4f);
        return Math.max(dynamics / 4.5f, level / 4.1f);
    }
}
