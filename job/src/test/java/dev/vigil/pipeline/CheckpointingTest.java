package dev.vigil.pipeline;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.config.VigilConfig;
import dev.vigil.testing.Fixtures;
import java.nio.file.Path;
import java.util.Map;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Checkpoints upload only the state's new files unless the operator chose full ones. */
class CheckpointingTest {

    @Test
    void shouldCheckpointIncrementallyWhenNotConfigured(@TempDir Path dir) {
        StreamExecutionEnvironment env =
                VigilPipeline.environment(VigilConfig.of(Fixtures.brokerFreeRun(dir)));

        assertThat(env.getConfiguration().get(CheckpointingOptions.INCREMENTAL_CHECKPOINTS))
                .isTrue();
    }

    @Test
    void shouldKeepFullCheckpointsTheOperatorChose(@TempDir Path dir) {
        Map<String, String> c = Fixtures.brokerFreeRun(dir);
        c.put(CheckpointingOptions.INCREMENTAL_CHECKPOINTS.key(), "false");

        StreamExecutionEnvironment env = VigilPipeline.environment(VigilConfig.of(c));

        assertThat(env.getConfiguration().get(CheckpointingOptions.INCREMENTAL_CHECKPOINTS))
                .isFalse();
    }
}
