package dev.vigil.job;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.serde.RawRecord;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.eventtime.TimestampAssigner;
import org.apache.flink.api.common.eventtime.TimestampAssignerSupplier;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.util.clock.RelativeClock;
import org.apache.flink.util.clock.SystemClock;
import org.junit.jupiter.api.Test;

/** The telemetry topic's timestamps and watermarks ({@link VigilJob#watermarks()}). */
class WatermarksTest {

    private static final long MINUTE = 60_000L;

    private final WatermarkStrategy<RawRecord> strategy = VigilJob.watermarks();
    private final List<Long> watermarks = new ArrayList<>();
    private final WatermarkOutput output =
            new WatermarkOutput() {
                @Override
                public void emitWatermark(Watermark watermark) {
                    watermarks.add(watermark.getTimestamp());
                }

                @Override
                public void markIdle() {}

                @Override
                public void markActive() {}
            };

    private TimestampAssigner<RawRecord> assigner() {
        return strategy.createTimestampAssigner(
                new TimestampAssignerSupplier.Context() {
                    @Override
                    public MetricGroup getMetricGroup() {
                        return new UnregisteredMetricsGroup();
                    }
                });
    }

    private WatermarkGenerator<RawRecord> generator() {
        return strategy.createWatermarkGenerator(
                new WatermarkGeneratorSupplier.Context() {
                    @Override
                    public MetricGroup getMetricGroup() {
                        return new UnregisteredMetricsGroup();
                    }

                    @Override
                    public RelativeClock getInputActivityClock() {
                        return SystemClock.getInstance();
                    }
                });
    }

    /** Reads records stamped {@code kafkaTs} into a fresh partition; returns its watermark. */
    private long watermarkAfter(long... kafkaTs) {
        TimestampAssigner<RawRecord> assigner = assigner();
        WatermarkGenerator<RawRecord> generator = generator();
        for (long ts : kafkaTs) {
            RawRecord record = new RawRecord();
            generator.onEvent(record, assigner.extractTimestamp(record, ts), output);
        }
        generator.onPeriodicEmit(output);
        return watermarks.get(watermarks.size() - 1);
    }

    @Test
    void shouldHoldTheWatermarkThirtySecondsBehindThePartitionsLatestRecord() {
        long now = System.currentTimeMillis();
        assertThat(watermarkAfter(now - 10 * MINUTE, now - 5 * MINUTE, now - 7 * MINUTE))
                .isEqualTo(now - 5 * MINUTE - 30_000 - 1);
    }

    @Test
    void shouldNotLetAProducerWhoseClockRunsAheadMoveTheWatermarkPastThePresent() {
        // A producer 20 minutes ahead (within vigil.input.max-clock-skew, 1 h) writes to this
        // partition: the watermark stays at the job's clock less 30 s, so that a device of
        // another producer last seen a minute ago does not look silent for 10 minutes' period.
        long before = System.currentTimeMillis();
        long watermark = watermarkAfter(before - MINUTE, before + 20 * MINUTE);
        long after = System.currentTimeMillis();
        assertThat(watermark).isBetween(before - 30_000 - 1, after - 30_000 - 1);

        // ... and the record itself counts as seen now, not 20 minutes ahead
        long seen = assigner().extractTimestamp(new RawRecord(), before + 20 * MINUTE);
        assertThat(seen).isBetween(before, System.currentTimeMillis());
    }

    @Test
    void shouldKeepTheKafkaTimestampOfARecordFromThePast() {
        long past = System.currentTimeMillis() - 3 * 24 * 60 * MINUTE; // a replay, a backlog
        assertThat(assigner().extractTimestamp(new RawRecord(), past)).isEqualTo(past);
    }
}
