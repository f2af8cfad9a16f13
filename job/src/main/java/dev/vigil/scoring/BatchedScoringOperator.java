package dev.vigil.scoring;

import dev.vigil.model.ModelBundle;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.InternalTimer;
import org.apache.flink.streaming.api.operators.InternalTimerService;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.operators.Triggerable;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;

/**
 * The scoring operator for throughput: buffers up to {@link ScoringSettings#batchSize()} records
 * (or for {@link ScoringSettings#batchTimeoutMs()}) across devices and steps them with one ONNX
 * Runtime call per round, where round r holds the r-th buffered record of every device in the
 * buffer, so each device's steps stay in order. Each device's state is read once and written once
 * per flush, and kept between flushes in a cache written back before every checkpoint barrier
 * ({@link DeviceStates}).
 *
 * <p>The buffer is flushed at the size or time limit, before every checkpoint barrier (so it is
 * always empty in a snapshot and holds nothing a restore could lose), before forwarding a
 * watermark, and at end of input. The step logic is {@link Scorer}'s, shared with {@link
 * GruScoringFunction}, whose output this operator reproduces. Buffers, rows and device slots are
 * allocated once and reused: nothing is allocated per record but the outputs.
 *
 * <p>With a shadow model ({@link Models}) each round is one ONNX Runtime call per model, each
 * device's two states (one entry, {@link DeviceStates}) are read and written once per flush, and
 * the shadow's events leave by the side output {@link Outputs#SHADOW_ANOMALIES}.
 */
