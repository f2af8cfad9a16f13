package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import dev.vigil.testing.Fixtures;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.flink.api.common.state.KeyedStateStore;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The silence watch ({@code vigil.alerts.silence-after}) in both scoring operators: a device with
 * no scored step for the period gets a silence OPEN when the watermark passes it, and a CLOSE at
 * its next step; its timer survives a snapshot; the end of a bounded input reports nothing.
 */
class SilenceTest {

    private static final long MINUTE = 60_000L;
    private static final long T0 = 1_764_000_000_000L;
    private static final long AFTER = 10 * MINUTE;

    static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> harness(
            boolean batched, long silenceAfterMs, ModelBundle shadow) throws Exception {
        return harness(batched, silenceAfterMs, shadow, 0);
    }

    /** With a shadow model serving a canary of {@code canary} of the devices. */
    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            harness(boolean batched, long silenceAfterMs, ModelBundle shadow, double canary)
                    throws Exception {
        return harness(
                batched,
                Fixtures.scoringDefaults()
                        .silenceAfterMs(silenceAfterMs)
                        .canaryFraction(canary)
                        .build(),
                shadow);
    }

    /** An operator with {@code settings}, batched or not. */
    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            harness(boolean batched, ScoringSettings settings, ModelBundle shadow)
                    throws Exception {
        return harness(batched, settings, Fixtures.model(), shadow);
    }

    /** An operator serving {@code model} with {@code settings}, batched or not. */
    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            harness(
                    boolean batched,
                    ScoringSettings settings,
                    ModelBundle model,
                    ModelBundle shadow)
                    throws Exception {
        settings = settings.toBuilder().batch(batched ? 64 : 0, 0).build();
        OneInputStreamOperator<TelemetryEvent, AnomalyEvent> operator =
                batched
                        ? new BatchedScoringOperator(model, shadow, settings)
                        : new GruScoringFunction.Operator(
                                new GruScoringFunction(model, shadow, settings));
        return keyed(operator);
    }

    /** A harness of {@code operator} keyed by device, on RocksDB. */
    static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> keyed(
            OneInputStreamOperator<TelemetryEvent, AnomalyEvent> operator) throws Exception {
        var h =
                new KeyedOneInputStreamOperatorTestHarness<>(
                        operator, new VigilPipeline.DeviceKey(), Types.STRING);
        h.setStateBackend(new EmbeddedRocksDBStateBackend());
        return h;
    }

    /** One step of a device at minute {@code minute}, stamped with that time as Kafka would. */
    static StreamRecord<TelemetryEvent> step(String device, int minute) {
        int features = Fixtures.model().card().featureCount();
        float[] values = new float[features];
        Random r = new Random(minute * 31L + device.hashCode());
        for (int f = 0; f < features; f++) {
            values[f] = (float) r.nextGaussian() * 0.1f;
        }
        long ts = T0 + minute * MINUTE;
        return new StreamRecord<>(new TelemetryEvent(device, ts, minute, values), ts);
    }

    /** Feeds minutes [from, to) of the devices, with a watermark 30 s behind after each minute. */
    private static void feed(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            int from,
            int to,
            String... devices)
            throws Exception {
        for (int m = from; m < to; m++) {
            for (String d : devices) {
                h.processElement(step(d, m));
            }
            h.processWatermark(new Watermark(T0 + m * MINUTE - 30_000));
        }
    }

