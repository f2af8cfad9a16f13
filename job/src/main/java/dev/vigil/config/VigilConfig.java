package dev.vigil.config;

import dev.vigil.kafka.KafkaConnectors;
import dev.vigil.kafka.KafkaSettings;
import dev.vigil.scoring.ModelChange;
import dev.vigil.scoring.ScoringSettings;
import dev.vigil.serde.InputFormat;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.GlobalConfiguration;
import org.apache.flink.core.execution.CheckpointingMode;

/**
 * The job's configuration: a flat YAML file ({@code key: value} per line) plus {@code -Dkey=value}
 * overrides, checked at start. A wrong or missing value stops the job with a message that names the
 * key and what it accepts.
 */
public final class VigilConfig {

    /** The largest {@code vigil.scoring.batch-size}: beyond it a batch only costs memory. */
    public static final int MAX_BATCH_SIZE = 65_536;

    /**
     * How much longer than the silence period a state must live: a silence is reported when the
     * watermark passes it, 30 s behind the records (VigilJob's bound), and a partition idle for a
     * minute stops holding it back; a state that expired first would never be reported.
     */
    public static final java.time.Duration SILENCE_TTL_MARGIN = java.time.Duration.ofMinutes(2);

    private final Configuration conf;

    private VigilConfig(Configuration conf) {
        this.conf = conf;
    }

    public static VigilConfig of(Map<String, String> values) {
        VigilConfig config = new VigilConfig(Configuration.fromMap(values));
        config.validate(values.keySet());
        return config;
    }

