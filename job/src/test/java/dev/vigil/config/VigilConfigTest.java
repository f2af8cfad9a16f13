package dev.vigil.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.InstanceOfAssertFactories.STRING;

import dev.vigil.kafka.KafkaSettings;
import dev.vigil.serde.InputFormat;
import dev.vigil.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.flink.configuration.ConfigOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VigilConfigTest {

    private static final String BOOTSTRAP = "broker-1:9093";

    @Test
    void shouldReadAFileAndLetCommandLineValuesWin(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("vigil.yaml");
        Files.writeString(
                file,
                String.join(
                        "\n",
                        "# a comment",
                        "vigil.kafka.bootstrap-servers: " + BOOTSTRAP,
                        "vigil.model.dir: \"/models/fleet\"",
                        "vigil.alerts.open-after: 3",
                        "vigil.kafka.properties.security.protocol: SASL_SSL",
                        "parallelism.default: 4"));

        VigilConfig config =
                VigilConfig.fromArgs(
                        new String[] {"--config", file.toString(), "-Dvigil.alerts.open-after=5"});

        assertThat(config.get(VigilOptions.ALERTS_OPEN_AFTER)).isEqualTo(5);
        assertThat(config.modelDir()).isEqualTo(Path.of("/models/fleet"));
        KafkaSettings kafka = config.kafka();
        assertThat(kafka.bootstrapServers()).isEqualTo(BOOTSTRAP);
        assertThat(kafka.clientProperties()).containsEntry("security.protocol", "SASL_SSL");
        assertThat(kafka.startFrom()).isEqualTo(KafkaSettings.StartFrom.COMMITTED);
        assertThat(config.flinkConfiguration().toMap()).containsEntry("parallelism.default", "4");
    }

    @Test
    void shouldReadCommentsAfterValuesAndQuotesAsYamlDoes(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("vigil.yaml");
        Files.writeString(
                file,
                String.join(
                        "\n",
                        "vigil.topic.anomalies: alerts-prod  # the paging topic",
                        "vigil.topic.scores: scores\t# a tab before it",
                        "vigil.topic.dead-letters: \"dead #1\" # quoted: the # stays",
                        "vigil.kafka.group-id: 'it''s' # single quotes, '' inside",
                        "vigil.model.dir: /models/a#b",
                        "vigil.kafka.properties.client.id: \"a \\\" \\\\ # b\"",
                        "vigil.kafka.properties.sasl.jaas.config: 'm required password=\"p #1\";'",
                        "vigil.kafka.properties.ssl.keystore.location: 'C:\\keys\\ks.p12'",
                        "parallelism.default:"));

        Map<String, String> values = VigilConfig.readFile(file);

        assertThat(values)
                .containsEntry("vigil.topic.anomalies", "alerts-prod")
                .containsEntry("vigil.topic.scores", "scores")
                .containsEntry("vigil.topic.dead-letters", "dead #1")
                .containsEntry("vigil.kafka.group-id", "it's")
                .containsEntry("vigil.model.dir", "/models/a#b")
                .containsEntry("vigil.kafka.properties.client.id", "a \" \\ # b")
                .containsEntry(
                        "vigil.kafka.properties.sasl.jaas.config", "m required password=\"p #1\";")
                .containsEntry("vigil.kafka.properties.ssl.keystore.location", "C:\\keys\\ks.p12")
                .containsEntry("parallelism.default", "");
    }

    @Test
    void shouldRefuseAValueItWouldMisreadWithoutShowingIt(@TempDir Path dir) throws Exception {
        Map<String, String> refused =
                Map.of(
                        "\"secret\" prod", "has text after its closing \"",
                        "\"secret\"# no space", "has text after its closing \"",
                        "'secret", "has no closing '",
                        "#secret", "is a comment",
                        "\"C:\\secret\"", "has a backslash other than",
                        "m required password=\"ab #secret\";", "inside a double quote");
        for (Map.Entry<String, String> value : refused.entrySet()) {
            Path file = dir.resolve("vigil.yaml");
            Files.writeString(file, "# first\nvigil.topic.anomalies: " + value.getKey() + "\n");

            assertThatThrownBy(() -> VigilConfig.readFile(file))
                    .as(value.getKey())
                    .isInstanceOf(ConfigException.class)
                    .hasMessageContaining("line 2: the value of vigil.topic.anomalies ")
                    .hasMessageContaining(value.getValue())
                    .message()
                    .doesNotContain("secret");
        }
    }

    private static Map<String, String> valid() {
        return new java.util.HashMap<>(
                Map.of(
                        VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key(),
                        BOOTSTRAP,
                        VigilOptions.MODEL_DIR.key(),
                        Fixtures.modelDir().toString()));
    }

    @Test
    void shouldNameAMissingRequiredOption() {
        Map<String, String> values = valid();
        values.remove(VigilOptions.KAFKA_BOOTSTRAP_SERVERS.key());

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("missing required option 'vigil.kafka.bootstrap-servers'");
    }

    @Test
    void shouldRefuseAnUnknownVigilOption() {
        Map<String, String> values = valid();
        values.put("vigil.alerts.open-afterr", "3");

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("unknown option 'vigil.alerts.open-afterr'");
    }

    @Test
    void shouldRefuseTwoOutputsOfOneTopic() {
        // Without a shadow model too: the shadow's sink is in the graph either way, and two
        // exactly-once sinks of one topic would fence each other.
        Map<String, String> values = valid();
        values.put(VigilOptions.TOPIC_SHADOW_ANOMALIES.key(), "anomalies");

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(
                        "vigil.kafka.topic.anomalies and vigil.kafka.topic.shadow-anomalies both"
                                + " name topic 'anomalies'");

        Map<String, String> scores = valid();
        scores.put(VigilOptions.TOPIC_SCORES.key(), "telemetry");
        assertThatThrownBy(() -> VigilConfig.of(scores))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("both name topic 'telemetry'");
    }

    @Test
    void shouldNameAValueOfTheWrongType() {
        Map<String, String> values = valid();
        values.put(VigilOptions.ALERTS_OPEN_AFTER.key(), "often");

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("'vigil.alerts.open-after' has an invalid value");
    }

    @Test
    void shouldRefuseAnUnknownStartingPoint() {
        Map<String, String> values = valid();
        values.put(VigilOptions.KAFKA_START_FROM.key(), "yesterday");

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("must be committed, earliest or latest, was 'yesterday'");
    }

    @Test
    void shouldRefuseAShadowModelThatReadsOtherFeatures() {
        Map<String, String> values = valid();
        VigilConfig none = VigilConfig.of(values);
        assertThat(none.shadowModelDir()).isEmpty();
        assertThat(dev.vigil.job.VigilJob.shadowModel(none, Fixtures.model())).isNull();
        values.put(VigilOptions.MODEL_SHADOW_DIR.key(), Fixtures.modelDir().toString());
        VigilConfig same = VigilConfig.of(values);
        assertThat(dev.vigil.job.VigilJob.shadowModel(same, Fixtures.model())).isNotNull();
        assertThat(same.scoring().canaryFraction()).isZero();
        // The benchmark's model reads 16 other features
        values.put(
                VigilOptions.MODEL_SHADOW_DIR.key(),
                Fixtures.repoRoot().resolve("bench/model").toString());
        VigilConfig other = VigilConfig.of(values);

        assertThatThrownBy(() -> dev.vigil.job.VigilJob.shadowModel(other, Fixtures.model()))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(
                        "vigil.model.shadow.dir: the shadow model's features [f00, f01")
                .hasMessageContaining("must be the serving model's, in the same order");

        // A shadow model that cannot be loaded is named by its option
        values.put(VigilOptions.MODEL_SHADOW_DIR.key(), "/no/such/model");
        VigilConfig missing = VigilConfig.of(values);
        assertThatThrownBy(() -> dev.vigil.job.VigilJob.shadowModel(missing, Fixtures.model()))
                .isInstanceOf(dev.vigil.model.ModelException.class)
                .hasMessage(
                        "vigil.model.shadow.dir: model directory /no/such/model does not exist");
    }

    /**
     * The adaptive threshold learns scores clipped at the card's threshold, starting at 1: with a
     * threshold of 1 (a card in threshold units, as every card since 0.2.0) it could never move.
     */
    @Test
    void shouldRefuseAnAdaptiveThresholdThatTheModelsThresholdKeepsFromMoving() {
        Map<String, String> values = valid();
        dev.vigil.model.ModelBundle current = Fixtures.model();
        dev.vigil.job.VigilJob.checkAdaptiveThreshold(VigilConfig.of(values), current, null);
        values.put(VigilOptions.ALERTS_ADAPTIVE_THRESHOLD.key(), "true");
        VigilConfig adaptive = VigilConfig.of(values);

        assertThatThrownBy(
                        () ->
                                dev.vigil.job.VigilJob.checkAdaptiveThreshold(
                                        adaptive, current, null))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(
                        "vigil.alerts.adaptive-threshold has no effect with model "
                                + current.card().version()
                                + ": its threshold is 1.0")
                .hasMessageContaining("set it to false");
        // A card in raw residual units (before 0.2.0), threshold 4.47: the level can rise to it
        dev.vigil.model.ModelBundle old =
                new dev.vigil.model.ModelBundle(
                        new dev.vigil.model.ModelCard(
                                "old", 64, current.card().features(), 4.47f, 20),
                        current.onnx());
        dev.vigil.job.VigilJob.checkAdaptiveThreshold(adaptive, old, null);
        // ... but not beside a shadow model in threshold units
        assertThatThrownBy(
                        () -> dev.vigil.job.VigilJob.checkAdaptiveThreshold(adaptive, old, current))
                .isInstanceOf(ConfigException.class);
    }

    /**
     * A model trained on steps 15 minutes apart: a 10-minute gap would reset such a device at every
     * step (it would never alert), a 10-minute silence period would report it between any two.
     */
    @Test
    void shouldRefuseAGapOrSilencePeriodNotAboveTheCadenceTheModelWasTrainedOn() {
        dev.vigil.model.ModelBundle current = Fixtures.model();
        assertThat(current.card().stepIntervalMs()).isEqualTo(60_000L); // the test fleet's
        dev.vigil.job.VigilJob.checkCadence(VigilConfig.of(valid()), current, null);
        dev.vigil.model.ModelCard c = current.card();
        dev.vigil.model.ModelBundle slow =
                new dev.vigil.model.ModelBundle(
                        new dev.vigil.model.ModelCard(
                                "slow",
                                c.hiddenSize(),
                                c.features(),
                                c.threshold(),
                                c.warmupSteps(),
                                c.dynamicsScale(),
                                c.level(),
                                c.stuck(),
                                c.normalisation(),
                                c.dynamicsQuantile99(),
                                c.deviceDynamics(),
                                15 * 60_000L),
                        current.onnx());
        Map<String, String> values = valid();

        assertThatThrownBy(
                        () ->
                                dev.vigil.job.VigilJob.checkCadence(
                                        VigilConfig.of(values), slow, null))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(
                        "vigil.scoring.gap (PT10M) is not above the interval between the steps"
                                + " model slow was trained on (PT15M")
                .hasMessageContaining("reset at every step and never alert");
        // ... beside the serving model too, as a shadow
        assertThatThrownBy(
                        () ->
                                dev.vigil.job.VigilJob.checkCadence(
                                        VigilConfig.of(values), current, slow))
                .isInstanceOf(ConfigException.class);
        values.put(VigilOptions.SCORING_GAP.key(), "20 min");
        assertThatThrownBy(
                        () ->
                                dev.vigil.job.VigilJob.checkCadence(
                                        VigilConfig.of(values), slow, null))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("vigil.alerts.silence-after (PT10M) is not above")
                .hasMessageContaining("reported silent between any two of its steps");
        values.put(VigilOptions.ALERTS_SILENCE_AFTER.key(), "0");
        dev.vigil.job.VigilJob.checkCadence(VigilConfig.of(values), slow, null);
        values.put(VigilOptions.ALERTS_SILENCE_AFTER.key(), "30 min");
        dev.vigil.job.VigilJob.checkCadence(VigilConfig.of(values), slow, null);
    }

    @Test
    void shouldTakeACanaryFractionOnlyWithAShadowModelAndBetweenZeroAndOne() {
        Map<String, String> values = valid();
        values.put(VigilOptions.MODEL_CANARY_FRACTION.key(), "0.25");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("vigil.model.canary.fraction is 0.25 but no")
                .hasMessageContaining("vigil.model.shadow.dir");
        values.put(VigilOptions.MODEL_SHADOW_DIR.key(), Fixtures.modelDir().toString());
        assertThat(VigilConfig.of(values).scoring().canaryFraction()).isEqualTo(0.25);
        for (String bad : List.of("1.5", "-0.1", "NaN")) {
            values.put(VigilOptions.MODEL_CANARY_FRACTION.key(), bad);
            assertThatThrownBy(() -> VigilConfig.of(values))
                    .isInstanceOf(ConfigException.class)
                    .hasMessageContaining("vigil.model.canary.fraction must be between 0 and 1");
        }
    }

    @Test
    void shouldReadTheBatchSizeAndStateCacheWithZeroForOffAndRefuseNegativeOnes() {
        Map<String, String> values = valid();
        assertThat(VigilConfig.of(values).scoring().batchSize()).isEqualTo(256);
        assertThat(VigilConfig.of(values).scoring().stateCache()).isEqualTo(20_000);
        values.put(VigilOptions.SCORING_BATCH_SIZE.key(), "0");
        values.put(VigilOptions.SCORING_STATE_CACHE.key(), "0");
        assertThat(VigilConfig.of(values).scoring().batchSize()).isZero();
        assertThat(VigilConfig.of(values).scoring().stateCache()).isZero();
        values.put(VigilOptions.SCORING_STATE_CACHE.key(), "-1");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("vigil.scoring.state-cache must be 0 or more");
        values.put(VigilOptions.SCORING_STATE_CACHE.key(), "0");
        values.put(VigilOptions.SCORING_BATCH_SIZE.key(), "-1");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("vigil.scoring.batch-size must be 0 (per record) to 65536");
        // one so large that a subtask could not allocate it, or its buffers' sizes overflow
        values.put(VigilOptions.SCORING_BATCH_SIZE.key(), "2000000000");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("was 2000000000");
        values.put(VigilOptions.SCORING_BATCH_SIZE.key(), "65536");
        assertThat(VigilConfig.of(values).scoring().batchSize()).isEqualTo(65_536);
    }

    /**
     * A duration too long to count in milliseconds is refused at start, naming the option: it would
     * otherwise fail a task (the clock-skew bound at the first record whose time is ahead).
     */
    @Test
    void shouldRefuseADurationThatDoesNotCountInMilliseconds() {
        for (var option :
                List.of(
                        VigilOptions.INPUT_MAX_CLOCK_SKEW,
                        VigilOptions.SCORING_GAP,
                        VigilOptions.STATE_TTL,
                        VigilOptions.ALERTS_RELEARN_AFTER,
                        VigilOptions.KAFKA_TRANSACTION_TIMEOUT)) {
            Map<String, String> values = valid();
            values.put(option.key(), "200000000000 d");
            assertThatThrownBy(() -> VigilConfig.of(values))
                    .as(option.key())
                    .isInstanceOf(ConfigException.class)
                    .hasMessageStartingWith(option.key() + " (")
                    .hasMessageContaining("is too long");
        }
    }

    @Test
    void shouldReadTheSilencePeriodWithZeroForOffAndRefuseANegativeOne() {
        Map<String, String> values = valid();
        assertThat(VigilConfig.of(values).scoring().silenceAfterMs()).isEqualTo(600_000L);
        values.put(VigilOptions.ALERTS_SILENCE_AFTER.key(), "0");
        assertThat(VigilConfig.of(values).scoring().silenceAfterMs()).isZero();
        values.put(VigilOptions.ALERTS_SILENCE_AFTER.key(), "30 min");
        assertThat(VigilConfig.of(values).scoring().silenceAfterMs()).isEqualTo(1_800_000L);
        values.put(VigilOptions.ALERTS_SILENCE_AFTER.key(), "-1 min");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("vigil.alerts.silence-after");
    }

    @Test
    void shouldReadTheRelearnPeriodWithZeroForNeverAndRefuseANegativeOne() {
        Map<String, String> values = valid();
        assertThat(VigilConfig.of(values).scoring().relearnAfterMs()).isZero();
        values.put(VigilOptions.ALERTS_RELEARN_AFTER.key(), "24h");
        assertThat(VigilConfig.of(values).scoring().relearnAfterMs()).isEqualTo(86_400_000L);
        values.put(VigilOptions.ALERTS_RELEARN_AFTER.key(), "-1 min");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("vigil.alerts.relearn-after");
    }

    @Test
    void shouldReadTheInputFormatAndRefuseAnUnknownOne() {
        Map<String, String> values = valid();
        assertThat(VigilConfig.of(values).input().format()).isEqualTo(InputFormat.JSON);
        values.put(VigilOptions.INPUT_FORMAT.key(), "Avro");
        assertThat(VigilConfig.of(values).input().format()).isEqualTo(InputFormat.AVRO);
        assertThat(VigilConfig.of(values).scoring().inputFormat()).isEqualTo(InputFormat.AVRO);
        values.put(VigilOptions.INPUT_FORMAT.key(), "xml");

        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("vigil.input.format must be json or avro, was 'xml'");
    }

    @Test
    void shouldHideSecretsWhereverVigilPrintsItsConfiguration() {
        String jaas =
                "org.apache.kafka.common.security.scram.ScramLoginModule required"
                        + " username=\"vigil\" password=\"s3cr3t-jaas\";";
        String prefix = VigilOptions.KAFKA_PROPERTIES_PREFIX;
        Map<String, String> values = valid();
        values.put(prefix + "security.protocol", "SASL_SSL");
        values.put(prefix + "sasl.jaas.config", jaas);
        values.put(prefix + "ssl.truststore.password", "s3cr3t-truststore");
        // A password to Kafka whose name Flink does not recognise as one.
        values.put(prefix + "ssl.keystore.key", "s3cr3t-pem");

        VigilConfig config = VigilConfig.of(values);

        assertThat(config.toString())
                .doesNotContain("s3cr3t")
                .contains(prefix + "sasl.jaas.config=******")
                .contains(prefix + "ssl.keystore.key=******")
                .contains(prefix + "security.protocol=SASL_SSL");
        assertThat(config.kafka().toString())
                .doesNotContain("s3cr3t")
                .contains("sasl.jaas.config=******")
                .contains("security.protocol=SASL_SSL");
        // Only printing hides them: the Kafka clients get the real values.
        assertThat(config.kafka().clientProperties())
                .containsEntry("sasl.jaas.config", jaas)
                .containsEntry("ssl.keystore.key", "s3cr3t-pem");
        // Flink's own views of the job configuration (its toString, its logs, its REST API) hide
        // what GlobalConfiguration.isSensitive names (jaas.config, password, secret, token, ...),
        // but not a Kafka password named otherwise: the README says to keep those in files.
        assertThat(config.flinkConfiguration().toString())
                .doesNotContain("s3cr3t-jaas")
                .doesNotContain("s3cr3t-truststore")
                .contains("s3cr3t-pem");
    }

    @Test
    void shouldNotEchoAMalformedLineThatMayHoldASecret(@TempDir Path dir) throws Exception {
        // The JAAS line alone, as a secret store holds it, without its key.
        Path file = dir.resolve("kafka.yaml");
        Files.writeString(
                file,
                "org.apache.kafka.common.security.scram.ScramLoginModule required"
                        + " username=\"vigil\" password=\"s3cr3t\";\n");

        assertThatThrownBy(() -> VigilConfig.fromArgs(new String[] {"--config", file.toString()}))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("line 1: expected 'key: value'")
                .hasMessageNotContaining("s3cr3t");
        // A -D forgotten: the whole key=value is one unexpected argument.
        String withoutD =
                VigilOptions.KAFKA_PROPERTIES_PREFIX + "sasl.jaas.config=x password=s3cr3t";
        assertThatThrownBy(() -> VigilConfig.fromArgs(new String[] {withoutD}))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("unexpected argument")
                .hasMessageNotContaining("s3cr3t");
    }

    @Test
    void shouldRefuseAMalformedConfigLine(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("bad.yaml");
        Files.writeString(file, "vigil.model.dir /models\n");

        assertThatThrownBy(() -> VigilConfig.fromArgs(new String[] {"--config", file.toString()}))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("line 1: expected 'key: value'");
    }

    @Test
    void shouldWarnWhenTheSilenceWatchWaitsLongerThanTheGap() {
        Map<String, String> values = valid();
        assertThat(VigilConfig.of(values).silenceBeyondGapWarning()).isEmpty(); // 10 min each

        values.put(VigilOptions.ALERTS_SILENCE_AFTER.key(), "30 min");
        assertThat(VigilConfig.of(values).silenceBeyondGapWarning())
                .get(STRING)
                .contains(VigilOptions.ALERTS_SILENCE_AFTER.key() + " (PT30M)")
                .contains(VigilOptions.SCORING_GAP.key() + " (PT10M)")
                .contains("reset at every step")
                .contains("never reported silent");

        values.put(VigilOptions.SCORING_GAP.key(), "1 h");
        assertThat(VigilConfig.of(values).silenceBeyondGapWarning()).isEmpty();
        values.put(VigilOptions.SCORING_GAP.key(), "10 min");
        values.put(VigilOptions.ALERTS_SILENCE_AFTER.key(), "0");
        assertThat(VigilConfig.of(values).silenceBeyondGapWarning()).isEmpty(); // the watch off
    }

    @Test
    void shouldDeriveTheTransactionalIdPrefixFromTheGroupAndTopicAndWarnUnlessChosen() {
        Map<String, String> values = valid();
        VigilConfig unset = VigilConfig.of(values);
        assertThat(unset.transactionalIdPrefix()).isEqualTo("vigil-vigil-telemetry");
        assertThat(unset.kafka().transactionalIdPrefix()).isEqualTo("vigil-vigil-telemetry");
        // each sink's ids are the prefix, '-' and its topic ('dead-letters' by default): two
        // jobs whose names join to the same text collide, which the warning says
        assertThat(unset.transactionalIdPrefixWarning())
                .get(STRING)
                .contains("is not set")
                .contains("join at a '-' to the same text");

        values.put(VigilOptions.KAFKA_GROUP_ID.key(), "fleet-b");
        values.put(VigilOptions.TOPIC_TELEMETRY.key(), "telemetry-b");
        assertThat(VigilConfig.of(values).transactionalIdPrefix())
                .isEqualTo("vigil-fleet-b-telemetry-b");

        values.put(VigilOptions.KAFKA_TRANSACTIONAL_ID_PREFIX.key(), "vigil");
        assertThat(VigilConfig.of(values).transactionalIdPrefixWarning())
                .get(STRING)
                .contains("the default of earlier releases");

        values.put(VigilOptions.KAFKA_TRANSACTIONAL_ID_PREFIX.key(), "vigil-prod");
        VigilConfig chosen = VigilConfig.of(values);
        assertThat(chosen.transactionalIdPrefix()).isEqualTo("vigil-prod");
        assertThat(chosen.transactionalIdPrefixWarning()).isEmpty();
    }

    /**
     * An empty output topic would fail at its first record, in a restart loop; empty means "none"
     * only for the scores topic.
     */
    @Test
    void shouldRefuseAnEmptyTopicButTheScores() {
        for (var option :
                List.of(
                        VigilOptions.TOPIC_TELEMETRY,
                        VigilOptions.TOPIC_ANOMALIES,
                        VigilOptions.TOPIC_DEAD_LETTERS,
                        VigilOptions.TOPIC_SHADOW_ANOMALIES)) {
            Map<String, String> values = valid();
            values.put(option.key(), " ");
            assertThatThrownBy(() -> VigilConfig.of(values))
                    .isInstanceOf(ConfigException.class)
                    .hasMessageContaining("missing required option '" + option.key() + "'");
        }
        Map<String, String> noScores = valid();
        noScores.put(VigilOptions.TOPIC_SCORES.key(), "");
        assertThat(VigilConfig.of(noScores).get(VigilOptions.TOPIC_SCORES)).isEmpty();
    }

    /**
     * The broker aborts a transaction open longer than its timeout: its events would be lost. One
     * stays open for a checkpoint interval and that checkpoint's duration.
     */
    @Test
    void shouldRefuseTransactionsThatCannotOutliveACheckpointInterval() {
        Map<String, String> values = valid();
        values.put(VigilOptions.CHECKPOINT_INTERVAL.key(), "20 min");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(
                        "vigil.kafka.transaction-timeout (PT15M) must be longer than"
                                + " vigil.checkpoint.interval (PT20M) plus"
                                + " execution.checkpointing.timeout (PT10M)");

        values.put(VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key(), "30 min"); // not longer
        assertThatThrownBy(() -> VigilConfig.of(values)).isInstanceOf(ConfigException.class);
        values.put(VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key(), "31 min");
        assertThat(VigilConfig.of(values).get(VigilOptions.CHECKPOINT_INTERVAL)).hasMinutes(20);
        values.put(VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key(), "21 min");
        values.put("execution.checkpointing.timeout", "30 s"); // checkpoints given up sooner
        assertThat(VigilConfig.of(values).get(VigilOptions.CHECKPOINT_INTERVAL)).hasMinutes(20);
        values.remove("execution.checkpointing.timeout");

        values.put(VigilOptions.KAFKA_TRANSACTION_TIMEOUT.key(), "15 min");
        values.put(VigilOptions.DELIVERY_ANOMALIES.key(), "at-least-once");
        values.put(VigilOptions.DELIVERY_SCORES.key(), "at-least-once");
        values.put(VigilOptions.DELIVERY_DEAD_LETTERS.key(), "at-least-once");
        assertThat(VigilConfig.of(values).get(VigilOptions.CHECKPOINT_INTERVAL))
                .hasMinutes(20); // no transaction at all
    }

    /**
     * Settings that would make the job misbehave later, each refused at start with what it would
     * do: a state that expires before its device's silence is due, a restart at every late record,
     * a batch that waits for the next checkpoint.
     */
    @Test
    void shouldRefuseDurationsThatWouldQuietlyBreakTheJob() {
        Map<String, String> values = valid();
        values.put(VigilOptions.STATE_TTL.key(), "10 min"); // silence-after is 10 min too
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(
                        "vigil.state.ttl (PT10M) must be longer than vigil.alerts.silence-after"
                                + " (PT10M) by at least 2 min");
        // a silence is due when the watermark, 30 s behind (more for an idle partition), passes it
        values.put(VigilOptions.STATE_TTL.key(), "11 min");
        assertThatThrownBy(() -> VigilConfig.of(values)).isInstanceOf(ConfigException.class);
        values.put(VigilOptions.STATE_TTL.key(), "12 min");
        assertThat(VigilConfig.of(values).get(VigilOptions.STATE_TTL)).hasMinutes(12);
        values.put(VigilOptions.STATE_TTL.key(), "10 min");
        values.put(VigilOptions.ALERTS_SILENCE_AFTER.key(), "0 s"); // the watch off: any TTL
        assertThat(VigilConfig.of(values).get(VigilOptions.STATE_TTL)).hasMinutes(10);

        Map<String, String> restart = valid();
        restart.put(VigilOptions.SCORING_RESTART_STEP_BACK.key(), "0 s");
        assertThatThrownBy(() -> VigilConfig.of(restart))
                .isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("vigil.scoring.restart-step-back must be positive");

        Map<String, String> timeout = valid();
        timeout.put(VigilOptions.SCORING_BATCH_TIMEOUT.key(), "0 ms");
        assertThatThrownBy(() -> VigilConfig.of(timeout))
                .isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("vigil.scoring.batch-timeout must be positive");
        timeout.put(VigilOptions.SCORING_BATCH_SIZE.key(), "0"); // record by record: no batch
        assertThat(VigilConfig.of(timeout).get(VigilOptions.SCORING_BATCH_SIZE)).isZero();
    }

    @Test
    void shouldRefuseAMaximumParallelismFlinkCannotRunOrBelowTheParallelism() {
        Map<String, String> values = valid();
        values.put(VigilOptions.MAX_PARALLELISM.key(), "40000");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessage(
                        "vigil.max-parallelism must be at most 32768 (Flink's limit of key"
                                + " groups), was 40000");

        values.put(VigilOptions.MAX_PARALLELISM.key(), "8");
        values.put("parallelism.default", "16");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageStartingWith(
                        "parallelism.default (16) must be at most vigil.max-parallelism (8)");
        values.put("parallelism.default", "8");
        assertThat(VigilConfig.of(values).get(VigilOptions.MAX_PARALLELISM)).isEqualTo(8);
    }

    /** Kafka client properties the job sets itself cannot be overridden by the passthrough. */
    @Test
    void shouldRefuseAKafkaPropertyThatTheJobSetsItself() {
        for (String property :
                List.of("bootstrap.servers", "group.id", "isolation.level", "enable.auto.commit")) {
            Map<String, String> values = valid();
            values.put("vigil.kafka.properties." + property, "x");
            assertThatThrownBy(() -> VigilConfig.of(values))
                    .isInstanceOf(ConfigException.class)
                    .hasMessageStartingWith(
                            "'vigil.kafka.properties." + property + "' is not passed to Kafka: ");
        }
        Map<String, String> values = valid();
        values.put("vigil.kafka.properties.security.protocol", "SASL_SSL");
        assertThat(VigilConfig.of(values).kafka().clientProperties())
                .containsEntry("security.protocol", "SASL_SSL");
    }

    /** Flink's own checkpoint interval and mode are replaced by the job's: said at start. */
    @Test
    void shouldWarnThatFlinksOwnCheckpointIntervalAndModeAreReplaced() {
        Map<String, String> values = valid();
        assertThat(VigilConfig.of(values).replacedCheckpointingWarning()).isEmpty();
        values.put("execution.checkpointing.interval", "10 s"); // vigil.checkpoint.interval's
        values.put("execution.checkpointing.mode", "EXACTLY_ONCE");
        assertThat(VigilConfig.of(values).replacedCheckpointingWarning()).isEmpty();

        values.put("execution.checkpointing.interval", "1 min");
        values.put("execution.checkpointing.mode", "AT_LEAST_ONCE");
        assertThat(VigilConfig.of(values).replacedCheckpointingWarning())
                .hasValueSatisfying(
                        warning ->
                                assertThat(warning)
                                        .contains(
                                                "execution.checkpointing.interval PT1M by"
                                                        + " vigil.checkpoint.interval PT10S")
                                        .contains(
                                                "execution.checkpointing.mode AT_LEAST_ONCE by"
                                                        + " EXACTLY_ONCE")
                                        .endsWith("set vigil.checkpoint.interval instead"));
    }

    @Test
    void shouldReadTheDeliveryOfEachTopicAndRefuseAnUnknownOne() {
        Map<String, String> values = valid();
        values.put(VigilOptions.DELIVERY_ANOMALIES.key(), "At-Least-Once");
        VigilConfig config = VigilConfig.of(values);
        assertThat(config.delivery(VigilOptions.DELIVERY_ANOMALIES))
                .isEqualTo(dev.vigil.kafka.KafkaConnectors.Delivery.AT_LEAST_ONCE);
        assertThat(config.delivery(VigilOptions.DELIVERY_SCORES))
                .isEqualTo(dev.vigil.kafka.KafkaConnectors.Delivery.EXACTLY_ONCE);

        values.put(VigilOptions.DELIVERY_DEAD_LETTERS.key(), "best-effort");
        assertThatThrownBy(() -> VigilConfig.of(values))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(
                        "vigil.delivery.dead-letters must be exactly-once or at-least-once,"
                                + " was 'best-effort'");
    }

    /** The README's table is this one, so the documentation cannot drift from the code. */
    @Test
    void shouldDocumentEveryOptionInTheReadme() throws Exception {
        String readme = Files.readString(Fixtures.repoRoot().resolve("README.md"));
        String table = optionsTable();

        assertThat(readme)
                .as("README.md must contain this configuration table:\n%s", table)
                .contains(table);
    }

    static String optionsTable() {
        return "| option | default | description |\n| --- | --- | --- |\n"
                + VigilOptions.all().stream()
                        .map(VigilConfigTest::row)
                        .collect(Collectors.joining("\n"))
                + "\n";
    }

    private static String row(ConfigOption<?> o) {
        String def;
        if (!o.hasDefaultValue()) {
            def = "(none)";
        } else if (o.defaultValue() instanceof java.time.Duration d) {
            def = org.apache.flink.util.TimeUtils.formatWithHighestUnit(d);
        } else if (o.defaultValue() instanceof Enum<?> e) {
            def = e.name().toLowerCase(java.util.Locale.ROOT);
        } else if (String.valueOf(o.defaultValue()).isEmpty()) {
            def = "(empty)";
        } else {
            def = String.valueOf(o.defaultValue());
        }
        return "| `" + o.key() + "` | " + def + " | " + VigilOptions.describe(o) + " |";
    }
}
