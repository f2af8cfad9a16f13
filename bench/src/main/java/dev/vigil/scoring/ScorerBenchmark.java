package dev.vigil.scoring;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSerializer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobInfoImpl;
import org.apache.flink.api.common.TaskInfoImpl;
import org.apache.flink.api.common.functions.util.RuntimeUDFContext;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * What the batched operator's scorer costs per event around the ONNX Runtime call: batches of
 * {@value #BATCH} devices' steps through {@link Scorer#accept}, {@link Scorer#load} and {@link
 * Scorer#finish} (the order guard, the normalisation, every score component, the episode rules,
 * learning and the finiteness check), each step on the next device of a fleet of {@code devices}
 * states on the heap, as the operator's state cache holds them. Left out: the GRU step itself
 * ({@code GruStepBenchmark}; each row's new memory and forecast are what the model's buffers hold
 * from one real run), and the operator's own work, which no card changes (the state cache, the
 * silence watch, grouping a batch by device, {@link Scorer#prepare} once per device and batch).
 *
 * <p>{@code ScoreComponentsBenchmark} times the components' arithmetic on one state that stays in
 * the core's caches; this one times the scorer's calls as a fleet makes them, each step on another
 * device's state. The input is {@code ./vigil bench}'s: each feature drawn around the card's mean
 * with its spread. {@code card}: {@code all} is {@code bench/model} as {@code ./vigil train} writes
 * it; {@code residual} the same card with the forecast residual alone at the fleet's scale and no
 * drift bins (the bench card when issue 13 was filed); {@code no-<component>} the card without one
 * component. {@code phase}: {@code learning} states have stepped 100 times ({@code ./vigil bench}'s
 * devices, all still learning their profiles), {@code learned} 1,100 times (past every component's
 * learning, as a fleet's devices are most of their lives). {@code episodes}: {@code all} as {@code
 * ./vigil bench}'s input gives (every device opens an episode at once and stays in it: the input is
 * noise the model cannot forecast), {@code none} with the card's threshold out of reach (every step
 * quiet, as most of a real fleet's are: the profiles adapt at every step, and no step's shares are
 * used). Each iteration starts from the same states; a device steps about 40 more times in an
 * iteration of 1 s over 10,000 devices (over 256 devices, about 2,000: a {@code learning} phase
 * would not hold).
 *
 * <p>In package {@code dev.vigil.scoring} for the scorer, which is the operators' own.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class ScorerBenchmark {

    static final int BATCH = 256;
    private static final int PROTOTYPES = 256;
    private static final long STEP_MS = 60_000L;

    @Param({"residual", "all"})
    public String card;

    @Param({"learning", "learned"})
    public String phase;

    @Param({"10000"})
    public int devices;

    @Param({"all", "none"})
    public String episodes;

    private Path dir;
    ModelBundle bundle;
    Scorer scorer;
    DeviceState[] states;
    private DeviceState[] snapshot;
    private TelemetryEvent[] events;
    private long[] snapshotTs;
    private float[][] pool;
    private int next;
    private int draw;
    private long emitted;
    private final DeviceStateSerializer serializer = new DeviceStateSerializer();

    private final Scorer.Emitter out =
            new Scorer.Emitter() {
                @Override
                public void anomaly(AnomalyEvent event, DeviceState s, long timestamp) {
                    emitted++;
                }

                @Override
                public void deadLetter(DeadLetter letter, long timestamp) {
                    throw new IllegalStateException(letter.reason + ": " + letter.detail);
                }

                @Override
                public void score(ScoredStep step, long timestamp) {
                    emitted++;
                }
            };

    @Setup(Level.Trial)
    public void open() throws IOException {
        open(Path.of(System.getProperty("vigil.bench.model", "bench/model")));
    }

    void open(Path model) throws IOException {
        if (devices < BATCH) {
            throw new IllegalArgumentException("at least " + BATCH + " devices: one full batch");
        }
        dir = Files.createTempDirectory("scorer-benchmark-");
        Files.copy(model.resolve("model.onnx"), dir.resolve("model.onnx"));
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = (ObjectNode) json.readTree(model.resolve("model.json").toFile());
        strip(root, card);
        if (episodes.equals("none")) {
            root.put("threshold", 1e30); // out of reach: every step quiet, as most of a fleet's are
        } else if (!episodes.equals("all")) {
            throw new IllegalArgumentException("episodes: all or none, not " + episodes);
        }
        json.writeValue(dir.resolve("model.json").toFile(), root);
        bundle = ModelBundle.load(dir);
        // The job's defaults (the broker address is required, never dialled).
        ScoringSettings settings =
                VigilConfig.of(
                                Map.of(
                                        VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(),
                                        "127.0.0.1:9",
                                        VigilOptions.MODEL_DIR.key(),
                                        dir.toString()))
                        .scoring();
        scorer = new Scorer(bundle, settings, BATCH, new Metrics.Scoring(context(), false));
        ModelCard c = bundle.card();
        int f = c.featureCount();
        SplittableRandom random = new SplittableRandom(42);
        pool = new float[4096][f];
        for (float[] values : pool) {
            for (int i = 0; i < f; i++) {
                values[i] = c.mean()[i] + (float) random.nextGaussian() * c.std()[i];
            }
        }
        // A first real GRU run, so that the buffers finish() reads hold a real memory and forecast.
        for (int row = 0; row < BATCH; row++) {
            scorer.load(
                    scorer.prepare(null, "warm", 0, out),
                    new TelemetryEvent("warm", 0, Long.MIN_VALUE, pool[row].clone()),
                    row);
        }
        scorer.infer(BATCH);
        // Prototypes stepped to the phase, copied to the fleet: each device's state allocated in
        // one piece, as a state read from RocksDB is.
        int stepsBefore = phase.equals("learned") ? 1_100 : 100;
        DeviceState[] prototypes = new DeviceState[PROTOTYPES];
        TelemetryEvent[] protoEvents = new TelemetryEvent[PROTOTYPES];
        for (int p = 0; p < PROTOTYPES; p++) {
            protoEvents[p] = new TelemetryEvent("device-" + p, 0, Long.MIN_VALUE, new float[f]);
            prototypes[p] = scorer.prepare(null, protoEvents[p].deviceId, 0, out);
        }
        for (int step = 0; step < stepsBefore; step++) {
            stepAll(prototypes, protoEvents, 0);
        }
        snapshot = new DeviceState[devices];
        snapshotTs = new long[devices];
        events = new TelemetryEvent[devices];
        for (int d = 0; d < devices; d++) {
            snapshot[d] = serializer.copy(prototypes[d % PROTOTYPES]);
            snapshotTs[d] = protoEvents[d % PROTOTYPES].ts;
            events[d] = new TelemetryEvent("device-" + d, 0, Long.MIN_VALUE, new float[f]);
        }
        states = new DeviceState[devices];
    }

    /** A runtime context for the scorer's metrics outside a job (they are not reported). */
    private static RuntimeUDFContext context() {
        return new RuntimeUDFContext(
                new JobInfoImpl(new JobID(), "scorer-benchmark"),
                new TaskInfoImpl("scoring", 1, 0, 1, 0),
                ScorerBenchmark.class.getClassLoader(),
                new ExecutionConfig(),
                new HashMap<>(),
                new HashMap<>(),
                UnregisteredMetricsGroup.createOperatorMetricGroup());
    }

    /** Every iteration starts from the same states, so the phase holds however long it runs. */
    @Setup(Level.Iteration)
    public void restore() {
        for (int d = 0; d < devices; d++) {
            states[d] = serializer.copy(snapshot[d]);
            events[d].ts = snapshotTs[d];
        }
        next = 0;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long batch() {
        next = stepAll(states, events, next);
        return emitted;
    }

    /**
     * Steps the {@value #BATCH} devices from {@code first} on, wrapping round the fleet (each batch
     * full, so that every invocation is {@value #BATCH} events; at least {@value #BATCH} devices,
     * so that none is twice in a batch), as the operator steps a batch: each row's order guard and
     * load, then each row's finish. Returns the device after the last.
     */
    private int stepAll(DeviceState[] fleet, TelemetryEvent[] input, int first) {
        int d = first;
        for (int row = 0; row < BATCH; row++) {
            TelemetryEvent e = input[d];
            e.ts += STEP_MS;
            System.arraycopy(pool[draw++ & 4095], 0, e.values, 0, e.values.length);
            if (!scorer.accept(fleet[d], e, e.ts, out)) {
                throw new IllegalStateException("step refused by the order guard");
            }
            scorer.load(fleet[d], e, row);
            d = d + 1 == fleet.length ? 0 : d + 1;
        }
        d = first;
        for (int row = 0; row < BATCH; row++) {
            scorer.finish(fleet[d], input[d], row, input[d].ts, out);
            d = d + 1 == fleet.length ? 0 : d + 1;
        }
        return d;
    }

    @TearDown(Level.Trial)
    public void close() throws IOException {
        scorer.close();
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    /** The card {@code name} from {@code bench/model}'s (see the class's comment). */
    static void strip(ObjectNode card, String name) {
        ObjectNode score = (ObjectNode) card.get("score");
        switch (name) {
            case "all" -> {}
            case "residual" -> {
                score.remove(List.of("level", "stuck", "variability", "correlation"));
                stripDeviceScale(score);
                stripBins(card);
            }
            case "no-level" -> score.remove("level");
            case "no-stuck" -> score.remove("stuck");
            case "no-variability" -> score.remove("variability");
            case "no-correlation" -> score.remove("correlation");
            case "no-device-scale" -> stripDeviceScale(score);
            case "no-bins" -> stripBins(card);
            default -> throw new IllegalArgumentException("no card " + name);
        }
    }

    /** The forecast residual at the fleet's scale: its section as cards before 0.3.0 had it. */
    private static void stripDeviceScale(ObjectNode score) {
        ((ObjectNode) score.get("dynamics")).retain("scale", "calibration");
    }

    private static void stripBins(ObjectNode card) {
        for (JsonNode feature : card.get("features")) {
            ((ObjectNode) feature).remove("bins");
        }
    }
}
