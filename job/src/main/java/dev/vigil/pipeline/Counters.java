package dev.vigil.pipeline;

import dev.vigil.serde.DeadLetterReason;
import java.util.EnumMap;
import java.util.Map;
import org.apache.flink.api.common.accumulators.LongCounter;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;

/**
 * Where every input record ends, counted twice: as Flink metrics (group {@code vigil}, for
 * dashboards) and as accumulators of the same names (for a finished job's result, which the demo
 * and the tests read). {@code records_in == scored + late + dead_letters}.
 */
public final class Counters {

    public static final String RECORDS_IN = "records_in";
    public static final String SCORED = "scored";
    public static final String LATE = "late";
    public static final String DEAD_LETTERS = "dead_letters";
    public static final String EPISODES_OPENED = "episodes_opened";
    public static final String EPISODES_CLOSED = "episodes_closed";
    public static final String RESETS_GAP = "resets_gap";
    public static final String RESETS_MODEL_CHANGE = "resets_model_change";

    /** One count, kept as a metric and as an accumulator. */
    public static final class Count {
        private final Counter metric;
        private final LongCounter accumulator;

        Count(RuntimeContext ctx, MetricGroup group, String name) {
            this.metric = group.counter(name);
            LongCounter existing = (LongCounter) ctx.<Long, Long>getAccumulator(name);
            if (existing == null) {
                existing = new LongCounter();
                ctx.addAccumulator(name, existing);
            }
            this.accumulator = existing;
        }

        public void inc() {
            metric.inc();
            accumulator.add(1L);
        }
    }

    public final Count recordsIn;
    public final Count scored;
    public final Count late;
    public final Count deadLetters;
    public final Count episodesOpened;
    public final Count episodesClosed;
    public final Count resetGap;
    public final Count resetModelChange;
    private final Map<DeadLetterReason, Count> deadLettersByReason =
            new EnumMap<>(DeadLetterReason.class);

    public Counters(RuntimeContext ctx) {
        MetricGroup group = ctx.getMetricGroup().addGroup("vigil");
        recordsIn = new Count(ctx, group, RECORDS_IN);
        scored = new Count(ctx, group, SCORED);
        late = new Count(ctx, group, LATE);
        deadLetters = new Count(ctx, group, DEAD_LETTERS);
        episodesOpened = new Count(ctx, group, EPISODES_OPENED);
        episodesClosed = new Count(ctx, group, EPISODES_CLOSED);
        resetGap = new Count(ctx, group, RESETS_GAP);
        resetModelChange = new Count(ctx, group, RESETS_MODEL_CHANGE);
        MetricGroup byReason = group.addGroup(DEAD_LETTERS);
        for (DeadLetterReason r : DeadLetterReason.values()) {
            deadLettersByReason.put(
                    r, new Count(ctx, byReason, DEAD_LETTERS + "_" + r.name().toLowerCase()));
        }
    }

    public void deadLetter(DeadLetterReason reason) {
        deadLetters.inc();
        deadLettersByReason.get(reason).inc();
    }
}