public class BatchedScoringOperator extends AbstractStreamOperator<AnomalyEvent>
        implements OneInputStreamOperator<TelemetryEvent, AnomalyEvent>,
                BoundedOneInput,
                Triggerable<String, VoidNamespace>,
                Models.Sink {

    private final Models.Bundles bundles;
    private final ScoringSettings settings;
    private final int batchSize;
    private final long batchTimeoutMs;

    private transient Models models;
    // Per device, both models' states in one entry: created on its first event, written every
    // step, dropped after backendTtl without a write (forgotten before, with the watch).
    private transient DeviceStates states;

    // The buffer, in arrival order.
    private transient TelemetryEvent[] events;
    // Each buffered record's Flink timestamp (Scorer.NO_TIMESTAMP if none): its outputs carry it.
    private transient long[] timestamps;
    private transient int size;
    // When the buffer's first record came (processing time), and whether a timer is pending: one
    // timer at a time, never cancelled, so that a buffer filled by size does not register one.
    private transient long bufferedSince;
    private transient boolean timerPending;

    // Per flush: the devices in the buffer, in order of first arrival, and per model the rows of a
    // round.
    private transient Map<String, Slot> slotsByDevice;
    private transient List<Slot> slots;
    private transient List<Slot> slotPool;
    private transient Slot[][] rowSlot;
    private transient int[][] rowEvent;

    // Where a model's outputs go: as the device's server, or as its shadow.
    private transient Scorer.Emitter serving;
    private transient Scorer.Emitter shadowing;
    private transient StreamRecord<AnomalyEvent> anomalyOut;

    // The silence watch, and its event-time timers (one per device at a time).
    private transient Silence silence;
    private transient InternalTimerService<VoidNamespace> silenceTimers;
    private transient Silence.Timers timers;
    private transient SilenceArming arming;

    /** One device's part of a flush: its state per model and the buffer indexes of its records. */
    private static final class Slot {
        String deviceId;
        boolean canary;
        // Per model (two: a shadow state the job restored without its shadow model is written
        // back as it was).
        final DeviceState[] state = new DeviceState[2];
        // Whether the states are written back: a step was scored, or prepare() or a hand-over
        // changed one.
        boolean write;
        // Per model, the row of this round's record, or -1 when the model turned it away.
        final int[] row = new int[2];
        int[] indexes = new int[4];
        int count;

        void add(int index) {
            if (count == indexes.length) {
                indexes = java.util.Arrays.copyOf(indexes, count * 2);
            }
            indexes[count++] = index;
        }
    }

    public BatchedScoringOperator(ModelBundle bundle, ScoringSettings settings) {
        this(bundle, null, settings);
    }

    /** With a shadow model ({@code shadow}, or null for none) beside the serving one. */
    public BatchedScoringOperator(
            ModelBundle bundle, ModelBundle shadow, ScoringSettings settings) {
        if (settings.batchSize() < 1) {
            throw new IllegalArgumentException("batch size must be at least 1");
        }
        this.bundles = new Models.Bundles(bundle, shadow);
        this.settings = settings;
        this.batchSize = settings.batchSize();
        this.batchTimeoutMs = settings.batchTimeoutMs();
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        arming = new SilenceArming(context);
    }

    @Override
    public void open() throws Exception {
        super.open();
        states = DeviceStates.cached(this, settings);
        models = new Models(bundles, settings, batchSize, getRuntimeContext());
        events = new TelemetryEvent[batchSize];
        timestamps = new long[batchSize];
        slotsByDevice = new HashMap<>(batchSize * 2);
        slots = new ArrayList<>(batchSize);
        slotPool = new ArrayList<>(batchSize);
        rowSlot = new Slot[models.count()][batchSize];
        rowEvent = new int[models.count()][batchSize];
        anomalyOut = new StreamRecord<>(null);
        serving = models.emitter(true, this);
        shadowing = models.emitter(false, this);
        silence = Models.silence(settings, getRuntimeContext());
        silenceTimers =
                getInternalTimerService(SILENCE_TIMERS, VoidNamespaceSerializer.INSTANCE, this);
        silence.publishLag(silenceTimers::currentWatermark);
        timers = Silence.timers(this::setCurrentKey, silenceTimers);
        states.moveOlderShadowStates(getKeyedStateBackend());
        arming.open(silence, getKeyedStateBackend(), states, models, timers);
    }

    /**
     * The name of the silence timers' state, part of the savepoint and never renamed: the
     * per-record operator's ({@code KeyedProcessOperator}'s) own name, so that a job switched
     * between the two operators ({@code vigil.scoring.batch-size} 0 or not, the same uid) keeps its
     * timers.
     */
    static final String SILENCE_TIMERS = "user-timers";

    @Override
    public void processElement(StreamRecord<TelemetryEvent> record) throws Exception {
        events[size] = record.getValue();
        timestamps[size] = record.hasTimestamp() ? record.getTimestamp() : Scorer.NO_TIMESTAMP;
        size++;
        if (size == batchSize) {
            flush();
        } else if (size == 1 && batchTimeoutMs > 0) {
            bufferedSince = getProcessingTimeService().getCurrentProcessingTime();
            if (!timerPending) {
                timeoutAt(bufferedSince + batchTimeoutMs);
            }
        }
    }

    private void timeoutAt(long time) {
        timerPending = true;
        getProcessingTimeService().registerTimer(time, this::onTimeout);
    }

    /**
     * The batch timeout: flushes a buffer whose first record has waited for it, or waits again for
     * the time the buffer's first record is due, when a flush at the size limit came in between.
     */
    private void onTimeout(long time) throws Exception {
        timerPending = false;
        if (size == 0) {
            return;
        }
        long due = bufferedSince + batchTimeoutMs;
        if (time >= due) {
            flush();
        } else {
            timeoutAt(due);
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flush(); // everything before the watermark leaves before it
        super.processWatermark(mark);
        if (mark.getTimestamp() == Long.MAX_VALUE) {
            arming.drained();
        }
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flush(); // a snapshot never holds a half-processed buffer
        states.writeBack(); // nor misses a step the state cache holds
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() throws Exception {
        flush();
        states.writeBack();
    }

    @Override
    public void finish() throws Exception {
        flush();
        states.writeBack();
        super.finish();
    }

    @Override
    public void close() throws Exception {
        if (models != null) {
            models.close();
        }
        super.close();
    }

    private Scorer.Emitter out(int model, Slot slot) {
        return Models.serves(model, slot.canary) ? serving : shadowing;
    }

    private void flush() throws Exception {
        if (size == 0) {
            return;
        }
        int rounds = groupByDevice();
        int count = models.count();
        for (Slot slot : slots) {
            setCurrentKey(slot.deviceId);
            int first = slot.indexes[0];
            states.read(slot.state);
            slot.write = false;
            for (int m = 0; m < count; m++) {
                Scorer scorer = models.scorer(m);
                DeviceState stored = slot.state[m];
                slot.state[m] =
                        scorer.prepare(stored, slot.deviceId, timestamps[first], out(m, slot));
                // Written back even if only late records follow: another model's state, or a new
                // one (a reset, which must not be redone and reported again at the next read).
                slot.write |= !scorer.current(stored) || slot.state[m] != stored;
                Models.adoptSilence(stored, slot.state[m], slot.state[1 - m]);
                slot.write |=
                        models.handOver(
                                m,
                                slot.state[m],
                                slot.deviceId,
                                slot.canary,
                                timestamps[first],
                                out(m, slot));
            }
            slot.write |= models.closeOrphan(slot.state, slot.deviceId, timestamps[first], serving);
        }
        for (int round = 0; round < rounds; round++) {
            for (int m = 0; m < count; m++) {
                step(m, round);
            }
            if (count == 2) {
                for (Slot slot : slots) {
                    if (slot.count > round) {
                        compared(slot);
                    }
                }
            }
        }
        for (Slot slot : slots) {
            models.copySilence(slot.state, models.servedBy(slot.canary));
            if (slot.write) { // late records alone do not refresh the time-to-live
                setCurrentKey(slot.deviceId);
                states.write(slot.state);
            }
        }
        release();
    }

    /**
     * A device's silence timer ({@link Silence}). The buffer is empty: a watermark flushes it
     * before it fires any timer.
     */
    @Override
    public void onEventTime(InternalTimer<String, VoidNamespace> timer) throws Exception {
        if (silenceTimers.currentWatermark() == Long.MAX_VALUE) {
            return; // the end of a bounded input: the feed ended, no device fell silent
        }
        models.silenceTimer(states, silence, timer.getKey(), timer.getTimestamp(), timers, this);
    }

    /** The devices whose state the cache holds and the state backend does not yet. */
    int cachedDevices() {
        return states.cached();
    }

    /** The reads of a device's state that the cache could not serve. */
    long stateCacheMisses() {
        return states.misses();
    }

    @Override
    public void onProcessingTime(InternalTimer<String, VoidNamespace> timer) {
        // None registered: the batch timeout uses the processing time service directly.
    }

    /** Model {@code model}'s part of round {@code round}: one ONNX Runtime call for its rows. */
    private void step(int model, int round) {
        Scorer scorer = models.scorer(model);
        Slot[] slotOf = rowSlot[model];
        int[] eventOf = rowEvent[model];
        int rows = 0;
        for (Slot slot : slots) {
            if (slot.count > round) {
                int i = slot.indexes[round];
                slot.row[model] = -1;
                if (scorer.accept(slot.state[model], events[i], timestamps[i], out(model, slot))) {
                    slot.write = true;
                    scorer.load(slot.state[model], events[i], rows);
                    slotOf[rows] = slot;
                    eventOf[rows] = i;
                    slot.row[model] = rows;
                    rows++;
                }
            }
        }
        if (rows > 0) {
            scorer.infer(rows);
            for (int row = 0; row < rows; row++) {
                Slot slot = slotOf[row];
                int i = eventOf[row];
                // A MODEL_ERROR step is not the device seen.
                if (model == models.servedBy(slot.canary) && !scorer.failed(row)) {
                    silence.stepped(
                            slot.state[model],
                            slot.deviceId,
                            timestamps[i],
                            timers,
                            this,
                            models.servingVersion(slot.canary));
                }
                scorer.finish(slot.state[model], events[i], row, timestamps[i], out(model, slot));
            }
        }
    }

    /** After both models took a device's record of this round (with a shadow model only). */
    private void compared(Slot slot) {
        int servingRow = slot.row[Models.SERVING];
        int shadowRow = slot.row[Models.SHADOW];
        int servedBy = slot.canary ? shadowRow : servingRow;
        if (servedBy >= 0 && !models.scorer(models.servedBy(slot.canary)).failed(servedBy)) {
            models.scored(slot.canary); // a MODEL_ERROR step is not a step scored
        }
        if (servingRow >= 0 && shadowRow >= 0) {
            models.compare(
                    slot.state[Models.SERVING],
                    models.scorer(Models.SERVING).stepScore(servingRow),
                    slot.state[Models.SHADOW],
                    models.scorer(Models.SHADOW).stepScore(shadowRow));
        }
    }

    /** Fills {@link #slots}; returns the largest number of records one device has. */
    private int groupByDevice() {
        int rounds = 0;
        for (int i = 0; i < size; i++) {
            String deviceId = events[i].deviceId;
            Slot slot = slotsByDevice.get(deviceId);
            if (slot == null) {
                slot = slotPool.isEmpty() ? new Slot() : slotPool.remove(slotPool.size() - 1);
                slot.deviceId = deviceId;
                slot.canary = models.canary(deviceId);
                slot.count = 0;
                slotsByDevice.put(deviceId, slot);
                slots.add(slot);
            }
            slot.add(i);
            rounds = Math.max(rounds, slot.count);
        }
        return rounds;
    }

    private void release() {
        for (Slot slot : slots) {
            java.util.Arrays.fill(slot.state, null);
            slot.deviceId = null;
            slotPool.add(slot);
        }
        slots.clear();
        slotsByDevice.clear();
        java.util.Arrays.fill(events, 0, size, null);
        for (Slot[] rows : rowSlot) {
            java.util.Arrays.fill(rows, null);
        }
        size = 0;
    }

    private static <T> StreamRecord<T> stamped(StreamRecord<T> record, T value, long timestamp) {
        if (timestamp != Scorer.NO_TIMESTAMP) {
            return record.replace(value, timestamp);
        }
        record.eraseTimestamp();
        return record.replace(value);
    }

    @Override
    public void alert(AnomalyEvent event, long timestamp) {
        output.collect(stamped(anomalyOut, event, timestamp));
    }

    @Override
    public void shadowAlert(AnomalyEvent event, long timestamp) {
        output.collect(
                Outputs.SHADOW_ANOMALIES, stamped(new StreamRecord<>(event), event, timestamp));
    }

    @Override
    public void deadLetter(DeadLetter letter, long timestamp) {
        output.collect(
                Outputs.DEAD_LETTERS, stamped(new StreamRecord<>(letter), letter, timestamp));
    }

    @Override
    public void score(ScoredStep step, long timestamp) {
        output.collect(Outputs.SCORES, stamped(new StreamRecord<>(step), step, timestamp));
    }
}
