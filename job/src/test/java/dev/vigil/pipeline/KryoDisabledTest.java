package dev.vigil.pipeline;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.vigil.config.VigilConfig;
import dev.vigil.testing.Fixtures;
import java.nio.file.Path;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The job's environment refuses any type that would need Kryo when the job is built. */
class KryoDisabledTest {

    /** Not a POJO (no no-argument constructor, private field): Flink would hand it to Kryo. */
    static final class Opaque {
        private final int value;

        Opaque(int value) {
            this.value = value;
        }

        @Override
        public String toString() {
            return "Opaque " + value;
        }
    }

    @Test
    void shouldRefuseAGenericTypeWhenTheJobIsBuilt(@TempDir Path dir) {
        StreamExecutionEnvironment env =
                VigilPipeline.environment(VigilConfig.of(Fixtures.brokerFreeRun(dir)));

        assertThatThrownBy(
                        () -> {
                            env.fromData(new Opaque(1), new Opaque(2))
                                    .sinkTo(new DiscardingSink<>());
                            env.getStreamGraph();
                        })
                .hasStackTraceContaining("Generic types have been disabled");
    }
}
