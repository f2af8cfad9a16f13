package dev.vigil.tools.kafka;

import java.io.IOException;
import java.lang.reflect.Field;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.metadata.UserScramCredentialRecord;
import org.apache.kafka.common.security.auth.SecurityProtocol;
import org.apache.kafka.common.security.scram.ScramCredential;
import org.apache.kafka.common.security.scram.internals.ScramFormatter;
import org.apache.kafka.common.security.scram.internals.ScramMechanism;
import org.apache.kafka.common.test.KafkaClusterTestKit;
import org.apache.kafka.common.test.PreboundSocketFactoryManager;
import org.apache.kafka.common.test.TestKitNodes;
import org.apache.kafka.metadata.bootstrap.BootstrapMetadata;
import org.apache.kafka.server.common.ApiMessageAndVersion;

/**
 * A real single-node Kafka (KRaft, combined broker and controller) running inside this JVM, bound
 * to 127.0.0.1 only, with free ports and a temporary log directory that is deleted on close. For
 * local runs and tests only: its dependencies are never part of the job jar.
 *
 * <p>{@link #start()} gives a PLAINTEXT client listener; {@link #startWithScram} one that accepts
 * only SASL/SCRAM-SHA-256 (SASL_PLAINTEXT: loopback, no TLS). The controller listener stays
 * PLAINTEXT either way.
 */
public final class EmbeddedKafkaBroker implements AutoCloseable {

    /** The SASL mechanism of {@link #startWithScram}. */
    public static final String SCRAM_MECHANISM = "SCRAM-SHA-256";

    private static final int SCRAM_ITERATIONS = 4096;
    private static final String JAAS_LOGIN_CONFIG = "java.security.auth.login.config";

    private final KafkaClusterTestKit cluster;
    private final Path logDir;
    private final Properties superUser;

    /** What the test kit replaced in this JVM's JAAS login property (SCRAM only), for close. */
    private final Runnable restoreJaasLoginConfig;

    private EmbeddedKafkaBroker(
            KafkaClusterTestKit cluster,
            Path logDir,
            Properties superUser,
            Runnable restoreJaasLoginConfig) {
        this.cluster = cluster;
        this.logDir = logDir;
        this.superUser = superUser;
        this.restoreJaasLoginConfig = restoreJaasLoginConfig;
    }

    /** Starts a broker with a PLAINTEXT client listener and waits until it accepts clients. */
    public static EmbeddedKafkaBroker start() throws Exception {
        return start(null, null);
    }

    /**
     * Starts a broker whose client listener accepts only SASL/SCRAM-SHA-256 clients, with one user,
     * {@code adminUser}, that exists from the start: the broker's own inter-broker identity and its
     * only super user. {@link #admin()} and {@link #createTopics(int, Collection)} act as that
     * user; {@link #createScramUser} adds others. Authentication only: no ACLs are defined, so any
     * authenticated user may use any topic, group or transactional id.
     */
    public static EmbeddedKafkaBroker startWithScram(String adminUser, String adminPassword)
            throws Exception {
        return start(adminUser, adminPassword);
    }

    /** A broker in a new temporary directory, which a failure to start removes. */
    private static EmbeddedKafkaBroker start(String adminUser, String adminPassword)
            throws Exception {
        Path logDir = Files.createTempDirectory("vigil-kafka-");
        try {
            return start(adminUser, adminPassword, logDir);
        } catch (Exception | Error e) {
            try {
                org.apache.flink.util.FileUtils.deleteDirectory(logDir.toFile());
            } catch (Exception deleting) {
                e.addSuppressed(deleting);
            }
            throw e;
        }
    }

