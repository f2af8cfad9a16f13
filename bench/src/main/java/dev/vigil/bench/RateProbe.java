package dev.vigil.bench;

import dev.vigil.serde.RawRecord;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.concurrent.atomic.LongAdder;
import org.apache.flink.api.common.accumulators.DoubleCounter;
import org.apache.flink.api.common.accumulators.IntCounter;
import org.apache.flink.api.common.accumulators.LongMaximum;
import org.apache.flink.api.common.accumulators.LongMinimum;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;

/**
 * Measures a subtask's sustained input rate where the source hands records to the job: with the
 * input pre-loaded, backpressure makes that the rate of the slowest operator. It notes the time of
 * every 1000th record and, at the end, adds the rate over the middle 80 % of them (start-up and the
 * drain at the end left out) to the accumulator {@value #ACCUMULATOR}: the job's events/s.
 *
 * <p>It also notes the JVM's total JIT compilation time at the same records and adds what the
 * compiler threads spent over that window, per second of it, to {@value #COMPILING} (one value per
 * subtask, counted in {@value #PROBES}). Every run is a new job in a JVM that also runs the broker,
 * and the compiler keeps compiling through the runs: on the 2 cores of the project's machine its
 * threads spent 0.1 to 1.8 seconds compiling per second of a run's window (the JVM's count of
 * elapsed compile time, not CPU), which moves a run's rate by up to a factor of 2.
 *
 * <p>The window's bounds ({@link System#nanoTime()}) go to {@value #WINDOW_FROM} (the latest
 * subtask's start) and {@value #WINDOW_TO} (the earliest subtask's end): where every subtask ran
 * steadily, over which {@link CpuMeter} counts the job's CPU time.
 *
 * <p>For a job that runs until cancelled (no accumulators then), {@link #read()} counts the records
 * every subtask of every job in this JVM has seen, in thousands: the bench reads it while the job
 * runs.
 */
public class RateProbe extends RichMapFunction<RawRecord, RawRecord> {

    public static final String ACCUMULATOR = "sustained_eps";
    public static final String COMPILING = "compiling_per_second";
    public static final String PROBES = "probes";
    public static final String WINDOW_FROM = "window_from_nanos";
    public static final String WINDOW_TO = "window_to_nanos";
    private static final int EVERY = 1000;

    // The mini cluster runs in the bench's JVM and loads this class from its class path.
    private static final LongAdder READ = new LongAdder();

    private transient long count;
    private transient long[] samples;
    private transient long[] compiledMs;
    private transient int sampled;
    private transient DoubleCounter rate;
    private transient DoubleCounter compiling;
    private transient IntCounter probes;
    private transient LongMaximum windowFrom;
    private transient LongMinimum windowTo;
    private transient CompilationMXBean jit;

    @Override
    public void open(OpenContext ctx) {
        samples = new long[1024];
        compiledMs = new long[1024];
        rate = new DoubleCounter();
        compiling = new DoubleCounter();
        probes = new IntCounter();
        getRuntimeContext().addAccumulator(ACCUMULATOR, rate);
        getRuntimeContext().addAccumulator(COMPILING, compiling);
        getRuntimeContext().addAccumulator(PROBES, probes);
        windowFrom = new LongMaximum();
        windowTo = new LongMinimum();
        getRuntimeContext().addAccumulator(WINDOW_FROM, windowFrom);
        getRuntimeContext().addAccumulator(WINDOW_TO, windowTo);
        jit = ManagementFactory.getCompilationMXBean();
    }

    @Override
    public RawRecord map(RawRecord r) {
        if (++count % EVERY == 0) {
            READ.add(EVERY);
            if (sampled == samples.length) {
                samples = Arrays.copyOf(samples, sampled * 2);
                compiledMs = Arrays.copyOf(compiledMs, sampled * 2);
            }
            compiledMs[sampled] = jit.getTotalCompilationTime();
            samples[sampled++] = System.nanoTime();
        }
        return r;
    }

    /** Records seen so far by every probe in this JVM, to within {@value #EVERY} per subtask. */
    static long read() {
        return READ.sum();
    }

    @Override
    public void close() {
        int from = sampled / 10;
        int to = sampled - sampled / 10 - 1;
        if (to > from) {
            double seconds = (samples[to] - samples[from]) / 1e9;
            rate.add((to - from) * (double) EVERY / seconds);
            compiling.add((compiledMs[to] - compiledMs[from]) / 1e3 / seconds);
            probes.add(1);
            windowFrom.add(samples[from]);
            windowTo.add(samples[to]);
        }
    }
}
