package dev.vigil.config;

import dev.vigil.kafka.KafkaSettings;
import dev.vigil.scoring.ModelChange;
import dev.vigil.serde.InputFormat;
import java.time.Duration;
import java.util.List;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.description.HtmlFormatter;

/**
 * Every option of the job, with its default and description: the one source of the README's
 * configuration table (a test keeps the two equal). Flink's own options ({@code
 * execution.checkpointing.*}, {@code state.*}, {@code parallelism.default}, ...) can be set in the
 * same file and are passed to Flink as they are.
 */
public final class VigilOptions {

    private VigilOptions() {}

    public static final ConfigOption<String> KAFKA_BOOTSTRAP_SERVERS =
            ConfigOptions.key("vigil.kafka.bootstrap-servers")
                    .stringType()
                    .noDefaultValue()
                    .withDescription("Kafka brokers, host:port[,host:port...]. Required.");

    public static final ConfigOption<String> KAFKA_GROUP_ID =
            ConfigOptions.key("vigil.kafka.group-id")
                    .stringType()
                    .defaultValue("vigil")
                    .withDescription(
                            "Consumer group of the telemetry source. Offsets live in Flink's"
                                    + " checkpoints; the group's committed offsets are for"
                                    + " monitoring lag.");

    public static final ConfigOption<String> TOPIC_TELEMETRY =
            ConfigOptions.key("vigil.kafka.topic.telemetry")
                    .stringType()
                    .defaultValue("telemetry")
                    .withDescription("Input topic; record key = device id.");

    public static final ConfigOption<String> TOPIC_ANOMALIES =
            ConfigOptions.key("vigil.kafka.topic.anomalies")
                    .stringType()
                    .defaultValue("anomalies")
                    .withDescription("Anomaly events (OPEN, UPDATE, CLOSE), key = device id.");

    public static final ConfigOption<String> TOPIC_DEAD_LETTERS =
            ConfigOptions.key("vigil.kafka.topic.dead-letters")
                    .stringType()
                    .defaultValue("dead-letters")
                    .withDescription(
                            "Records that could not be scored, with reason and raw bytes.");

    public static final ConfigOption<String> TOPIC_SCORES =
            ConfigOptions.key("vigil.kafka.topic.scores")
                    .stringType()
                    .defaultValue("")
                    .withDescription(
                            "Every step's score and its components ({device_id, ts, score, dynamics, level,"
                                    + " stuck, variability, correlation}); empty"
                                    + " to write none.");

    public static final ConfigOption<String> DELIVERY_ANOMALIES =
            ConfigOptions.key("vigil.delivery.anomalies")
                    .stringType()
                    .defaultValue("exactly-once")
                    .withDescription(
                            "exactly-once: anomaly events are written in Kafka transactions, visible"
                                    + " to a read_committed consumer when the next checkpoint"
                                    + " completes, never duplicated. at-least-once: written as they"
                                    + " are produced (milliseconds); after a failure the events"
                                    + " since the last checkpoint are written again, with the same"
                                    + " event_id: consumers de-duplicate by it (README, Contracts).");

    public static final ConfigOption<String> DELIVERY_SCORES =
            ConfigOptions.key("vigil.delivery.scores")
                    .stringType()
                    .defaultValue("exactly-once")
                    .withDescription(
                            "exactly-once or at-least-once for the scores topic (a step written"
                                    + " again after a failure has the same device_id and ts).");

    public static final ConfigOption<String> DELIVERY_DEAD_LETTERS =
            ConfigOptions.key("vigil.delivery.dead-letters")
                    .stringType()
                    .defaultValue("exactly-once")
                    .withDescription("exactly-once or at-least-once for the dead-letter topic.");