    private static EmbeddedKafkaBroker start(String adminUser, String adminPassword, Path logDir)
            throws Exception {
        boolean scram = adminUser != null;
        TestKitNodes.Builder nodes =
                new TestKitNodes.Builder()
                        .setCombined(true)
                        .setNumBrokerNodes(1)
                        .setNumControllerNodes(1)
                        .setBaseDirectory(logDir);
        if (scram) {
            // The admin's credential is a bootstrap record, written when the controller starts on
            // an empty log (what `kafka-storage format --add-scram` does): the broker needs it for
            // its own inter-broker connections (transaction markers) before any client connects.
            List<ApiMessageAndVersion> records =
                    new ArrayList<>(nodes.build().bootstrapMetadata().records());
            records.add(scramRecord(adminUser, adminPassword));
            nodes.setBootstrapMetadata(BootstrapMetadata.fromRecords(records, "vigil-embedded"))
                    .setBrokerSecurityProtocol(SecurityProtocol.SASL_PLAINTEXT);
        }
        TestKitNodes built = nodes.build();
        // One broker: internal topics must not ask for more replicas than exist, or consumer
        // groups and transactions (the exactly-once sink) never become available.
        KafkaClusterTestKit.Builder builder =
                new KafkaClusterTestKit.Builder(built)
                        .setConfigProp("offsets.topic.replication.factor", "1")
                        .setConfigProp("offsets.topic.num.partitions", "4")
                        .setConfigProp("transaction.state.log.replication.factor", "1")
                        .setConfigProp("transaction.state.log.min.isr", "1")
                        .setConfigProp("transaction.state.log.num.partitions", "4")
                        .setConfigProp("group.initial.rebalance.delay.ms", "0")
                        .setConfigProp("auto.create.topics.enable", "false")
                        // Replays carry their records' own timestamps, often older than the
                        // default 7 days of time retention: the broker would delete them 30 s
                        // after it starts (its first retention check), in the middle of a run.
                        .setConfigProp("log.retention.ms", "-1")
                        .setDeleteOnClose(true);
        LoopbackSockets.install(builder);
        if (scram) {
            String listener = built.brokerListenerName().value().toLowerCase(Locale.ROOT);
            String mechanism = SCRAM_MECHANISM.toLowerCase(Locale.ROOT);
            builder.setConfigProp("sasl.enabled.mechanisms", SCRAM_MECHANISM)
                    .setConfigProp("sasl.mechanism.inter.broker.protocol", SCRAM_MECHANISM)
                    // Server side of the listener, and the broker's own identity when it connects
                    // to itself over the inter-broker (= client) listener.
                    .setConfigProp(
                            "listener.name." + listener + "." + mechanism + ".sasl.jaas.config",
                            jaasConfig(adminUser, adminPassword))
                    // The test kit would install an authorizer denying everything but its own
                    // PLAIN user: keep an authorizer, with this admin as the super user, and
                    // allow whatever no ACL restricts (there are none).
                    .setConfigProp("super.users", "User:" + adminUser)
                    .setConfigProp("allow.everyone.if.no.acl.found", "true");
        }
        // For SASL the test kit writes a JAAS file of its own and points this JVM-wide property
        // at it (our listener's JAAS setting takes precedence): put it back on close.
        String previous = System.getProperty(JAAS_LOGIN_CONFIG);
        Runnable restoreJaas =
                scram ? () -> restoreProperty(JAAS_LOGIN_CONFIG, previous) : () -> {};
        KafkaClusterTestKit cluster;
        try {
            cluster = builder.build();
        } catch (Exception e) {
            restoreJaas.run();
            throw e;
        }
        try {
            cluster.format();
            cluster.startup();
            cluster.waitForReadyBrokers();
        } catch (Exception e) {
            try {
                cluster.close();
            } catch (Exception closing) {
                e.addSuppressed(closing);
            } finally {
                restoreJaas.run();
            }
            throw e;
        }
        Properties superUser =
                scram ? scramClientProperties(adminUser, adminPassword) : new Properties();
        return new EmbeddedKafkaBroker(cluster, logDir, superUser, restoreJaas);
    }

    /**
     * The test kit's socket manager, opening each listener's socket on 127.0.0.1 instead of on
     * every interface: an in-process broker for a demo or a test must not be reachable from the
     * network. The kit offers no setting for it, so this subclass puts a loopback socket where the
     * kit would open a wildcard one (its private map of sockets), and replaces the builder's
     * manager; both by reflection, checked by {@code EmbeddedKafkaBrokerITCase}.
     */
    static final class LoopbackSockets extends PreboundSocketFactoryManager {
        private final Map<Integer, Map<String, ServerSocketChannel>> sockets;

        @SuppressWarnings("unchecked")
        private LoopbackSockets() throws ReflectiveOperationException {
            Field f = PreboundSocketFactoryManager.class.getDeclaredField("sockets");
            f.setAccessible(true);
            sockets = (Map<Integer, Map<String, ServerSocketChannel>>) f.get(this);
        }

        static void install(KafkaClusterTestKit.Builder builder)
                throws ReflectiveOperationException {
            Field f = KafkaClusterTestKit.Builder.class.getDeclaredField("socketFactoryManager");
            f.setAccessible(true);
            f.set(builder, new LoopbackSockets());
        }

        @Override
        public synchronized int getOrCreatePortForListener(int node, String listener)
                throws IOException {
            Map<String, ServerSocketChannel> ofNode =
                    sockets.computeIfAbsent(node, n -> new HashMap<>());
            if (!ofNode.containsKey(listener)) {
                // What Kafka's own socket factory opens, on loopback: non-blocking, bound.
                ServerSocketChannel channel = ServerSocketChannel.open();
                channel.configureBlocking(false);
                channel.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                ofNode.put(listener, channel);
            }
            return super.getOrCreatePortForListener(node, listener);
        }
    }

