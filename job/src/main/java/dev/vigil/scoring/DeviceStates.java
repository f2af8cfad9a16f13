package dev.vigil.scoring;

import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.runtime.state.KeyedStateBackend;
import org.apache.flink.runtime.state.VoidNamespace;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Each device's state per model, in one entry of keyed state ({@link
 * DeviceStateSchema#STATE_NAME}): the serving model's state, holding the shadow model's ({@link
 * DeviceState#shadow}, state format 5), so that a step reads and writes the state backend once
 * whatever the number of models. Reads and writes go through arrays indexed by model ({@link
 * Models#SERVING}, {@link Models#SHADOW}), null for a model with no state for the device. A job
 * without a shadow model keeps a shadow state it restored as it was: it is written back with the
 * serving state.
 *
 * <p>Builds before format 5 kept the shadow's state under a name of its own ({@link
 * DeviceStateSchema#SHADOW_STATE_NAME}); {@link #moveOlderShadowStates} moves it in at start.
 */
final class DeviceStates {

    private static final Logger LOG = LoggerFactory.getLogger(DeviceStates.class);

    private final ValueState<DeviceState> entry;
    private final ScoringSettings settings;
    private final RuntimeContext ctx;

    DeviceStates(ScoringSettings settings, RuntimeContext ctx) {
        this.entry = ctx.getState(DeviceStateSchema.descriptor(settings.stateTtl()));
        this.settings = settings;
        this.ctx = ctx;
    }

    /** The current key's state per model into {@code states} (length 2; null for none). */
    void read(DeviceState[] states) throws IOException {
        DeviceState stored = entry.value();
        states[Models.SERVING] = DeviceState.servingIn(stored);
        states[Models.SHADOW] = DeviceState.shadowIn(stored);
    }

    /** Writes the current key's state per model from {@code states} ({@link DeviceState#entry}). */
    void write(DeviceState[] states) throws IOException {
        DeviceState both = DeviceState.entry(states[Models.SERVING], states[Models.SHADOW]);
        if (both != null) {
            entry.update(both);
        }
    }

    /**
     * The devices of the subtask that have state {@code name} (none if it is not registered or
     * restored), collected first: a walk writes to the state while the keys are read.
     */
    static List<String> devices(KeyedStateBackend<String> backend, String name) {
        try (Stream<String> keys = backend.getKeys(name, VoidNamespace.INSTANCE)) {
            return keys.collect(Collectors.toList());
        }
    }

    /**
     * Moves every device's shadow state that a savepoint of a build before format 5 kept under
     * {@link DeviceStateSchema#SHADOW_STATE_NAME} into the device's entry, and clears it there.
     * Does nothing (and registers no such state) unless the restored state has it.
     */
    void moveOlderShadowStates(KeyedStateBackend<String> backend) throws IOException {
        List<String> devices = devices(backend, DeviceStateSchema.SHADOW_STATE_NAME);
        if (devices.isEmpty()) {
            return;
        }
        long started = System.nanoTime();
        ValueState<DeviceState> older =
                ctx.getState(DeviceStateSchema.shadowDescriptor(settings.stateTtl()));
        DeviceState[] states = new DeviceState[2];
        int moved = 0;
        int kept = 0;
        for (String deviceId : devices) {
            backend.setCurrentKey(deviceId);
            DeviceState shadow = older.value();
            if (shadow == null) {
                continue; // expired
            }
            read(states);
            if (states[Models.SHADOW] == null) {
                states[Models.SHADOW] = shadow;
                write(states);
                moved++;
            } else {
                kept++; // written since by format 5: the newer one stays
            }
            older.clear();
        }
        LOG.info(
                "Moved the shadow model's state of {} devices from {} into {} in {} ms ({} had a"
                        + " newer one there)",
                moved,
                DeviceStateSchema.SHADOW_STATE_NAME,
                DeviceStateSchema.STATE_NAME,
                (System.nanoTime() - started) / 1_000_000,
                kept);
    }
}
