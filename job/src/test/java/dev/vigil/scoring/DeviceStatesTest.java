package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import dev.vigil.testing.Fixtures;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.hashmap.HashMapStateBackend;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.util.Collector;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Both models' states in one entry ({@link DeviceStates}, state format 5), in both scoring
 * operators, on RocksDB and on the heap backend: a state of the older layout, with the shadow's
 * state under its own name, is moved into each device's entry at start, field for field, and
 * nothing of it is left there.
 */
class DeviceStatesTest {

    private static final Duration TTL = Fixtures.scoringDefaults().build().stateTtl();
    private static final List<String> DEVICES = List.of("a", "b", "c");

    /** An operator with the shadow ({@code shadow}: the committed model again) or without. */
    private static KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent>
            harness(boolean batched, boolean heap, boolean shadow) throws Exception {
        var h = SilenceTest.harness(batched, 10 * 60_000L, shadow ? Fixtures.model() : null);
        h.setStateBackend(backend(heap));
        return h;
    }

    /** The entry of {@code device} in {@code h}'s scoring state. */
    private static DeviceState entry(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            String device)
            throws Exception {
        AbstractStreamOperator<?> operator = (AbstractStreamOperator<?>) h.getOperator();
        operator.setCurrentKey(device);
        return operator.getKeyedStateStore().getState(DeviceStateSchema.descriptor(TTL)).value();
    }

    /** Writes {@code entry} as {@code device}'s entry in {@code h}'s scoring state. */
    private static void update(
            KeyedOneInputStreamOperatorTestHarness<String, TelemetryEvent, AnomalyEvent> h,
            String device,
            DeviceState entry)
            throws Exception {
        AbstractStreamOperator<?> operator = (AbstractStreamOperator<?>) h.getOperator();
        operator.setCurrentKey(device);
        operator.getKeyedStateStore().getState(DeviceStateSchema.descriptor(TTL)).update(entry);
    }

    /**
     * Writes each device's two states as builds before format 5 kept them: the serving model's
     * under {@link DeviceStateSchema#STATE_NAME}, the shadow's under {@link
     * DeviceStateSchema#SHADOW_STATE_NAME}.
     */
    private static final class OlderLayout
            extends KeyedProcessFunction<String, TelemetryEvent, AnomalyEvent> {
        private final Map<String, DeviceState> serving;
        private final Map<String, DeviceState> shadow;

        OlderLayout(Map<String, DeviceState> serving, Map<String, DeviceState> shadow) {
            this.serving = serving;
            this.shadow = shadow;
        }

        @Override
        public void processElement(TelemetryEvent e, Context ctx, Collector<AnomalyEvent> out)
                throws Exception {
            ValueState<DeviceState> s =
                    getRuntimeContext().getState(DeviceStateSchema.descriptor(TTL));
            ValueState<DeviceState> t =
                    getRuntimeContext().getState(DeviceStateSchema.shadowDescriptor(TTL));
            s.update(serving.get(e.deviceId));
            t.update(shadow.get(e.deviceId));
        }
    }

    /** RocksDB (the job's backend) or Flink's heap backend, whose reads return the live value. */
    private static StateBackend backend(boolean heap) {
        return heap ? new HashMapStateBackend() : new EmbeddedRocksDBStateBackend();
    }

    @ParameterizedTest(name = "batched {0}, heap backend {1}")
    @CsvSource({"false,false", "true,false", "false,true", "true,true"})
    void shouldMoveTheOlderLayoutsShadowStatesIntoEachDevicesEntry(boolean batched, boolean heap)
            throws Exception {
        // Each device's two states after 20 steps with a shadow
        Map<String, DeviceState> serving = new HashMap<>();
        Map<String, DeviceState> shadow = new HashMap<>();
        try (var h = harness(batched, heap, true)) {
            h.open();
            for (int m = 0; m < 20; m++) {
                for (String d : DEVICES) {
                    h.processElement(SilenceTest.step(d, m));
                }
            }
            h.prepareSnapshotPreBarrier(1L);
            for (String d : DEVICES) {
                DeviceState e = entry(h, d);
                shadow.put(d, e.shadow);
                e.shadow = null;
                serving.put(d, e);
            }
        }
        assertThat(shadow.values()).allSatisfy(s -> assertThat(s.steps).isEqualTo(20));

        // ... kept in the older layout
        OperatorSubtaskState older;
        try (var h =
                SilenceTest.keyed(new KeyedProcessOperator<>(new OlderLayout(serving, shadow)))) {
            h.setStateBackend(backend(heap));
            h.open();
            for (String d : DEVICES) {
                h.processElement(SilenceTest.step(d, 0));
            }
            older = h.snapshot(1L, 0L);
        }

        // Restored with the shadow, or without it: each entry holds both, the older name nothing
        for (boolean withShadow : new boolean[] {true, false}) {
            try (var h = harness(batched, heap, withShadow)) {
                h.initializeState(older);
                h.open();
                for (String d : DEVICES) {
                    // The silence timers are set again: the state records no armed period;
                    // whether a state was found to fit its model is not part of it
                    DeviceState e = entry(h, d);
                    assertThat(e.shadow)
                            .as(d + " with shadow " + withShadow)
                            .usingRecursiveComparison()
                            .ignoringFields("silenceTimerMs", "fitted")
                            .isEqualTo(shadow.get(d));
                    assertThat(e)
                            .usingRecursiveComparison()
                            .ignoringFields("shadow", "silenceTimerMs", "fitted")
                            .isEqualTo(serving.get(d));
                }
                AbstractStreamOperator<?> operator = (AbstractStreamOperator<?>) h.getOperator();
                try (Stream<Object> left =
                        operator.getKeyedStateBackend()
                                .getKeys(
                                        DeviceStateSchema.SHADOW_STATE_NAME,
                                        VoidNamespace.INSTANCE)) {
                    assertThat(left).isEmpty();
                }

                // A step later the shadow has taken it (or, without the shadow, kept it as it was
                // but for the silence watch, which follows the serving state's: SilenceTest)
                h.processElement(SilenceTest.step("a", 20));
                h.prepareSnapshotPreBarrier(2L);
                DeviceState after = entry(h, "a");
                assertThat(after.steps).isEqualTo(21);
                if (withShadow) {
                    assertThat(after.shadow.steps).isEqualTo(21);
                } else {
                    assertThat(after.shadow)
                            .usingRecursiveComparison()
                            .ignoringFields("lastSeenMs", "silenceTimerMs", "silent", "fitted")
                            .isEqualTo(shadow.get("a"));
                    assertThat(after.shadow.lastSeenMs).isEqualTo(after.lastSeenMs);
                }
            }
        }
    }

