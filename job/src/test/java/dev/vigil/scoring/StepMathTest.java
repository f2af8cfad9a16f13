package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.nio.FloatBuffer;
import org.junit.jupiter.api.Test;

class StepMathTest {

    @Test
    void shouldNormaliseWithTheCardsMeanAndStd() {
        FloatBuffer out = FloatBuffer.allocate(6);

        StepMath.normalise(
                new float[] {12f, 0f}, new float[] {10f, 1f}, new float[] {2f, 4f}, out, 4);

        assertThat(out.get(4)).isEqualTo(1f);
        assertThat(out.get(5)).isEqualTo(-0.25f);
    }

    @Test
    void shouldScoreTheMeanSquaredScaledResidualAndShareItOut() {
        FloatBuffer x = FloatBuffer.wrap(new float[] {1f, 2f, 3f});
        float[] forecast = {0f, 2f, 1f};
        float[] scale = {0.5f, 1f, 1f};
        float[] shares = new float[3];

        float score = StepMath.score(x, 0, forecast, scale, shares);

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
                        shares);

        assertThat(score).isZero();
        assertThat(shares).containsExactly(0f, 0f);
    }

    @Test
    void shouldPickTheLargestSharesFirst() {
        int[] top = new int[4];

        int n = StepMath.topK(new float[] {0.1f, 0.6f, 0.05f, 0.25f}, 3, top);

        assertThat(n).isEqualTo(3);
        assertThat(top).startsWith(1, 3, 0);
    }
}
