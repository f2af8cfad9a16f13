package dev.vigil.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.model.ModelBundle;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import dev.vigil.testing.LogCapture;
import dev.vigil.tools.LocalRun;
import dev.vigil.tools.kafka.EmbeddedKafkaBroker;
import dev.vigil.tools.kafka.TopicIO;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.ExceptionUtils;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job against a broker that accepts only SASL/SCRAM-SHA-256 clients, credentials given the way
 * an operator gives them ({@code vigil.kafka.properties.*}): it runs with the right password, fails
 * within a minute with Kafka's authentication error with a wrong one, and no password ever reaches
 * the log (captured at INFO, DEBUG for Kafka's security code and Flink's Kafka connector).
 */
class KafkaSecurityITCase {

    @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = Fixtures.miniCluster(2);

    private static final String ADMIN = "vigil-admin";
    private static final String USER = "vigil";
    // Unique, so a search of the log for them cannot match anything else.
    private static final String ADMIN_PASSWORD = "admin-secret-" + UUID.randomUUID();
    private static final String PASSWORD = "user-secret-" + UUID.randomUUID();
    private static final String WRONG_PASSWORD = "wrong-secret-" + UUID.randomUUID();

    private static LogCapture logs;
    private static EmbeddedKafkaBroker kafka;
    private static Properties user;
    private static long produced;
    private static ModelBundle bundle;

    /** The right-credentials run's result. */
    private static JobExecutionResult rightResult;

    /**
     * The wrong-credentials run's failure (its trace must not leak either), and how long it took.
     */
    private static Throwable failure;

    private static Duration failedAfter;

    @TempDir static Path work;

    @BeforeAll
    static void startScramKafkaAndReplayASmallFleet(@TempDir Path fleet) throws Exception {
        logs =
                LogCapture.start(
                        "org.apache.kafka.common.security",
                        "org.apache.kafka.common.network",
                        "org.apache.flink.connector.kafka");
        new FleetGenerator(new FleetGenerator.Spec(7L, 3, 200, 300, 1)).writeTo(fleet);
        bundle = Fixtures.model();
        kafka = EmbeddedKafkaBroker.startWithScram(ADMIN, ADMIN_PASSWORD);
        kafka.createScramUser(USER, PASSWORD);
        user = EmbeddedKafkaBroker.scramClientProperties(USER, PASSWORD);
        kafka.createTopics(2, List.of("telemetry"));
        produced =
                TopicIO.replay(
                        kafka.bootstrapServers(), user, "telemetry", fleet.resolve("test.jsonl"));
    }

    /**
     * Runs the job twice, with the right and with a wrong password, the first time a test asks
     * (inside a test, so on this class's mini cluster): each test checks one side of those two
     * runs, so each is meaningful when run alone.
     */
    private static synchronized void runWithRightAndWrongCredentials() throws Exception {
        if (rightResult != null) {
            return;
        }
        Map<String, String> right = config("right", PASSWORD, work.resolve("right"));
        right.put("restart-strategy.type", "fixed-delay");
        right.put("restart-strategy.fixed-delay.attempts", "3");
        right.put("restart-strategy.fixed-delay.delay", "500ms");
        rightResult = VigilJob.run(VigilConfig.of(right), bundle);

        Map<String, String> wrong = config("wrong", WRONG_PASSWORD, work.resolve("wrong"));
        // Without this a checkpointing job restarts forever; a real deployment sees the same
        // error on every attempt in its log.
        wrong.put("restart-strategy.type", "none");
        VigilConfig config = VigilConfig.of(wrong);
        long start = System.nanoTime();
        failure =
                assertTimeoutPreemptively(
                        Duration.ofSeconds(60),
                        () -> catchThrowable(() -> VigilJob.run(config, bundle)));
        failedAfter = Duration.ofNanos(System.nanoTime() - start);
    }

    @AfterAll
    static void stopKafka() throws Exception {
        try {
            if (kafka != null) {
                kafka.close();
            }
        } finally {
            if (logs != null) {
                logs.close();
            }
        }
    }

