package dev.vigil.tools;

import com.esotericsoftware.kryo.serializers.JavaSerializer;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
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
 * {@code vigil reset-device SAVEPOINT --out DIR [--reset IDS] [--drop IDS]}: writes a copy of a
 * savepoint in which the named devices are reset (memory, forecast, warm-up, profile and runs start
 * again; the order guard and the model version are kept) or dropped (the device comes back as a new
 * one), with every other device and every other operator's state (Kafka offsets, pending
 * transactions) as they were. The job restores from the copy as from any savepoint. The repair for
 * a device whose memory or profile learned a fault as normal, read with the State Processor API
 * through the job's own state descriptor and serializer.
 *
 * <p>An episode open on a reset or dropped device ends without a CLOSE event. Every device's state
 * time-to-live starts again from the time of writing.
 */
final class ResetDeviceCommand {

    static final String USAGE =
            "vigil reset-device SAVEPOINT --out DIR [--reset ID,ID...] [--drop ID,ID...]";

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The job's state, read and written with a time-to-live that expires nothing. */
    private static final ValueStateDescriptor<DeviceState> DESCRIPTOR =
            DeviceStateSchema.descriptor(InspectSavepointCommand.READ_TTL);

    private final PrintStream out;
    private final PrintStream err;

    ResetDeviceCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    /** Which of the named devices the savepoint held, and how many it kept as they were. */
    record Summary(List<String> reset, List<String> dropped, long kept) {}

    int run(String[] argv) throws Exception {
        Path savepoint = InspectSavepointCommand.savepointArgument(argv, USAGE);
        Args args =
                new Args(
                        "reset-device",
                        Arrays.copyOfRange(argv, 1, argv.length),
                        Set.of("--out", "--reset", "--drop"));
        Path target = InspectSavepointCommand.newSavepointDirectory(args, USAGE);
        Set<String> reset = ids(args.get("--reset"));
        Set<String> drop = ids(args.get("--drop"));
        if (reset.isEmpty() && drop.isEmpty()) {
            throw new Args.UsageException("name devices to --reset or --drop; " + USAGE);
        }
        Set<String> both = new TreeSet<>(reset);
        both.retainAll(drop);
        if (!both.isEmpty()) {
            throw new Args.UsageException("devices both reset and dropped: " + both);
        }

        Path summaryFile = Files.createTempFile("vigil-reset-", ".json");
        try {
            write(savepoint, target, reset, drop, summaryFile);
            Summary summary = JSON.readValue(summaryFile.toFile(), Summary.class);
            out.printf(
                    "wrote %s from %s: reset %s, dropped %s, %d other devices as they were%n",
                    target, savepoint, summary.reset(), summary.dropped(), summary.kept());
            Set<String> missing = new TreeSet<>(reset);
            missing.addAll(drop);
            summary.reset().forEach(missing::remove);
            summary.dropped().forEach(missing::remove);
            if (!missing.isEmpty()) {
                err.println("not in the savepoint (nothing done for them): " + missing);
                return 1;
            }
            return 0;
        } finally {
            Files.deleteIfExists(summaryFile);
        }
    }

    private static Set<String> ids(String list) {
        Set<String> ids = new LinkedHashSet<>();
        if (list != null) {
            for (String id : list.split(",")) {
                if (!id.isBlank()) {
                    ids.add(id.strip());
                }
            }
        }
        return ids;
    }

