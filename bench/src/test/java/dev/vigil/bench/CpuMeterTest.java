package dev.vigil.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

class CpuMeterTest {

    /**
     * Spins on a CPU for {@code millis} of wall time; returns a value so the JIT keeps the loop.
     */
    private static long spin(long millis) {
        long end = System.nanoTime() + millis * 1_000_000;
        long x = 0;
        while (System.nanoTime() < end) {
            x += x * 31 + 7;
        }
        return x;
    }

    @Test
    void countsThreadsStartedAfterItAndNotThoseBefore() throws Exception {
        assumeTrue(CpuMeter.available(), "Linux's /proc/self/task");
        CountDownLatch go = new CountDownLatch(1);
        Thread old =
                new Thread(
                        () -> {
                            try {
                                go.await();
                            } catch (InterruptedException e) {
                                return;
                            }
                            spin(400);
                        },
                        "started-before");
        old.start();
        long from;
        long to;
        try (CpuMeter meter = CpuMeter.start()) {
            from = System.nanoTime();
            go.countDown();
            Thread fresh = new Thread(() -> spin(400), "started-after");
            fresh.start();
            fresh.join(); // it has ended: counted to its last reading
            old.join();
            Thread.sleep(3 * CpuMeter.PERIOD_MS);
            to = System.nanoTime();
            double seconds = meter.cpuSeconds(from, to);
            // the new thread's 0.4 s on a CPU, less what another process took from it (2 cores,
            // a busy machine), less up to one reading before it ended; not the old thread's
            assertThat(seconds).isBetween(0.1, 0.55);
            assertThat(meter.byName(from, to)).containsKey("started-after");
            assertThat(meter.byName(from, to)).doesNotContainKey("started-before");
        }
    }
}