    /**
     * A bounded run as {@code USER} with {@code password}, given as an operator would: the
     * mechanism in the job's config file, the JAAS line in a second one (here: the same map).
     */
    private static Map<String, String> config(String run, String password, Path checkpoints)
            throws Exception {
        kafka.createTopics(2, LocalRun.outputTopics(run));
        Map<String, String> c =
                LocalRun.config(
                        kafka.bootstrapServers(),
                        Fixtures.modelDir(),
                        run,
                        checkpoints,
                        "500ms",
                        2);
        EmbeddedKafkaBroker.scramClientProperties(USER, password)
                .forEach(
                        (k, v) ->
                                c.put(VigilOptions.KAFKA_PROPERTIES_PREFIX + k, String.valueOf(v)));
        return c;
    }

    @Test
    void shouldRunWithTheRightCredentials() throws Exception {
        runWithRightAndWrongCredentials();
        long in = LocalRun.counted(rightResult, Metrics.RECORDS_IN);
        long scored = LocalRun.counted(rightResult, Metrics.SCORED);
        long late = LocalRun.counted(rightResult, Metrics.LATE);
        long dead = LocalRun.counted(rightResult, Metrics.DEAD_LETTERS);
        assertThat(in).isEqualTo(produced);
        assertThat(in).isEqualTo(scored + late + dead);
        assertThat(scored).isPositive();
        assertThat(dead).isPositive(); // the fleet's feed carries malformed records
        // Read back over SCRAM too: the job's transactions committed.
        assertThat(TopicIO.readCommitted(kafka.bootstrapServers(), user, "dead-letters-right"))
                .hasSize((int) (dead + late)); // late records are dead letters too
        assertThat(TopicIO.readCommitted(kafka.bootstrapServers(), user, "scores-right"))
                .hasSize((int) scored);
        assertThat(TopicIO.readCommitted(kafka.bootstrapServers(), user, "anomalies-right"))
                .isNotEmpty();
    }

    @Test
    void shouldFailFastWithAClearMessageOnWrongCredentials() throws Exception {
        runWithRightAndWrongCredentials();
        assertThat(failure).as("the job must fail, not run").isNotNull();
        assertThat(ExceptionUtils.findThrowable(failure, SaslAuthenticationException.class))
                .as("Kafka's authentication error in the cause chain of %s", failure)
                .hasValueSatisfying(
                        e ->
                                assertThat(e)
                                        .hasMessageContaining("Authentication failed")
                                        .hasMessageContaining("invalid credentials")
                                        .hasMessageContaining(EmbeddedKafkaBroker.SCRAM_MECHANISM));
        assertThat(failedAfter).isLessThan(Duration.ofSeconds(60));
    }

    @Test
    void shouldNeverLogAPassword() throws Exception {
        runWithRightAndWrongCredentials();
        assertThat(failure).as("the wrong-credentials run must fail").isNotNull();
        List<String> events = logs.events();
        String trace = stackTrace(failure);

        for (String secret : List.of(PASSWORD, WRONG_PASSWORD, ADMIN_PASSWORD)) {
            assertThat(events).noneMatch(e -> e.contains(secret));
            assertThat(trace).doesNotContain(secret);
        }
        // The capture did see where secrets would appear: Vigil's configuration at start, masked
        // by Vigil, and the Kafka clients' configuration, masked by Kafka.
        assertThat(events)
                .anyMatch(
                        e ->
                                e.contains("Starting vigil")
                                        && e.contains(
                                                VigilOptions.KAFKA_PROPERTIES_PREFIX
                                                        + "sasl.jaas.config=******"));
        assertThat(events).anyMatch(e -> e.contains("sasl.jaas.config = [hidden]"));
        assertThat(events).anyMatch(e -> e.contains("Authentication failed"));
    }

    private static String stackTrace(Throwable t) {
        StringWriter s = new StringWriter();
        t.printStackTrace(new PrintWriter(s));
        return s.toString();
    }
}
