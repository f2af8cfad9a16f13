package dev.vigil.tools;

import com.esotericsoftware.kryo.serializers.JavaSerializer;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.state.api.OperatorIdentifier;
import org.apache.flink.state.api.OperatorTransformation;
import org.apache.flink.state.api.SavepointReader;
import org.apache.flink.state.api.SavepointWriter;
import org.apache.flink.state.api.StateBootstrapTransformation;
import org.apache.flink.state.api.functions.KeyedStateBootstrapFunction;
import org.apache.flink.state.api.functions.KeyedStateReaderFunction;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.Collector;

/**
 * Rewrites the scoring operator's state in a copy of a savepoint ({@code reset-device}, {@code
 * promote-shadow}): every device's serving and shadow state ({@link SavedStates}, in either layout)
 * is read through the job's own descriptors and serializer, handed to an {@link Edit}, and what it
 * returns is written back in the current layout; every other operator's state (Kafka offsets,
 * pending transactions) is kept as it was. Parallelism 1: an edit writes one summary.
 */
final class ScoringStateRewrite {

    // A device's id and its serving and shadow states as the job's serializer writes them; an
    // empty array for none (Flink's tuples hold no null).
    private static final TypeInformation<Tuple3<String, byte[], byte[]>> ENTRY =
            Types.TUPLE(
                    Types.STRING,
                    Types.PRIMITIVE_ARRAY(Types.BYTE),
                    Types.PRIMITIVE_ARRAY(Types.BYTE));

    private static final byte[] NONE = new byte[0];

    private ScoringStateRewrite() {}

    /**
     * What a rewrite makes of each device: it reads both states and calls {@link #keep} with what
     * the device keeps (nothing: the device is gone). {@link #close()} may write a summary.
     */
    abstract static class Edit
            extends KeyedStateReaderFunction<String, Tuple3<String, byte[], byte[]>> {
        private transient SavedStates states;
        private transient DataOutputSerializer bytes;
        private transient Collector<Tuple3<String, byte[], byte[]>> out;

        @Override
        public void open(OpenContext context) throws Exception {
            // The keys read are those of either layout's states.
            states = new SavedStates(getRuntimeContext());
            bytes = new DataOutputSerializer(1024);
        }

        @Override
        public final void readKey(
                String device, Context context, Collector<Tuple3<String, byte[], byte[]>> out)
                throws Exception {
            this.out = out;
            DeviceState[] both = states.read();
            if (both[0] != null || both[1] != null) {
                edit(device, both[0], both[1]);
            }
        }

        /** One device's states (either may be null, not both). */
        abstract void edit(String device, DeviceState serving, DeviceState shadow)
                throws IOException;

        /** Writes these states (null: none) for the device; not calling it drops the device. */
        final void keep(String device, DeviceState serving, DeviceState shadow) throws IOException {
            if (serving != null || shadow != null) {
                out.collect(Tuple3.of(device, bytes(serving), bytes(shadow)));
            }
        }

        private byte[] bytes(DeviceState s) throws IOException {
            if (s == null) {
                return NONE;
            }
            bytes.clear();
            DeviceStateSchema.serializer().serialize(s, bytes);
            return bytes.getCopyOfBuffer();
        }
    }

    /** Reads {@code savepoint}'s scoring state through {@code edit} and writes the copy. */
    static void write(Path savepoint, Path target, Edit edit, String jobName) throws Exception {
        StreamExecutionEnvironment env = environment();
        String from = savepoint.toUri().toString();
        OperatorIdentifier scoring = OperatorIdentifier.forUid(VigilPipeline.UID_SCORING);
        DataStream<Tuple3<String, byte[], byte[]>> devices =
                SavepointReader.read(env, from, new EmbeddedRocksDBStateBackend())
                        .readKeyedState(scoring, edit, Types.STRING, ENTRY);
        StateBootstrapTransformation<Tuple3<String, byte[], byte[]>> state =
                // The reader's source passes on a null for a key its function emitted nothing for
                // (seen for a dropped device), which no key selector takes.
                OperatorTransformation.bootstrapWith(devices.filter(e -> e != null))
                        .keyBy(e -> e.f0, Types.STRING)
                        .transform(new Store());
        SavepointWriter.fromExistingSavepoint(env, from, new EmbeddedRocksDBStateBackend())
                .removeOperator(scoring)
                .withOperator(scoring, state)
                .write(target.toUri().toString());
        env.execute(jobName);
    }

    /**
     * An environment to rewrite a savepoint in, at parallelism 1. The writer ships the savepoint's
     * other operators' states through Kryo, whose generated constructor access fails on {@code
     * NoRescalingDescriptor}, a package-private class (IllegalAccessError on Java 17): Java
     * serialization, which the class supports (readResolve to its singleton), instead.
     */
    private static StreamExecutionEnvironment environment() {
        Configuration conf = new Configuration();
        conf.set(
                PipelineOptions.SERIALIZATION_CONFIG,
                List.of(
                        "org.apache.flink.runtime.checkpoint.InflightDataRescalingDescriptor"
                                + "$NoRescalingDescriptor: {type: kryo, kryo-type: default,"
                                + " class: "
                                + JavaSerializer.class.getName()
                                + "}"));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(1);
        return env;
    }

    /** Writes each device's states back through the job's descriptors, in the current layout. */
    private static final class Store
            extends KeyedStateBootstrapFunction<String, Tuple3<String, byte[], byte[]>> {
        private transient SavedStates states;

        @Override
        public void open(OpenContext context) {
            states = new SavedStates(getRuntimeContext());
        }

        /**
         * The device's silence timer is registered again from its state (both states hold the same
         * watch): the writer keeps no timer of the operator it replaces.
         */
        @Override
        public void processElement(Tuple3<String, byte[], byte[]> entry, Context context)
                throws Exception {
            DeviceState shadow = entry.f2.length > 0 ? read(entry.f2) : null;
            DeviceState serving = entry.f1.length > 0 ? read(entry.f1) : null;
            states.write(serving, shadow);
            DeviceState watched = serving != null ? serving : shadow;
            if (watched != null && watched.silenceTimerMs != DeviceState.NO_TIME) {
                context.timerService().registerEventTimeTimer(watched.silenceTimerMs);
            }
        }

        private static DeviceState read(byte[] bytes) throws IOException {
            return DeviceStateSchema.serializer().deserialize(new DataInputDeserializer(bytes));
        }
    }
}
