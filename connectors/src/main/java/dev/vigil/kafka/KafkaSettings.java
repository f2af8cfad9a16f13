package dev.vigil.kafka;

import java.io.Serializable;
import java.util.Properties;

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
}