    /**
     * Parses {@code [--config FILE] [-Dkey=value ...]}; later values win.
     *
     * @throws ConfigException with what to fix
     */
    public static VigilConfig fromArgs(String[] args) {
        Map<String, String> values = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--config") && i + 1 < args.length) {
                values.putAll(readFile(Path.of(args[++i])));
            } else if (a.startsWith("-D") && a.contains("=")) {
                int eq = a.indexOf('=');
                values.put(a.substring(2, eq).trim(), a.substring(eq + 1).trim());
            } else {
                throw new ConfigException(
                        "unexpected argument "
                                + quoted(a)
                                + ": use --config FILE and -Dkey=value (see the README's"
                                + " configuration table)");
            }
        }
        return of(values);
    }

    /**
     * Reads a flat YAML file: {@code key: value} lines, {@code #} comments on their own line or
     * after a value (a {@code #} after a space or tab, outside quotes), values optionally quoted as
     * in YAML: {@code '...'} as written ({@code ''} for a quote) or {@code "..."} ({@code \"} for a
     * quote, {@code \\} for a backslash). A value that would be misread is refused ({@link
     * #value}).
     */
    public static Map<String, String> readFile(Path file) {
        Map<String, String> values = new HashMap<>();
        try {
            int n = 0;
            for (String line : Files.readAllLines(file)) {
                n++;
                String t = line.strip();
                if (t.isEmpty() || t.startsWith("#")) {
                    continue;
                }
                int colon = t.indexOf(':');
                if (colon <= 0) {
                    throw new ConfigException(
                            file + " line " + n + ": expected 'key: value', found " + quoted(t));
                }
                String key = t.substring(0, colon).strip();
                values.put(
                        key,
                        value(
                                t.substring(colon + 1).strip(),
                                file + " line " + n + ": the value of " + key));
            }
        } catch (IOException e) {
            throw new ConfigException("cannot read config file " + file + ": " + e.getMessage());
        }
        return values;
    }

    /**
     * A value as written after {@code key:}, without the comment that may follow it: the text
     * between its quotes, decoded, if it starts with one; else the text before the first {@code #}
     * that follows a space or tab. Refused, with {@code where} and never the value (it may be a
     * secret): a comment and nothing before it (a value that starts with {@code #} must be quoted),
     * text after a closing quote or no closing quote, an escape other than {@code \"} and {@code
     * \\} in double quotes, and a plain value whose comment was cut inside a double quote (a JAAS
     * line's {@code password="a #1"}: the whole value must be quoted).
     */
    static String value(String written, String where) {
        if (written.startsWith("#")) {
            throw new ConfigException(
                    where
                            + " is a comment: a '#' after a space starts one, so a value that"
                            + " starts with '#' goes in quotes");
        }
        if (written.startsWith("\"") || written.startsWith("'")) {
            return quotedValue(written, where);
        }
        String value = written;
        for (int i = 1; i < written.length(); i++) {
            char before = written.charAt(i - 1);
            if (written.charAt(i) == '#' && (before == ' ' || before == '\t')) {
                value = written.substring(0, i).strip();
                break;
            }
        }
        if (value.length() < written.length()
                && value.chars().filter(c -> c == '"').count() % 2 != 0) {
            throw new ConfigException(
                    where
                            + " holds ' #', read as the start of a comment inside a double quote:"
                            + " put the whole value in single quotes");
        }
        return value;
    }

    private static String quotedValue(String written, String where) {
        char quote = written.charAt(0);
        StringBuilder value = new StringBuilder();
        int i = 1;
        while (true) {
            if (i >= written.length()) {
                throw new ConfigException(where + " has no closing " + quote);
            }
            char c = written.charAt(i);
            boolean next = i + 1 < written.length();
            if (quote == '\'' && c == '\'' && next && written.charAt(i + 1) == '\'') {
                value.append('\''); // '' is a quote inside single quotes
                i += 2;
            } else if (c == quote) {
                break;
            } else if (quote == '"' && c == '\\') {
                char escaped = next ? written.charAt(i + 1) : ' ';
                if (escaped != '"' && escaped != '\\') {
                    throw new ConfigException(
                            where
                                    + " has a backslash other than \\\" or \\\\ in double quotes:"
                                    + " put it in single quotes, where a backslash is kept as"
                                    + " written");
                }
                value.append(escaped);
                i += 2;
            } else {
                value.append(c);
                i++;
            }
        }
        String after = written.substring(i + 1);
        boolean comment =
                !after.isEmpty()
                        && Character.isWhitespace(after.charAt(0))
                        && after.strip().startsWith("#");
        if (!after.isBlank() && !comment) {
            throw new ConfigException(
                    where
                            + " has text after its closing "
                            + quote
                            + ": quote the whole value, and start a comment after it with ' #'");
        }
        return value.toString();
    }

    /**
     * Text from the user for an error message, unless it may hold a secret (a JAAS line without its
     * key, say): then only its length.
     */
    private static String quoted(String text) {
        return GlobalConfiguration.isSensitive(text)
                ? "a text of " + text.length() + " characters (not shown: it may hold a secret)"
                : "'" + text + "'";
    }

    /**
     * Each sink writes a topic of its own, none of them the telemetry topic: two sinks of one topic
     * would share transactional ids and fence each other (the shadow's sink is in the graph with or
     * without a shadow model), and a sink of the telemetry topic would feed the job its own output.
     */
    private void distinctTopics() {
        Map<String, String> byTopic = new HashMap<>();
        for (ConfigOption<String> option :
                List.of(
                        VigilOptions.TOPIC_ANOMALIES,
                        VigilOptions.TOPIC_SHADOW_ANOMALIES,
                        VigilOptions.TOPIC_DEAD_LETTERS,
                        VigilOptions.TOPIC_SCORES,
                        VigilOptions.TOPIC_TELEMETRY)) {
            String topic = get(option).strip();
            if (topic.isEmpty()) {
                continue;
            }
            String other = byTopic.putIfAbsent(topic, option.key());
            if (other != null) {
                throw new ConfigException(
                        other
                                + " and "
                                + option.key()
                                + " both name topic '"
                                + topic
                                + "': give each its own topic");
            }
        }
    }

    /** Whether any sink writes in Kafka transactions (is exactly-once); reads every delivery. */
    public boolean transactional() {
        boolean transactions = false;
        for (ConfigOption<String> option :
                List.of(
                        VigilOptions.DELIVERY_ANOMALIES,
                        VigilOptions.DELIVERY_SCORES,
                        VigilOptions.DELIVERY_DEAD_LETTERS)) {
            transactions |= delivery(option) == KafkaConnectors.Delivery.EXACTLY_ONCE;
        }
        return transactions;
    }

    /**
     * With any sink exactly-once, a transaction stays open from one checkpoint to the next, and for
     * as long as that checkpoint takes (at most {@code execution.checkpointing.timeout}): the
     * broker aborts one open longer than its timeout, and the events it held are lost.
     */
    private void transactionsOutliveCheckpoints() {
        java.time.Duration timeout = get(VigilOptions.KAFKA_TRANSACTION_TIMEOUT);
        java.time.Duration interval = get(VigilOptions.CHECKPOINT_INTERVAL);
        java.time.Duration checkpointTimeout = conf.get(CheckpointingOptions.CHECKPOINTING_TIMEOUT);
        if (transactional() && timeout.compareTo(interval.plus(checkpointTimeout)) <= 0) {
            throw new ConfigException(
                    VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key()
                            + " ("
                            + timeout
                            + ") must be longer than "
                            + VigilOptions.CHECKPOINT_INTERVAL.key()
                            + " ("
                            + interval
                            + ") plus "
                            + CheckpointingOptions.CHECKPOINTING_TIMEOUT.key()
                            + " ("
                            + checkpointTimeout
                            + "): an exactly-once sink's transaction stays open from one"
                            + " checkpoint to the next and while that checkpoint completes, and the"
                            + " broker aborts one open longer than its timeout, losing its events");
        }
    }

    /**
     * Kafka client properties the job sets itself, which a passthrough would silently override:
     * what to do instead.
     */
    private static final Map<String, String> JOB_OWNED_KAFKA_PROPERTIES =
            Map.of(
                    VigilOptions.KAFKA_PROPERTIES_PREFIX + "bootstrap.servers",
                    "set " + VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(),
                    VigilOptions.KAFKA_PROPERTIES_PREFIX + "group.id",
                    "set "
                            + VigilOptions.KAFKA_GROUP_ID.key()
                            + " (the derived transactional ids use it too)",
                    VigilOptions.KAFKA_PROPERTIES_PREFIX + "isolation.level",
                    "the job reads read_committed, never what an upstream transaction aborted",
                    VigilOptions.KAFKA_PROPERTIES_PREFIX + "enable.auto.commit",
                    "the job commits its offsets at checkpoints; offsets committed between them"
                            + " would skip records whose output a failure then loses");

    private void validate(Set<String> keys) {
        Set<String> known =
                VigilOptions.all().stream().map(ConfigOption::key).collect(Collectors.toSet());
        for (String key : keys) {
            if (key.startsWith("vigil.")
                    && !known.contains(key)
                    && !key.startsWith(VigilOptions.KAFKA_PROPERTIES_PREFIX)) {
                throw new ConfigException(
                        "unknown option '" + key + "': see the README's configuration table");
            }
            String owned = JOB_OWNED_KAFKA_PROPERTIES.get(key);
            if (owned != null) {
                throw new ConfigException("'" + key + "' is not passed to Kafka: " + owned);
            }
        }
        required(VigilOptions.KAFKA_BOOTSTRAP_SERVERS);
        required(VigilOptions.MODEL_DIR);
        durationsInMilliseconds();
        startFrom();
        modelChange();
        input();
        required(VigilOptions.TOPIC_TELEMETRY);
        required(VigilOptions.TOPIC_ANOMALIES);
        required(VigilOptions.TOPIC_DEAD_LETTERS);
        required(VigilOptions.TOPIC_SHADOW_ANOMALIES); // its sink is in the graph either way
        transactionsOutliveCheckpoints();
        distinctTopics();
        positive(VigilOptions.ALERTS_OPEN_AFTER);
        positive(VigilOptions.ALERTS_CLOSE_AFTER);
        positive(VigilOptions.ALERTS_TOP_FEATURES);
        positive(VigilOptions.MAX_PARALLELISM);
        maxParallelism();
        positive(VigilOptions.ALERTS_ADAPTIVE_HALF_LIFE);
        double bound = get(VigilOptions.SCORING_MAX_ABS_NORMALISED);
        if (!(bound > 0) || !(bound <= Float.MAX_VALUE)) {
            throw new ConfigException(
                    VigilOptions.SCORING_MAX_ABS_NORMALISED.key()
                            + " must be a finite number greater than 0, was "
                            + bound);
        }
        double canary = get(VigilOptions.MODEL_CANARY_FRACTION);
        if (!(canary >= 0 && canary <= 1)) {
            throw new ConfigException(
                    VigilOptions.MODEL_CANARY_FRACTION.key()
                            + " must be between 0 and 1 (the share of devices the shadow model"
                            + " serves), was "
                            + canary);
        }
        if (canary > 0 && shadowModelDir().isEmpty()) {
            throw new ConfigException(
                    VigilOptions.MODEL_CANARY_FRACTION.key()
                            + " is "
                            + canary
                            + " but no vigil.model.shadow.dir is set: the canary's devices are"
                            + " served by the shadow model");
        }
        if (get(VigilOptions.DRIFT_WINDOW_STEPS) < 0) {
            throw new ConfigException(
                    VigilOptions.DRIFT_WINDOW_STEPS.key() + " must be 0 (off) or more");
        }
        if (get(VigilOptions.SCORING_BATCH_SIZE) < 0
                || get(VigilOptions.SCORING_BATCH_SIZE) > MAX_BATCH_SIZE) {
            throw new ConfigException(
                    VigilOptions.SCORING_BATCH_SIZE.key()
                            + " must be 0 (per record) to "
                            + MAX_BATCH_SIZE
                            + ", was "
                            + get(VigilOptions.SCORING_BATCH_SIZE)
                            + ": each scoring subtask allocates a batch's inputs and outputs"
                            + " for each model when it opens");
        }
        if (get(VigilOptions.SCORING_STATE_CACHE) < 0) {
            throw new ConfigException(
                    VigilOptions.SCORING_STATE_CACHE.key() + " must be 0 or more");
        }
        if (get(VigilOptions.ALERTS_UPDATE_EVERY) < 0) {
            throw new ConfigException(
                    VigilOptions.ALERTS_UPDATE_EVERY.key() + " must be 0 or more");
        }
        if (get(VigilOptions.SCORING_GAP).isNegative() || get(VigilOptions.SCORING_GAP).isZero()) {
            throw new ConfigException(VigilOptions.SCORING_GAP.key() + " must be positive");
        }
        if (get(VigilOptions.ALERTS_SILENCE_AFTER).isNegative()) {
            throw new ConfigException(
                    VigilOptions.ALERTS_SILENCE_AFTER.key() + " must be 0 (off) or positive");
        }
        if (get(VigilOptions.ALERTS_RELEARN_AFTER).isNegative()) {
            throw new ConfigException(
                    VigilOptions.ALERTS_RELEARN_AFTER.key() + " must be 0 (never) or positive");
        }
        if (get(VigilOptions.STATE_TTL).toMillis() < 1000) {
            throw new ConfigException(VigilOptions.STATE_TTL.key() + " must be at least 1 s");
        }
        java.time.Duration silence = get(VigilOptions.ALERTS_SILENCE_AFTER);
        if (!silence.isZero()
                && get(VigilOptions.STATE_TTL).compareTo(silence.plus(SILENCE_TTL_MARGIN)) < 0) {
            throw new ConfigException(
                    VigilOptions.STATE_TTL.key()
                            + " ("
                            + get(VigilOptions.STATE_TTL)
                            + ") must be longer than "
                            + VigilOptions.ALERTS_SILENCE_AFTER.key()
                            + " ("
                            + silence
                            + ") by at least "
                            + SILENCE_TTL_MARGIN.toMinutes()
                            + " min: a silent device's state would expire before the watermark"
                            + " reaches its silence, and no silence would ever be reported");
        }
        positive(
                VigilOptions.SCORING_RESTART_STEP_BACK,
                "every record late by any amount would restart its device, its memory reset");
        if (get(VigilOptions.SCORING_BATCH_SIZE) > 0) {
            positive(
                    VigilOptions.SCORING_BATCH_TIMEOUT,
                    "a record would wait for a full batch, a watermark or a checkpoint barrier");
        }
        if (get(VigilOptions.CHECKPOINT_INTERVAL).toMillis() < 10) {
            throw new ConfigException(
                    VigilOptions.CHECKPOINT_INTERVAL.key() + " must be at least 10 ms");
        }
    }

    /**
     * Every duration counts in milliseconds (a long): one that does not would fail a task at its
     * first use (an ArithmeticException in a restart loop, or at the first record), not here.
     */
    private void durationsInMilliseconds() {
        for (ConfigOption<?> option : VigilOptions.all()) {
            Object value;
            try {
                value = conf.get(option);
            } catch (IllegalArgumentException unparsed) {
                continue; // named where the option is read
            }
            if (value instanceof java.time.Duration d) {
                try {
                    d.toMillis();
                } catch (ArithmeticException e) {
                    throw new ConfigException(
                            option.key()
                                    + " ("
                                    + d
                                    + ") is too long: a duration must count in milliseconds"
                                    + " (under 292 million years)");
                }
            }
        }
    }

    private void required(ConfigOption<String> option) {
        String v = conf.get(option);
        if (v == null || v.isBlank()) {
            throw new ConfigException(
                    "missing required option '"
                            + option.key()
                            + "': "
                            + VigilOptions.describe(option));
        }
    }

    /**
     * {@code vigil.max-parallelism} within Flink's bound (32,768 key groups) and not below the
     * job's parallelism: either would fail at submission with Flink's own message, not naming the
     * option.
     */
    private void maxParallelism() {
        int max = get(VigilOptions.MAX_PARALLELISM);
        if (max > UPPER_BOUND_MAX_PARALLELISM) {
            throw new ConfigException(
                    VigilOptions.MAX_PARALLELISM.key()
                            + " must be at most "
                            + UPPER_BOUND_MAX_PARALLELISM
                            + " (Flink's limit of key groups), was "
                            + max);
        }
        int parallelism = conf.get(org.apache.flink.configuration.CoreOptions.DEFAULT_PARALLELISM);
        if (parallelism > max) {
            throw new ConfigException(
                    "parallelism.default ("
                            + parallelism
                            + ") must be at most "
                            + VigilOptions.MAX_PARALLELISM.key()
                            + " ("
                            + max
                            + "), the key groups the device state is split into");
        }
    }

    /** Flink's upper bound of a job's maximum parallelism (KeyGroupRangeAssignment). */
    static final int UPPER_BOUND_MAX_PARALLELISM = 1 << 15;

    private void positive(ConfigOption<java.time.Duration> option, String otherwise) {
        java.time.Duration d = get(option);
        if (d.isZero() || d.isNegative()) {
            throw new ConfigException(
                    option.key() + " must be positive, was " + d + ": " + otherwise);
        }
    }

    private void positive(ConfigOption<Integer> option) {
        if (get(option) < 1) {
            throw new ConfigException(option.key() + " must be at least 1, was " + get(option));
        }
    }

    /** Reads an option; a value of the wrong type becomes a {@link ConfigException}. */
    public <T> T get(ConfigOption<T> option) {
        try {
            return conf.get(option);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(
                    "option '" + option.key() + "' has an invalid value: " + e.getMessage());
        }
    }

    /** Every key and value given, Flink's own options included, for the Flink environment. */
    public Configuration flinkConfiguration() {
        return conf;
    }

    /**
     * Whether a key's value is a secret: one Flink hides ({@link GlobalConfiguration#isSensitive}:
     * names containing password, secret, token, jaas.config, ...) or a Kafka client property that
     * Kafka declares a password.
     */
    public static boolean isSecret(String key) {
        return GlobalConfiguration.isSensitive(key)
                || key.startsWith(VigilOptions.KAFKA_PROPERTIES_PREFIX)
                        && KafkaSettings.isSecret(
                                key.substring(VigilOptions.KAFKA_PROPERTIES_PREFIX.length()));
    }

    /**
     * Every key and value given, sorted, secrets shown as {@link
     * GlobalConfiguration#HIDDEN_CONTENT}: the only form in which Vigil prints its configuration.
     */
    public SortedMap<String, String> printable() {
        SortedMap<String, String> out = new TreeMap<>();
        conf.toMap()
                .forEach(
                        (k, v) -> out.put(k, isSecret(k) ? GlobalConfiguration.HIDDEN_CONTENT : v));
        return out;
    }

    /** {@link #printable()}: secrets hidden. */
    @Override
    public String toString() {
        return printable().toString();
    }

    public KafkaSettings kafka() {
        Properties props = new Properties();
        conf.toMap()
                .forEach(
                        (k, v) -> {
                            if (k.startsWith(VigilOptions.KAFKA_PROPERTIES_PREFIX)) {
                                props.setProperty(
                                        k.substring(VigilOptions.KAFKA_PROPERTIES_PREFIX.length()),
                                        v);
                            }
                        });
        return new KafkaSettings(
                get(VigilOptions.KAFKA_BOOTSTRAP_SERVERS),
                get(VigilOptions.KAFKA_GROUP_ID),
                props,
                transactionalIdPrefix(),
                get(VigilOptions.KAFKA_TRANSACTION_TIMEOUT).toMillis(),
                startFrom(),
                get(VigilOptions.KAFKA_BOUNDED));
    }

    /**
     * The sinks' transactional id prefix: the configured one, else one derived from the group id
     * and the telemetry topic, so that two jobs that differ in either never share transactional ids
     * (with one fixed default, any two such jobs writing a topic of the same name would fence each
     * other).
     */
    public String transactionalIdPrefix() {
        String set = conf.get(VigilOptions.KAFKA_TRANSACTIONAL_ID_PREFIX);
        if (set != null && !set.isBlank()) {
            return set;
        }
        return "vigil-"
                + get(VigilOptions.KAFKA_GROUP_ID)
                + "-"
                + get(VigilOptions.TOPIC_TELEMETRY);
    }

    /**
     * What to warn about at start when the prefix was not chosen for this job: unset (derived), or
     * the bare {@code vigil} that every job had before it was derived. Empty when it was chosen.
     */
    public Optional<String> transactionalIdPrefixWarning() {
        String set = conf.get(VigilOptions.KAFKA_TRANSACTIONAL_ID_PREFIX);
        String key = VigilOptions.KAFKA_TRANSACTIONAL_ID_PREFIX.key();
        if (set == null || set.isBlank()) {
            return Optional.of(
                    key
                            + " is not set: the sinks' transactional ids start with '"
                            + transactionalIdPrefix()
                            + "' (from the group id and the telemetry topic). Two jobs with the"
                            + " same ones writing a topic of the same name fence each other"
                            // each sink's ids are the prefix, '-' and its topic
                            + ", and so do two whose group id and topics join at a '-' to the"
                            + " same text (group 'a-b' with topic 'c', group 'a' with topic"
                            + " 'b-c')"
                            + ": set a prefix unique to this job, and keep it across upgrades.");
        }
        if (set.equals("vigil")) {
            return Optional.of(
                    key
                            + " is 'vigil', the default of earlier releases: any other job that"
                            + " kept it and writes a topic of the same name fences this one. Set"
                            + " a prefix unique to this job.");
        }
        return Optional.empty();
    }

    /**
     * What to warn about at start when the silence watch waits longer than the gap: a device that
     * reports less often than the gap but more often than the silence period is reset at every
     * step, so no anomaly can come from it, and is never reported silent either. Empty when the
     * watch is off or waits no longer than the gap.
     */
    public Optional<String> silenceBeyondGapWarning() {
        java.time.Duration silence = get(VigilOptions.ALERTS_SILENCE_AFTER);
        java.time.Duration gap = get(VigilOptions.SCORING_GAP);
        if (silence.isZero() || silence.compareTo(gap) <= 0) {
            return Optional.empty();
        }
        return Optional.of(
                VigilOptions.ALERTS_SILENCE_AFTER.key()
                        + " ("
                        + silence
                        + ") is longer than "
                        + VigilOptions.SCORING_GAP.key()
                        + " ("
                        + gap
                        + "): a device that reports less often than every "
                        + gap
                        + " but more often than every "
                        + silence
                        + " has its memory reset at every step, so no anomaly can come from it,"
                        + " and is never reported silent either (the metric resets_before_warm"
                        + " counts its steps). Set the gap above the devices' longest normal"
                        + " reporting interval, and the silence period no longer than the gap"
                        + " unless such devices may be quiet that long.");
    }

    /**
     * What to warn about at start when the configuration sets Flink's own checkpoint interval or
     * mode, which the job replaces ({@code VigilPipeline.environment}): by {@code
     * vigil.checkpoint.interval} and exactly-once. Empty when it sets neither, or the same.
     */
    public Optional<String> replacedCheckpointingWarning() {
        List<String> replaced = new ArrayList<>();
        conf.getOptional(CheckpointingOptions.CHECKPOINTING_INTERVAL)
                .filter(set -> !set.equals(get(VigilOptions.CHECKPOINT_INTERVAL)))
                .ifPresent(
                        set ->
                                replaced.add(
                                        CheckpointingOptions.CHECKPOINTING_INTERVAL.key()
                                                + " "
                                                + set
                                                + " by "
                                                + VigilOptions.CHECKPOINT_INTERVAL.key()
                                                + " "
                                                + get(VigilOptions.CHECKPOINT_INTERVAL)));
        conf.getOptional(CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE)
                .filter(set -> set != CheckpointingMode.EXACTLY_ONCE)
                .ifPresent(
                        set ->
                                replaced.add(
                                        CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE.key()
                                                + " "
                                                + set
                                                + " by EXACTLY_ONCE (the job's sinks and state"
                                                + " need it; vigil.delivery.* choose how each"
                                                + " output is written)"));
        return replaced.isEmpty()
                ? Optional.empty()
                : Optional.of(
                        "the job replaces "
                                + String.join(", and ", replaced)
                                + ": set vigil.checkpoint.interval instead");
    }

    /** How the sink of one output topic delivers ({@code vigil.delivery.*}). */
    public KafkaConnectors.Delivery delivery(ConfigOption<String> option) {
        String v = get(option).strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "exactly-once" -> KafkaConnectors.Delivery.EXACTLY_ONCE;
            case "at-least-once" -> KafkaConnectors.Delivery.AT_LEAST_ONCE;
            default ->
                    throw new ConfigException(
                            option.key()
                                    + " must be exactly-once or at-least-once, was '"
                                    + get(option)
                                    + "'");
        };
    }

    private KafkaSettings.StartFrom startFrom() {
        return choice(VigilOptions.KAFKA_START_FROM, KafkaSettings.StartFrom.class);
    }

    /**
     * An enum option's value (any case), or a message naming the choices: "must be committed,
     * earliest or latest, was 'yesterday'".
     */
    private <E extends Enum<E>> E choice(ConfigOption<E> option, Class<E> type) {
        try {
            return conf.get(option);
        } catch (IllegalArgumentException e) {
            List<String> names =
                    Arrays.stream(type.getEnumConstants())
                            .map(c -> c.name().toLowerCase(Locale.ROOT))
                            .toList();
            throw new ConfigException(
                    option.key()
                            + " must be "
                            + String.join(", ", names.subList(0, names.size() - 1))
                            + " or "
                            + names.get(names.size() - 1)
                            + ", was '"
                            + conf.toMap().get(option.key())
                            + "'");
        }
    }

    public ScoringSettings scoring() {
        return new ScoringSettings(
                get(VigilOptions.SCORING_GAP).toMillis(),
                get(VigilOptions.ALERTS_OPEN_AFTER),
                get(VigilOptions.ALERTS_CLOSE_AFTER),
                get(VigilOptions.ALERTS_UPDATE_EVERY),
                get(VigilOptions.ALERTS_TOP_FEATURES),
                get(VigilOptions.ALERTS_ADAPTIVE_THRESHOLD)
                        ? get(VigilOptions.ALERTS_ADAPTIVE_HALF_LIFE)
                        : 0,
                !get(VigilOptions.TOPIC_SCORES).isBlank(),
                get(VigilOptions.SCORING_BATCH_SIZE),
                get(VigilOptions.SCORING_BATCH_TIMEOUT).toMillis(),
                get(VigilOptions.SCORING_STATE_CACHE),
                modelChange(),
                get(VigilOptions.STATE_TTL),
                get(VigilOptions.SCORING_MAX_ABS_NORMALISED).floatValue(),
                get(VigilOptions.SCORING_RESTART_STEP_BACK).toMillis(),
                choice(VigilOptions.INPUT_FORMAT, InputFormat.class),
                get(VigilOptions.DRIFT_WINDOW_STEPS),
                get(VigilOptions.MODEL_CANARY_FRACTION),
                get(VigilOptions.ALERTS_SILENCE_AFTER).toMillis(),
                get(VigilOptions.ALERTS_RELEARN_AFTER).toMillis());
    }

    /** The shadow model's directory ({@code vigil.model.shadow.dir}), if one is set. */
    public Optional<Path> shadowModelDir() {
        String dir = get(VigilOptions.MODEL_SHADOW_DIR).strip();
        return dir.isEmpty() ? Optional.empty() : Optional.of(Path.of(dir));
    }

    /**
     * How the parse step reads records (the input format) and what it checks beyond the contract's
     * fields: clock skew and the Kafka key.
     */
    public InputRules input() {
        return new InputRules(
                choice(VigilOptions.INPUT_FORMAT, InputFormat.class),
                get(VigilOptions.INPUT_MAX_CLOCK_SKEW),
                get(VigilOptions.INPUT_REQUIRE_KEY));
    }

    private ModelChange modelChange() {
        return choice(VigilOptions.MODEL_ON_CHANGE, ModelChange.class);
    }

    public Path modelDir() {
        return Path.of(get(VigilOptions.MODEL_DIR));
    }
}
