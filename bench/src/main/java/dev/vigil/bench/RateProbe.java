package dev.vigil.bench;

import dev.vigil.serde.RawRecord;
import java.util.Arrays;
import org.apache.flink.api.common.accumulators.DoubleCounter;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;

/**
 * Measures a subtask's sustained input rate where the source hands records to the job: with the
 * input pre-loaded, backpressure makes that the rate of the slowest operator. It notes the time of
 * every 1000th record and, at the end, adds the rate over the middle 80 % of them (start-up and the
 * drain at the end left out) to the accumulator {@value #ACCUMULATOR}: the job's events/s.
 */
public class RateProbe extends RichMapFunction<RawRecord, RawRecord> {

    public static final String ACCUMULATOR = "sustained_eps";
    private static final int EVERY = 1000;

    private transient long count;
    private transient long[] samples;
    private transient int sampled;
    private transient DoubleCounter rate;

    @Override
    public void open(OpenContext ctx) {
        samples = new long[1024];
        rate = new DoubleCounter();
        getRuntimeContext().addAccumulator(ACCUMULATOR, rate);
    }

    @Override
    public RawRecord map(RawRecord r) {
        if (++count % EVERY == 0) {
            if (sampled == samples.length) {
                samples = Arrays.copyOf(samples, sampled * 2);
            }
            samples[sampled++] = System.nanoTime();
        }
        return r;
    }

    @Override
    public void close() {
        int from = sampled / 10;
        int to = sampled - sampled / 10 - 1;
        if (to > from) {
            double seconds = (samples[to] - samples[from]) / 1e9;
            rate.add((to - from) * (double) EVERY / seconds);
        }
    }
}
