package dev.vigil.state;

import java.time.Duration;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.runtime.state.ttl.TtlStateFactory;
import org.apache.flink.runtime.state.ttl.TtlValue;

/**
 * The one place that names the keyed per-device state: the scoring operator, its tests and any
 * savepoint tooling take the descriptor from here so they can never disagree.
 */
public final class DeviceStateSchema {

    /** State name inside the scoring operator; renaming it orphans every device's state. */
    public static final String STATE_NAME = "device-state";

    /**
     * Where a job with a shadow model ({@code vigil.model.shadow.dir}) kept the shadow's state of
     * each device before state format 5 (in the same operator beside {@link #STATE_NAME}, with the
     * same serializer). Format 5 keeps it inside the device's {@link #STATE_NAME} entry ({@link
     * DeviceState#shadow}); the job and the savepoint tools still read this name, to move what a
     * savepoint of an older build holds there.
     */
    public static final String SHADOW_STATE_NAME = "device-state-shadow";

    /**
     * The scoring operator's own state (a union list of longs): the silence period its devices'
     * timers were set for and, negated, the silence after which a device is forgotten (the state's
     * time-to-live; absent in older savepoints). A savepoint without it makes the restored job walk
     * every device once to arm the watch again; savepoint tools that rewrite the operator carry it
     * over.
     */
    public static final String SILENCE_WATCH_PERIOD_NAME = "silence-watch-period";

    private DeviceStateSchema() {}

    /**
     * The descriptor of {@link #SILENCE_WATCH_PERIOD_NAME}, for the job and the savepoint tools.
     */
    public static ListStateDescriptor<Long> silenceWatchPeriodDescriptor() {
        return new ListStateDescriptor<>(SILENCE_WATCH_PERIOD_NAME, LongSerializer.INSTANCE);
    }

    /** Vigil's versioned serializer; never Flink's POJO serializer or Kryo. */
    public static DeviceStateSerializer serializer() {
        return new DeviceStateSerializer();
    }

    /**
     * The descriptor, always with time-to-live: a device silent for {@code ttl} is dropped (never
     * read back once expired; removed by RocksDB's compaction filter and left out of full
     * snapshots). TTL is always on because switching it on or off changes how the state is written;
     * only its duration is configurable.
     */
    public static ValueStateDescriptor<DeviceState> descriptor(Duration ttl) {
        return descriptor(STATE_NAME, ttl);
    }

    /**
     * The descriptor of the shadow's state before format 5: {@link #SHADOW_STATE_NAME}, otherwise
     * {@link #descriptor(Duration)}.
     */
    public static ValueStateDescriptor<DeviceState> shadowDescriptor(Duration ttl) {
        return descriptor(SHADOW_STATE_NAME, ttl);
    }

    /**
     * The state under {@code name} ({@link #STATE_NAME} or {@link #SHADOW_STATE_NAME}) as the state
     * backend stores it: each value with the time it was last written (Flink's time-to-live
     * wrapper), read and written as it is, with no time-to-live of its own. For savepoint rewrites,
     * which keep that time: written through {@link #descriptor(Duration)}, every device would start
     * a fresh time-to-live, and one silent past it would come back.
     */
    public static ValueStateDescriptor<TtlValue<DeviceState>> storedDescriptor(String name) {
        return new ValueStateDescriptor<>(
                name, new TtlStateFactory.TtlSerializer<>(LongSerializer.INSTANCE, serializer()));
    }

    private static ValueStateDescriptor<DeviceState> descriptor(String name, Duration ttl) {
        ValueStateDescriptor<DeviceState> d = new ValueStateDescriptor<>(name, serializer());
        d.enableTimeToLive(
                StateTtlConfig.newBuilder(ttl)
                        .updateTtlOnCreateAndWrite()
                        .neverReturnExpired()
                        .cleanupFullSnapshot()
                        .cleanupInRocksdbCompactFilter(1000)
                        .build());
        return d;
    }
}
