package dev.vigil.state;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.testing.Fixtures;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.state.api.OperatorIdentifier;
import org.apache.flink.state.api.SavepointReader;
import org.apache.flink.state.api.functions.KeyedStateReaderFunction;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A rehearsal of the next state format, done the way a real one would be: the state gains a field
 * ({@code driftLevel}), the serializer writes format 2 and still reads format 1 with the released
 * reader, and its snapshot accepts format 1 savepoints. The committed golden savepoint of format 1
 * must then restore (through Flink's restore path into RocksDB, the job's backend, via the State
 * Processor API) with every device and every field, and the new field at its default.
 *
 * <p>One difference from a real format 2 is forced by rehearsing it next to format 1: the savepoint
 * names format 1's snapshot class, whose {@code restoreSerializer()} is format 1's serializer. A
 * real format 2 changes that class itself, so its {@code restoreSerializer()} reads into the new
 * type; that matters to heap backends, which deserialize everything at restore with it, and not to
 * RocksDB, which reads each value with the registered serializer.
 */
class SchemaEvolutionITCase {

    /**
     * A cluster that outlives each read: the collect sink fetches its last results after the job
     * ends, which a per-job local cluster may not be there to answer.
     */
    @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = Fixtures.miniCluster(1);

    private static final Path GOLDEN = Fixtures.repoRoot().resolve("testdata/savepoints/0.1.0");
    private static final Duration TTL = Duration.ofDays(36_500); // golden savepoints age

    /** The state of format 2: everything of format 1 plus one field. */
    public static class DeviceStateV2 extends DeviceState {
        /** The new field; devices restored from format 1 start at this default. */
        public float driftLevel = 1f;
    }

    /** The serializer as format 2 would make it. */
    static final class SerializerV2 extends TypeSerializer<DeviceStateV2> {
        static final int FORMAT = 2;
        private final DeviceStateSerializer format1 = new DeviceStateSerializer();

        @Override
        public void serialize(DeviceStateV2 s, DataOutputView out) throws IOException {
            out.writeByte(FORMAT);
            format1.writeFormat1(s, out);
            out.writeFloat(s.driftLevel);
        }

        @Override
        public DeviceStateV2 deserialize(DataInputView in) throws IOException {
            int format = in.readUnsignedByte();
            if (format != 1 && format != 2) {
                throw new IOException("device state in format " + format);
            }
            // Format 2 is format 1's fields, then the new one: format 1's reader reads the start.
            DeviceStateV2 s = format1.readFormat1(in, new DeviceStateV2());
            if (format == 2) {
                s.driftLevel = in.readFloat();
            }
            return s;
        }

        @Override
        public TypeSerializerSnapshot<DeviceStateV2> snapshotConfiguration() {
            return new SnapshotV2();
        }

        @Override
        public boolean isImmutableType() {
            return false;
        }

        @Override
        public TypeSerializer<DeviceStateV2> duplicate() {
            return new SerializerV2();
        }

        @Override
        public DeviceStateV2 createInstance() {
            return new DeviceStateV2();
        }

        @Override
        public DeviceStateV2 copy(DeviceStateV2 from) {
            try {
                DataOutputSerializer out = new DataOutputSerializer(512);
                serialize(from, out);
                return deserialize(new DataInputDeserializer(out.getCopyOfBuffer()));
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }

        @Override
        public DeviceStateV2 copy(DeviceStateV2 from, DeviceStateV2 reuse) {
            return copy(from);
        }

        @Override
        public int getLength() {
            return -1;
        }

        @Override
        public DeviceStateV2 deserialize(DeviceStateV2 reuse, DataInputView in) throws IOException {
            return deserialize(in);
        }

        @Override
        public void copy(DataInputView in, DataOutputView out) throws IOException {
            serialize(deserialize(in), out);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof SerializerV2;
        }

        @Override
        public int hashCode() {
            return 2;
        }
    }

    /** Format 2's snapshot: reads format 1 and 2 as they are. */
    public static final class SnapshotV2 implements TypeSerializerSnapshot<DeviceStateV2> {
        private int format = SerializerV2.FORMAT;

        @Override
        public int getCurrentVersion() {
            return 1;
        }

        @Override
        public void writeSnapshot(DataOutputView out) throws IOException {
            out.writeInt(format);
        }

        @Override
        public void readSnapshot(int readVersion, DataInputView in, ClassLoader cl)
                throws IOException {
            format = in.readInt();
        }

