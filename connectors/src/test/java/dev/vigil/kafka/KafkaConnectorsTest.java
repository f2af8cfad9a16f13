package dev.vigil.kafka;

import static org.assertj.core.api.Assertions.assertThat;

import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

class KafkaConnectorsTest {

    /**
     * A record read without a Kafka timestamp (-1) must not stop the job at its outputs: Kafka's
     * producer refuses a negative timestamp, so its outputs take the producer's time instead.
     */
    @Test
    void shouldGiveAnOutputOfARecordWithoutATimestampTheProducersTime() {
        assertThat(KafkaConnectors.outputTimestamp(-1L)).isNull();
        assertThat(KafkaConnectors.outputTimestamp(null)).isNull();
        assertThat(KafkaConnectors.outputTimestamp(1_764_000_000_000L))
                .isEqualTo(1_764_000_000_000L);
        // what the output's record then is: accepted by Kafka's own check
        new ProducerRecord<>("t", null, KafkaConnectors.outputTimestamp(-1L), null, new byte[0]);
    }
}