    private static ApiMessageAndVersion scramRecord(String user, String password)
            throws NoSuchAlgorithmException {
        ScramMechanism mechanism = ScramMechanism.forMechanismName(SCRAM_MECHANISM);
        ScramCredential c =
                new ScramFormatter(mechanism).generateCredential(password, SCRAM_ITERATIONS);
        return new ApiMessageAndVersion(
                new UserScramCredentialRecord()
                        .setName(user)
                        .setMechanism(mechanism.type())
                        .setSalt(c.salt())
                        .setStoredKey(c.storedKey())
                        .setServerKey(c.serverKey())
                        .setIterations(c.iterations()),
                (short) 0);
    }

    /** The JAAS line of a SCRAM login, with quotes and backslashes in the values escaped. */
    private static String jaasConfig(String user, String password) {
        return "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                + jaasEscape(user)
                + "\" password=\""
                + jaasEscape(password)
                + "\";";
    }

    private static String jaasEscape(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }

    /**
     * The Kafka client properties of a SCRAM user of a {@link #startWithScram} broker: {@code
     * security.protocol}, {@code sasl.mechanism} and {@code sasl.jaas.config}.
     */
    public static Properties scramClientProperties(String user, String password) {
        Properties props = new Properties();
        props.setProperty(
                CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, SecurityProtocol.SASL_PLAINTEXT.name);
        props.setProperty(SaslConfigs.SASL_MECHANISM, SCRAM_MECHANISM);
        props.setProperty(SaslConfigs.SASL_JAAS_CONFIG, jaasConfig(user, password));
        return props;
    }

    /** The client listener: PLAINTEXT, or SASL/SCRAM for {@link #startWithScram}. */
    public String bootstrapServers() {
        return cluster.bootstrapServers();
    }

    /**
     * Creates (or replaces) a SCRAM-SHA-256 user, as the super user, and returns once the broker
     * accepts its login (at most 30 s).
     */
    public void createScramUser(String user, String password)
            throws InterruptedException, ExecutionException {
        try (Admin admin = admin()) {
            admin.alterUserScramCredentials(
                            List.of(
                                    new UserScramCredentialUpsertion(
                                            user,
                                            new ScramCredentialInfo(
                                                    org.apache.kafka.clients.admin.ScramMechanism
                                                            .SCRAM_SHA_256,
                                                    SCRAM_ITERATIONS),
                                            password)))
                    .all()
                    .get();
        }
        // The controller has it; the broker learns it from the metadata log a moment later.
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            try (Admin admin = admin(scramClientProperties(user, password))) {
                admin.describeCluster().clusterId().get();
                return;
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof SaslAuthenticationException)
                        || System.nanoTime() > deadline) {
                    throw e;
                }
            }
            Thread.sleep(100);
        }
    }

    /** Creates the topics (single replica) unless they exist already, as the super user. */
    public void createTopics(int partitions, Collection<String> topics)
            throws InterruptedException, ExecutionException {
        createTopics(superUser, partitions, topics);
    }

    /**
     * Creates the topics (single replica) unless they exist already, with the given client
     * properties (security settings) added to the admin client's.
     */
    public void createTopics(Properties client, int partitions, Collection<String> topics)
            throws InterruptedException, ExecutionException {
        try (Admin admin = admin(client)) {
            for (String topic : topics) {
                try {
                    admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                            .all()
                            .get();
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
            awaitLeaders(admin, topics);
        }
    }

    /** Returns once every partition of the topics has a leader, so producers can write to it. */
    private static void awaitLeaders(Admin admin, Collection<String> topics)
            throws InterruptedException, ExecutionException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            try {
                boolean ready =
                        admin.describeTopics(topics).allTopicNames().get().values().stream()
                                .flatMap(t -> t.partitions().stream())
                                .allMatch(p -> p.leader() != null && !p.leader().isEmpty());
                if (ready) {
                    return;
                }
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) {
                    throw e; // unknown yet: the broker has not caught up with the creation
                }
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no leader for every partition of " + topics);
            }
            Thread.sleep(50);
        }
    }

    /**
     * An admin client acting as the super user: the SCRAM admin of {@link #startWithScram}, no
     * credentials for a PLAINTEXT broker.
     */
    public Admin admin() {
        return admin(superUser);
    }

    /** An admin client with the given client properties (security settings) added. */
    public Admin admin(Properties client) {
        Properties props = new Properties();
        props.putAll(client);
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers());
        return Admin.create(props);
    }

    @Override
    public void close() throws Exception {
        try {
            cluster.close();
            Files.deleteIfExists(logDir);
        } finally {
            restoreJaasLoginConfig.run();
        }
    }

    private static void restoreProperty(String key, String previous) {
        if (previous == null) {
            System.clearProperty(key);
        } else {
            System.setProperty(key, previous);
        }
    }
}