        @Override
        public TypeSerializer<DeviceStateV2> restoreSerializer() {
            return new SerializerV2();
        }

        @Override
        public TypeSerializerSchemaCompatibility<DeviceStateV2> resolveSchemaCompatibility(
                TypeSerializerSnapshot<DeviceStateV2> old) {
            Object previous = old;
            int oldFormat =
                    previous instanceof DeviceStateSerializerSnapshot s
                            ? s.format()
                            : previous instanceof SnapshotV2 s ? s.format : Integer.MAX_VALUE;
            restoredFrom = oldFormat;
            return oldFormat <= SerializerV2.FORMAT
                    ? TypeSerializerSchemaCompatibility.compatibleAsIs()
                    : TypeSerializerSchemaCompatibility.incompatible();
        }
    }

    /** The format the last restore resolved against (the reader runs in this JVM). */
    static volatile int restoredFrom;

    static final class ReaderV2 extends KeyedStateReaderFunction<String, DeviceStateV2> {
        private transient ValueState<DeviceStateV2> state;

        @Override
        public void open(OpenContext context) {
            // The job's descriptor (name, time-to-live) with format 2's serializer.
            ValueStateDescriptor<DeviceState> current = DeviceStateSchema.descriptor(TTL);
            ValueStateDescriptor<DeviceStateV2> d =
                    new ValueStateDescriptor<>(current.getName(), new SerializerV2());
            StateTtlConfig ttl = current.getTtlConfig();
            d.enableTimeToLive(ttl);
            state = getRuntimeContext().getState(d);
        }

        @Override
        public void readKey(String device, Context context, Collector<DeviceStateV2> out)
                throws Exception {
            out.collect(state.value());
        }
    }

    private static <T> List<T> readGolden(KeyedStateReaderFunction<String, T> reader)
            throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        List<T> all = new ArrayList<>();
        try (CloseableIterator<T> it =
                SavepointReader.read(
                                env, GOLDEN.toUri().toString(), new EmbeddedRocksDBStateBackend())
                        .readKeyedState(
                                OperatorIdentifier.forUid(VigilPipeline.UID_SCORING), reader)
                        .executeAndCollect()) {
            it.forEachRemaining(all::add);
        }
        all.sort(
                java.util.Comparator.comparing((T s) -> ((DeviceState) s).lastTs)
                        .thenComparing(s -> ((DeviceState) s).hidden[0]));
        return all;
    }

    static final class ReaderV1 extends KeyedStateReaderFunction<String, DeviceState> {
        private transient ValueState<DeviceState> state;

        @Override
        public void open(OpenContext context) {
            state = getRuntimeContext().getState(DeviceStateSchema.descriptor(TTL));
        }

        @Override
        public void readKey(String device, Context context, Collector<DeviceState> out)
                throws Exception {
            out.collect(state.value());
        }
    }

    @Test
    void shouldRestoreTheFormat1GoldenSavepointWithAFieldAdded() throws Exception {
        List<DeviceState> v1 = readGolden(new ReaderV1());
        List<DeviceStateV2> v2 = readGolden(new ReaderV2());

        assertThat(restoredFrom).as("the savepoint's state format").isEqualTo(1);
        assertThat(v1).hasSize(24);
        assertThat(v2).hasSize(v1.size());
        for (int i = 0; i < v1.size(); i++) {
            assertThat(v2.get(i))
                    .usingRecursiveComparison()
                    // the rehearsal's own field, and one of the real format 2's that the real
                    // reader sets for a format 1 run and the rehearsal's reader does not
                    .ignoringFields("driftLevel", "episodeReasons")
                    .isEqualTo(v1.get(i));
            assertThat(v2.get(i).driftLevel).isEqualTo(1f);
        }
        assertThat(v2).anyMatch(s -> s.episodeOpen).allMatch(s -> s.steps > 0);

        // Devices restored from format 1 are written back in format 2 and keep the new field.
        DeviceStateV2 s = v2.get(0);
        s.driftLevel = 0.5f;
        SerializerV2 serializer = new SerializerV2();
        DataOutputSerializer out = new DataOutputSerializer(512);
        serializer.serialize(s, out);
        assertThat(out.getSharedBuffer()[0]).isEqualTo((byte) 2);
        assertThat(serializer.deserialize(new DataInputDeserializer(out.getCopyOfBuffer())))
                .usingRecursiveComparison()
                .isEqualTo(s);
    }
}
