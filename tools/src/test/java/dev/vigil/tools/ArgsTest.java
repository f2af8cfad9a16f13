package dev.vigil.tools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ArgsTest {

    @Test
    void shouldCollectEveryJobOptionInOrderTheLastOfAKeyWinning() {
        Args args =
                new Args(
                        "demo",
                        new String[] {
                            "--set", "vigil.alerts.relearn-after=24h",
                            "--input", "a.jsonl",
                            "--set", "vigil.alerts.close-after=60",
                            "--set", "vigil.alerts.relearn-after=12h"
                        },
                        Set.of("--input", Args.SET));

        assertThat(args.get("--input")).isEqualTo("a.jsonl");
        assertThat(args.settings())
                .containsExactly(
                        Map.entry("vigil.alerts.relearn-after", "12h"),
                        Map.entry("vigil.alerts.close-after", "60"));
    }

    @Test
    void shouldRefuseAJobOptionWithoutAValueOrWhereTheCommandTakesNone() {
        assertThatThrownBy(
                        () ->
                                new Args(
                                        "demo",
                                        new String[] {"--set", "vigil.alerts.relearn-after"},
                                        Set.of(Args.SET)))
                .isInstanceOf(Args.UsageException.class)
                .hasMessage("--set needs KEY=VALUE, was 'vigil.alerts.relearn-after'");
        assertThatThrownBy(
                        () ->
                                new Args(
                                        "evaluate",
                                        new String[] {"--set", "a=b"},
                                        Set.of("--input")))
                .isInstanceOf(Args.UsageException.class)
                .hasMessageContaining("unknown or incomplete option '--set'");
    }
}
