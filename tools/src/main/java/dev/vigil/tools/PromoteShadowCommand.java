package dev.vigil.tools;

import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.state.api.OperatorIdentifier;
import org.apache.flink.state.api.OperatorTransformation;
import org.apache.flink.state.api.SavepointReader;
import org.apache.flink.state.api.SavepointWriter;
import org.apache.flink.state.api.StateBootstrapTransformation;
import org.apache.flink.state.api.functions.KeyedStateReaderFunction;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.util.Collector;

/**
 * {@code vigil promote-shadow SAVEPOINT --out DIR}: writes a copy of a savepoint taken with a
 * shadow model ({@code vigil.model.shadow.dir}) in which the shadow's state of every device becomes
 * the serving state: the scoring operator ({@code gru-scoring}) holds what the shadow operator
 * ({@code gru-scoring-shadow}) held, and the shadow operator's state is gone. Restored with the
 * shadow's model as {@code vigil.model.dir}, the promoted model scores each device from its first
 * step with the memory, profile and open episode it produced itself: no warm-up, no reset. Every
 * other operator's state (Kafka offsets, pending transactions) is kept as it was.
 */
final class PromoteShadowCommand {

    static final String USAGE = "vigil promote-shadow SAVEPOINT --out DIR";

    private static final ValueStateDescriptor<DeviceState> DESCRIPTOR =
            DeviceStateSchema.descriptor(InspectSavepointCommand.READ_TTL);

    private static final com.fasterxml.jackson.databind.ObjectMapper JSON =
            new com.fasterxml.jackson.databind.ObjectMapper();

    private final PrintStream out;

    PromoteShadowCommand(PrintStream out) {
        this.out = out;
    }

    int run(String[] argv) throws Exception {
        Path savepoint = InspectSavepointCommand.savepointArgument(argv, USAGE);
        Args args =
                new Args(
                        "promote-shadow",
                        Arrays.copyOfRange(argv, 1, argv.length),
                        Set.of("--out"));
        Path target = InspectSavepointCommand.newSavepointDirectory(args, USAGE);
        Map<String, Long> versions = write(savepoint, target);
        out.printf(
                "wrote %s from %s: the shadow's state of %d devices is the serving state (model"
                        + " versions %s); restore it with the shadow's model as vigil.model.dir%n",
                target,
                savepoint,
                versions.values().stream().mapToLong(Long::longValue).sum(),
                versions);
        return 0;
    }

    /**
     * Reads every device of the shadow operator and writes the savepoint with it as the scoring
     * operator's state, without the shadow operator's; returns the devices per model version.
     */
    static Map<String, Long> write(Path savepoint, Path target) throws Exception {
        String from = savepoint.toUri().toString();
        OperatorIdentifier scoring = OperatorIdentifier.forUid(VigilPipeline.UID_SCORING);
        OperatorIdentifier shadow = OperatorIdentifier.forUid(VigilPipeline.UID_SCORING_SHADOW);
        var env = ResetDeviceCommand.rewriteEnvironment();
        TypeInformation<Tuple2<String, byte[]>> entry =
                Types.TUPLE(Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE));
        Path summary = Files.createTempFile("vigil-promote-", ".json");
        DataStream<Tuple2<String, byte[]>> devices;
        try {
            devices =
                    SavepointReader.read(env, from, new EmbeddedRocksDBStateBackend())
                            .readKeyedState(
                                    shadow, new Read(summary.toString()), Types.STRING, entry);
        } catch (java.io.IOException e) { // "Savepoint does not contain state with operator uid"
            Files.deleteIfExists(summary);
            throw new Args.UsageException(
                    savepoint
                            + " holds no state of a shadow model (operator uid "
                            + VigilPipeline.UID_SCORING_SHADOW
                            + "): take it from a job run with vigil.model.shadow.dir ("
                            + e.getMessage()
                            + ")");
        }
        StateBootstrapTransformation<Tuple2<String, byte[]>> state =
                OperatorTransformation.bootstrapWith(devices.filter(e -> e != null))
                        .keyBy(e -> e.f0, Types.STRING)
                        .transform(new ResetDeviceCommand.Store());
        SavepointWriter.fromExistingSavepoint(env, from, new EmbeddedRocksDBStateBackend())
                .removeOperator(scoring)
                .removeOperator(shadow)
                .withOperator(scoring, state)
                .write(target.toUri().toString());
        try {
            env.execute("vigil-promote-shadow");
            return new TreeMap<>(JSON.readValue(summary.toFile(), VERSIONS));
        } finally {
            Files.deleteIfExists(summary);
        }
    }

    private static final com.fasterxml.jackson.core.type.TypeReference<Map<String, Long>> VERSIONS =
            new com.fasterxml.jackson.core.type.TypeReference<>() {};

    /**
     * Each device's shadow state as the job's serializer writes it; the devices per model version
     * go to a file at the end.
     */
    static final class Read extends KeyedStateReaderFunction<String, Tuple2<String, byte[]>> {
        private final String summaryFile;
        private transient ValueState<DeviceState> state;
        private transient DataOutputSerializer bytes;
        private transient Map<String, Long> versions;

        Read(String summaryFile) {
            this.summaryFile = summaryFile;
        }

        @Override
        public void open(OpenContext context) {
            state = getRuntimeContext().getState(DESCRIPTOR);
            bytes = new DataOutputSerializer(1024);
            versions = new TreeMap<>();
        }

        @Override
        public void close() throws java.io.IOException {
            if (versions != null) {
                JSON.writeValue(new java.io.File(summaryFile), versions);
            }
        }

        @Override
        public void readKey(String device, Context context, Collector<Tuple2<String, byte[]>> out)
                throws Exception {
            DeviceState s = state.value();
            if (s != null) {
                versions.merge(String.valueOf(s.modelVersion), 1L, Long::sum);
                bytes.clear();
                DeviceStateSchema.serializer().serialize(s, bytes);
                out.collect(Tuple2.of(device, bytes.getCopyOfBuffer()));
            }
        }
    }
}
