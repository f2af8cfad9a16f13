package dev.vigil.tools;

import com.esotericsoftware.kryo.serializers.JavaSerializer;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.api.java.tuple.Tuple5;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.state.api.OperatorIdentifier;
import org.apache.flink.state.api.OperatorTransformation;
import org.apache.flink.state.api.SavepointReader;
import org.apache.flink.state.api.SavepointWriter;
import org.apache.flink.state.api.StateBootstrapTransformation;
import org.apache.flink.state.api.functions.KeyedStateBootstrapFunction;
import org.apache.flink.state.api.functions.KeyedStateReaderFunction;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;
import org.apache.flink.util.FileUtils;

/**
 * Rewrites the scoring operator's state in a copy of a savepoint ({@code reset-device}, {@code
 * promote-shadow}): every device's serving and shadow state ({@link SavedStates}, in either layout)
 * is read through the job's own state names and serializer, handed to an {@link Edit}, and what it
 * returns is written back in the current layout, each state with the time it was last written (a
 * state past its time-to-live stays expired; {@link SavedStates}); every other operator's state
 * (Kafka offsets, pending transactions) is kept as it was. Parallelism 1: an edit writes one
 * summary.
 */
final class ScoringStateRewrite {

    // A device's id, its value (both states in one, as the job's serializer writes it) and when it
    // was last written, then a shadow state kept apart in the older layout and when it was (none:
    // no bytes, SavedStates.NONE). It is serialized by the reader, where a failure fails the
    // rewrite: the State Processor API's writer runs the bootstrap function in a thread of its own,
    // and a failure there leaves the job waiting forever (seen with Flink 2.2.1).
    private static final TypeInformation<Tuple5<String, byte[], Long, byte[], Long>> ENTRY =
            Types.TUPLE(
                    Types.STRING,
                    Types.PRIMITIVE_ARRAY(Types.BYTE),
                    Types.LONG,
                    Types.PRIMITIVE_ARRAY(Types.BYTE),
                    Types.LONG);

    private ScoringStateRewrite() {}

    /**
     * What a rewrite makes of each device: it reads both states and calls {@link #keep} with what
     * the device keeps (nothing: the device is gone). {@link #close()} may write a summary.
     */
    abstract static class Edit
            extends KeyedStateReaderFunction<String, Tuple5<String, byte[], Long, byte[], Long>> {
        private transient SavedStates states;
        private transient DataOutputSerializer bytes;
        // The states read for the current device, to tell which of them an edit keeps.
        private transient DeviceState readServing;
        private transient DeviceState readShadow;
        private transient Collector<Tuple5<String, byte[], Long, byte[], Long>> out;

        /** Where {@link #write} finds the first failure of this function ({@link #noteFailure}). */
        private String failureFile;

        @Override
        public void open(OpenContext context) throws Exception {
            // The keys read are those of either layout's states.
            states = new SavedStates(getRuntimeContext());
            bytes = new DataOutputSerializer(1024);
        }

        @Override
        public final void readKey(
                String device,
                Context context,
                Collector<Tuple5<String, byte[], Long, byte[], Long>> out)
                throws Exception {
            this.out = out;
            try {
                DeviceState[] both = states.read();
                readServing = both[0];
                readShadow = both[1];
                if (both[0] != null || both[1] != null) {
                    edit(device, both[0], both[1]);
                }
            } catch (Exception e) {
                noteFailure(device, e);
                throw e;
            }
        }

        /**
         * Notes the first failure for {@link #write}: the job fails with it, but which failure
         * Flink reports is its choice (sometimes one this caused, such as a split assignment lost
         * to the failed task).
         */
        private void noteFailure(String device, Exception e) {
            try {
                Path file = Path.of(failureFile);
                if (Files.size(file) == 0) {
                    Files.writeString(file, "at device " + device + ": " + e);
                }
            } catch (IOException notNoted) {
                e.addSuppressed(notNoted);
            }
        }

        /**
         * When the device {@link #edit} is called for was last written: the later of its states'
         * times (epoch ms). Its time-to-live goes on from there in the copy.
         */
        final long lastWritten() {
            return Math.max(states.servingWritten(), states.shadowWritten());
        }

        /** One device's states (either may be null, not both). */
        abstract void edit(String device, DeviceState serving, DeviceState shadow)
                throws IOException;

        /**
         * Writes these states (null: none) for the device; not calling it drops the device. Each
         * keeps the time it was last written, so its time-to-live goes on from then: a state read
         * keeps its own wherever it goes, a new one (a reset) takes that of the state it replaces.
         * Two states last written at different times (the older layout) stay apart ({@link
         * SavedStates}).
         */
        final void keep(String device, DeviceState serving, DeviceState shadow) throws IOException {
            long servingAt = written(serving, states.servingWritten(), states.shadowWritten());
            long shadowAt = written(shadow, states.shadowWritten(), states.servingWritten());
            boolean apart = serving != null && shadow != null && servingAt != shadowAt;
            DeviceState entry = DeviceState.entry(serving, apart ? null : shadow);
            if (entry != null) {
                out.collect(
                        Tuple5.of(
                                device,
                                serialized(entry),
                                serving != null ? servingAt : shadowAt,
                                apart ? serialized(shadow) : new byte[0],
                                apart ? shadowAt : SavedStates.NONE));
            }
        }

        /**
         * When {@code kept} was last written: the time of the state read that it is, else (a new
         * state) of the one read in its place, else of the other one read.
         */
        private long written(DeviceState kept, long inItsPlace, long other) {
            if (kept == readServing) {
                return states.servingWritten();
            }
            if (kept == readShadow) {
                return states.shadowWritten();
            }
            return inItsPlace != SavedStates.NONE ? inItsPlace : other;
        }

        private byte[] serialized(DeviceState value) throws IOException {
            bytes.clear();
            DeviceStateSchema.serializer().serialize(value, bytes);
            return bytes.getCopyOfBuffer();
        }
    }

