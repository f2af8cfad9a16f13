package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.nio.FloatBuffer;
import org.junit.jupiter.api.Test;

class StepMathTest {

    @Test
    void shouldNormaliseWithTheCardsMeanAndStd() {
        FloatBuffer out = FloatBuffer.allocate(6);

        int clamped =
                StepMath.normalise(
                        new float[] {12f, 0f},
                        new float[] {10f, 1f},
                        new float[] {2f, 4f},
                        out,
                        4,
                        1000f);

        assertThat(out.get(4)).isEqualTo(1f);
        assertThat(out.get(5)).isEqualTo(-0.25f);
        assertThat(clamped).isZero();
    }

    @Test
    void shouldClampAFiniteReadingThatNormalisesBeyondTheBoundOrToInfinity() {
        FloatBuffer out = FloatBuffer.allocate(3);

        // 3e38 / 0.5 overflows to infinity; -5000 lies 5000 stds below the mean
        int clamped =
                StepMath.normalise(
                        new float[] {3e38f, -5000f, 2f},
                        new float[] {0f, 0f, 0f},
                        new float[] {0.5f, 1f, 1f},
                        out,
                        0,
                        1000f);

        assertThat(clamped).isEqualTo(2);
        assertThat(out.get(0)).isEqualTo(1000f);
        assertThat(out.get(1)).isEqualTo(-1000f);
        assertThat(out.get(2)).isEqualTo(2f);
    }

    @Test
    void shouldTellAFiniteArrayFromOneWithANaNOrInfinity() {
        assertThat(StepMath.allFinite(new float[] {1f, -2f})).isTrue();
        assertThat(StepMath.allFinite(null)).isTrue();
        assertThat(StepMath.allFinite(new float[] {1f, Float.NaN})).isFalse();
        assertThat(StepMath.allFinite(new float[] {Float.NEGATIVE_INFINITY})).isFalse();
    }

    @Test
    void shouldScoreTheMeanSquaredScaledResidualAndShareItOut() {
        FloatBuffer x = FloatBuffer.wrap(new float[] {1f, 2f, 3f});
        float[] forecast = {0f, 2f, 1f};
        float[] scale = {0.5f, 1f, 1f};
        float[] shares = new float[3];

        int[] targets = {0, 1, 2};
        float score = StepMath.score(x, 0, forecast, scale, targets, shares);
        StepMath.toShares(shares, targets);

        // residuals 2, 0, 2 -> squares 4, 0, 4 -> mean 8/3
        assertThat(score).isCloseTo(8f / 3f, within(1e-6f));
        assertThat(shares).containsExactly(0.5f, 0f, 0.5f);
    }

    @Test
    void shouldGiveNoSharesForAPerfectForecast() {
        float[] shares = {9f, 9f};

        float score =
                StepMath.score(
                        FloatBuffer.wrap(new float[] {1f, 1f}),
                        0,
                        new float[] {1f, 1f},
                        new float[] {1f, 1f},
                        new int[] {0, 1},
                        shares);
        StepMath.toShares(shares, new int[] {0, 1});

        assertThat(score).isZero();
        assertThat(shares).containsExactly(0f, 0f);
    }

    @Test
    void shouldScoreAndExplainTargetsOnlyWhenSomeFeaturesAreContext() {
        FloatBuffer x = FloatBuffer.wrap(new float[] {1f, 7f, 3f});
        float[] shares = {9f, 9f, 9f};

        // feature 1 is context: its residual of 7 counts for nothing
        float score =
                StepMath.score(
                        x,
                        0,
                        new float[] {0f, 0f, 1f},
                        new float[] {1f, 1f, 1f},
                        new int[] {0, 2},
                        shares);
        StepMath.toShares(shares, new int[] {0, 2});

        // residuals 1 and 2 -> squares 1, 4 -> mean over the two targets 2.5
        assertThat(score).isCloseTo(2.5f, within(1e-6f));
        assertThat(shares).containsExactly(0.2f, 0f, 0.8f);
    }

    @Test
    void shouldLearnTheProfileByWelfordThenByExponentialAverage() {
        int[] targets = {0};
        float[] m = new float[1];
        float[] mean = new float[1];
        float[] var = new float[1];
        float[] spread = new float[1];
        float[] values = {1f, 3f, 5f};
        for (int n = 0; n < values.length; n++) {
            float[] z = {values[n]};
            StepMath.updateLevelMean(z, m, 0.5f, n == 0);
            StepMath.learnProfile(z, m, mean, var, spread, n, 3, 0.1f);
        }
        // m: 1, 2, 3.5; running mean of x: 1, 2, 3; mean square of (m - mean): 0, 0, 0.0833...;
        // of (x - mean), Welford-like from the updated mean: 0, 1 / 2, 1 / 2 + (4 - 1 / 2) / 3
        assertThat(m[0]).isEqualTo(3.5f);
        assertThat(mean[0]).isCloseTo(3f, within(1e-6f));
        assertThat(var[0]).isCloseTo(0.25f / 3f, within(1e-6f));
        assertThat(spread[0]).isCloseTo(5f / 3f, within(1e-6f));

        // After profileSteps, the exponential average with beta 0.1
        StepMath.learnProfile(new float[] {13f}, m, mean, var, spread, 3, 3, 0.1f);
        assertThat(mean[0]).isCloseTo(4f, within(1e-6f));
        assertThat(var[0]).isCloseTo(0.25f / 3f + 0.1f * (0.25f - 0.25f / 3f), within(1e-6f));
        assertThat(spread[0]).isCloseTo(5f / 3f + 0.1f * (81f - 5f / 3f), within(1e-5f));
    }