    /**
     * A restored state of this model's version that does not fit the card (a faulty build's
     * savepoint, or an edited one), with an episode open, followed by late records only: the device
     * is reset and its episode closed once, and the reset is written, so that the next read does
     * not find the old state and report it again.
     */
    @ParameterizedTest(name = "batched {0}, heap backend {1}")
    @CsvSource({"false,false", "true,false", "false,true", "true,true"})
    void shouldWriteTheResetOfAStateThatDoesNotFitWhenOnlyLateRecordsFollow(
            boolean batched, boolean heap) throws Exception {
        OperatorSubtaskState broken;
        try (var h = harness(batched, heap, false)) {
            h.open();
            for (int m = 0; m < 30; m++) {
                h.processElement(SilenceTest.step("a", m));
            }
            h.prepareSnapshotPreBarrier(1L); // the state cache goes to the backend
            DeviceState s = entry(h, "a");
            s.hidden = new float[3]; // not the card's hidden size
            s.episodeOpen = true;
            s.episodeStart = s.lastTs;
            s.episodeSteps = 3;
            update(h, "a", s);
            broken = h.snapshot(1L, 0L);
        }
        try (var h = harness(batched, heap, false)) {
            h.initializeState(broken);
            h.open();
            for (int i = 0; i < 3; i++) {
                h.processElement(SilenceTest.step("a", 29)); // its last step again: a duplicate
                h.prepareSnapshotPreBarrier(2L + i); // a flush and a write-back each time
            }
            assertThat(h.extractOutputValues())
                    .extracting(e -> e.deviceId + " " + e.type)
                    .containsExactly("a " + AnomalyEvent.CLOSE);
            assertThat(entry(h, "a").hidden).hasSize(Fixtures.model().card().hiddenSize());
            assertThat(entry(h, "a").episodeOpen).isFalse();
        }
    }

    /**
     * A state another model wrote (a model change: reset by default), with an episode open and
     * explained over other features: the episode is closed by a CLOSE without top features, never a
     * crash on an explanation this card cannot name.
     */
    @ParameterizedTest(name = "batched {0}")
    @CsvSource({"false", "true"})
    void shouldCloseAnEpisodeExplainedOverOtherFeaturesWithoutNamingThem(boolean batched)
            throws Exception {
        OperatorSubtaskState other;
        try (var h = harness(batched, false, false)) {
            h.open();
            for (int m = 0; m < 30; m++) {
                h.processElement(SilenceTest.step("a", m));
            }
            h.prepareSnapshotPreBarrier(1L);
            DeviceState s = entry(h, "a");
            s.modelVersion = "another-model";
            s.episodeOpen = true;
            s.episodeStart = s.lastTs;
            s.episodeSteps = 3;
            s.episodeShares = new float[Fixtures.model().card().featureCount() + 4];
            java.util.Arrays.fill(s.episodeShares, 1f);
            for (int f = s.episodeShares.length - 4; f < s.episodeShares.length; f++) {
                s.episodeShares[f] = 5f; // the largest shares, on features this card lacks
            }
            update(h, "a", s);
            other = h.snapshot(1L, 0L);
        }
        try (var h = harness(batched, false, false)) {
            h.initializeState(other);
            h.open();
            h.processElement(SilenceTest.step("a", 30));
            h.prepareSnapshotPreBarrier(2L);
            List<AnomalyEvent> closes =
                    h.extractOutputValues().stream()
                            .filter(e -> AnomalyEvent.CLOSE.equals(e.type))
                            .toList();
            assertThat(closes).hasSize(1);
            assertThat(closes.get(0).topFeatureNames).isEmpty();
            assertThat(entry(h, "a").modelVersion).isEqualTo(Fixtures.model().card().version());
        }
    }
}
