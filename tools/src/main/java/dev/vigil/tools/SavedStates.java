package dev.vigil.tools;

import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.runtime.state.ttl.TtlValue;

/**
 * A device's serving and shadow state in a savepoint's scoring operator, read in either layout the
 * job has written: since state format 5 one entry ({@link DeviceStateSchema#STATE_NAME}, the
 * shadow's inside, {@link DeviceState#entry}); before it, the shadow's under its own name ({@link
 * DeviceStateSchema#SHADOW_STATE_NAME}). Written back in the current layout. Read and written as
 * stored ({@link DeviceStateSchema#storedDescriptor}), with the time each value was last written,
 * expired or not: a rewrite keeps that time, so that a device whose time-to-live has passed stays
 * expired in the copy. For the State Processor API's functions, from their {@code open}.
 */
final class SavedStates {

    private final ValueState<TtlValue<DeviceState>> entry;
    private final ValueState<TtlValue<DeviceState>> older;
    private long lastWritten;

    SavedStates(RuntimeContext ctx) {
        entry = ctx.getState(DeviceStateSchema.storedDescriptor(DeviceStateSchema.STATE_NAME));
        older =
                ctx.getState(
                        DeviceStateSchema.storedDescriptor(DeviceStateSchema.SHADOW_STATE_NAME));
    }

    /**
     * The current key's serving and shadow model's state (either may be null), each on its own: the
     * serving state holds no shadow here, so that either can be written anywhere. {@link
     * #lastWritten()} is then the time the later of them was written.
     */
    DeviceState[] read() throws IOException {
        TtlValue<DeviceState> stored = entry.value();
        TtlValue<DeviceState> olderShadow = older.value();
        DeviceState both = stored == null ? null : stored.getUserValue();
        DeviceState serving = DeviceState.servingIn(both);
        DeviceState shadow = DeviceState.shadowIn(both);
        if (serving != null) {
            serving.shadow = null; // read only: the savepoint read is not written back
        }
        lastWritten = Long.MIN_VALUE;
        if (stored != null) {
            lastWritten = stored.getLastAccessTimestamp();
        }
        if (shadow == null && olderShadow != null) {
            shadow = olderShadow.getUserValue();
            lastWritten = Math.max(lastWritten, olderShadow.getLastAccessTimestamp());
        }
        return new DeviceState[] {serving, shadow};
    }

    /** When the states {@link #read()} returned were last written (epoch milliseconds). */
    long lastWritten() {
        return lastWritten;
    }

    /**
     * Writes the current key's value ({@link DeviceState#entry}) in the current layout, as written
     * at {@code lastWritten}.
     */
    void write(DeviceState both, long lastWritten) throws IOException {
        entry.update(new TtlValue<>(both, lastWritten));
    }
}
