package dev.vigil.scoring;

import dev.vigil.metrics.Metrics;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.runtime.state.KeyedStateBackend;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
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
 * <p>The batched operator holds the states it wrote in a cache on the heap ({@link
 * #cached(AbstractStreamOperator, ScoringSettings)}, at most {@code vigil.scoring.state-cache}
 * devices) and writes them to the state backend at every checkpoint barrier ({@link #writeBack}),
 * when the cache is full, and at end of input: a device stepped many times between two checkpoints
 * costs one write of the backend instead of one per flush. A snapshot never misses a step, since
 * the operator writes the cache back before it; a failure loses the cache with everything else
 * since the last checkpoint. Only the operator writes this state, so a cached value is never stale;
 * it is at most one checkpoint interval younger than the backend's, which is also how late a
 * written device's time-to-live is refreshed.
 *
 * <p>On a backend that copies a value when it is written (RocksDB serializes it: {@link
 * KeyedStateBackend#isSafeToReuseKVState()}), a write-back keeps the devices it wrote in the cache,
 * so that their next steps read no state either: a device stepped at least once per checkpoint
 * interval is read from the backend once, not once per interval. A device not written since the
 * last write-back leaves the cache at the next one, so that its next read goes to the backend,
 * which applies the time-to-live. A backend that keeps the objects themselves (Flink's heap
 * backend, whose snapshot copies them after the barrier) gets an empty cache after every
 * write-back: the operator must not change an object a pending snapshot holds.
 *
 * <p>Builds before format 5 kept the shadow's state under a name of its own ({@link
 * DeviceStateSchema#SHADOW_STATE_NAME}); {@link #moveOlderShadowStates} moves it in at start.
 */
public final class DeviceStates {

    private static final Logger LOG = LoggerFactory.getLogger(DeviceStates.class);

    private final ValueState<DeviceState> entry;
    private final ScoringSettings settings;
    private final RuntimeContext ctx;
    // With a cache: the backend, whose current key is the device read or written; else null.
    private final KeyedStateBackend<String> backend;
    private final int capacity;
    // Per device, its entry as last written: never older than the backend's.
    private final Map<String, Cached> cache;
    // Whether a write-back keeps the entries it wrote (the backend copies what it is given).
    private final boolean keepWritten;
    // The entries written since the last write-back.
    private int dirty;
    private final Metrics.StateCache metrics;

    /** A device's entry in the cache, and whether the backend has it yet. */
    private static final class Cached {
        DeviceState entry;
        boolean dirty;
    }

    /** Every read and write goes to the state backend (the per-record operator). */
    DeviceStates(ScoringSettings settings, RuntimeContext ctx) {
        this(settings, ctx, null, 0);
    }

    /**
     * For a keyed operator that calls {@link #writeBack} before every checkpoint barrier and at end
     * of input: writes go to a cache of at most {@link ScoringSettings#stateCache()} devices (none
     * if 0) until then.
     */
    public static DeviceStates cached(
            AbstractStreamOperator<?> operator, ScoringSettings settings) {
        return new DeviceStates(
                settings,
                operator.getRuntimeContext(),
                operator.getKeyedStateBackend(),
                settings.stateCache());
    }

    private DeviceStates(
            ScoringSettings settings,
            RuntimeContext ctx,
            KeyedStateBackend<String> backend,
            int capacity) {
        this.entry = ctx.getState(DeviceStateSchema.descriptor(settings.backendTtl()));
        this.settings = settings;
        this.ctx = ctx;
        this.backend = capacity > 0 ? backend : null;
        this.capacity = capacity;
        this.cache = capacity > 0 ? new HashMap<>(Math.min(capacity, 1 << 16) * 2) : null;
        this.keepWritten = capacity > 0 && backend.isSafeToReuseKVState();
        this.metrics = capacity > 0 ? new Metrics.StateCache(ctx, this::cached) : null;
    }

    /** The current key's state per model into {@code states} (length 2; null for none). */
    public void read(DeviceState[] states) throws IOException {
        DeviceState stored;
        if (cache == null) {
            stored = entry.value();
        } else {
            Cached cached = cache.get(backend.getCurrentKey());
            if (cached != null) {
                stored = cached.entry;
            } else {
                stored = entry.value();
                metrics.missed();
            }
        }
        states[Models.SERVING] = DeviceState.servingIn(stored);
        states[Models.SHADOW] = DeviceState.shadowIn(stored);
    }

    /** Writes the current key's state per model from {@code states} ({@link DeviceState#entry}). */
    public void write(DeviceState[] states) throws IOException {
        DeviceState both = DeviceState.entry(states[Models.SERVING], states[Models.SHADOW]);
        if (both == null) {
            return;
        }
        if (cache == null) {
            entry.update(both);
            return;
        }
        Cached cached = cache.computeIfAbsent(backend.getCurrentKey(), device -> new Cached());
        cached.entry = both;
        if (!cached.dirty) {
            cached.dirty = true;
            dirty++;
        }
        if (cache.size() >= capacity) {
            writeBack(true);
        }
    }

    /**
     * Removes the current key's entry (every model's state) from the cache and the state backend:
     * the device is forgotten, and starts fresh if it comes back.
     */
    public void clear() {
        if (cache != null) {
            Cached cached = cache.remove(backend.getCurrentKey());
            if (cached != null && cached.dirty) {
                dirty--;
            }
        }
        entry.clear();
    }

    /**
     * Writes every device's state written since the last write-back to the state backend; the
     * current key is the same after as before. Before every snapshot and at end of input. The cache
     * keeps the devices it wrote if the backend copied them, and drops the others.
     */
    public void writeBack() throws IOException {
        writeBack(!keepWritten);
    }

    /** Also when the cache is full, then dropping every device ({@code dropAll}). */
    private void writeBack(boolean dropAll) throws IOException {
        if (cache == null || cache.isEmpty()) {
            return;
        }
        long started = System.nanoTime();
        String current = backend.getCurrentKey();
        Iterator<Map.Entry<String, Cached>> devices = cache.entrySet().iterator();
        while (devices.hasNext()) {
            Map.Entry<String, Cached> device = devices.next();
            Cached cached = device.getValue();
            boolean written = cached.dirty;
            if (written) {
                backend.setCurrentKey(device.getKey());
                entry.update(cached.entry);
                cached.dirty = false;
            }
            if (dropAll || !written) {
                devices.remove();
            }
        }
        dirty = 0;
        if (current != null) {
            backend.setCurrentKey(current);
        }
        metrics.wroteBack(System.nanoTime() - started);
    }

    /** The devices whose state is in the cache and not yet in the state backend. */
    int cached() {
        return dirty;
    }

    /** The reads the cache could not serve, which went to the state backend. */
    long misses() {
        return metrics == null ? 0 : metrics.misses();
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
                ctx.getState(DeviceStateSchema.shadowDescriptor(settings.backendTtl()));
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
        writeBack(); // the moved states are listed among the backend's keys from here on
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
