package dev.vigil.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.serde.WireFormat;
import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import dev.vigil.state.DeviceStateSerializer;
import dev.vigil.tools.LocalRun;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import jdk.jfr.Recording;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * {@code ./vigil bench}: the job's throughput side by side with a model-less pipeline and a naive
 * per-record baseline, in one run on one machine: an in-process Kafka broker with the input
 * pre-loaded, a local Flink mini cluster (parallelism 2, RocksDB, exactly-once checkpoints every 2
 * s); the job's CPU per event with and without a shadow model, both over the pre-loaded input and
 * fed live at a fleet's load; then the batched job's latency at half its measured maximum rate.
 */
public final class Bench {

    private static final String INPUT = "bench-input";

    /** The same events as {@link #INPUT}, in the Avro input format. */
    private static final String INPUT_AVRO = "bench-input-avro";

    static final String LIVE = "bench-live";
    private static final int PARALLELISM = 2;

    private final Path modelDir;
    private final ModelBundle bundle;
    private final int devices;
    private final int steps;
    private final int latencySeconds;

    /** Pairs of {@link #cpuAtRate} runs, and the seconds each is measured over. */
    private final int ratePairs;

    private final int rateWindowSeconds;

    /** Where to write a JFR recording of an extra, unmeasured batched run, or null. */
    private final Path profile;

    private EmbeddedKafkaBroker kafka;

    /** Options set for every run ({@code --set key=value}): what an experiment changes. */
    private final Map<String, String> settings;

    /** With {@code --latency-rate}: only the latency runs, at this rate; else 0. */
    private final double latencyRate;

    private Bench(
            Path modelDir,
            int devices,
            int steps,
            int latencySeconds,
            boolean quick,
            Path profile,
            Map<String, String> settings,
            double latencyRate) {
        this.profile = profile;
        this.settings = settings;
        this.latencyRate = latencyRate;
        this.modelDir = modelDir;
        this.bundle = ModelBundle.load(modelDir);
        this.devices = devices;
        this.steps = steps;
        this.latencySeconds = latencySeconds;
        // 20 s: two of the job's default checkpoint intervals, so that every run pays for two
        this.ratePairs = quick ? 1 : 3;
        this.rateWindowSeconds = quick ? 10 : 20;
    }