    @Test
    void shouldNormaliseByTheDeviceBlendingOutTheFleetWhileTheProfileIsLearned() {
        int[] targets = {1, 2};
        float[] z = {3f, -1f};
        float[] mean = {1f, 0f};
        float[] spread = {0.25f, 0f};
        FloatBuffer out = FloatBuffer.allocate(4);

        // learned: (3 - 1) / 0.5 = 4; the second's spread 0 is floored at 0.1: -1 / 0.1 = -10
        int clamped = StepMath.normaliseByDevice(z, targets, mean, spread, 8, 8, 0.1f, out, 1, 9f);
        assertThat(clamped).isEqualTo(1); // -10 is beyond the bound 9
        assertThat(out.array()).containsExactly(0f, 0f, 4f, -9f);

        // nothing learned yet: the fleet's statistics, the value as it is
        StepMath.normaliseByDevice(z, targets, mean, spread, 0, 8, 0.1f, out, 0, 1000f);
        assertThat(out.get(1)).isEqualTo(3f);
        assertThat(out.get(2)).isEqualTo(-1f);

        // half learned: mean 0.5, variance 0.5 * 0.25 + 0.5 = 0.625
        StepMath.normaliseByDevice(z, targets, mean, spread, 4, 8, 0.1f, out, 0, 1000f);
        assertThat(out.get(1)).isCloseTo(2.5f / (float) Math.sqrt(0.625), within(1e-6f));
        assertThat(out.get(2)).isCloseTo(-1f / (float) Math.sqrt(0.5), within(1e-6f));
    }

    @Test
    void shouldScoreTheLevelAsTheLargestDeviationInTheDevicesOwnUnit() {
        float[] shares = new float[3];

        float level =
                StepMath.level(
                        new float[] {2f, -1f},
                        new float[] {0f, 0f},
                        new float[] {4f, 0f}, // unit 2, and 0 floored at 0.5
                        0.5f,
                        new int[] {0, 2},
                        shares);
        StepMath.toShares(shares, new int[] {0, 2});

        // deviations 2/2 = 1 and 1/0.5 = 2: the level is 2; shares of 1 and 4
        assertThat(level).isEqualTo(2f);
        assertThat(shares).containsExactly(0.2f, 0f, 0.8f);
    }

    @Test
    void shouldCountTheLongestRunOfAnExactlyRepeatedTargetValue() {
        int[] targets = {0, 2};
        float[] last = new float[2];
        int[] runs = {-1, -1};
        float[] shares = new float[3];

        float[][] steps = {{1f, 9f, 5f}, {1f, 8f, 5f}, {1f, 7f, 6f}, {1f, 7f, 6f}};
        float[] longest = new float[steps.length];
        for (int t = 0; t < steps.length; t++) {
            longest[t] = StepMath.unchangedRun(steps[t], targets, last, runs, shares);
        }

        // feature 0 repeats three times; feature 1 is context (its repeat counts for nothing)
        assertThat(longest).containsExactly(0f, 1f, 2f, 3f);
        assertThat(runs).containsExactly(3, 1);
        assertThat(shares).containsExactly(1f, 0f, 0f);
    }

    @Test
    void shouldDivideOnlyADeviceNoisierThanTheFleetWithAFloorOfOne() {
        assertThat(StepMath.deviceDivisor(0.36f, 0.3f, 1f, Float.POSITIVE_INFINITY))
                .isCloseTo(2f, within(1e-6f));
        assertThat(StepMath.deviceDivisor(0.09f, 0.3f, 1f, Float.POSITIVE_INFINITY))
                .isEqualTo(1f); // as loud as the fleet
        assertThat(StepMath.deviceDivisor(0.01f, 0.3f, 1f, Float.POSITIVE_INFINITY))
                .isEqualTo(1f); // quieter: not sharpened
        assertThat(StepMath.deviceDivisor(0f, 0.3f, 1f, Float.POSITIVE_INFINITY)).isEqualTo(1f);
    }

    @Test
    void shouldHoldANoisierDeviceAtMostTheCeilingTimesLessSensitive() {
        // a root mean square of 10 times the fleet's: divided by 4 at most
        assertThat(StepMath.deviceDivisor(9f, 0.3f, 0.5f, 4f)).isEqualTo(4f);
        assertThat(StepMath.deviceDivisor(0.36f, 0.3f, 0.5f, 4f)).isCloseTo(2f, within(1e-6f));
        assertThat(StepMath.deviceDivisor(0.01f, 0.3f, 0.5f, 4f)).isEqualTo(0.5f);
        assertThat(StepMath.deviceDivisor(0.36f, 0.3f, 1f, 1f)).isEqualTo(1f); // the fleet's
    }

    @Test
    void shouldSharpenADeviceQuieterThanTheFleetDownToTheFloor() {
        assertThat(StepMath.deviceDivisor(0.36f, 0.3f, 0.5f, Float.POSITIVE_INFINITY))
                .isCloseTo(2f, within(1e-6f));
        // a root mean square of 0.6 times the fleet's: its score is divided by 0.6
        assertThat(StepMath.deviceDivisor(0.0324f, 0.3f, 0.5f, Float.POSITIVE_INFINITY))
                .isCloseTo(0.6f, within(1e-6f));
        assertThat(StepMath.deviceDivisor(0.01f, 0.3f, 0.5f, Float.POSITIVE_INFINITY))
                .isEqualTo(0.5f); // no further
        assertThat(StepMath.deviceDivisor(0f, 0.3f, 0.5f, Float.POSITIVE_INFINITY)).isEqualTo(0.5f);
    }

    @Test
    void shouldPickTheLargestSharesFirst() {
        int[] top = new int[4];

        int n = StepMath.topK(new float[] {0.1f, 0.6f, 0.05f, 0.25f}, 3, top);

        assertThat(n).isEqualTo(3);
        assertThat(top).startsWith(1, 3, 0);
    }
}
