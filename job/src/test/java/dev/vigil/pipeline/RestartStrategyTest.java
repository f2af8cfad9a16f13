package dev.vigil.pipeline;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.config.VigilConfig;
import dev.vigil.testing.Fixtures;
import java.nio.file.Path;
import java.util.Map;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A failure that repeats must end the job, not loop it forever: the job's environment bounds its
 * restarts unless the operator chose a strategy.
 */
class RestartStrategyTest {

    @Test
    void shouldGiveUpAfterTenRestartsInARowWhenNoStrategyIsChosen(@TempDir Path dir) {
        StreamExecutionEnvironment env =
                VigilPipeline.environment(VigilConfig.of(Fixtures.brokerFreeRun(dir)));

        assertThat(env.getConfiguration().get(RestartStrategyOptions.RESTART_STRATEGY))
                .isEqualTo("exponential-delay");
        assertThat(
                        env.getConfiguration()
                                .get(
                                        RestartStrategyOptions
                                                .RESTART_STRATEGY_EXPONENTIAL_DELAY_ATTEMPTS))
                .isEqualTo(VigilPipeline.DEFAULT_RESTART_ATTEMPTS);
        assertThat(
                        env.getConfiguration()
                                .get(
                                        RestartStrategyOptions
                                                .RESTART_STRATEGY_EXPONENTIAL_DELAY_BACKOFF_MULTIPLIER))
                .isEqualTo(2.0);
        assertThat(
                        env.getConfiguration()
                                .get(
                                        RestartStrategyOptions
                                                .RESTART_STRATEGY_EXPONENTIAL_DELAY_MAX_BACKOFF))
                .hasMinutes(1);
    }

    @Test
    void shouldKeepTheStrategyTheOperatorChose(@TempDir Path dir) {
        Map<String, String> c = Fixtures.brokerFreeRun(dir);
        c.put("restart-strategy.type", "fixed-delay");
        c.put("restart-strategy.fixed-delay.attempts", "3");

        StreamExecutionEnvironment env = VigilPipeline.environment(VigilConfig.of(c));

        assertThat(env.getConfiguration().get(RestartStrategyOptions.RESTART_STRATEGY))
                .isEqualTo("fixed-delay");
    }
}