    public static void main(String[] args) throws Exception {
        Path home = Path.of(System.getProperty("vigil.home", "."));
        boolean quick = false;
        int devices = 10_000;
        Integer steps = null;
        Path report = null;
        Path profile = null;
        Path model = home.resolve("bench/model");
        Integer soakMinutes = null;
        Map<String, String> settings = new LinkedHashMap<>();
        double latencyRate = 0;
        double soakRate = 5_000;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--quick" -> quick = true;
                case "--devices" -> devices = Integer.parseInt(args[++i]);
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--report" -> report = Path.of(args[++i]);
                case "--model" -> model = Path.of(args[++i]);
                case "--profile" -> profile = Path.of(args[++i]);
                case "--soak" -> soakMinutes = Integer.parseInt(args[++i]);
                case "--rate" -> soakRate = Double.parseDouble(args[++i]);
                case "--latency-rate" -> latencyRate = Double.parseDouble(args[++i]);
                case "--set" -> {
                    String[] kv = args[++i].split("=", 2);
                    if (kv.length != 2) {
                        System.err.println("--set needs key=value, got " + args[i]);
                        System.exit(2);
                    }
                    settings.put(kv[0], kv[1]);
                }
                default -> {
                    System.err.println(
                            "usage: vigil bench [--quick] [--devices N] [--steps N]"
                                    + " [--report FILE] [--model DIR] [--profile FILE.jfr]"
                                    + " [--set KEY=VALUE]... [--latency-rate EVENTS_PER_S]\n"
                                    + "       vigil bench --soak MINUTES [--rate EVENTS_PER_S]"
                                    + " [--devices N] [--report FILE] [--model DIR]");
                    System.exit(2);
                }
            }
        }
        int stepsPerDevice = steps != null ? steps : quick ? 20 : 100;
        Bench bench =
                new Bench(
                        model,
                        devices,
                        stepsPerDevice,
                        quick ? 15 : 40,
                        quick,
                        profile,
                        settings,
                        latencyRate);
        Map<String, Object> result =
                soakMinutes != null ? bench.soak(soakMinutes, soakRate) : bench.run();
        String json =
                new ObjectMapper()
                        .enable(SerializationFeature.INDENT_OUTPUT)
                        .writeValueAsString(result);
        System.out.println(json);
        if (report != null) {
            if (report.toAbsolutePath().getParent() != null) {
                Files.createDirectories(report.toAbsolutePath().getParent());
            }
            Files.writeString(report, json);
            System.out.println("report written to " + report);
        }
        System.exit(0);
    }

    private Map<String, Object> run() throws Exception {
        ModelCard card = bundle.card();
        System.out.printf(
                "model %s: %d features, hidden %d; %d devices x %d steps = %d events%n",
                card.version(),
                card.featureCount(),
                card.hiddenSize(),
                devices,
                steps,
                (long) devices * steps);
        Map<String, Object> out = new LinkedHashMap<>();
        try (EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.start()) {
            kafka = broker;
            if (!settings.isEmpty()) {
                out.put("settings", settings);
            }
            if (latencyRate > 0) { // the latency runs alone, at a given rate (experiments)
                putLatency(out, latencyRate);
                return out;
            }
            kafka.createTopics(4, List.of(INPUT, INPUT_AVRO));
            long events = 0;
            for (String topic : List.of(INPUT, INPUT_AVRO)) {
                long t0 = System.nanoTime();
                InputFormat format = topic.equals(INPUT) ? InputFormat.JSON : InputFormat.AVRO;
                events = produce(topic, format, devices, steps, 0, Long.MAX_VALUE);
                System.out.printf(
                        "pre-loaded %d events into '%s' in %.1f s%n",
                        events, topic, (System.nanoTime() - t0) / 1e9);
            }

            throughput("warmup"); // JIT, RocksDB and Kafka warm-up: discarded
            if (System.getProperty("vigil.bench.only") != null) { // for investigating one variant
                for (String v : System.getProperty("vigil.bench.only").split(",")) {
                    if (v.contains("@")) { // VARIANT@RATE: cpuAtRate (Linux only)
                        String[] at = v.split("@", 2);
                        if (CpuMeter.available()) {
                            cpuAtRate(at[0], Double.parseDouble(at[1]), 5, rateWindowSeconds);
                        }
                    } else {
                        throughput(v);
                    }
                }
                return out;
            }
            Map<String, Run> runs = new LinkedHashMap<>();
            for (String variant :
                    List.of(
                            "passthrough",
                            "naive",
                            "batch1",
                            "batched",
                            "batched+uncached",
                            // Latency is timed on the scores topic (every step an output record),
                            // so its load is half the maximum of that configuration, measured here.
                            "batched+scores",
                            // The same events in the Avro input format (vigil.input.format: avro)
                            "passthrough+avro",
                            "batched+avro")) {
                runs.put(variant, throughput(variant));
            }
            double passthrough = runs.get("passthrough").eps();
            double batched = runs.get("batched").eps();
            double batchedScores = runs.get("batched+scores").eps();
            // A shadow model (the same one) scored beside the serving one, in pairs of runs that
            // alternate with serving alone. A pair's CPU ratio is the job's CPU per event with the
            // shadow over that without; its rate ratio, serving alone's events/s over those with
            // the shadow. This machine's load and the JIT compiler move single runs by up to a
            // factor of 2, so the medians of the pairs are reported. A first run with the shadow,
            // discarded, compiles its code paths as the warm-up did serving's.
            throughput("batched+shadow");
            List<Double> cpuRatios = new ArrayList<>();
            List<Double> rateRatios = new ArrayList<>();
            List<Double> shadowRates = new ArrayList<>();
            List<Double> shadowCpu = new ArrayList<>();
            for (int pair = 0; pair < SHADOW_PAIRS; pair++) {
                Run alone = throughput("batched");
                Run withShadow = throughput("batched+shadow");
                shadowRates.add(withShadow.eps());
                shadowCpu.add(withShadow.cpuUsPerEvent());
                cpuRatios.add(withShadow.cpuUsPerEvent() / alone.cpuUsPerEvent());
                rateRatios.add(alone.eps() / withShadow.eps());
            }
            // The same pairs at a fleet's load (cpuAtRate), fed live at the latency runs' rate:
            // half the batched maximum with scores, so that both variants keep up.
            double rate = batchedScores / 2;
            List<Double> cpuRatiosAtRate = new ArrayList<>();
            List<Double> aloneAtRate = new ArrayList<>();
            List<Double> shadowAtRate = new ArrayList<>();
            for (int pair = 0; CpuMeter.available() && pair < ratePairs; pair++) {
                double alone = cpuAtRate("batched", rate, 5, rateWindowSeconds);
                double withShadow = cpuAtRate("batched+shadow", rate, 5, rateWindowSeconds);
                aloneAtRate.add(alone);
                shadowAtRate.add(withShadow);
                cpuRatiosAtRate.add(withShadow / alone);
            }
            if (profile != null) {
                // Separate batched runs under JFR, of JSON and of Avro input: recording slows the
                // job, so they are not measured.
                throughput("profile");
                throughput("profile+avro");
            }

            out.put("model_version", card.version());
            out.put("features", card.featureCount());
            out.put("hidden_size", card.hiddenSize());
            out.put("devices", devices);
            out.put("events", events);
            out.put("parallelism", PARALLELISM);
            out.put("passthrough_eps", Math.round(passthrough));
            out.put("batched_eps", Math.round(batched));
            out.put(
                    "batched_without_state_cache_eps",
                    Math.round(runs.get("batched+uncached").eps()));
            out.put("batch1_eps", Math.round(runs.get("batch1").eps()));
            out.put("naive_eps", Math.round(runs.get("naive").eps()));
            out.put("ratio_batched_passthrough", round(batched / passthrough));
            out.put("ratio_batched_naive", round(batched / runs.get("naive").eps()));
            out.put("batched_with_scores_eps", Math.round(batchedScores));
            out.put("passthrough_avro_eps", Math.round(runs.get("passthrough+avro").eps()));
            out.put("batched_avro_eps", Math.round(runs.get("batched+avro").eps()));
            out.put("batched_with_shadow_eps", Math.round(median(shadowRates)));
            if (CpuMeter.available()) {
                // The job's CPU microseconds per event in each run's window
                Map<String, Object> cpuUs = new LinkedHashMap<>();
                runs.forEach((variant, run) -> cpuUs.put(variant, finite(run.cpuUsPerEvent())));
                cpuUs.put("batched+shadow", finite(median(shadowCpu)));
                out.put("cpu_us_per_event", cpuUs);
                // The job's CPU per event with a shadow, over serving alone
                out.put("cpu_ratio_shadow_serving", finite(median(cpuRatios)));
                out.put(
                        "cpu_ratio_shadow_serving_pairs",
                        cpuRatios.stream().map(Bench::finite).toList());
            }
            // Serving alone's events/s over those with a shadow (both cores busy in both runs)
            out.put("rate_ratio_serving_shadow", round(median(rateRatios)));
            if (!cpuRatiosAtRate.isEmpty()) {
                // The job's CPU per event fed live at one rate, alone and with a shadow
                out.put("cpu_at_rate_eps", Math.round(rate));
                Map<String, Object> cpuUs = new LinkedHashMap<>();
                cpuUs.put("batched", finite(median(aloneAtRate)));
                cpuUs.put("batched+shadow", finite(median(shadowAtRate)));
                out.put("cpu_us_per_event_at_rate", cpuUs);
                out.put("cpu_ratio_shadow_serving_at_rate", finite(median(cpuRatiosAtRate)));
                out.put(
                        "cpu_ratio_shadow_serving_at_rate_pairs",
                        cpuRatiosAtRate.stream().map(Bench::finite).toList());
            }
            closeThroughputCluster(); // the latency runs have the machine to themselves
            putLatency(out, batchedScores / 2);
            out.put(
                    "savepoint_bytes_per_device_with_shadow",
                    Math.round((double) savepointBytesWithShadow(batchedScores / 2) / devices));
            out.put("bytes_per_device", bytesPerDevice(card, steps));
            out.put("machine", machine());
        } finally {
            closeThroughputCluster();
        }
        return out;
    }

    /**
     * The batched job on the broker for {@code minutes} at a steady {@code rate}, sampling its
     * memory ({@link Soak}).
     */
    private Map<String, Object> soak(int minutes, double rate) throws Exception {
        System.out.printf(
                Locale.ROOT,
                "soak: model %s, %d devices at %.0f events/s for %d min%n",
                bundle.card().version(),
                devices,
                rate,
                minutes);
        try (EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.start()) {
            kafka = broker;
            kafka.createTopics(4, List.of(LIVE));
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("model_version", bundle.card().version());
            out.putAll(new Soak(this, minutes, rate).run());
            out.put("machine", machine());
            return out;
        }
    }

    ModelBundle bundle() {
        return bundle;
    }

    int devices() {
        return devices;
    }

    private VigilConfig config(String variant, String input, boolean bounded, boolean scores)
            throws Exception {
        return config(variant, input, bounded, scores, Map.of());
    }

    /**
     * A config for a job on the broker, writing anomalies and dead letters to its own topics, with
     * {@code extra} Flink or Vigil options.
     */
    VigilConfig config(
            String variant,
            String input,
            boolean bounded,
            boolean scores,
            Map<String, String> extra)
            throws Exception {
        List<String> outputs = LocalRun.outputTopics(variant);
        kafka.createTopics(4, scores ? outputs : outputs.subList(0, 2)); // anomalies, dead letters
        Map<String, String> c =
                LocalRun.config(
                        kafka.bootstrapServers(),
                        modelDir,
                        variant,
                        Files.createTempDirectory("bench-cp-"),
                        "2s",
                        PARALLELISM);
        c.put(VigilOptions.TOPIC_TELEMETRY.key(), input);
        if (!scores) {
            c.remove(VigilOptions.TOPIC_SCORES.key());
        }
        c.put(VigilOptions.KAFKA_BOUNDED.key(), Boolean.toString(bounded));
        // Throughput runs checkpoint every 2 s so that a short run takes several; the latency run
        // keeps the job's default interval, as production would.
        if (!bounded) {
            c.remove(VigilOptions.CHECKPOINT_INTERVAL.key());
        }
        c.put(VigilOptions.SCORING_BATCH_SIZE.key(), variant.equals("batch1") ? "1" : "256");
        c.putAll(extra);
        c.putAll(settings);
        return VigilConfig.of(c);
    }

    /**
     * One mini cluster for every throughput run, started with the first. A job run by {@code
     * env.execute()} gets a mini cluster of its own, and each loads Flink's RPC system (Pekko,
     * Scala, Typesafe Config) in a class loader of its own, whose code the JIT compiler compiles
     * again: with a cluster per run the compiler's threads spent 0.5 to 1.5 seconds compiling per
     * second of each run on the project's 2 cores, moving single runs' rates by a factor of 2
     * (bench/RESULTS.md).
     */
    private MiniCluster throughputCluster;

    private JobExecutionResult runOnThroughputCluster(
            StreamExecutionEnvironment env, VigilConfig config, String name) throws Exception {
        if (throughputCluster == null) {
            Configuration c = new Configuration(config.flinkConfiguration());
            c.set(TaskManagerOptions.NUM_TASK_SLOTS, PARALLELISM);
            throughputCluster =
                    new MiniCluster(
                            new MiniClusterConfiguration.Builder()
                                    .setConfiguration(c)
                                    .setNumTaskManagers(1)
                                    .setNumSlotsPerTaskManager(PARALLELISM)
                                    .build());
            throughputCluster.start();
        }
        StreamGraph graph = env.getStreamGraph();
        graph.setJobName(name);
        return throughputCluster.executeJobBlocking(
                graph.getJobGraph(Thread.currentThread().getContextClassLoader()));
    }

    private void closeThroughputCluster() throws Exception {
        if (throughputCluster != null) {
            throughputCluster.close();
            throughputCluster = null;
        }
    }

    /**
     * Runs one variant over the pre-loaded input; returns its sustained events/s and the job's CPU
     * time per event over the same window ({@link RateProbe}, {@link CpuMeter}). Prints them with
     * the seconds the JIT compiler spent per second of that window.
     */
    private Run throughput(String variant) throws Exception {
        String name = variant.replace('+', '-');
        boolean avro = variant.endsWith("+avro");
        Map<String, String> extra = options(variant, name);
        VigilConfig config =
                config(name, avro ? INPUT_AVRO : INPUT, true, variant.endsWith("+scores"), extra);
        StreamExecutionEnvironment env = define(variant, config);
        long t0 = System.nanoTime();
        Recording recording = null;
        if (variant.startsWith("profile")) {
            recording = new Recording();
            recording.enable("jdk.ExecutionSample").withPeriod(Duration.ofMillis(10));
            recording.enable("jdk.NativeMethodSample").withPeriod(Duration.ofMillis(20));
            recording.enable("jdk.ObjectAllocationSample");
            recording.enable("jdk.GarbageCollection");
            recording.start();
        }
        CpuMeter cpu = CpuMeter.available() ? CpuMeter.start() : null;
        JobExecutionResult result;
        try {
            result = runOnThroughputCluster(env, config, "bench-" + name);
        } finally {
            if (cpu != null) {
                cpu.close();
            }
        }
        if (recording != null) {
            recording.stop();
            Path file =
                    avro
                            ? profile.resolveSibling(
                                    profile.getFileName()
                                            .toString()
                                            .replaceFirst("(\\.jfr)?$", "-avro.jfr"))
                            : profile;
            recording.dump(file);
            recording.close();
            System.out.println("profile of a batched run written to " + file);
        }
        double eps = ((Number) result.getAccumulatorResult(RateProbe.ACCUMULATOR)).doubleValue();
        Number probes = result.getAccumulatorResult(RateProbe.PROBES);
        double compiling =
                probes == null || probes.intValue() == 0
                        ? 0
                        : ((Number) result.getAccumulatorResult(RateProbe.COMPILING)).doubleValue()
                                / probes.intValue();
        double cpuUs = Double.NaN;
        if (cpu != null && probes != null && probes.intValue() > 0 && eps > 0) {
            // Over the readings around the window the rate was measured in, at that rate
            CpuMeter.Spent spent =
                    cpu.spent(
                            result.getAccumulatorResult(RateProbe.WINDOW_FROM),
                            result.getAccumulatorResult(RateProbe.WINDOW_TO));
            cpuUs = spent.cpuSeconds() * 1e6 / (eps * spent.seconds());
            printThreads(spent);
        }
        System.out.printf(
                Locale.ROOT,
                "%-16s %9.0f events/s sustained, %5.1f us CPU per event (JIT compiling %.2f s per"
                        + " s; job %.1f s; %d episodes opened)%n",
                variant,
                eps,
                cpuUs,
                compiling,
                (System.nanoTime() - t0) / 1e9,
                LocalRun.counted(result, Metrics.EPISODES_OPENED));
        return new Run(eps, cpuUs);
    }

    /** The options a variant sets beyond {@link #config}'s, for a run named {@code name}. */
    private Map<String, String> options(String variant, String name) throws Exception {
        Map<String, String> extra = new LinkedHashMap<>();
        if (variant.endsWith("+avro")) {
            extra.put(VigilOptions.INPUT_FORMAT.key(), "avro");
        }
        if (variant.endsWith("+uncached")) { // every flush reads and writes RocksDB
            extra.put(VigilOptions.SCORING_STATE_CACHE.key(), "0");
        }
        if (variant.endsWith("+shadow")) {
            String topic = LocalRun.topic("shadow-anomalies", name);
            kafka.createTopics(4, List.of(topic));
            extra.put(VigilOptions.MODEL_SHADOW_DIR.key(), modelDir.toString());
            extra.put(VigilOptions.TOPIC_SHADOW_ANOMALIES.key(), topic);
        }
        return extra;
    }

    /**
     * The job's graph for a variant, its input counted by a {@link RateProbe}; the baselines differ
     * from it only in the keyed operator.
     */
    private StreamExecutionEnvironment define(String variant, VigilConfig config) {
        StreamExecutionEnvironment env = VigilPipeline.environment(config);
        VigilPipeline.Scoring scoring =
                switch (variant) {
                    case "naive" -> byDevice -> byDevice.process(new NaiveScoringFunction(bundle));
                    case "passthrough", "passthrough+avro", "warmup" ->
                            byDevice ->
                                    byDevice.transform(
                                            "passthrough",
                                            TypeInformation.of(AnomalyEvent.class),
                                            new PassthroughOperator(bundle, config.scoring()));
                    default ->
                            VigilPipeline.Scoring.of(
                                    bundle,
                                    variant.endsWith("+shadow") ? bundle : null,
                                    config.scoring());
                };
        VigilPipeline.define(
                env,
                e -> VigilJob.kafkaSource(config).read(e).map(new RateProbe()).uid("rate-probe"),
                bundle,
                scoring,
                VigilJob.kafkaSinks(config),
                config.input());
        return env;
    }

    private int ratedRuns;

    /**
     * The job's CPU microseconds per event for one variant at a given load: the job runs unbounded
     * on the throughput cluster, fed live at {@code rate} events/s (in JSON), and its CPU is
     * counted over {@code windowSeconds} after {@code warmUpSeconds}, per event its sources read in
     * that window. A run over the pre-loaded input measures a variant at the largest rate it
     * sustains instead, where a slower variant pays more per event for what is fixed in time (a
     * checkpoint every interval writes every device back) and its source and fetcher wait on
     * backpressure more often; a fleet's load does not change with the model that scores it. The
     * checkpoint interval is the job's default, as in production.
     */
    private double cpuAtRate(String variant, double rate, int warmUpSeconds, int windowSeconds)
            throws Exception {
        String name = variant.replace('+', '-') + "-at-rate-" + (++ratedRuns);
        String live = LIVE + "-" + name;
        kafka.createTopics(4, List.of(live));
        VigilConfig config = config(name, live, false, false, options(variant, name));
        StreamGraph graph = define(variant, config).getStreamGraph();
        graph.setJobName("bench-" + name);
        if (throughputCluster == null) {
            throughput("warmup"); // starts the cluster
        }
        long from;
        long to;
        long readFrom;
        long readTo;
        CpuMeter.Spent spent;
        // The bench's producer starts before the meter, and the job after it: the producer's
        // thread is not counted, the job's threads are.
        try (KafkaProducer<byte[], byte[]> producer = producer(rate)) {
            CpuMeter cpu = CpuMeter.start();
            try {
                JobID job =
                        throughputCluster
                                .submitJob(
                                        graph.getJobGraph(
                                                Thread.currentThread().getContextClassLoader()))
                                .get()
                                .getJobID();
                try {
                    awaitRunning(job);
                    long sent =
                            produce(
                                    producer,
                                    live,
                                    InputFormat.JSON,
                                    devices,
                                    0,
                                    Long.MAX_VALUE,
                                    rate,
                                    warmUpSeconds * 1000L);
                    from = System.nanoTime();
                    readFrom = RateProbe.read();
                    produce(
                            producer,
                            live,
                            InputFormat.JSON,
                            devices,
                            sent,
                            Long.MAX_VALUE,
                            rate,
                            windowSeconds * 1000L);
                    to = System.nanoTime();
                    readTo = RateProbe.read();
                } finally {
                    cancel(job);
                }
            } finally {
                cpu.close();
            }
            spent = cpu.spent(from, to);
        }
        // CPU per second over the meter's readings around the window, events per second over it
        double seconds = (to - from) / 1e9;
        double eventsPerSecond = (readTo - readFrom) / seconds;
        if (eventsPerSecond < 0.9 * rate) {
            System.out.printf(
                    Locale.ROOT,
                    "%-16s at %.0f events/s: read %.0f events/s, so it did not keep up; no CPU per"
                            + " event at that rate%n",
                    variant,
                    rate,
                    eventsPerSecond);
            return Double.NaN;
        }
        double cpuUs = spent.cpuSeconds() / spent.seconds() * 1e6 / eventsPerSecond;
        System.out.printf(
                Locale.ROOT,
                "%-16s at %.0f events/s: %5.2f us CPU per event (%d events read in %.1f s)%n",
                variant,
                rate,
                cpuUs,
                readTo - readFrom,
                seconds);
        printThreads(spent);
        return cpuUs;
    }

    /** Waits for a job submitted to the throughput cluster to run (a minute at most). */
    private void awaitRunning(JobID job) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
        JobStatus status;
        while ((status = throughputCluster.getJobStatus(job).get()) != JobStatus.RUNNING) {
            if (status.isTerminalState() || System.nanoTime() > deadline) {
                throw new IllegalStateException("bench job " + job + " did not start: " + status);
            }
            Thread.sleep(100);
        }
    }

    /** Cancels a job on the throughput cluster, if it still runs, and waits for it to end. */
    private void cancel(JobID job) throws Exception {
        if (!throughputCluster.getJobStatus(job).get().isTerminalState()) {
            try {
                throughputCluster.cancelJob(job).get();
            } catch (ExecutionException e) {
                // it ended meanwhile: its result below says how
            }
        }
        throughputCluster.requestJobResult(job).get();
    }

    /** With {@code -Dvigil.bench.cpu.threads=true}: where a run's CPU went, by thread. */
    private static void printThreads(CpuMeter.Spent spent) {
        if (Boolean.getBoolean("vigil.bench.cpu.threads")) {
            spent.byName().entrySet().stream()
                    .sorted(Map.Entry.<String, Double>comparingByValue().reversed())
                    .limit(15)
                    .forEach(
                            e ->
                                    System.out.printf(
                                            Locale.ROOT,
                                            "    %6.2f s  %s%n",
                                            e.getValue(),
                                            e.getKey()));
        }
    }

    /**
     * A throughput run: its sustained events/s, and the job's CPU microseconds per event over the
     * same window (NaN where Linux's per-thread statistics are missing).
     */
    record Run(double eps, double cpuUsPerEvent) {}

    /**
     * The latency runs at {@code rate}: exactly-once (the job's default), then at-least-once
     * delivery of anomalies and scores (the scores topic's steps stand in for alerts).
     */
    private void putLatency(Map<String, Object> out, double rate) throws Exception {
        Latency latency = latency("latency-exactly-once", rate, "exactly-once", true, Map.of());
        Latency atLeastOnce =
                latency("latency-at-least-once", rate, "at-least-once", false, Map.of());
        out.put("latency_rate_eps", Math.round(rate));
        out.put("latency_p50_ms", latency.appended().p50());
        out.put("latency_p99_ms", latency.appended().p99());
        out.put("latency_samples", latency.samples());
        out.put("checkpoint_interval_ms", latency.checkpointIntervalMs());
        out.put("latency_exactly_once_p50_ms", latency.visible().p50());
        out.put("latency_exactly_once_p99_ms", latency.visible().p99());
        out.put("latency_exactly_once_max_ms", latency.visible().max());
        out.put("latency_at_least_once_p50_ms", atLeastOnce.visible().p50());
        out.put("latency_at_least_once_p99_ms", atLeastOnce.visible().p99());
        out.put("latency_at_least_once_max_ms", atLeastOnce.visible().max());
        out.put("latency_exactly_once_by_second", latency.bySecond());
        out.put("latency_at_least_once_by_second", atLeastOnce.bySecond());
        // What each checkpoint cost, by the second of the run it fell in (as the by_second rows)
        out.put("latency_exactly_once_checkpoints", latency.checkpoints());
        out.put("latency_at_least_once_checkpoints", atLeastOnce.checkpoints());
        out.put("latency_at_least_once_write_back_max_ms", atLeastOnce.writeBackMaxMs());
        out.put("savepoint_bytes", latency.savepointBytes());
        out.put(
                "savepoint_bytes_per_device",
                Math.round((double) latency.savepointBytes() / devices));
    }

    private static Map<String, String> withDelivery(Map<String, String> extra, String delivery) {
        Map<String, String> c = new LinkedHashMap<>(extra);
        c.put(VigilOptions.DELIVERY_SCORES.key(), delivery);
        c.put(VigilOptions.DELIVERY_ANOMALIES.key(), delivery);
        return c;
    }

    /**
     * The savepoint of the job with a shadow model (the same one) beside the serving one, after a
     * run at {@code rate} as long as the latency runs: each device holds two states, its serving
     * model's and its shadow's. Returns its bytes.
     */
    private long savepointBytesWithShadow(double rate) throws Exception {
        String topic = LocalRun.topic("shadow-anomalies", "latency-shadow");
        kafka.createTopics(4, List.of(topic));
        Map<String, String> shadow =
                Map.of(
                        VigilOptions.MODEL_SHADOW_DIR.key(),
                        modelDir.toString(),
                        VigilOptions.TOPIC_SHADOW_ANOMALIES.key(),
                        topic);
        return latency("latency-shadow", rate, "exactly-once", true, shadow).savepointBytes();
    }

    /** Latency percentiles in ms. */
    record Percentiles(double p50, double p99, double max) {
        static Percentiles of(long[] values, int n) {
            if (n == 0) {
                return new Percentiles(Double.NaN, Double.NaN, Double.NaN);
            }
            long[] v = Arrays.copyOf(values, n);
            Arrays.sort(v);
            return new Percentiles(v[n / 2], v[Math.min(n - 1, (int) (n * 0.99))], v[n - 1]);
        }
    }

    /**
     * One latency run: from a step's event time (its send time) to its score's append to the topic
     * ({@code appended}: the job's processing latency) and to its arrival at a consumer reading as
     * a user would ({@code visible}: read_committed; under exactly-once that waits for the
     * checkpoint that commits it). {@code bySecond}: the visible latency per second of event time,
     * to show it across checkpoints.
     */
    record Latency(
            Percentiles appended,
            Percentiles visible,
            long samples,
            long checkpointIntervalMs,
            List<Map<String, Object>> bySecond,
            long savepointBytes,
            List<Map<String, Object>> checkpoints,
            double writeBackMaxMs) {}

    /**
     * Runs the batched job unbounded with step scores on, delivered {@code delivery} (exactly-once
     * or at-least-once), feeds it at {@code rate} events/s, and times every step from its event
     * time (stamped at send) to its score's LogAppendTime in the scores topic and to its arrival at
     * a read_committed consumer polling the topic while the job runs. Then stops the job with a
     * savepoint whose size is measured ({@code savepoint}), or cancels it.
     */
    private Latency latency(
            String run, double rate, String delivery, boolean savepoint, Map<String, String> extra)
            throws Exception {
        String live = LIVE + "-" + run;
        String scores = LocalRun.topic("scores", run);
        try (var admin = kafka.admin()) {
            admin.createTopics(
                            List.of(
                                    new NewTopic(live, 4, (short) 1),
                                    new NewTopic(scores, 4, (short) 1)
                                            .configs(
                                                    Map.of(
                                                            "message.timestamp.type",
                                                            "LogAppendTime"))))
                    .all()
                    .get();
        }
        int restPort = CheckpointStats.freePort();
        Map<String, String> options = new LinkedHashMap<>(CheckpointStats.restOn(restPort));
        // The scores topic stands in for the anomalies (every step a record): both are delivered
        // in the mode measured, as a user wanting fast alerts would set them.
        options.putAll(withDelivery(extra, delivery));
        VigilConfig config = config(run, live, false, true, options);
        long interval = config.get(VigilOptions.CHECKPOINT_INTERVAL).toMillis();
        StreamExecutionEnvironment env = VigilPipeline.environment(config);
        VigilJob.define(env, config, bundle);
        JobClient job = env.executeAsync("bench-" + run);
        LiveConsumer consumer = new LiveConsumer(scores);
        try {
            Thread.sleep(5_000); // let the job start before the clock runs
            long sendFrom = System.currentTimeMillis();
            consumer.start();
            produce(
                    live,
                    InputFormat.JSON,
                    devices,
                    Integer.MAX_VALUE,
                    rate,
                    latencySeconds * 1000L);
            long sendTo = System.currentTimeMillis();
            // drain: the last steps become visible at the checkpoint after them
            Thread.sleep(interval + 3_000);
            consumer.stop();
            CheckpointStats stats = new CheckpointStats(restPort, job.getJobID());
            List<Map<String, Object>> checkpoints = stats.checkpoints(sendFrom + 3_000);
            double writeBackMs = stats.longestWriteBackMs();
            long bytes = -1;
            if (savepoint) {
                bytes = savepointBytes(job);
            } else {
                job.cancel().get();
            }
            Latency result =
                    consumer.latency(
                            sendFrom + 3_000, sendTo, interval, bytes, checkpoints, writeBackMs);
            System.out.printf(
                    Locale.ROOT,
                    "latency %s at %.0f events/s: appended p50 %.0f / p99 %.0f ms, visible to a"
                            + " read_committed consumer p50 %.0f / p99 %.0f / max %.0f ms (%d"
                            + " steps; checkpoints every %d ms)%n",
                    delivery,
                    rate,
                    result.appended().p50(),
                    result.appended().p99(),
                    result.visible().p50(),
                    result.visible().p99(),
                    result.visible().max(),
                    result.samples(),
                    interval);
            for (Map<String, Object> c : checkpoints) {
                System.out.printf(
                        Locale.ROOT,
                        "  checkpoint %d at second %.1f: %d ms, %d bytes uploaded (state %d),"
                                + " scoring subtasks' longest synchronous part %d ms,"
                                + " asynchronous %d ms%n",
                        c.get("id"),
                        c.get("at_s"),
                        c.get("duration_ms"),
                        c.get("uploaded_bytes"),
                        c.get("state_bytes"),
                        c.get("scoring_sync_ms"),
                        c.get("scoring_async_ms"));
            }
            System.out.printf(
                    Locale.ROOT,
                    "  longest state-cache write-back before a barrier: %.0f ms%n",
                    writeBackMs);
            return result;
        } catch (Exception e) {
            consumer.stop();
            job.cancel().get();
            throw e;
        }
    }

    /**
     * A read_committed consumer of a scores topic, polling in its own thread while the job runs.
     */
    private final class LiveConsumer {
        private final String topic;
        private final Thread thread;
        private volatile boolean running = true;
        private long[] eventTs = new long[1 << 16];
        private long[] appended = new long[1 << 16];
        private long[] visible = new long[1 << 16];
        private int n;

        LiveConsumer(String topic) {
            this.topic = topic;
            this.thread = new Thread(this::poll, "bench-live-consumer");
        }

        void start() {
            thread.start();
        }

        void stop() throws InterruptedException {
            running = false;
            thread.join(30_000);
        }

        private void poll() {
            Properties props = new Properties();
            props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
            props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            try (KafkaConsumer<byte[], byte[]> consumer =
                    new KafkaConsumer<>(
                            props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                List<TopicPartition> partitions =
                        consumer.partitionsFor(topic).stream()
                                .map(p -> new TopicPartition(topic, p.partition()))
                                .toList();
                consumer.assign(partitions);
                consumer.seekToBeginning(partitions);
                while (running) {
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(50))) {
                        long now = System.currentTimeMillis();
                        long ts = WireFormat.parseScore(r.value()).ts;
                        if (n == eventTs.length) {
                            eventTs = Arrays.copyOf(eventTs, n * 2);
                            appended = Arrays.copyOf(appended, n * 2);
                            visible = Arrays.copyOf(visible, n * 2);
                        }
                        eventTs[n] = ts;
                        appended[n] = r.timestamp() - ts;
                        visible[n] = now - ts;
                        n++;
                    }
                }
            }
        }

        /** The steps sent in [from, to] (warm-up left out), after {@link #stop}. */
        Latency latency(
                long from,
                long to,
                long interval,
                long savepointBytes,
                List<Map<String, Object>> checkpoints,
                double writeBackMs) {
            long[] a = new long[n];
            long[] v = new long[n];
            int k = 0;
            Map<Long, List<Long>> perSecond = new TreeMap<>();
            for (int i = 0; i < n; i++) {
                if (eventTs[i] < from || eventTs[i] > to) {
                    continue;
                }
                a[k] = appended[i];
                v[k] = visible[i];
                k++;
                perSecond
                        .computeIfAbsent((eventTs[i] - from) / 1000, x -> new ArrayList<>())
                        .add(visible[i]);
            }
            List<Map<String, Object>> bySecond = new ArrayList<>();
            perSecond.forEach(
                    (second, values) -> {
                        long[] vs = values.stream().mapToLong(Long::longValue).toArray();
                        Percentiles p = Percentiles.of(vs, vs.length);
                        Map<String, Object> row = new LinkedHashMap<>();
                        row.put("second", second);
                        row.put("p50_ms", p.p50());
                        row.put("p99_ms", p.p99());
                        row.put("max_ms", p.max());
                        bySecond.add(row);
                    });
            return new Latency(
                    Percentiles.of(a, k),
                    Percentiles.of(v, k),
                    k,
                    interval,
                    bySecond,
                    savepointBytes,
                    checkpoints,
                    writeBackMs);
        }
    }

    /**
     * Stops the job with a canonical savepoint and returns its size on disk: every device's state
     * (with its key and TTL timestamp) plus the Kafka source and sinks' few bytes.
     */
    private long savepointBytes(JobClient job) throws Exception {
        Path dir = Files.createTempDirectory("bench-savepoint-");
        try {
            job.stopWithSavepoint(false, dir.toUri().toString(), SavepointFormatType.CANONICAL)
                    .get(2, TimeUnit.MINUTES);
            try (var files = Files.walk(dir)) {
                long bytes =
                        files.filter(Files::isRegularFile)
                                .mapToLong(f -> f.toFile().length())
                                .sum();
                System.out.printf(
                        Locale.ROOT,
                        "savepoint of %d devices: %d bytes (%.0f per device)%n",
                        devices,
                        bytes,
                        (double) bytes / devices);
                return bytes;
            }
        } finally {
            LocalRun.deleteRecursively(dir);
        }
    }

    /**
     * Produces {@code steps} events per device, device-interleaved, keyed by device, with random
     * feature values around the card's means. At {@code rate} > 0 it paces itself and stamps each
     * event with the send time, for at most {@code forMs}.
     */
    long produce(
            String topic, InputFormat format, int devices, int steps, double rate, long forMs) {
        try (KafkaProducer<byte[], byte[]> producer = producer(rate)) {
            long sent =
                    produce(
                            producer,
                            topic,
                            format,
                            devices,
                            0,
                            (long) devices * steps,
                            rate,
                            forMs);
            producer.flush();
            return sent;
        }
    }

    /** A producer for {@link #produce}: lingering 1 ms when paced at a rate, else 20 ms. */
    KafkaProducer<byte[], byte[]> producer(double rate) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        props.put(ProducerConfig.LINGER_MS_CONFIG, rate > 0 ? "1" : "20");
        props.put(ProducerConfig.BATCH_SIZE_CONFIG, "262144");
        props.put(ProducerConfig.ACKS_CONFIG, "1");
        return new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
    }

    /**
     * Sends events {@code first} to {@code first + count - 1} of the device-interleaved sequence
     * (event i: device i mod {@code devices}, step i / {@code devices}) with {@code producer}, as
     * {@link #produce(String, InputFormat, int, int, double, long)} does; returns how many it sent.
     * The feature values are random, drawn afresh for each call.
     */
    private long produce(
            KafkaProducer<byte[], byte[]> producer,
            String topic,
            InputFormat format,
            int devices,
            long first,
            long count,
            double rate,
            long forMs) {
        ModelCard card = bundle.card();
        SplittableRandom random = new SplittableRandom(42 + first);
        long sent = 0;
        long start = System.nanoTime();
        long base = 1_764_000_000_000L;
        float[] values = new float[card.featureCount()];
        TelemetryEvent e = new TelemetryEvent(null, 0, 0, values);
        for (long n = 0; n < count; n++) {
            long i = first + n;
            int d = (int) (i % devices);
            long step = i / devices;
            long ts = base + step * 60_000L;
            if (rate > 0) {
                // Sleep, not spin: on 2 cores a spinning producer would starve the job.
                long due = start + (long) (sent * 1e9 / rate);
                long now;
                while ((now = System.nanoTime()) < due) {
                    LockSupport.parkNanos(due - now);
                }
                if ((now - start) / 1_000_000 > forMs) {
                    break;
                }
                ts = System.currentTimeMillis();
            }
            e.deviceId = "dev-" + d;
            e.ts = ts;
            e.seq = step;
            for (int f = 0; f < values.length; f++) {
                values[f] = card.mean()[f] + (float) random.nextGaussian() * card.std()[f];
            }
            producer.send(
                    new ProducerRecord<>(
                            topic,
                            e.deviceId.getBytes(StandardCharsets.UTF_8),
                            format.write(e, card.names())));
            sent++;
        }
        return sent;
    }

    /**
     * Serialized size of one device's state plus its key, at the model's sizes, outside an episode,
     * after {@code steps} steps.
     */
    private static long bytesPerDevice(ModelCard card, int steps) throws Exception {
        DeviceState s = DeviceState.fresh(card.version(), card.hiddenSize(), card.featureCount());
        s.lastTs = 1_764_000_000_000L;
        s.lastSeq = 4711;
        s.steps = steps;
        if (card.level() != null) {
            // a level score keeps a profile per target (and its spread, normalising by device)
            s.resetProfile(card.targets().length, card.normalisation() != null);
            s.profileSteps = Math.min(steps, card.level().profileSteps());
        }
        if (card.stuck() != null) {
            s.resetRuns(card.stuckTargets().length); // and a stuck score a run per watched one
        }
        if (card.variability() != null) {
            s.resetVariability(card.targets().length); // and the variability four floats per target
            s.variabilitySteps = Math.min(steps, card.variability().profileSteps());
        }
        ModelCard.DeviceDynamics dynamics = card.deviceDynamics();
        if (dynamics != null) {
            // a residual scaled per device: the steps learned after warm-up and the level, and
            // while it is learned in blocks the blocks' three floats
            s.dynamicsSteps = Math.min(Math.max(0, steps - card.warmupSteps()), dynamics.steps());
            if (s.dynamicsSteps > 0
                    && s.dynamicsSteps < dynamics.steps()
                    && dynamics.blocks() > 1) {
                s.dynamicsBlocks = new float[DeviceStateSerializer.BLOCK_FLOATS];
            }
        }
        DataOutputSerializer out = new DataOutputSerializer(1024);
        DeviceStateSchema.serializer().serialize(s, out);
        return out.length() + "dev-12345".length() + 1;
    }

    private static String machine() {
        return Runtime.getRuntime().availableProcessors()
                + " cores, "
                + System.getProperty("os.name")
                + " "
                + System.getProperty("os.arch")
                + ", Java "
                + System.getProperty("java.version");
    }

    /** Runs of serving alone and with a shadow, in pairs, for {@code cpu_ratio_shadow_serving}. */
    private static final int SHADOW_PAIRS = 7;

    /** The median of the finite values (NaN: none). */
    private static double median(List<Double> values) {
        List<Double> sorted = values.stream().filter(Double::isFinite).sorted().toList();
        int n = sorted.size();
        if (n == 0) {
            return Double.NaN;
        }
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }

    /** Rounded to two decimals for the report, or null (JSON null) when not a finite number. */
    private static Double finite(double v) {
        return Double.isFinite(v) ? round(v) : null;
    }

    private static double round(double v) {
        return Math.round(v * 100) / 100.0;
    }
}