    /**
     * Reads {@code savepoint}'s scoring state through {@code edit} and writes the copy. A rewrite
     * that fails on a device fails with an IOException that names the device and what failed there,
     * the job's own failure as its cause; a rewrite that fails leaves no directory at {@code
     * target} (unless it was there before), so that the same command can be run again.
     */
    static void write(Path savepoint, Path target, Edit edit, String jobName) throws Exception {
        Path failure = Files.createTempFile("vigil-rewrite-", ".failure");
        edit.failureFile = failure.toString();
        boolean existed = Files.exists(target);
        try {
            run(savepoint, target, edit, jobName);
        } catch (Exception e) {
            if (!existed) {
                // half written, no savepoint: it would only block a retry
                FileUtils.deleteDirectory(target.toFile());
            }
            String first = Files.readString(failure);
            if (first.isEmpty()) {
                throw e;
            }
            throw new IOException("rewriting the scoring state failed " + first, e);
        } finally {
            Files.deleteIfExists(failure);
        }
    }

    private static void run(Path savepoint, Path target, Edit edit, String jobName)
            throws Exception {
        String from = savepoint.toUri().toString();
        OperatorIdentifier scoring = OperatorIdentifier.forUid(VigilPipeline.UID_SCORING);
        List<Long> periods = silenceWatchPeriods(savepoint);
        StreamExecutionEnvironment env = environment();
        DataStream<Tuple5<String, byte[], Long, byte[], Long>> devices =
                SavepointReader.read(env, from, new EmbeddedRocksDBStateBackend())
                        .readKeyedState(scoring, edit, Types.STRING, ENTRY);
        StateBootstrapTransformation<Tuple5<String, byte[], Long, byte[], Long>> state =
                // The reader's source passes on a null for a key its function emitted nothing for
                // (seen for a dropped device), which no key selector takes.
                OperatorTransformation.bootstrapWith(devices.filter(e -> e != null))
                        .keyBy(e -> e.f0, Types.STRING)
                        .transform(new Store(periods));
        SavepointWriter.fromExistingSavepoint(env, from, new EmbeddedRocksDBStateBackend())
                .removeOperator(scoring)
                .withOperator(scoring, state)
                .write(target.toUri().toString());
        env.execute(jobName);
    }

    /**
     * The scoring operator's silence period ({@link DeviceStateSchema#SILENCE_WATCH_PERIOD_NAME}),
     * as every subtask recorded it; none for a savepoint without it. The copy keeps it, so that the
     * job restored from it does not walk every device to arm the watch again.
     */
    static List<Long> silenceWatchPeriods(Path savepoint) throws Exception {
        List<Long> periods = new ArrayList<>();
        try (CloseableIterator<Long> read =
                SavepointReader.read(
                                environment(),
                                savepoint.toUri().toString(),
                                new EmbeddedRocksDBStateBackend())
                        .readUnionState(
                                OperatorIdentifier.forUid(VigilPipeline.UID_SCORING),
                                DeviceStateSchema.SILENCE_WATCH_PERIOD_NAME,
                                Types.LONG,
                                LongSerializer.INSTANCE)
                        .executeAndCollect("vigil-read-silence-watch-period")) {
            read.forEachRemaining(periods::add);
        }
        return periods;
    }

    /**
     * An environment to rewrite a savepoint in, at parallelism 1. The writer ships the savepoint's
     * other operators' states through Kryo, whose generated constructor access fails on {@code
     * NoRescalingDescriptor}, a package-private class (IllegalAccessError on Java 17): Java
     * serialization, which the class supports (readResolve to its singleton), instead.
     */
    static StreamExecutionEnvironment environment() {
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

    /**
     * Writes each device's states back as stored ({@link SavedStates}), in the current layout but
     * for states kept apart, and the operator's silence period as it was.
     */
    private static final class Store
            extends KeyedStateBootstrapFunction<String, Tuple5<String, byte[], Long, byte[], Long>>
            implements CheckpointedFunction {
        private final ArrayList<Long> periods;
        private transient SavedStates states;
        private transient ListState<Long> period;

        Store(List<Long> periods) {
            this.periods = new ArrayList<>(periods);
        }

        @Override
        public void initializeState(FunctionInitializationContext context) throws Exception {
            period =
                    context.getOperatorStateStore()
                            .getUnionListState(DeviceStateSchema.silenceWatchPeriodDescriptor());
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) throws Exception {
            period.update(periods);
        }

        @Override
        public void open(OpenContext context) {
            states = new SavedStates(getRuntimeContext());
        }

        /**
         * The device's silence timer is registered again from its state (both states hold the same
         * watch): the writer keeps no timer of the operator it replaces.
         */
        @Override
        public void processElement(
                Tuple5<String, byte[], Long, byte[], Long> device, Context context)
                throws Exception {
            DeviceState entry =
                    DeviceStateSchema.serializer()
                            .deserialize(new DataInputDeserializer(device.f1));
            states.write(entry, device.f2);
            if (device.f3.length > 0) {
                states.writeApart(
                        DeviceStateSchema.serializer()
                                .deserialize(new DataInputDeserializer(device.f3)),
                        device.f4);
            }
            DeviceState serving = DeviceState.servingIn(entry);
            DeviceState watched = serving != null ? serving : DeviceState.shadowIn(entry);
            if (watched != null && watched.silenceTimerMs != DeviceState.NO_TIME) {
                context.timerService().registerEventTimeTimer(watched.silenceTimerMs);
            }
        }
    }
}
