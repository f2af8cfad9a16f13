package dev.vigil.tools;

import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.api.common.state.ValueState;

/**
 * A device's serving and shadow state in a savepoint's scoring operator, read in either layout the
 * job has written: since state format 5 one entry ({@link DeviceStateSchema#STATE_NAME}, the
 * shadow's inside, {@link DeviceState#entry}); before it, the shadow's under its own name ({@link
 * DeviceStateSchema#SHADOW_STATE_NAME}). Written back in the current layout. Read and written with
 * a time-to-live that expires nothing; for the State Processor API's functions, from their {@code
 * open}.
 */
final class SavedStates {

    private final ValueState<DeviceState> entry;
    private final ValueState<DeviceState> older;

    SavedStates(RuntimeContext ctx) {
        entry = ctx.getState(DeviceStateSchema.descriptor(InspectSavepointCommand.READ_TTL));
        older = ctx.getState(DeviceStateSchema.shadowDescriptor(InspectSavepointCommand.READ_TTL));
    }

    /**
     * The current key's serving and shadow model's state (either may be null), each on its own: the
     * serving state holds no shadow here, so that either can be written anywhere.
     */
    DeviceState[] read() throws IOException {
        DeviceState stored = entry.value();
        DeviceState serving = DeviceState.servingIn(stored);
        DeviceState shadow = DeviceState.shadowIn(stored);
        if (serving != null) {
            serving.shadow = null; // read only: the savepoint read is not written back
        }
        return new DeviceState[] {serving, shadow != null ? shadow : older.value()};
    }

    /** Writes the current key's value ({@link DeviceState#entry}) in the current layout. */
    void write(DeviceState both) throws IOException {
        entry.update(both);
    }
}
