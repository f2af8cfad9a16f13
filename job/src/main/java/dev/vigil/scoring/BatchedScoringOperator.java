package dev.vigil.scoring;

import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ScheduledFuture;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;

/**
 * The scoring operator for throughput: buffers up to {@link ScoringSettings#batchSize()} records
 * (or for {@link ScoringSettings#batchTimeoutMs()}) across devices and steps them with one ONNX
 * Runtime call per round, where round r holds the r-th buffered record of every device in the
 * buffer, so each device's steps stay in order. Each device's state is read once and written once
 * per flush.
 *
 * <p>The buffer is flushed at the size or time limit, before every checkpoint barrier (so it is
 * always empty in a snapshot and holds nothing a restore could lose), before forwarding a
 * watermark, and at end of input. The step logic is {@link Scorer}'s, shared with {@link
 * GruScoringFunction}, whose output this operator reproduces. Buffers, rows and device slots are
 * allocated once and reused: nothing is allocated per record but the outputs.
 */
public class BatchedScoringOperator extends AbstractStreamOperator<AnomalyEvent>
        implements OneInputStreamOperator<TelemetryEvent, AnomalyEvent>,
                BoundedOneInput,
                Scorer.Emitter {

    private final ModelBundle bundle;
    private final ScoringSettings settings;
    private final int batchSize;
    private final long batchTimeoutMs;

    private transient Scorer scorer;
    // Created on a device's first event, written every step, dropped after stateTtl of silence.
    private transient ValueState<DeviceState> state;

    // The buffer, in arrival order.
    private transient TelemetryEvent[] events;
    // Each buffered record's Flink timestamp (Scorer.NO_TIMESTAMP if none): its outputs carry it.
    private transient long[] timestamps;
    private transient int size;
    private transient ScheduledFuture<?> timeout;

    // Per flush: the devices in the buffer, in order of first arrival, and the rows of a round.
    private transient Map<String, Slot> slotsByDevice;
    private transient List<Slot> slots;
    private transient List<Slot> slotPool;
    private transient Slot[] rowSlot;
    private transient int[] rowEvent;

    private transient StreamRecord<AnomalyEvent> anomalyOut;

    /** One device's part of a flush: its state and the buffer indexes of its records. */
    private static final class Slot {
        String deviceId;
        DeviceState state;
        // Whether the state is written back: a step was scored, or prepare() changed it.
        boolean write;
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
        if (settings.batchSize() < 1) {
            throw new IllegalArgumentException("batch size must be at least 1");
        }
        this.bundle = bundle;
        this.settings = settings;
        this.batchSize = settings.batchSize();
        this.batchTimeoutMs = settings.batchTimeoutMs();
    }

    @Override
    public void open() throws Exception {
        super.open();
        state = getRuntimeContext().getState(DeviceStateSchema.descriptor(settings.stateTtl()));
        scorer =
                new Scorer(
                        bundle,
                        settings,
                        batchSize,
                        new Metrics.Scoring(getRuntimeContext(), settings.shadow()));
        events = new TelemetryEvent[batchSize];
        timestamps = new long[batchSize];
        slotsByDevice = new HashMap<>(batchSize * 2);
        slots = new ArrayList<>(batchSize);
        slotPool = new ArrayList<>(batchSize);
        rowSlot = new Slot[batchSize];
        rowEvent = new int[batchSize];
        anomalyOut = new StreamRecord<>(null);
    }

    @Override
    public void processElement(StreamRecord<TelemetryEvent> record) throws Exception {
        events[size] = record.getValue();
        timestamps[size] = record.hasTimestamp() ? record.getTimestamp() : Scorer.NO_TIMESTAMP;
        size++;
        if (size == batchSize) {
            flush();
        } else if (size == 1 && batchTimeoutMs > 0) {
            long now = getProcessingTimeService().getCurrentProcessingTime();
            timeout = getProcessingTimeService().registerTimer(now + batchTimeoutMs, t -> flush());
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flush(); // everything before the watermark leaves before it
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flush(); // a snapshot never holds a half-processed buffer
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() throws Exception {
        flush();
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }

    @Override
    public void close() throws Exception {
        if (scorer != null) {
            scorer.close();
        }
        super.close();
    }

    private void flush() throws Exception {
        if (timeout != null) {
            timeout.cancel(false);
            timeout = null;
        }
        if (size == 0) {
            return;
        }
        int rounds = groupByDevice();
        for (Slot slot : slots) {
            setCurrentKey(slot.deviceId);
            int first = slot.indexes[0];
            DeviceState stored = state.value();
            slot.write = !scorer.current(stored);
            slot.state = scorer.prepare(stored, slot.deviceId, timestamps[first], this);
        }
        for (int round = 0; round < rounds; round++) {
            int rows = 0;
            for (Slot slot : slots) {
                if (slot.count > round) {
                    int i = slot.indexes[round];
                    if (scorer.accept(slot.state, events[i], timestamps[i], this)) {
                        slot.write = true;
                        scorer.load(slot.state, events[i], rows);
                        rowSlot[rows] = slot;
                        rowEvent[rows] = i;
                        rows++;
                    }
                }
            }
            if (rows > 0) {
                scorer.infer(rows);
                for (int row = 0; row < rows; row++) {
                    int i = rowEvent[row];
                    scorer.finish(rowSlot[row].state, events[i], row, timestamps[i], this);
                }
            }
        }
        for (Slot slot : slots) {
            if (slot.write) { // late records alone do not refresh the time-to-live
                setCurrentKey(slot.deviceId);
                state.update(slot.state);
            }
        }
        release();
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
            slot.state = null;
            slot.deviceId = null;
            slotPool.add(slot);
        }
        slots.clear();
        slotsByDevice.clear();
        java.util.Arrays.fill(events, 0, size, null);
        java.util.Arrays.fill(rowSlot, null);
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
    public void anomaly(AnomalyEvent event, long timestamp) {
        output.collect(stamped(anomalyOut, event, timestamp));
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
