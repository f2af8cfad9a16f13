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
 * DeviceStateSchema#SHADOW_STATE_NAME}). Read and written as stored ({@link
 * DeviceStateSchema#storedDescriptor}), with the time each value was last written, expired or not:
 * a rewrite keeps those times, so that a state whose time-to-live has passed stays expired in the
 * copy. Written back in the current layout, except two states last written at different times in
 * the older layout: those stay apart, each with its own time, for the job to join at its restore as
 * it joins any older layout (leaving out a part that has expired). For the State Processor API's
 * functions, from their {@code open}.
 */
final class SavedStates {

    /** No state, so no time. */
    static final long NONE = Long.MIN_VALUE;

    private final ValueState<TtlValue<DeviceState>> entry;
    private final ValueState<TtlValue<DeviceState>> older;
    private long servingWritten;
    private long shadowWritten;

    SavedStates(RuntimeContext ctx) {
        entry = ctx.getState(DeviceStateSchema.storedDescriptor(DeviceStateSchema.STATE_NAME));
        older =
                ctx.getState(
                        DeviceStateSchema.storedDescriptor(DeviceStateSchema.SHADOW_STATE_NAME));
    }

    /**
     * The current key's serving and shadow model's state (either may be null), each on its own: the
     * serving state holds no shadow here, so that either can be written anywhere. {@link
     * #servingWritten()} and {@link #shadowWritten()} then say when each was last written.
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
        servingWritten = serving != null ? stored.getLastAccessTimestamp() : NONE;
        shadowWritten = shadow != null ? stored.getLastAccessTimestamp() : NONE;
        if (shadow == null && olderShadow != null) {
            shadow = olderShadow.getUserValue();
            shadowWritten = olderShadow.getLastAccessTimestamp();
        }
        return new DeviceState[] {serving, shadow};
    }

    /** When the serving state {@link #read()} returned was last written ({@link #NONE}: none). */
    long servingWritten() {
        return servingWritten;
    }

    /** When the shadow state {@link #read()} returned was last written ({@link #NONE}: none). */
    long shadowWritten() {
        return shadowWritten;
    }

    /**
     * Writes the current key's value ({@link DeviceState#entry}, in the current layout) as last
     * written at {@code written}.
     */
    void write(DeviceState both, long written) throws IOException {
        entry.update(new TtlValue<>(both, checked(written)));
    }

    /**
     * Writes the current key's shadow state apart, in the older layout, as last written at {@code
     * written}.
     */
    void writeApart(DeviceState shadow, long written) throws IOException {
        older.update(new TtlValue<>(shadow, checked(written)));
    }

    private static long checked(long written) {
        if (written == NONE) {
            throw new IllegalStateException("a state to write has no time it was last written");
        }
        return written;
    }
}
