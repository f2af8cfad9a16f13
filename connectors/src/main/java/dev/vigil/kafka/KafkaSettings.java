package dev.vigil.kafka;

import java.io.Serializable;
import java.util.List;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.flink.configuration.GlobalConfiguration;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.config.ConfigDef;

/**
 * How the job talks to Kafka, independent of where the values came from (config file, command line,
 * a test).
 *
 * @param bootstrapServers the brokers, host:port[,host:port...]
 * @param groupId consumer group of the source (offsets are also kept in Flink's checkpoints)
 * @param clientProperties any Kafka client property (security included), passed to every client
 * @param transactionalIdPrefix prefix of the exactly-once sinks' transactional ids; unique per job
 * @param transactionTimeoutMs at most the broker's {@code transaction.max.timeout.ms}
 * @param startFrom where a job without a checkpoint starts reading
 * @param bounded read up to the end offsets seen at start, then finish (replays, demos, tests)
 */
public record KafkaSettings(
        String bootstrapServers,
        String groupId,
        Properties clientProperties,
        String transactionalIdPrefix,
        long transactionTimeoutMs,
        StartFrom startFrom,
        boolean bounded)
        implements Serializable {

    /** Where a job without a checkpoint or savepoint starts reading the input. */
    public enum StartFrom {
        /** The group's committed offsets, else the earliest. */
        COMMITTED,
        EARLIEST,
        LATEST
    }

    /** Kafka's client config definitions, loaded on first use. */
    private static final class ClientConfigs {
        static final List<ConfigDef> ALL =
                List.of(
                        ConsumerConfig.configDef(),
                        ProducerConfig.configDef(),
                        AdminClientConfig.configDef());
    }

    /**
     * Whether a Kafka client property holds a secret: Kafka declares it a password ({@code
     * sasl.jaas.config}, {@code ssl.key.password}, {@code ssl.keystore.key}, ...) or Flink's {@link
     * GlobalConfiguration#isSensitive} would hide it.
     */
    public static boolean isSecret(String clientProperty) {
        if (GlobalConfiguration.isSensitive(clientProperty)) {
            return true;
        }
        for (ConfigDef def : ClientConfigs.ALL) {
            ConfigDef.ConfigKey key = def.configKeys().get(clientProperty);
            if (key != null && key.type == ConfigDef.Type.PASSWORD) {
                return true;
            }
        }
        return false;
    }

    /** Secret client properties are shown as {@link GlobalConfiguration#HIDDEN_CONTENT}. */
    @Override
    public String toString() {
        TreeMap<String, String> props = new TreeMap<>();
        clientProperties.forEach(
                (k, v) ->
                        props.put(
                                String.valueOf(k),
                                isSecret(String.valueOf(k))
                                        ? GlobalConfiguration.HIDDEN_CONTENT
                                        : String.valueOf(v)));
        return "KafkaSettings[bootstrapServers="
                + bootstrapServers
                + ", groupId="
                + groupId
                + ", clientProperties="
                + props
                + ", transactionalIdPrefix="
                + transactionalIdPrefix
                + ", transactionTimeoutMs="
                + transactionTimeoutMs
                + ", startFrom="
                + startFrom
                + ", bounded="
                + bounded
                + "]";
    }
}
