package dev.vigil.pipeline;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.vigil.cli.VigilJob;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.kafka.EmbeddedKafkaBroker;
import dev.vigil.kafka.TopicIO;
import dev.vigil.model.ModelBundle;
import dev.vigil.testdata.FleetGenerator;
import dev.vigil.testing.Fixtures;
import dev.vigil.testing.LogCapture;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.ExceptionUtils;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job against a broker that accepts only SASL/SCRAM-SHA-256 clients, credentials given the way
 * an operator gives them ({@code vigil.kafka.properties.*}): it runs with the right password, fails
 * within a minute with Kafka's authentication error with a wrong one, and no password ever reaches
 * the log (captured at INFO, DEBUG for Kafka's security code and Flink's Kafka connector).
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class KafkaSecurityITCase {

    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(2)
                            .build());

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

    /** The wrong-credentials run's failure, for the log test: its trace must not leak either. */
    private static Throwable failure;

    private static boolean ranRight;

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
        kafka.createTopics(2, Fixtures.outputTopics(run));
        Map<String, String> c =
                Fixtures.boundedRun(kafka.bootstrapServers(), run, checkpoints, "500ms");
        EmbeddedKafkaBroker.scramClientProperties(USER, password)
                .forEach(
                        (k, v) ->
                                c.put(VigilOptions.KAFKA_PROPERTIES_PREFIX + k, String.valueOf(v)));
        return c;
    }

    @Test
    @Order(1)
    void shouldRunWithTheRightCredentials(@TempDir Path checkpoints) throws Exception {
        Map<String, String> c = config("right", PASSWORD, checkpoints);
        c.put("restart-strategy.type", "fixed-delay");
        c.put("restart-strategy.fixed-delay.attempts", "3");
        c.put("restart-strategy.fixed-delay.delay", "500ms");

        ranRight = true;
        JobExecutionResult result = VigilJob.run(VigilConfig.of(c), bundle);

        long in = Fixtures.accumulated(result, Metrics.RECORDS_IN);
        long scored = Fixtures.accumulated(result, Metrics.SCORED);
        long late = Fixtures.accumulated(result, Metrics.LATE);
        long dead = Fixtures.accumulated(result, Metrics.DEAD_LETTERS);
        assertThat(in).isEqualTo(produced);
        assertThat(in).isEqualTo(scored + late + dead);
        assertThat(scored).isPositive();
        assertThat(dead).isPositive(); // the fleet's feed carries malformed records
        // Read back over SCRAM too: the job's transactions committed.
        assertThat(TopicIO.readCommitted(kafka.bootstrapServers(), user, "dead-letters-right"))
                .hasSize((int) dead);
        assertThat(TopicIO.readCommitted(kafka.bootstrapServers(), user, "scores-right"))
                .hasSize((int) scored);
        assertThat(TopicIO.readCommitted(kafka.bootstrapServers(), user, "anomalies-right"))
                .isNotEmpty();
    }

    @Test
    @Order(2)
    void shouldFailFastWithAClearMessageOnWrongCredentials(@TempDir Path checkpoints)
            throws Exception {
        Map<String, String> c = config("wrong", WRONG_PASSWORD, checkpoints);
        // Without this a checkpointing job restarts forever; a real deployment sees the same
        // error on every attempt in its log.
        c.put("restart-strategy.type", "none");
        VigilConfig config = VigilConfig.of(c);

        long start = System.nanoTime();
        failure =
                assertTimeoutPreemptively(
                        Duration.ofSeconds(60),
                        () -> catchThrowable(() -> VigilJob.run(config, bundle)));
        Duration took = Duration.ofNanos(System.nanoTime() - start);

        assertThat(failure).as("the job must fail, not run").isNotNull();
        assertThat(ExceptionUtils.findThrowable(failure, SaslAuthenticationException.class))
                .as("Kafka's authentication error in the cause chain of %s", failure)
                .hasValueSatisfying(
                        e ->
                                assertThat(e)
                                        .hasMessageContaining("Authentication failed")
                                        .hasMessageContaining("invalid credentials")
                                        .hasMessageContaining(EmbeddedKafkaBroker.SCRAM_MECHANISM));
        assertThat(took).isLessThan(Duration.ofSeconds(60));
    }

    @Test
    @Order(3)
    void shouldNeverLogAPassword() {
        assumeTrue(ranRight && failure != null, "checks the log of the two runs above");
        List<String> events = logs.events();
        String trace = failure == null ? "" : stackTrace(failure);

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
