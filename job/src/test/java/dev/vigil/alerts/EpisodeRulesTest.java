package dev.vigil.alerts;

import static org.assertj.core.api.Assertions.assertThat;

import dev.vigil.state.DeviceState;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class EpisodeRulesTest {

    private static final float THRESHOLD = 4f;
    private static final float[] SHARES = {0.75f, 0.25f};

    private final DeviceState state = DeviceState.fresh("m", 2, 2);

    /** Runs scores through the rules, one step a minute; returns "type@step" per event. */
    private List<String> run(EpisodeRules rules, float... scores) {
        List<String> events = new ArrayList<>();
        for (int i = 0; i < scores.length; i++) {
            String type = rules.step(state, i * 60_000L, scores[i], THRESHOLD, SHARES);
            if (type != null) {
                events.add(type + "@" + i);
            }
        }
        return events;
    }

    @Test
    void shouldOpenAfterKAboveAndCloseAfterMBelow() {
        EpisodeRules rules = new EpisodeRules(2, 3, 0);

        List<String> events = run(rules, 1, 5, 1, 5, 6, 7, 1, 1, 5, 1, 1, 1, 1);

        assertThat(events).containsExactly("OPEN@4", "CLOSE@11");
        assertThat(state.episodeStart).isEqualTo(3 * 60_000L); // the run's first step
        assertThat(state.episodePeak).isEqualTo(7f);
        assertThat(state.episodeSteps).isEqualTo(9);
        assertThat(state.episodeOpen).isFalse();
    }

    @Test
    void shouldNotOpenOnAnIsolatedStepAbove() {
        EpisodeRules rules = new EpisodeRules(2, 3, 0);

        assertThat(run(rules, 9, 1, 9, 1, 9)).isEmpty();
    }

    @Test
    void shouldCountTheThresholdItselfAsBelow() {
        EpisodeRules rules = new EpisodeRules(1, 1, 0);

        assertThat(run(rules, THRESHOLD, 5, THRESHOLD)).containsExactly("OPEN@1", "CLOSE@2");
    }

    /**
     * An episode open for 2^31 steps: its step count stops at the largest int instead of wrapping
     * to a negative one, and sends no more UPDATEs, whose id would repeat.
     */
    @Test
    void shouldStopCountingAnEpisodesStepsAtTheLimit() {
        EpisodeRules rules = new EpisodeRules(1, 5, 1);
        run(rules, 5);
        state.episodeSteps = Integer.MAX_VALUE - 2;

        assertThat(run(rules, 5, 5, 5, 5)).containsExactly("UPDATE@0");
        assertThat(state.episodeSteps).isEqualTo(Integer.MAX_VALUE);
        assertThat(state.episodeOpen).isTrue();
    }

    @Test
    void shouldUpdateEveryNStepsWhileOpen() {
        EpisodeRules rules = new EpisodeRules(1, 5, 2);

        assertThat(run(rules, 5, 5, 5, 5, 5)).containsExactly("OPEN@0", "UPDATE@1", "UPDATE@3");
    }

    @Test
    void shouldSumSharesOverTheEpisode() {
        EpisodeRules rules = new EpisodeRules(1, 1, 0);

        run(rules, 5, 6, 1);

        assertThat(state.episodeShares).containsExactly(2.25f, 0.75f);
    }

    @Test
    void shouldForceCloseOnlyAnOpenEpisode() {
        EpisodeRules rules = new EpisodeRules(1, 5, 0);
        assertThat(rules.forceClose(state)).isFalse();

        run(rules, 5);

        assertThat(rules.forceClose(state)).isTrue();
        assertThat(state.episodeOpen).isFalse();
    }
}
