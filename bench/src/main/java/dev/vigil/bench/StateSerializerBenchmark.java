package dev.vigil.bench;

import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.formats.avro.typeutils.AvroSerializer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * What one state access costs on the hot path with each candidate serializer: RocksDB serializes a
 * device's state on every write and deserializes it on every read, so each benchmark is one write
 * plus one read of a device at hidden size 64 and 16 features, into the {@code float[]}s the scorer
 * works on. Candidates: Vigil's versioned format (the one the job uses), Flink's POJO serializer
 * (Vigil before it), and Flink's Avro serializer on a generic record of the same fields (the
 * issue's first choice), its conversion to and from the arrays included. {@link #main} prints the
 * bytes each writes.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class StateSerializerBenchmark {

    private final DataOutputSerializer out = new DataOutputSerializer(1024);
    private final DataInputDeserializer in = new DataInputDeserializer();
    private DeviceState state;
    private DeviceState withProfile;
    private DeviceState withShadow;
    private TypeSerializer<DeviceState> vigil;
    private TypeSerializer<DeviceState> pojo;
    private TypeSerializer<GenericRecord> avro;
    private Schema schema;

    @Setup(Level.Trial)
    public void open() throws IOException {
        state = sample();
        withProfile = sampleWithProfile();
        withShadow = sampleWithProfile();
        withShadow.shadow = sampleWithProfile();
        vigil = DeviceStateSchema.serializer();
        SerializerConfigImpl config = new SerializerConfigImpl();
        // Generic types on: the shadow field (format 5) is a DeviceState itself, a recursive type
        // that Flink's POJO analysis leaves to Kryo; it is null in the samples (one byte).
        config.setGenericTypes(true);
        pojo = TypeInformation.of(DeviceState.class).createSerializer(config);
        schema = avroSchema();
        avro = new AvroSerializer<>(GenericRecord.class, schema);
    }

    /** A device outside an episode, as most devices are most of the time. */
    static DeviceState sample() {
        DeviceState s = DeviceState.fresh("fleet-gru-2026-11-25+sha256:97bdd9502311", 64, 16);
        for (int i = 0; i < s.hidden.length; i++) {
            s.hidden[i] = (float) Math.sin(i);
        }
        for (int i = 0; i < s.forecast.length; i++) {
            s.forecast[i] = i * 0.1f;
        }
        s.steps = 4_242;
        s.lastTs = 1_764_000_000_000L;
        s.lastSeq = 4_711;
        return s;
    }

    /**
     * {@link #sample()} with a learned level profile and stuck-score runs of 16 target features
     * (state format 2 with a card that has both; the other candidates are compared on {@link
     * #sample()}).
     */
    static DeviceState sampleWithProfile() {
        DeviceState s = sample();
        s.resetProfile(16, false);
        s.profileSteps = 1_000;
        for (int i = 0; i < 16; i++) {
            s.levelMean[i] = i * 0.05f;
            s.profileMean[i] = i * 0.04f;
            s.profileVar[i] = 0.01f * (i + 1);
        }
        s.resetRuns(16);
        for (int i = 0; i < 16; i++) {
            s.lastValues[i] = 50f + i;
            s.unchangedRuns[i] = i % 2;
        }
        return s;
    }

    static Schema avroSchema() throws IOException {
        try (InputStream in =
                StateSerializerBenchmark.class.getResourceAsStream("/device-state.avsc")) {
            return new Schema.Parser().parse(in);
        }
    }

    @Benchmark
    public DeviceState vigilFormat() throws IOException {
        return roundTrip(vigil);
    }

    /** The same serializer on a device with a learned level profile (format 2's extra bytes). */
    @Benchmark
    public DeviceState vigilFormatWithProfile() throws IOException {
        return roundTrip(vigil, withProfile);
    }

    /**
     * {@link #vigilFormatWithProfile} holding a shadow model's state of the same size (format 5): a
     * job with a shadow writes and reads this value once per step, where it took two before.
     */
    @Benchmark
    public DeviceState vigilFormatWithShadow() throws IOException {
        return roundTrip(vigil, withShadow);
    }

    @Benchmark
    public DeviceState flinkPojo() throws IOException {
        return roundTrip(pojo);
    }

    @Benchmark
    public DeviceState avroGenericRecord() throws IOException {
        out.clear();
        avro.serialize(toAvro(state, schema), out);
        in.setBuffer(out.getSharedBuffer(), 0, out.length());
        return fromAvro(avro.deserialize(in));
    }

    private DeviceState roundTrip(TypeSerializer<DeviceState> serializer) throws IOException {
        return roundTrip(serializer, state);
    }

    private DeviceState roundTrip(TypeSerializer<DeviceState> serializer, DeviceState device)
            throws IOException {
        out.clear();
        serializer.serialize(device, out);
        in.setBuffer(out.getSharedBuffer(), 0, out.length());
        return serializer.deserialize(in);
    }

    static GenericRecord toAvro(DeviceState s, Schema schema) {
        GenericRecord r = new GenericData.Record(schema);
        r.put("modelVersion", s.modelVersion);
        r.put("hidden", floats(s.hidden));
        r.put("forecast", floats(s.forecast));
        r.put("steps", s.steps);
        r.put("lastTs", s.lastTs);
        r.put("lastSeq", s.lastSeq);
        r.put("aboveRun", s.aboveRun);
        r.put("belowRun", s.belowRun);
        r.put("episodeOpen", s.episodeOpen);
        r.put("episodeStart", s.episodeStart);
        r.put("episodePeak", s.episodePeak);
        r.put("episodeSteps", s.episodeSteps);
        r.put("episodeShares", floats(s.episodeShares));
        r.put("scoreLevel", s.scoreLevel);
        return r;
    }

    @SuppressWarnings("unchecked")
    static DeviceState fromAvro(GenericRecord r) {
        DeviceState s = new DeviceState();
        s.modelVersion = r.get("modelVersion").toString();
        s.hidden = floats((List<Float>) r.get("hidden"));
        s.forecast = floats((List<Float>) r.get("forecast"));
        s.steps = (Integer) r.get("steps");
        s.lastTs = (Long) r.get("lastTs");
        s.lastSeq = (Long) r.get("lastSeq");
        s.aboveRun = (Integer) r.get("aboveRun");
        s.belowRun = (Integer) r.get("belowRun");
        s.episodeOpen = (Boolean) r.get("episodeOpen");
        s.episodeStart = (Long) r.get("episodeStart");
        s.episodePeak = (Float) r.get("episodePeak");
        s.episodeSteps = (Integer) r.get("episodeSteps");
        s.episodeShares = floats((List<Float>) r.get("episodeShares"));
        s.scoreLevel = (Float) r.get("scoreLevel");
        return s;
    }

    private static List<Float> floats(float[] v) {
        List<Float> list = new ArrayList<>(v.length);
        for (float f : v) {
            list.add(f);
        }
        return list;
    }

    private static float[] floats(List<Float> list) {
        float[] v = new float[list.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = list.get(i);
        }
        return v;
    }

    /** Prints the bytes of one device's state under each serializer. */
    public static void main(String[] args) throws IOException {
        StateSerializerBenchmark b = new StateSerializerBenchmark();
        b.open();
        b.out.clear();
        b.vigil.serialize(b.state, b.out);
        System.out.println("vigil format: " + b.out.length() + " bytes");
        b.out.clear();
        b.pojo.serialize(b.state, b.out);
        System.out.println("flink pojo:   " + b.out.length() + " bytes");
        b.out.clear();
        b.avro.serialize(toAvro(b.state, b.schema), b.out);
        System.out.println("avro record:  " + b.out.length() + " bytes");
    }
}
