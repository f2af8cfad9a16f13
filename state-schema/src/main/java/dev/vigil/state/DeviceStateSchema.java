package dev.vigil.state;

import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * The one place that names the keyed per-device state: the scoring operator, its tests and any
 * savepoint tooling take the descriptor from here so they can never disagree.
 */
public final class DeviceStateSchema {

    /** Version of the {@link DeviceState} layout; bump it with every field change. */
    public static final int VERSION = 1;

    /** State name inside the scoring operator; renaming it orphans every device's state. */
    public static final String STATE_NAME = "device-state";

    private DeviceStateSchema() {}

    public static TypeInformation<DeviceState> typeInfo() {
        return TypeInformation.of(DeviceState.class);
    }

    public static ValueStateDescriptor<DeviceState> descriptor() {
        return new ValueStateDescriptor<>(STATE_NAME, typeInfo());
    }
}