    private static List<AnomalyEvent> silences(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h) {
        List<AnomalyEvent> out = new ArrayList<>();
        for (AnomalyEvent e : h.extractOutputValues()) {
            if (e.isSilence()) {
                out.add(e);
            }
        }
        return out;
    }

    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldReportASilentDeviceOnceAndCloseWhenItSpeaksAgain(boolean batched) throws Exception {
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            feed(h, 0, 10, "a", "b"); // a's last step: minute 9
            feed(h, 10, 19, "b");
            // Minute 19's watermark lies 30 s before a's silence is due (minute 9 + 10): none yet.
            feed(h, 19, 20, "b");
            assertThat(silences(h)).isEmpty();

            feed(h, 20, 40, "b");
            List<AnomalyEvent> open = silences(h);
            assertThat(open).hasSize(1);
            AnomalyEvent o = open.get(0);
            assertThat(o.type).isEqualTo(AnomalyEvent.OPEN);
            assertThat(o.deviceId).isEqualTo("a");
            assertThat(o.reason).isEqualTo(AnomalyEvent.SILENCE);
            assertThat(o.episodeStart).isEqualTo(T0 + 9 * MINUTE);
            assertThat(o.ts).isEqualTo(T0 + 19 * MINUTE);
            assertThat(o.eventId).isEqualTo("a:" + (T0 + 9 * MINUTE) + ":silence:OPEN");
            assertThat(o.modelVersion).isEqualTo(Fixtures.model().card().version());

            feed(h, 40, 45, "a", "b");
            List<AnomalyEvent> both = silences(h);
            assertThat(both).hasSize(2);
            AnomalyEvent c = both.get(1);
            assertThat(c.type).isEqualTo(AnomalyEvent.CLOSE);
            assertThat(c.eventId).isEqualTo("a:" + (T0 + 9 * MINUTE) + ":silence:CLOSE");
            assertThat(c.ts).isEqualTo(T0 + 40 * MINUTE);
            assertThat(c.durationMs).isEqualTo(31 * MINUTE);
            // b stepped every minute: its timer moved on each time it fired, and never reported.
        }
    }

    /**
     * Records read far ahead of the watermark (a replay, a backlog): the device speaks again before
     * the watermark reaches its silence, and the step that ends it reports the OPEN the timer would
     * have sent and its CLOSE, so the events are those of a live run.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldReportASilenceTheWatermarkHadNotReachedAsALiveRunDoes(boolean batched)
            throws Exception {
        List<String> live;
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            feed(h, 0, 10, "a", "b");
            feed(h, 10, 40, "b");
            feed(h, 40, 45, "a", "b");
            live = describe(silences(h));
        }
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            for (int m = 0; m < 45; m++) {
                for (String d : new String[] {"a", "b"}) {
                    if (d.equals("b") || m < 10 || m >= 40) {
                        h.processElement(step(d, m));
                    }
                }
            }
            h.processWatermark(new Watermark(T0 + 5 * MINUTE)); // far behind: nothing fires
            assertThat(describe(silences(h))).isEqualTo(live);
            // Each stamped with its own time in both operators, the OPEN not with the step's
            assertThat(h.getOutput())
                    .filteredOn(
                            r ->
                                    r instanceof StreamRecord<?> s
                                            && ((AnomalyEvent) s.getValue()).isSilence())
                    .extracting(r -> ((StreamRecord<?>) r).getTimestamp())
                    .containsExactly(T0 + 19 * MINUTE, T0 + 40 * MINUTE);
        }
        assertThat(live).isEqualTo(aSilentFromMinute9To40());
    }

    /** Device a's silence from its step at minute 9 to its next at minute 40, described. */
    private static List<String> aSilentFromMinute9To40() {
        String id = "a:" + (T0 + 9 * MINUTE) + ":silence:";
        return List.of(
                "a OPEN " + (T0 + 19 * MINUTE) + " " + id + "OPEN",
                "a CLOSE " + (T0 + 40 * MINUTE) + " " + id + "CLOSE");
    }

    /**
     * A device whose steps ONNX Runtime fails on (each one a dead letter {@code MODEL_ERROR}) has
     * no step scored: a period after its last scored step it is reported silent, as a device that
     * sends only dead letters is, and the silence closes at its next scored step. (The test model
     * fails on a row whose first input is normalised to 4 or more.)
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldReportADeviceWhoseStepsOnnxRuntimeFailsOn(boolean batched) throws Exception {
        ModelCard card = Fixtures.model().card();
        ModelBundle poison = Fixtures.poisonModel(card.version());
        ScoringSettings settings = Fixtures.scoringDefaults().silenceAfterMs(AFTER).build();
        try (var h = harness(batched, settings, poison, null)) {
            h.open();
            for (int m = 0; m < 45; m++) {
                for (String d : new String[] {"a", "b"}) {
                    StreamRecord<TelemetryEvent> r = step(d, m);
                    if (d.equals("a") && m >= 10 && m < 40) {
                        r.getValue().values[0] = card.mean()[0] + 10 * card.std()[0];
                    }
                    h.processElement(r);
                }
                h.processWatermark(new Watermark(T0 + m * MINUTE - 30_000));
            }
            List<String> reasons = new ArrayList<>();
            h.getSideOutput(Outputs.DEAD_LETTERS)
                    .forEach(r -> reasons.add(r.getValue().reason.name()));
            assertThat(reasons).hasSize(30).containsOnly("MODEL_ERROR");
            assertThat(describe(silences(h))).isEqualTo(aSilentFromMinute9To40());
        }
    }

    private static List<String> describe(List<AnomalyEvent> events) {
        return events.stream()
                .map(e -> e.deviceId + " " + e.type + " " + e.ts + " " + e.eventId)
                .toList();
    }

    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldKeepOneTimerPerDeviceThatMovesOnlyWhenItFires(boolean batched) throws Exception {
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            feed(h, 0, 95, "a");
            assertThat(silences(h)).isEmpty();
            // One pending timer, however many steps: the first at minute 10, then each one
            // registered when the previous fired.
            assertThat(h.numEventTimeTimers()).isEqualTo(1);
        }
    }

    /**
     * A device whose records are stamped 20 minutes behind the fleet's clock (its producer's clock
     * behind, on a partition whose other producers keep the watermark): while it talks, no silence
     * (measured from its own stamps, each record would open and close one); when it stops, one
     * OPEN, a period after the watermark its last record was read at. After a restore its first
     * records, read before the first watermark, count at the last time it was seen. (At a first
     * start, a record read before the first watermark has only its own stamp: one OPEN and CLOSE.)
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldNotReportADeviceWhoseClockIsBehindWhileItTalks(boolean batched) throws Exception {
        OperatorSubtaskState half;
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            feedBehind(h, 0, 20);
            assertThat(silences(h)).isEmpty();
            h.prepareSnapshotPreBarrier(1L);
            half = h.snapshot(1L, 0L);
        }
        // restored: its first records come before the first watermark, with their own stamps
        try (var h = harness(batched, AFTER, null)) {
            h.initializeState(half);
            h.open();
            feedBehind(h, 20, 60);
            // a's last record read when the watermark was at minute 37.5 (that of minute 38)
            assertThat(describe(silences(h)))
                    .containsExactly(
                            "a OPEN "
                                    + (T0 + 47 * MINUTE + 30_000)
                                    + " a:"
                                    + (T0 + 37 * MINUTE + 30_000)
                                    + ":silence:OPEN");
        }
    }

    /** Minutes [from, to) of b, and of a until minute 40 stamped 20 minutes behind. */
    private static void feedBehind(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            int from,
            int to)
            throws Exception {
        for (int m = from; m < to; m++) {
            h.processElement(step("b", m));
            if (m >= 1 && m < 40) { // from the first watermark on: before it, nothing to go by
                StreamRecord<TelemetryEvent> behind = step("a", m);
                behind.setTimestamp(T0 + (m - 20) * MINUTE);
                h.processElement(behind);
            }
            h.processWatermark(new Watermark(T0 + m * MINUTE - 30_000));
        }
    }

    /**
     * Records read far ahead of the watermark (a replay, a backlog after downtime, a partition that
     * holds the watermark back): each device's timer moves with its records, one per device, not
     * one more every two periods, all firing when the watermark catches up.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldKeepOneTimerPerDeviceWhileItsRecordsRunAheadOfTheWatermark(boolean batched)
            throws Exception {
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            for (int m = 0; m < 95; m++) {
                h.processElement(step("a", m));
                h.processElement(step("b", m));
            }
            h.processWatermark(new Watermark(T0 + 5 * MINUTE)); // far behind: nothing fires
            assertThat(h.numEventTimeTimers()).isEqualTo(2);
            h.processWatermark(new Watermark(T0 + 94 * MINUTE));
            assertThat(silences(h)).isEmpty();
            assertThat(h.numEventTimeTimers()).isEqualTo(2);
        }
    }

    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldKeepAPendingSilenceAcrossASnapshot(boolean batched) throws Exception {
        assertSilenceOfAAfterRestore(batched, batched);
    }

    /**
     * A savepoint of one operator restored into the other ({@code vigil.scoring.batch-size}
     * changed, the same uid): the pending timer moves with the state, under the per-record
     * operator's name.
     */
    @ParameterizedTest(name = "batched first {0}")
    @ValueSource(booleans = {false, true})
    void shouldKeepAPendingSilenceWhenTheOperatorChanges(boolean batchedFirst) throws Exception {
        assertSilenceOfAAfterRestore(batchedFirst, !batchedFirst);
    }

    /**
     * Devices a and b step for 5 minutes in one operator, which is snapshotted; restored into the
     * other, only b goes on: a's pending timer reports its silence 10 minutes after its last step.
     */
    private static void assertSilenceOfAAfterRestore(boolean batchedBefore, boolean batchedAfter)
            throws Exception {
        OperatorSubtaskState snapshot = run(batchedBefore, AFTER, null, 0, 5, "a", "b");
        assertOnlyASilentAfterRestore(batchedAfter, AFTER, snapshot, 5, 30, 14);
    }

    /**
     * Restores {@code state} into an operator with the watch at {@code silenceAfterMs} and feeds
     * minutes [from, to) of device b alone: a's silence is the only one, its OPEN at {@code
     * openMinute}, a period after the step it was last seen at ({@code episode_start}).
     */
    private static void assertOnlyASilentAfterRestore(
            boolean batched,
            long silenceAfterMs,
            OperatorSubtaskState state,
            int from,
            int to,
            int openMinute)
            throws Exception {
        try (var h = restored(batched, silenceAfterMs, state)) {
            feed(h, from, to, "b");
            long open = T0 + openMinute * MINUTE;
            assertThat(silences(h))
                    .extracting(e -> e.deviceId + " " + e.type + " " + e.episodeStart + " " + e.ts)
                    .containsExactly("a OPEN " + (open - silenceAfterMs) + " " + open);
        }
    }

    /**
     * A state kept without the watch (a job run with it off; a savepoint of a version before it has
     * no timers either) restored with it on: every device gets a timer from its last step, so a
     * device that never sends again is reported, 10 minutes after its last step.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldArmEveryDeviceOfAStateKeptWithoutTheWatch(boolean batched) throws Exception {
        OperatorSubtaskState off = run(batched, 0, null, 0, 5, "a", "b");
        assertOnlyASilentAfterRestore(batched, AFTER, off, 5, 30, 14); // a's last step: minute 4
    }

    /**
     * A savepoint taken after the final watermark ({@code flink stop --drain}), which fired every
     * timer and reported nothing: the restore arms every device again, so that a device that never
     * sends again is still reported.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldArmEveryDeviceAfterADrain(boolean batched) throws Exception {
        OperatorSubtaskState drained;
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            feed(h, 0, 5, "a", "b");
            h.processWatermark(new Watermark(Long.MAX_VALUE));
            assertThat(h.numEventTimeTimers()).isZero();
            h.prepareSnapshotPreBarrier(1L);
            drained = h.snapshot(1L, 0L);
        }
        assertOnlyASilentAfterRestore(batched, AFTER, drained, 5, 30, 14);

        // A device already reported silent at the drain is still forgotten after the restore.
        try (var h = forgetting(batched, HOUR_TTL)) {
            h.open();
            feed(h, 0, 30, "a", "b");
            feed(h, 30, 45, "b"); // a reported silent at minute 39
            h.processWatermark(new Watermark(Long.MAX_VALUE));
            h.prepareSnapshotPreBarrier(1L);
            drained = h.snapshot(1L, 0L);
        }
        try (var h = forgetting(batched, HOUR_TTL)) {
            h.initializeState(drained);
            h.open();
            feed(h, 45, 91, "b");
            assertThat(eventsOf(h, "a"))
                    .last()
                    .isEqualTo("CLOSE forgotten a:" + (T0 + 29 * MINUTE) + ":silence:CLOSE");
        }
    }

    /**
     * The watch on, then off for a while in which both devices go on, then on again: a's silence is
     * measured from its last step, taken while the watch was off, not from the last one it saw.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldMeasureFromTheLastStepWhenTheWatchIsTurnedOnAgain(boolean batched) throws Exception {
        OperatorSubtaskState on = run(batched, AFTER, null, 0, 5, "a", "b");
        OperatorSubtaskState off = run(batched, 0, on, 5, 20, "a", "b");
        assertOnlyASilentAfterRestore(batched, AFTER, off, 20, 40, 29);
    }

    /**
     * A shorter period after a restore: the pending timers were set for the longer one, and the
     * silence is reported at the new period, not when the old timer fires.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldArmAgainForAShorterPeriod(boolean batched) throws Exception {
        OperatorSubtaskState tenMinutes = run(batched, AFTER, null, 0, 5, "a", "b");
        assertOnlyASilentAfterRestore(batched, 5 * MINUTE, tenMinutes, 5, 30, 9);
    }

    /**
     * Every device in the canary (served by the shadow model): the restore arms the watch in the
     * shadow's state, and the serving model's state takes the same watch.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldArmTheStateOfTheModelThatServesTheDevice(boolean batched) throws Exception {
        OperatorSubtaskState off;
        try (var h = harness(batched, 0, Fixtures.model(), 1.0)) {
            h.open();
            feed(h, 0, 5, "a", "b");
            h.prepareSnapshotPreBarrier(1L);
            off = h.snapshot(1L, 0L);
        }
        try (var h = harness(batched, AFTER, Fixtures.model(), 1.0)) {
            h.initializeState(off);
            h.open();
            DeviceState serving = state(h, "a", false);
            DeviceState shadow = state(h, "a", true);
            assertThat(shadow.silenceTimerMs).isEqualTo(T0 + 14 * MINUTE);
            assertThat(serving.silenceTimerMs).isEqualTo(shadow.silenceTimerMs);
            assertThat(serving.lastSeenMs).isEqualTo(T0 + 4 * MINUTE);

            feed(h, 5, 30, "b");
            assertThat(silences(h))
                    .extracting(e -> e.deviceId + " " + e.type + " " + e.ts)
                    .containsExactly("a OPEN " + (T0 + 14 * MINUTE));
        }
    }

    /**
     * A shadow model added at a restore, with every device in its canary: the shadow has no state
     * of its own yet, so the devices' watch is in the serving model's. A device that never speaks
     * again is still reported, and one reported silent before the restore gets its CLOSE when it
     * speaks.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldKeepTheWatchWhenAShadowAddedAtARestoreServesTheDevice(boolean batched)
            throws Exception {
        OperatorSubtaskState before;
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            feed(h, 0, 5, "a", "b", "c"); // c's last step: minute 4
            feed(h, 5, 11, "a", "b"); // a's: minute 10
            feed(h, 11, 20, "b");
            assertThat(silences(h))
                    .extracting(e -> e.deviceId + " " + e.type + " " + e.ts)
                    .containsExactly("c OPEN " + (T0 + 14 * MINUTE));
            h.prepareSnapshotPreBarrier(1L);
            before = h.snapshot(1L, 0L);
        }
        try (var h = harness(batched, AFTER, Fixtures.model(), 1.0)) {
            h.initializeState(before);
            h.open();
            feed(h, 20, 35, "b");
            feed(h, 35, 36, "b", "c");
            assertThat(silences(h))
                    .extracting(e -> e.deviceId + " " + e.type + " " + e.ts)
                    .containsExactly(
                            "a OPEN " + (T0 + 20 * MINUTE), "c CLOSE " + (T0 + 35 * MINUTE));
            assertThat(state(h, "c", true).silent).isFalse();
            assertThat(state(h, "c", false).silent).isFalse();
        }
    }

    /**
     * A shadow model removed for a while and added again: the shadow's state each device kept
     * meanwhile has the watch the serving model kept (a state that stood still would make a device
     * that talked throughout look silent for as long as the shadow was gone), so a device the
     * shadow now serves in its canary gets no false silence, and one reported silent while the
     * shadow was gone gets its CLOSE.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldKeepTheWatchOfAShadowRemovedAndAddedAgain(boolean batched) throws Exception {
        OperatorSubtaskState withShadow;
        try (var h = harness(batched, AFTER, Fixtures.model(), 0)) {
            h.open();
            feed(h, 0, 5, "a", "b");
            h.prepareSnapshotPreBarrier(1L);
            withShadow = h.snapshot(1L, 0L);
        }
        OperatorSubtaskState without = run(batched, AFTER, withShadow, 5, 40, "a");
        try (var h = harness(batched, AFTER, Fixtures.model(), 1.0)) {
            h.initializeState(without);
            h.open();
            feed(h, 40, 45, "a", "b");
            assertThat(silences(h))
                    .extracting(e -> e.deviceId + " " + e.type + " " + e.ts)
                    .containsExactly("b CLOSE " + (T0 + 40 * MINUTE));
        }
    }

    /**
     * Feeds minutes [from, to) of the devices into an operator with the watch at {@code
     * silenceAfterMs}, restored from {@code from} (null: fresh), and returns its snapshot.
     */
    private static OperatorSubtaskState run(
            boolean batched,
            long silenceAfterMs,
            OperatorSubtaskState state,
            int from,
            int to,
            String... devices)
            throws Exception {
        try (var h =
                state == null
                        ? harness(batched, silenceAfterMs, null)
                        : restored(batched, silenceAfterMs, state)) {
            if (state == null) {
                h.open();
            }
            feed(h, from, to, devices);
            h.prepareSnapshotPreBarrier(1L);
            return h.snapshot(1L, 0L);
        }
    }

    /** An open operator with the watch at {@code silenceAfterMs}, restored from {@code state}. */
    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            restored(boolean batched, long silenceAfterMs, OperatorSubtaskState state)
                    throws Exception {
        var h = harness(batched, silenceAfterMs, null);
        h.initializeState(state);
        h.open();
        return h;
    }

    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldReportNothingAtTheEndOfABoundedInputOrWhenOff(boolean batched) throws Exception {
        try (var h = harness(batched, AFTER, null)) {
            h.open();
            feed(h, 0, 5, "a", "b");
            h.endInput();
            h.processWatermark(new Watermark(Long.MAX_VALUE));
            assertThat(silences(h)).isEmpty();
        }
        try (var h = harness(batched, 0, null)) {
            h.open();
            feed(h, 0, 5, "a", "b");
            feed(h, 5, 40, "b");
            assertThat(silences(h)).isEmpty();
            assertThat(h.numEventTimeTimers()).isZero();
        }
    }

    /**
     * With a shadow model the silence is reported once, on the anomalies topic, and the shadow's
     * state holds the same watch (a promoted state keeps it).
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldReportOnceWithAShadowAndKeepTheWatchInItsState(boolean batched) throws Exception {
        try (var h = harness(batched, AFTER, Fixtures.model())) {
            h.open();
            feed(h, 0, 10, "a", "b");
            feed(h, 10, 30, "b");
            assertThat(silences(h)).hasSize(1);
            var shadowTopic = h.getSideOutput(Outputs.SHADOW_ANOMALIES);
            if (shadowTopic != null) {
                assertThat(shadowTopic).noneMatch(r -> r.getValue().isSilence());
            }

            DeviceState serving = state(h, "a", false);
            DeviceState shadow = state(h, "a", true);
            assertThat(serving.silent).isTrue();
            assertThat(shadow.silent).isTrue();
            assertThat(shadow.lastSeenMs).isEqualTo(serving.lastSeenMs);
        }
    }

    private static final Duration HOUR_TTL = Duration.ofMinutes(60);

    /** The watch at 10 minutes, devices forgotten after {@code ttl} of silence. */
    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            forgetting(boolean batched, Duration ttl) throws Exception {
        return harness(
                batched,
                Fixtures.scoringDefaults().silenceAfterMs(AFTER).stateTtl(ttl).build(),
                null);
    }

    /** The events of {@code device}, described as {@link #describe} does, with the reason. */
    private static List<String> eventsOf(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            String device) {
        return h.extractOutputValues().stream()
                .filter(e -> e.deviceId.equals(device))
                .map(e -> e.type + " " + e.reason + " " + e.eventId)
                .toList();
    }

    /**
     * A device reported silent and still silent a time-to-live (60 minutes here) after it was last
     * seen is forgotten: its open score episode is closed where it opened, its silence gets a CLOSE
     * with reason {@code forgotten} (the id of the CLOSE it takes the place of), and its state is
     * removed, so that when it comes back it starts fresh: no silence CLOSE, warm-up again.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldForgetADeviceStillSilentAfterTheTimeToLive(boolean batched) throws Exception {
        try (var h = forgetting(batched, HOUR_TTL)) {
            h.open();
            // Every step far from the training mean: an episode opens after warm-up and stays open.
            feed(h, 0, 30, "a", "b"); // a's last step: minute 29
            feed(h, 30, 90, "b"); // the last watermark, at 89 min - 30 s, is before a is forgotten
            List<String> silent = eventsOf(h, "a");
            long lastSeen = T0 + 29 * MINUTE;
            assertThat(silent).last().isEqualTo("OPEN silence a:" + lastSeen + ":silence:OPEN");
            assertThat(silent.stream().filter(e -> !e.contains("silence"))).hasSize(1);
            assertThat(silent.get(0)).startsWith("OPEN dynamics");
            String scoreEpisode = silent.get(0).substring(silent.get(0).lastIndexOf(' ') + 1);
            // A score episode's events carry their step's time, as the record did
            assertThat(h.getOutput())
                    .filteredOn(r -> r instanceof StreamRecord<?>)
                    .map(r -> (StreamRecord<?>) r)
                    .filteredOn(r -> !((AnomalyEvent) r.getValue()).isSilence())
                    .isNotEmpty()
                    .allSatisfy(
                            r ->
                                    assertThat(r.getTimestamp())
                                            .isEqualTo(((AnomalyEvent) r.getValue()).ts));
            assertThat(state(h, "a", HOUR_TTL)).isNotNull();

            feed(h, 90, 91, "b");
            List<String> forgotten = eventsOf(h, "a");
            assertThat(forgotten.subList(silent.size(), forgotten.size()))
                    .hasSize(2)
                    .first()
                    .asString()
                    .startsWith("CLOSE dynamics")
                    .endsWith(scoreEpisode.replace(":OPEN", ":CLOSE"));
            assertThat(forgotten)
                    .last()
                    .isEqualTo("CLOSE forgotten a:" + lastSeen + ":silence:CLOSE");
            AnomalyEvent close =
                    h.extractOutputValues().stream()
                            .filter(e -> AnomalyEvent.FORGOTTEN.equals(e.reason))
                            .findFirst()
                            .orElseThrow();
            assertThat(close.isSilence()).isTrue();
            assertThat(close.ts).isEqualTo(lastSeen + HOUR_TTL.toMillis());
            assertThat(close.episodeStart).isEqualTo(lastSeen);
            assertThat(close.durationMs).isEqualTo(HOUR_TTL.toMillis());
            assertThat(state(h, "a", HOUR_TTL)).isNull();

            feed(h, 91, 105, "a", "b"); // back: a fresh device, warming up
            assertThat(eventsOf(h, "a")).isEqualTo(forgotten);
            assertThat(state(h, "a", HOUR_TTL).lastSeenMs).isEqualTo(T0 + 104 * MINUTE);
            assertThat(eventsOf(h, "b")).noneMatch(e -> e.contains("silence"));
        }
    }

    /**
     * The watermark stands still past a device's time-to-live in processing time (a stalled
     * partition, a backlog after downtime): the state backend keeps its state for another
     * time-to-live, so that when the watermark moves on the device is still forgotten with its
     * CLOSE, instead of dropped by the backend without a word.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldStillReportAForgottenDeviceAfterTheWatermarkStoodStill(boolean batched)
            throws Exception {
        try (var h = forgetting(batched, HOUR_TTL)) {
            h.setStateTtlProcessingTime(0);
            h.open();
            feed(h, 0, 30, "a", "b");
            feed(h, 30, 45, "b"); // a reported silent at minute 39
            // Two checkpoints: the batched operator's state cache no longer holds a.
            h.prepareSnapshotPreBarrier(1L);
            h.prepareSnapshotPreBarrier(2L);
            // The watermark stands at minute 43.5 while the wall clock passes a's time-to-live.
            h.setStateTtlProcessingTime(HOUR_TTL.toMillis() + 30 * MINUTE);
            feed(h, 45, 91, "b"); // a forgotten at minute 89, its last step's plus an hour

            assertThat(eventsOf(h, "a"))
                    .last()
                    .isEqualTo("CLOSE forgotten a:" + (T0 + 29 * MINUTE) + ":silence:CLOSE");
            assertThat(state(h, "a", HOUR_TTL)).isNull();
        }
    }

    /**
     * A device that speaks again before it is forgotten gets its silence CLOSE as always, and the
     * timer that would have forgotten it is gone: silent again, it is forgotten a time-to-live
     * after its new last step, not after the old one.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldNotForgetADeviceThatCameBack(boolean batched) throws Exception {
        try (var h = forgetting(batched, HOUR_TTL)) {
            h.open();
            feed(h, 0, 30, "a", "b");
            feed(h, 30, 50, "b");
            feed(h, 50, 60, "a", "b"); // back at minute 50, last seen at 59
            feed(h, 60, 119, "b"); // the old timer (minute 89) fired and did nothing
            assertThat(eventsOf(h, "a").stream().filter(e -> e.contains("silence")))
                    .containsExactly(
                            "OPEN silence a:" + (T0 + 29 * MINUTE) + ":silence:OPEN",
                            "CLOSE silence a:" + (T0 + 29 * MINUTE) + ":silence:CLOSE",
                            "OPEN silence a:" + (T0 + 59 * MINUTE) + ":silence:OPEN");
            assertThat(h.extractOutputValues())
                    .filteredOn(e -> e.isSilence() && e.episodeStart == T0 + 59 * MINUTE)
                    .extracting(e -> e.ts)
                    .containsExactly(T0 + 69 * MINUTE); // a period after, not at the old timer
            feed(h, 119, 121, "b");
            assertThat(eventsOf(h, "a"))
                    .last()
                    .isEqualTo("CLOSE forgotten a:" + (T0 + 59 * MINUTE) + ":silence:CLOSE");
        }
    }

    /** A time-to-live too long to count in milliseconds from now: never forgotten, not at once. */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldNeverForgetUnderATimeToLiveBeyondTheClock(boolean batched) throws Exception {
        try (var h = forgetting(batched, Duration.ofMillis(Long.MAX_VALUE))) {
            h.open();
            feed(h, 0, 30, "a", "b");
            feed(h, 30, 120, "b");
            assertThat(eventsOf(h, "a"))
                    .last()
                    .isEqualTo("OPEN silence a:" + (T0 + 29 * MINUTE) + ":silence:OPEN");
        }
    }

    /**
     * A device already reported silent in a state kept for another time-to-live (or before devices
     * were forgotten): the restore arms the timer that forgets it for this one.
     */
    @ParameterizedTest(name = "batched {0}")
    @ValueSource(booleans = {false, true})
    void shouldForgetASilentDeviceOfAStateKeptForAnotherTimeToLive(boolean batched)
            throws Exception {
        OperatorSubtaskState kept;
        try (var h = forgetting(batched, Duration.ofDays(10))) {
            h.open();
            feed(h, 0, 30, "a", "b");
            feed(h, 30, 45, "b"); // a reported silent at minute 39
            h.prepareSnapshotPreBarrier(1L);
            kept = h.snapshot(1L, 0L);
        }
        try (var h = forgetting(batched, HOUR_TTL)) {
            h.initializeState(kept);
            h.open();
            feed(h, 45, 91, "b");
            assertThat(eventsOf(h, "a"))
                    .containsExactly(
                            "CLOSE dynamics a:" + (T0 + 20 * MINUTE) + ":CLOSE",
                            "CLOSE forgotten a:" + (T0 + 29 * MINUTE) + ":silence:CLOSE");
        }
    }

    /**
     * The lag published as {@code silence_watch_lag_ms}: the wall clock less the watermark, the
     * time since the start before the first watermark, 0 at the end of a bounded input, never below
     * 0 (a watermark ahead of this clock: another machine's).
     */
    @Test
    void shouldMeasureHowFarTheWatchsClockIsBehindTheWallClock() {
        long now = T0 + 60 * MINUTE;
        assertThat(Silence.lagMs(now - 30_000L, now, T0)).isEqualTo(30_000L);
        assertThat(Silence.lagMs(T0 - 5 * MINUTE, now, T0)).isEqualTo(65 * MINUTE);
        assertThat(Silence.lagMs(Long.MIN_VALUE, now, T0)).isEqualTo(60 * MINUTE);
        assertThat(Silence.lagMs(Long.MAX_VALUE, now, T0)).isZero();
        assertThat(Silence.lagMs(now + 1_000L, now, T0)).isZero();
    }

    /**
     * The state of {@code device} held for the serving model, or for the shadow ({@code shadow}):
     * both in one entry.
     */
    private static DeviceState state(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            String device,
            boolean shadow)
            throws Exception {
        return state(h, device, shadow, Fixtures.scoringDefaults().build().stateTtl());
    }

    /**
     * The serving model's state of {@code device} in an operator whose time-to-live is {@code ttl}.
     */
    private static DeviceState state(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            String device,
            Duration ttl)
            throws Exception {
        return state(h, device, false, ttl);
    }

    private static DeviceState state(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            String device,
            boolean shadow,
            Duration ttl)
            throws Exception {
        h.prepareSnapshotPreBarrier(0L); // the batched operator's state cache goes to the backend
        AbstractStreamOperator<?> operator = (AbstractStreamOperator<?>) h.getOperator();
        operator.setCurrentKey(device);
        KeyedStateStore store = operator.getKeyedStateStore();
        DeviceState entry = store.getState(DeviceStateSchema.descriptor(ttl)).value();
        if (entry == null) {
            return null;
        }
        return shadow ? entry.shadow : entry.vacant ? null : entry;
    }
}
