package dev.vigil.state;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.hashmap.HashMapStateBackend;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.util.Collector;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Vigil before the versioned format kept the device state with Flink's POJO serializer. Its
 * snapshots restore into the current code, on RocksDB and on the heap backend: Flink migrates every
 * device to format 1 at restore, and no field is lost.
 */
class PojoMigrationTest {

    private static final Duration TTL = Duration.ofDays(30);

    /** On "put", stores the sample state under the element's key; on "get", emits the state. */
    static final class Touch extends KeyedProcessFunction<String, String, DeviceState> {
        private final ValueStateDescriptor<DeviceState> descriptor;
        private transient ValueState<DeviceState> state;

        Touch(ValueStateDescriptor<DeviceState> descriptor) {
            this.descriptor = descriptor;
        }

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext context) {
            state = getRuntimeContext().getState(descriptor);
        }

        @Override
        public void processElement(String command, Context ctx, Collector<DeviceState> out)
                throws Exception {
            if (command.startsWith("put:")) {
                state.update(sample(ctx.getCurrentKey()));
            } else {
                out.collect(state.value());
            }
        }
    }

    static DeviceState sample(String device) {
        DeviceState s = DeviceState.fresh("model-" + device, 64, 16);
        s.hidden[7] = 0.25f;
        s.forecast[3] = -2f;
        s.steps = 900;
        s.lastTs = 1_764_000_000_000L;
        s.lastSeq = 17;
        s.aboveRun = 2;
        s.episodeStart = 1_763_999_000_000L;
        s.episodePeak = 7.5f;
        s.episodeSteps = 2;
        s.episodeShares[5] = 1.5f;
        return s;
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, String, DeviceState> harness(
            ValueStateDescriptor<DeviceState> descriptor, StateBackend backend) throws Exception {
        KeyedOneInputStreamOperatorTestHarness<String, String, DeviceState> h =
                new KeyedOneInputStreamOperatorTestHarness<>(
                        new KeyedProcessOperator<>(new Touch(descriptor)),
                        (KeySelector<String, String>) c -> c.substring(4),
                        Types.STRING);
        h.setStateBackend(backend);
        return h;
    }

    /** RocksDB (the job's) rewrites each device at restore; the heap backend reads them all. */
    static List<StateBackend> backends() {
        return List.of(new EmbeddedRocksDBStateBackend(), new HashMapStateBackend());
    }

    @ParameterizedTest
    @MethodSource("backends")
    void shouldMigrateStateWrittenByThePojoSerializer(StateBackend backend) throws Exception {
        // The descriptor as Vigil had it: same name and time-to-live, Flink's POJO serializer.
        ValueStateDescriptor<DeviceState> current = DeviceStateSchema.descriptor(TTL);
        ValueStateDescriptor<DeviceState> pojo =
                new ValueStateDescriptor<>(
                        current.getName(), TypeInformation.of(DeviceState.class));
        pojo.enableTimeToLive(current.getTtlConfig());

        OperatorSubtaskState snapshot;
        try (var before = harness(pojo, backend)) {
            before.open();
            for (String device : List.of("pump-1", "pump-2", "pump-3")) {
                before.processElement(new StreamRecord<>("put:" + device, 1L));
            }
            snapshot = before.snapshot(1L, 1L);
        }

        try (var after = harness(current, backend)) {
            after.initializeState(snapshot);
            after.open();
            for (String device : List.of("pump-1", "pump-2", "pump-3")) {
                after.processElement(new StreamRecord<>("get:" + device, 2L));
            }
            List<DeviceState> restored = after.extractOutputValues();
            assertThat(restored).hasSize(3);
            for (int i = 0; i < 3; i++) {
                assertThat(restored.get(i))
                        .usingRecursiveComparison()
                        .isEqualTo(sample("pump-" + (i + 1)));
            }
        }
    }
}