    /**
     * Reads every device of the scoring operator, rewrites or leaves out the named ones, and writes
     * the existing savepoint with that operator's state replaced into {@code target}; the summary
     * goes to {@code summaryFile}. Parallelism 1: the reader writes one summary.
     */
    static void write(
            Path savepoint, Path target, Set<String> reset, Set<String> drop, Path summaryFile)
            throws Exception {
        StreamExecutionEnvironment env = rewriteEnvironment();
        String from = savepoint.toUri().toString();
        OperatorIdentifier scoring = OperatorIdentifier.forUid(VigilPipeline.UID_SCORING);
        TypeInformation<Tuple2<String, byte[]>> entry =
                Types.TUPLE(Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE));
        DataStream<Tuple2<String, byte[]>> devices =
                SavepointReader.read(env, from, new EmbeddedRocksDBStateBackend())
                        .readKeyedState(
                                scoring,
                                new Rewrite(reset, drop, summaryFile.toString()),
                                Types.STRING,
                                entry);
        StateBootstrapTransformation<Tuple2<String, byte[]>> state =
                // The reader's source passes on a null for a key its function emitted nothing for
                // (seen for a dropped device), which no key selector takes.
                OperatorTransformation.bootstrapWith(devices.filter(e -> e != null))
                        .keyBy(e -> e.f0, Types.STRING)
                        .transform(new Store());
        SavepointWriter.fromExistingSavepoint(env, from, new EmbeddedRocksDBStateBackend())
                .removeOperator(scoring)
                .withOperator(scoring, state)
                .write(target.toUri().toString());
        env.execute("vigil-reset-device");
    }

    /**
     * An environment to rewrite a savepoint in, at parallelism 1. The writer ships the savepoint's
     * other operators' states through Kryo, whose generated constructor access fails on {@code
     * NoRescalingDescriptor}, a package-private class (IllegalAccessError on Java 17): Java
     * serialization, which the class supports (readResolve to its singleton), instead.
     */
    static StreamExecutionEnvironment rewriteEnvironment() {
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

    /** Each device's state as the job's serializer writes it, rewritten or left out if named. */
    static final class Rewrite extends KeyedStateReaderFunction<String, Tuple2<String, byte[]>> {
        private final Set<String> reset;
        private final Set<String> drop;
        private final String summaryFile;
        private transient ValueState<DeviceState> state;
        private transient DataOutputSerializer bytes;
        private transient List<String> wasReset;
        private transient List<String> dropped;
        private transient long kept;

        Rewrite(Set<String> reset, Set<String> drop, String summaryFile) {
            this.reset = Set.copyOf(reset);
            this.drop = Set.copyOf(drop);
            this.summaryFile = summaryFile;
        }

        @Override
        public void open(OpenContext context) {
            state = getRuntimeContext().getState(DESCRIPTOR);
            bytes = new DataOutputSerializer(1024);
            wasReset = new java.util.ArrayList<>();
            dropped = new java.util.ArrayList<>();
        }

        @Override
        public void readKey(String device, Context context, Collector<Tuple2<String, byte[]>> out)
                throws Exception {
            DeviceState s = state.value();
            if (s == null) {
                return;
            }
            if (drop.contains(device)) {
                dropped.add(device);
                return;
            }
            if (reset.contains(device)) {
                wasReset.add(device);
                s = reset(s);
            } else {
                kept++;
            }
            bytes.clear();
            DeviceStateSchema.serializer().serialize(s, bytes);
            out.collect(Tuple2.of(device, bytes.getCopyOfBuffer()));
        }

        @Override
        public void close() throws IOException {
            if (wasReset != null) {
                JSON.writeValue(
                        new File(summaryFile),
                        new Summary(
                                wasReset.stream().sorted().toList(),
                                dropped.stream().sorted().toList(),
                                kept));
            }
        }
    }

    /**
     * A device as the scorer finds it after a reset: its model version and order guard, nothing
     * else (no memory, forecast, episode, profile or runs: learned again from its next step).
     */
    static DeviceState reset(DeviceState s) {
        int hidden = s.hidden == null ? 0 : s.hidden.length;
        int features = s.forecast == null ? 0 : s.forecast.length;
        return DeviceState.freshKeepingOrder(s, s.modelVersion, hidden, features);
    }

    /** Writes each device's state back through the job's descriptor. */
    static final class Store extends KeyedStateBootstrapFunction<String, Tuple2<String, byte[]>> {
        private transient ValueState<DeviceState> state;

        @Override
        public void open(OpenContext context) {
            state = getRuntimeContext().getState(DESCRIPTOR);
        }

        @Override
        public void processElement(Tuple2<String, byte[]> entry, Context context) throws Exception {
            state.update(
                    DeviceStateSchema.serializer()
                            .deserialize(new DataInputDeserializer(entry.f1)));
        }
    }
}
