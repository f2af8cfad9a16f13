package dev.vigil.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class RecentMaxTest {

    @Test
    void shouldHoldTheLargestValueOfThisWindowAndTheOneBefore() {
        RecentMax max = new RecentMax(60_000L);
        assertThat(max.get(0L)).isZero(); // nothing seen yet

        max.update(5L, 1_000L);
        max.update(9L, 2_000L);
        max.update(7L, 3_000L);
        assertThat(max.get(30_000L)).isEqualTo(9L);

        // The next window: its own values, and the window before's until this one ends
        max.update(4L, 61_000L);
        assertThat(max.get(70_000L)).isEqualTo(9L);
        // A window with no value: only the one before it counts
        assertThat(max.get(125_000L)).isEqualTo(4L);
        // Two windows without a value: back to 0
        assertThat(max.get(190_000L)).isZero();

        // Values again after a long pause: the old ones do not come back
        max.update(3L, 400_000L);
        assertThat(max.get(400_001L)).isEqualTo(3L);
    }

    @Test
    void shouldKeepAValueVisibleForOneToTwoWholeWindows() {
        RecentMax max = new RecentMax(60_000L);
        max.update(8L, 59_000L); // the end of the window [0, 60 s)
        assertThat(max.get(119_999L)).isEqualTo(8L); // to the end of the next window
        assertThat(max.get(120_000L)).isZero();

        max.update(6L, 180_000L); // the start of the window [180 s, 240 s)
        assertThat(max.get(299_999L)).isEqualTo(6L);
        assertThat(max.get(300_000L)).isZero();
    }
}
