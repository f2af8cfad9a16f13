package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.vigil.state.DeviceState;
import java.util.function.IntToDoubleFunction;
import org.junit.jupiter.api.Test;

/**
 * How a device learns its level of forecast residual (the per-device scale's mean square): in
 * blocks, leaving out the one or two far above the others, so that a fault while it learns does not
 * set its level and the scattered spikes of a noisy device do.
 */
class DynamicsLevelTest {

    @Test
    void shouldLearnAPlainMeanWithOneBlockAsCardsBefore060() {
        DeviceState s = new DeviceState();
        for (int i = 0; i < 1000; i++) {
            Scorer.learnDynamicsLevel(s, i >= 420 && i < 480 ? 400 : 1, 1000, 1);
            assertThat(s.dynamicsBlocks).isNull();
        }
        assertThat(s.dynamicsMeanSquare).isCloseTo(24.94f, within(1e-3f));
    }

    /**
     * The level a fresh device learns from these squares over {@code steps} steps, in 10 blocks.
     */
    private static DeviceState learn(int steps, IntToDoubleFunction square) {
        DeviceState s = new DeviceState();
        for (int i = 0; i < steps; i++) {
            Scorer.learnDynamicsLevel(s, (float) square.applyAsDouble(i), steps, 10);
        }
        return s;
    }

    @Test
    void shouldLeaveOutAFaultInOneBlock() {
        DeviceState s = learn(1000, i -> i >= 420 && i < 480 ? 400 : 1);

        assertThat(s.dynamicsSteps).isEqualTo(1000);
        assertThat(s.dynamicsMeanSquare).isCloseTo(1f, within(1e-5f));
        assertThat(s.dynamicsBlocks).as("kept only while learning").isNull();
    }

    @Test
    void shouldLeaveOutAFaultAcrossTwoBlocks() {
        DeviceState s = learn(1000, i -> i >= 180 && i < 220 ? 900 : 0.25);

        assertThat(s.dynamicsMeanSquare).isCloseTo(0.25f, within(1e-5f));
    }

    @Test
    void shouldKeepSpikesSpreadOverEveryBlock() {
        // every 50th step a spike: each block holds two, so none stands out, and the level is the
        // plain mean square, (98 + 2 * 400) / 100
        DeviceState s = learn(1000, i -> i % 50 == 7 ? 400 : 1);

        assertThat(s.dynamicsMeanSquare).isCloseTo(8.98f, within(1e-4f));
    }

    @Test
    void shouldKeepAFaultThatLastsThroughThreeBlocksOrMore() {
        // Three blocks far above the other seven: only two are ever left out, and with the third
        // in the rest they are no longer ten times above it.
        DeviceState s = learn(1000, i -> i < 300 ? 100 : 1);

        assertThat(s.dynamicsMeanSquare).isCloseTo(30.7f, within(1e-3f));
    }

    @Test
    void shouldCutAnyNumberOfStepsIntoBlocksThatCoverThemAll() {
        for (int steps : new int[] {1, 2, 3, 7, 10, 25, 99, 1001}) {
            int blocks = StepMath.levelBlocks(steps, 10);
            int covered = 0;
            for (int b = 0; b < blocks; b++) {
                int start = StepMath.levelBlockStart(b, steps, 10);
                int end = b + 1 < blocks ? StepMath.levelBlockStart(b + 1, steps, 10) : steps;
                assertThat(start).as("block %d of %d steps", b, steps).isEqualTo(covered);
                assertThat(end).isGreaterThan(start);
                for (int i = start; i < end; i++) {
                    assertThat(StepMath.levelBlock(i, steps, 10)).isEqualTo(b);
                }
                covered = end;
            }
            assertThat(covered).isEqualTo(steps);
            // the same squares everywhere: the level is that square, whatever the blocks
            assertThat(learn(steps, i -> 2.5).dynamicsMeanSquare)
                    .as("%d steps", steps)
                    .isCloseTo(2.5f, within(1e-5f));
        }
        // two blocks: their plain mean, nothing left out
        assertThat(learn(2, i -> i == 0 ? 100 : 1).dynamicsMeanSquare).isEqualTo(50.5f);
    }

    @Test
    void shouldCountALevelRestoredMidWayFromAnOlderFormatAsEvenBlocks() {
        // Format 5 kept a plain mean and no blocks: 350 steps learned at a mean square of 2.
        DeviceState s = new DeviceState();
        s.dynamicsSteps = 350;
        s.dynamicsMeanSquare = 2f;
        for (int i = 350; i < 1000; i++) {
            Scorer.learnDynamicsLevel(s, i >= 600 && i < 650 ? 500f : 2f, 1000, 10);
        }

        assertThat(s.dynamicsSteps).isEqualTo(1000);
        // the fault after the restore is left out; the blocks before it count as the mean they had
        assertThat(s.dynamicsMeanSquare).isCloseTo(2f, within(1e-5f));
        assertThat(s.dynamicsBlocks).isNull();
    }

    /**
     * While a device learns, the card's {@code device_learning_blocks} decide when the blocks so
     * far stand for its level: none before that many are complete, then their trimmed mean, a fault
     * in one of them left out once there are three.
     */
    @Test
    void shouldGiveTheLevelSoFarOnceEnoughBlocksAreComplete() {
        IntToDoubleFunction square = i -> i >= 120 && i < 180 ? 400 : 0.25;
        DeviceState s = new DeviceState();
        for (int i = 0; i < 1000; i++) {
            float soFar = Scorer.levelSoFar(s, 1000, 10, 3);
            if (i < 300) {
                assertThat(soFar).as("step %d, %d blocks complete", i, i / 100).isNaN();
            } else {
                assertThat(soFar).as("step %d", i).isCloseTo(0.25f, within(1e-5f));
            }
            assertThat(Scorer.levelSoFar(s, 1000, 10, 0)).as("the fleet's scale").isNaN();
            Scorer.learnDynamicsLevel(s, (float) square.applyAsDouble(i), 1000, 10);
        }
        DeviceState one = new DeviceState();
        for (int i = 0; i < 150; i++) {
            Scorer.learnDynamicsLevel(one, 0.25f, 1000, 10);
        }
        assertThat(Scorer.levelSoFar(one, 1000, 10, 1))
                .as("after one block, its plain mean")
                .isCloseTo(0.25f, within(1e-5f));
    }

    @Test
    void shouldTakeThePlainMeanSoFarForALevelRestoredMidWayFromAnOlderFormat() {
        DeviceState s = new DeviceState();
        s.dynamicsSteps = 350;
        s.dynamicsMeanSquare = 2f;

        assertThat(Scorer.levelSoFar(s, 1000, 10, 3)).isEqualTo(2f);
        assertThat(Scorer.levelSoFar(s, 1000, 10, 4)).isNaN();
    }

    @Test
    void shouldGiveTheDocumentedLevelForTheBlocks() {
        float[] blocks = new float[3];
        for (float mean : new float[] {1, 1, 1, 1, 1, 1, 1, 1, 50, 5}) {
            StepMath.addLevelBlock(blocks, mean);
        }
        assertThat(blocks).containsExactly(63f, 50f, 5f);
        // 50 is more than 10 times the mean of the eight others (1), 5 is not
        assertThat(StepMath.trimmedLevel(blocks, 10)).isCloseTo(13f / 9, within(1e-6f));
    }
}
