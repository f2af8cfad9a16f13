package dev.vigil.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

class CpuMeterTest {

    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    /** Spins until this thread has spent {@code millis} on a CPU, however busy the machine is. */
    private static long spin(long millis) {
        long end = THREADS.getCurrentThreadCpuTime() + millis * 1_000_000;
        long x = 0;
        while (THREADS.getCurrentThreadCpuTime() < end) {
            for (int i = 0; i < 10_000; i++) {
                x += x * 31 + 7;
            }
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
                            spin(300);
                        },
                        "started-before");
        old.start();
        try (CpuMeter meter = CpuMeter.start()) {
            long from = System.nanoTime();
            go.countDown();
            Thread fresh = new Thread(() -> spin(300), "started-after");
            fresh.start();
            fresh.join(); // it has ended: counted to its last reading
            old.join();
            Thread.sleep(3 * CpuMeter.PERIOD_MS);
            CpuMeter.Spent spent = meter.spent(from, System.nanoTime());
            // The new thread's 0.3 s on a CPU, less what it spent after its last reading (at most
            // a period); not the old thread's 0.3 s.
            assertThat(spent.byName()).containsKey("started-after");
            assertThat(spent.byName()).doesNotContainKey("started-before");
            assertThat(spent.byName().get("started-after")).isBetween(0.15, 0.35);
            assertThat(spent.cpuSeconds()).isLessThan(0.5);
            assertThat(spent.seconds()).isGreaterThan(0.3);
        }
    }
}