    public static final ConfigOption<String> KAFKA_TRANSACTIONAL_ID_PREFIX =
            ConfigOptions.key("vigil.kafka.transactional-id-prefix")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "Prefix of the exactly-once sinks' transactional ids (each sink adds"
                                    + " its topic); must be unique per job on the cluster, or two"
                                    + " jobs fence each other's transactions. Unset:"
                                    + " vigil-<group id>-<telemetry topic>, with a warning at"
                                    + " start.");

    public static final ConfigOption<Duration> KAFKA_TRANSACTION_TIMEOUT =
            ConfigOptions.key("vigil.kafka.transaction-timeout")
                    .durationType()
                    .defaultValue(Duration.ofMinutes(15))
                    .withDescription(
                            "Kafka transaction timeout of the sinks: longer than the checkpoint"
                                    + " interval plus execution.checkpointing.timeout (10 min by"
                                    + " default; the job refuses to start otherwise, unless every"
                                    + " delivery is at-least-once) plus any expected downtime, at"
                                    + " most the broker's transaction.max.timeout.ms (15 min by"
                                    + " default).");

    public static final ConfigOption<KafkaSettings.StartFrom> KAFKA_START_FROM =
            ConfigOptions.key("vigil.kafka.start-from")
                    .enumType(KafkaSettings.StartFrom.class)
                    .defaultValue(KafkaSettings.StartFrom.COMMITTED)
                    .withDescription(
                            "Where a job without checkpoint or savepoint starts reading:"
                                    + " committed (the group's offsets, else earliest), earliest"
                                    + " or latest.");

    public static final ConfigOption<Boolean> KAFKA_BOUNDED =
            ConfigOptions.key("vigil.kafka.bounded")
                    .booleanType()
                    .defaultValue(false)
                    .withDescription(
                            "Read up to the end offsets seen at start, then finish (replays).");

    public static final String KAFKA_PROPERTIES_PREFIX = "vigil.kafka.properties.";

    public static final ConfigOption<String> MODEL_DIR =
            ConfigOptions.key("vigil.model.dir")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "Directory with model.onnx and model.json, read where the job is"
                                    + " submitted and shipped with it. Required.");

    public static final ConfigOption<ModelChange> MODEL_ON_CHANGE =
            ConfigOptions.key("vigil.model.on-change")
                    .enumType(ModelChange.class)
                    .defaultValue(ModelChange.RESET)
                    .withDescription(
                            "When restored state was written by another model version: reset"
                                    + " (zero each device's memory, warm up again), keep (keep"
                                    + " it when the hidden sizes match, else reset) or fail (stop"
                                    + " the job, naming both versions).");

    public static final ConfigOption<Duration> SCORING_GAP =
            ConfigOptions.key("vigil.scoring.gap")
                    .durationType()
                    .defaultValue(Duration.ofMinutes(10))
                    .withDescription(
                            "A device silent for longer has its GRU memory reset and warms up"
                                    + " again. Set it above the devices' longest normal reporting"
                                    + " interval: a device that reports less often is reset at every"
                                    + " step and never alerts (`warming_up`, alert"
                                    + " `VigilDevicesWarmingUp`).");

    public static final ConfigOption<Duration> SCORING_RESTART_STEP_BACK =
            ConfigOptions.key("vigil.scoring.restart-step-back")
                    .durationType()
                    .defaultValue(Duration.ofHours(1))
                    .withDescription(
                            "A step whose ts is more than this before its device's last scored"
                                    + " step is a restart of the device (its clock was stepped"
                                    + " back), as is a seq that goes back while ts moves on (a"
                                    + " reboot that restarts the counter): the device's memory is"
                                    + " reset (resets_restart) and the step is scored, instead of"
                                    + " every later step being dropped as late. Shorter steps back"
                                    + " are late: a dead letter DUPLICATE or OUT_OF_ORDER.");

    public static final ConfigOption<String> MODEL_SHADOW_DIR =
            ConfigOptions.key("vigil.model.shadow.dir")
                    .stringType()
                    .defaultValue("")
                    .withDescription(
                            "A second model (model.onnx + model.json, with the serving model's"
                                    + " features in the same order) scored in the scoring operator"
                                    + " beside the serving one, on every device, with its own state"
                                    + " per device (inside the device's device-state entry): its"
                                    + " anomaly events go to"
                                    + " vigil.kafka.topic.shadow-anomalies, never to the anomalies"
                                    + " topic (unless vigil.model.canary.fraction gives it devices"
                                    + " to serve), and its metrics to the group vigil_shadow."
                                    + " Empty: no shadow.");

    public static final ConfigOption<Double> MODEL_CANARY_FRACTION =
            ConfigOptions.key("vigil.model.canary.fraction")
                    .doubleType()
                    .defaultValue(0.0)
                    .withDescription(
                            "The share of devices (0 to 1, chosen by a stable hash of the device"
                                    + " id: a larger fraction only adds devices) whose alerts,"
                                    + " scores and dead letters come from the shadow model; the"
                                    + " serving model's events for them go to the shadow topic"
                                    + " instead. Both models keep scoring every device, so a"
                                    + " restart with 0 rolls back with every device's memory warm."
                                    + " Needs vigil.model.shadow.dir.");

    public static final ConfigOption<String> TOPIC_SHADOW_ANOMALIES =
            ConfigOptions.key("vigil.kafka.topic.shadow-anomalies")
                    .stringType()
                    .defaultValue("anomalies-shadow")
                    .withDescription(
                            "Where the anomaly events of the model that does not serve a device"
                                    + " go (the anomalies topic's format and delivery), when"
                                    + " vigil.model.shadow.dir is set: the shadow model's, and for"
                                    + " the canary's devices the serving model's. Its sink is"
                                    + " in the graph without a shadow too (it writes nothing; the"
                                    + " topic need not exist). The job refuses at start two of"
                                    + " these topics (telemetry, anomalies, shadow anomalies, dead"
                                    + " letters, scores) with one name.");

    public static final ConfigOption<Integer> DRIFT_WINDOW_STEPS =
            ConfigOptions.key("vigil.drift.window-steps")
                    .intType()
                    .defaultValue(10_000)
                    .withDescription(
                            "Scored steps per drift window of each scoring subtask: at the end of"
                                    + " each, the input's mean shift (training stds) and population"
                                    + " stability index per feature and the share of residual"
                                    + " scores above the card's q0.99 are published as gauges"
                                    + " (README, Drift). 0: no drift metrics.");

    public static final ConfigOption<InputFormat> INPUT_FORMAT =
            ConfigOptions.key("vigil.input.format")
                    .enumType(InputFormat.class)
                    .defaultValue(InputFormat.JSON)
                    .withDescription(
                            "How input records are encoded: json (UTF-8 text) or avro (binary, one"
                                    + " record of the schema dev/vigil/serde/telemetry.avsc per"
                                    + " Kafka value, no header). The same contract and dead-letter"
                                    + " reasons, with MALFORMED_AVRO for bytes that are not a"
                                    + " record of that schema.");

    public static final ConfigOption<Duration> INPUT_MAX_CLOCK_SKEW =
            ConfigOptions.key("vigil.input.max-clock-skew")
                    .durationType()
                    .defaultValue(Duration.ofHours(1))
                    .withDescription(
                            "A record whose ts lies further ahead of the job's clock is a dead"
                                    + " letter FUTURE_TS and moves no watermark: scored, it would"
                                    + " make every later step of its device late.");

    public static final ConfigOption<Boolean> INPUT_REQUIRE_KEY =
            ConfigOptions.key("vigil.input.require-key")
                    .booleanType()
                    .defaultValue(true)
                    .withDescription(
                            "Whether a record must be keyed by its device_id. A key that differs"
                                    + " is always a dead letter KEY_MISMATCH (one device spread"
                                    + " over partitions reaches the job out of order); false"
                                    + " accepts records with no key, for producers that send"
                                    + " none and write each device to one partition.");

    public static final ConfigOption<Integer> SCORING_BATCH_SIZE =
            ConfigOptions.key("vigil.scoring.batch-size")
                    .intType()
                    .defaultValue(256)
                    .withDescription(
                            "Records buffered across devices and stepped with one ONNX Runtime"
                                    + " call per round (each device's records stay in order); 0"
                                    + " scores record by record; at most 65,536.");

    public static final ConfigOption<Duration> SCORING_BATCH_TIMEOUT =
            ConfigOptions.key("vigil.scoring.batch-timeout")
                    .durationType()
                    .defaultValue(Duration.ofMillis(10))
                    .withDescription(
                            "Longest a record waits for its batch to fill; the buffer is also"
                                    + " flushed at every checkpoint barrier and watermark.");

    public static final ConfigOption<Integer> SCORING_STATE_CACHE =
            ConfigOptions.key("vigil.scoring.state-cache")
                    .intType()
                    .defaultValue(20_000)
                    .withDescription(
                            "Devices per scoring subtask whose state the batched operator keeps on"
                                    + " the heap, written to RocksDB at every checkpoint barrier"
                                    + " and whenever the cache fills: a device stepped n times"
                                    + " between two checkpoints costs one RocksDB write instead of"
                                    + " n, and is read from RocksDB again only after an interval"
                                    + " without a step or a full cache; 0 reads and writes RocksDB"
                                    + " at every batch.");

    public static final ConfigOption<Double> SCORING_MAX_ABS_NORMALISED =
            ConfigOptions.key("vigil.scoring.max-abs-normalised")
                    .doubleType()
                    .defaultValue(1000.0)
                    .withDescription(
                            "A feature further than this from the card's mean, in the card's stds,"
                                    + " is clamped to it before scoring (counted as clamped_values):"
                                    + " one absurd but finite reading cannot overflow a device's"
                                    + " memory.");

    public static final ConfigOption<Integer> ALERTS_OPEN_AFTER =
            ConfigOptions.key("vigil.alerts.open-after")
                    .intType()
                    .defaultValue(3)
                    .withDescription("Consecutive steps above the threshold that open an episode.");

    public static final ConfigOption<Integer> ALERTS_CLOSE_AFTER =
            ConfigOptions.key("vigil.alerts.close-after")
                    .intType()
                    .defaultValue(30)
                    .withDescription(
                            "Consecutive steps at or below it that close the episode: long enough"
                                    + " that one fault with quiet moments stays one episode.");

    public static final ConfigOption<Integer> ALERTS_UPDATE_EVERY =
            ConfigOptions.key("vigil.alerts.update-every")
                    .intType()
                    .defaultValue(0)
                    .withDescription("An UPDATE event every this many steps while open; 0: none.");

    public static final ConfigOption<Duration> ALERTS_RELEARN_AFTER =
            ConfigOptions.key("vigil.alerts.relearn-after")
                    .durationType()
                    .defaultValue(Duration.ZERO)
                    .withDescription(
                            "An episode open while the level or the variability score has crossed the threshold at"
                                    + " every step for this long (by the records' time) closes with relearned"
                                    + " true, and the device learns those two profiles again from the next"
                                    + " step (under per-device normalisation its memory too, with a warm-up):"
                                    + " a device that settled somewhere new is watched again, at the cost of"
                                    + " taking a fault that lasts this long as its new normal. 0: never (such"
                                    + " an episode stays open until the device comes back).");

    public static final ConfigOption<Integer> ALERTS_TOP_FEATURES =
            ConfigOptions.key("vigil.alerts.top-features")
                    .intType()
                    .defaultValue(3)
                    .withDescription("How many features an event names as its explanation.");

    public static final ConfigOption<Duration> ALERTS_SILENCE_AFTER =
            ConfigOptions.key("vigil.alerts.silence-after")
                    .durationType()
                    .defaultValue(Duration.ofMinutes(10))
                    .withDescription(
                            "A device with no step scored for this long (by the records' Kafka"
                                    + " timestamps, against the watermark) gets a silence OPEN on"
                                    + " the anomalies topic, and a CLOSE at its next step; 0: off."
                                    + " Set it above the devices' longest normal reporting"
                                    + " interval.");

    public static final ConfigOption<Boolean> ALERTS_ADAPTIVE_THRESHOLD =
            ConfigOptions.key("vigil.alerts.adaptive-threshold")
                    .booleanType()
                    .defaultValue(false)
                    .withDescription(
                            "Scale each device's threshold by a slow moving average of its own"
                                    + " score level outside episodes (never below the card's"
                                    + " threshold). For fleets where some devices are normally"
                                    + " noisier than the data the model was calibrated on. Only"
                                    + " with cards whose threshold is above 1 (before 0.2.0): with"
                                    + " a card in threshold units it could never move, and the job"
                                    + " refuses it at start.");

    public static final ConfigOption<Integer> ALERTS_ADAPTIVE_HALF_LIFE =
            ConfigOptions.key("vigil.alerts.adaptive-half-life-steps")
                    .intType()
                    .defaultValue(1440)
                    .withDescription(
                            "Half-life, in steps, of the score level the adaptive threshold"
                                    + " follows.");

    public static final ConfigOption<Duration> STATE_TTL =
            ConfigOptions.key("vigil.state.ttl")
                    .durationType()
                    .defaultValue(Duration.ofDays(30))
                    .withDescription(
                            "A device silent for longer is dropped from state; when it"
                                    + " returns it starts fresh, with warm-up. With the silence"
                                    + " watch on (then at least 2 min longer than"
                                    + " vigil.alerts.silence-after), a device reported silent is"
                                    + " forgotten this long after it was last seen (Kafka time):"
                                    + " its open episodes closed, its silence by a CLOSE with"
                                    + " reason forgotten; the state backend drops a device without"
                                    + " a word only after twice this long without a write"
                                    + " (processing time: a watermark that stood still). With the"
                                    + " watch off, the backend drops it after this long.");

    public static final ConfigOption<Integer> MAX_PARALLELISM =
            ConfigOptions.key("vigil.max-parallelism")
                    .intType()
                    .defaultValue(720)
                    .withDescription(
                            "Key groups of the device state: the highest parallelism a savepoint"
                                    + " can ever be restored at. Fixed for the life of the state.");

    public static final ConfigOption<Duration> CHECKPOINT_INTERVAL =
            ConfigOptions.key("vigil.checkpoint.interval")
                    .durationType()
                    .defaultValue(Duration.ofSeconds(10))
                    .withDescription(
                            "Exactly-once checkpoint interval; also how often anomaly events"
                                    + " become visible to read_committed consumers.");

    public static final ConfigOption<String> CHECKPOINT_DIR =
            ConfigOptions.key("vigil.checkpoint.dir")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "Checkpoint storage URI (file://, s3://, ...). Unset: Flink's"
                                    + " execution.checkpointing.dir.");

    /** An option's description as plain text, for messages and the README. */
    public static String describe(ConfigOption<?> option) {
        return new HtmlFormatter().format(option.description());
    }

    /** All options, for the README table and its test. */
    public static List<ConfigOption<?>> all() {
        return List.of(
                KAFKA_BOOTSTRAP_SERVERS,
                KAFKA_GROUP_ID,
                TOPIC_TELEMETRY,
                TOPIC_ANOMALIES,
                TOPIC_DEAD_LETTERS,
                TOPIC_SCORES,
                DELIVERY_ANOMALIES,
                DELIVERY_SCORES,
                DELIVERY_DEAD_LETTERS,
                KAFKA_TRANSACTIONAL_ID_PREFIX,
                KAFKA_TRANSACTION_TIMEOUT,
                KAFKA_START_FROM,
                KAFKA_BOUNDED,
                MODEL_DIR,
                MODEL_ON_CHANGE,
                MODEL_SHADOW_DIR,
                MODEL_CANARY_FRACTION,
                TOPIC_SHADOW_ANOMALIES,
                INPUT_FORMAT,
                INPUT_MAX_CLOCK_SKEW,
                INPUT_REQUIRE_KEY,
                SCORING_GAP,
                SCORING_RESTART_STEP_BACK,
                SCORING_BATCH_SIZE,
                SCORING_BATCH_TIMEOUT,
                SCORING_STATE_CACHE,
                SCORING_MAX_ABS_NORMALISED,
                ALERTS_OPEN_AFTER,
                ALERTS_CLOSE_AFTER,
                ALERTS_UPDATE_EVERY,
                ALERTS_RELEARN_AFTER,
                ALERTS_TOP_FEATURES,
                ALERTS_SILENCE_AFTER,
                ALERTS_ADAPTIVE_THRESHOLD,
                ALERTS_ADAPTIVE_HALF_LIFE,
                DRIFT_WINDOW_STEPS,
                STATE_TTL,
                MAX_PARALLELISM,
                CHECKPOINT_INTERVAL,
                CHECKPOINT_DIR);
    }
}
