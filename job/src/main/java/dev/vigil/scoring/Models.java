package dev.vigil.scoring;

import dev.vigil.metrics.Metrics;
import dev.vigil.metrics.ScoreCorrelation;
import dev.vigil.model.ModelBundle;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.DeadLetter;
import dev.vigil.serde.ScoredStep;
import dev.vigil.state.DeviceState;
import java.io.Serializable;
import org.apache.flink.api.common.functions.RuntimeContext;

/**
 * The models of a scoring operator: the serving model, and the shadow model when the job has one
 * ({@code vigil.model.shadow.dir}). Both score every device, each with its own {@link Scorer} and
 * its own state per device, the two in one entry ({@link DeviceStates}), in the same operator, so
 * that a shadow costs no second shuffle and no second state access, and the two can be compared
 * step by step. The canary ({@link ScoringSettings#canaryFraction()}) chooses which of the two
 * serves each device: its alerts, scores and dead letters; the other's episodes go to the shadow
 * topic.
 *
 * <p>Every event of an episode goes where its OPEN went ({@link #toAlerts}), so that each topic's
 * episodes open and close in it. When a device changes arms (a restart with another canary
 * fraction, a promoted state), an episode open where the model's events no longer go is closed
 * there first ({@link #handOver}); if the anomaly lasts, the model opens a new one where it now
 * reports.
 *
 * <p>Both operators ({@link GruScoringFunction}, {@link BatchedScoringOperator}) hold one; what
 * they share about two models is here.
 */
final class Models implements AutoCloseable {

    static final int SERVING = 0;
    static final int SHADOW = 1;

    /** What a {@link Models} is built from, on the client: serializable. */
    record Bundles(ModelBundle serving, ModelBundle shadow) implements Serializable {
        int count() {
            return shadow == null ? 1 : 2;
        }
    }

    private final Scorer[] scorers;
    private final double canaryFraction;
    // With a shadow model only: the per-arm counts and the score correlation (a window's gauge,
    // the whole run's accumulator).
    private final Metrics.Comparison comparison;
    private final ScoreCorrelation window;
    private final ScoreCorrelation filling;
    private final int windowSteps;

    Models(Bundles bundles, ScoringSettings settings, int maxBatch, RuntimeContext ctx) {
        this.canaryFraction = bundles.shadow() == null ? 0 : settings.canaryFraction();
        this.scorers = new Scorer[bundles.count()];
        try {
            scorers[SERVING] =
                    new Scorer(
                            bundles.serving(), settings, maxBatch, new Metrics.Scoring(ctx, false));
            if (bundles.shadow() != null) {
                // The shadow's scores are written only for the devices it serves.
                ScoringSettings shadow =
                        settings.toBuilder()
                                .emitScores(settings.emitScores() && canaryFraction > 0)
                                .build();
                scorers[SHADOW] =
                        new Scorer(
                                bundles.shadow(), shadow, maxBatch, new Metrics.Scoring(ctx, true));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        this.windowSteps = settings.driftWindowSteps();
        this.window = new ScoreCorrelation();
        this.filling = new ScoreCorrelation();
        this.comparison = bundles.shadow() == null ? null : new Metrics.Comparison(ctx, window);
    }

    /** The number of models: 1, or 2 with a shadow. */
    int count() {
        return scorers.length;
    }

    Scorer scorer(int model) {
        return scorers[model];
    }

    /** The silence watch of the settings, with its metrics when it is on. */
    static Silence silence(ScoringSettings settings, RuntimeContext ctx) {
        long after = settings.silenceAfterMs();
        return new Silence(
                after, settings.stateTtl().toMillis(), after > 0 ? new Metrics.Silence(ctx) : null);
    }

    /**
     * The model that serves a device of the arm {@code canary}: its state holds the device's
     * silence watch, which the other model's state copies.
     */
    int servedBy(boolean canary) {
        return canary && scorers.length == 2 ? SHADOW : SERVING;
    }

    /** The version of the model that serves a device of the arm {@code canary}. */
    String servingVersion(boolean canary) {
        return scorers[servedBy(canary)].version();
    }

    /**
     * A device's silence timer fired at event time {@code time} (its key is the current one): the
     * model that serves the device reports its silence if it is due ({@link Silence#fired}, to
     * {@code sink}), and the other model's state takes the same watch. Both operators' timers. A
     * device to be forgotten has each open episode closed where its OPEN went (as on a reset), then
     * its silence ({@link Silence#forget}), and its entry removed.
     */
    void silenceTimer(
            DeviceStates states,
            Silence silence,
            String deviceId,
            long time,
            Silence.Timers timers,
            Sink sink)
            throws java.io.IOException {
        boolean canary = canary(deviceId);
        DeviceState[] both = new DeviceState[2]; // timers fire rarely: no buffer kept
        states.read(both);
        int served = watching(both, canary);
        String version = servingVersion(canary);
        switch (silence.fired(both[served], deviceId, time, timers, sink, version)) {
            case CHANGED -> {
                copySilence(both, served);
                states.write(both);
            }
            case FORGET -> {
                Scorer.Emitter out = emitter(true, sink); // a CLOSE goes where its OPEN went
                for (int m = 0; m < scorers.length; m++) {
                    if (both[m] != null && both[m].episodeOpen) {
                        scorers[m].closeEpisode(both[m], deviceId, time, out);
                    }
                }
                closeOrphan(both, deviceId, time, out);
                silence.forget(both[served], deviceId, time, sink, version);
                states.clear();
            }
            case NOTHING -> {}
        }
    }

    /**
     * After model {@code model}'s state of a device ({@code states[model]}) took a step or a
     * silence timer: the other model's state, if the device has one, takes the same silence watch,
     * so that either can serve the device next (a canary rolled back, a promoted state, a shadow
     * model added again after a run without it, whose state the device's entry kept).
     */
    void copySilence(DeviceState[] states, int model) {
        DeviceState other = states[1 - model];
        if (other != null) {
            other.copySilence(states[model]);
        }
    }

    /**
     * Which of a device's two states ({@code both}) holds its silence watch: the state of the model
     * that serves it, or the other's when that model has none yet (a shadow added at this restore,
     * serving its canary; a model promoted from a shadow that never had the device).
     */
    int watching(DeviceState[] both, boolean canary) {
        int served = servedBy(canary);
        int watching = both[served] == null && both[1 - served] != null ? 1 - served : served;
        adoptSilence(both[watching], both[watching], both[1 - watching]);
        return watching;
    }

    /**
     * Model {@code model}'s state of a device, {@code prepared} from {@code stored}: when the model
     * had none ({@link #watching}) and the other model's state {@code other} exists, the new state
     * takes the device's silence watch from it, so that the model serving the device goes on with
     * the watch: a device reported silent before gets its CLOSE at its next step. So it does when
     * both watch and the other's is later: a state kept while the job ran without its model stood
     * still (in a savepoint written before {@link #copySilence} kept such a state's watch too). A
     * watch that is off (no time: the job ran with it off) stays off, to be armed from the device's
     * last step.
     */
    static void adoptSilence(DeviceState stored, DeviceState prepared, DeviceState other) {
        if (other == null) {
            return;
        }
        if (stored == null
                || (prepared.lastSeenMs != DeviceState.NO_TIME
                        && other.lastSeenMs > prepared.lastSeenMs)) {
            prepared.copySilence(other);
        }
    }

    /** Whether a device is in the canary: served by the shadow model ({@link Canary}). */
    boolean canary(String deviceId) {
        return Canary.contains(deviceId, canaryFraction);
    }

    /**
     * Whether model {@code model} serves a device that is ({@code canary}) or is not in the canary.
     */
    static boolean serves(int model, boolean canary) {
        return (model == SHADOW) == canary;
    }

    /** Where an operator puts each output: its main output and side outputs. */
    interface Sink {
        /** An anomaly event for the anomalies topic. */
        void alert(AnomalyEvent event, long timestamp);

        /** An anomaly event for the shadow topic. */
        void shadowAlert(AnomalyEvent event, long timestamp);

        void deadLetter(DeadLetter letter, long timestamp);

        void score(ScoredStep step, long timestamp);
    }

    /**
     * Where a model's outputs go for a device it serves ({@code serving}: anomalies, dead letters,
     * scores) or shadows (its episodes to the shadow topic; its dead letters, counted in its
     * metrics, and its scores nowhere, as the serving model has them). Each episode's events go
     * where its OPEN went ({@link #toAlerts}); the OPENs sent to the anomalies topic are counted
     * per arm.
     */
    Scorer.Emitter emitter(boolean serving, Sink sink) {
        return new Scorer.Emitter() {
            @Override
            public void anomaly(AnomalyEvent event, DeviceState s, long timestamp) {
                if (toAlerts(event, s, serving)) {
                    if (AnomalyEvent.OPEN.equals(event.type)) {
                        opened(canary(event.deviceId));
                    }
                    sink.alert(event, timestamp);
                } else {
                    sink.shadowAlert(event, timestamp);
                }
            }

            @Override
            public void deadLetter(DeadLetter letter, long timestamp) {
                if (serving) {
                    sink.deadLetter(letter, timestamp);
                }
            }

            @Override
            public void score(ScoredStep step, long timestamp) {
                if (serving) {
                    sink.score(step, timestamp);
                }
            }
        };
    }

    /**
     * Whether an anomaly event goes to the anomalies topic (else to the shadow topic), raised by a
     * model that serves ({@code serving}) or shadows the device: an OPEN goes where the model
     * reports now, and a shadowed one is marked ({@link DeviceState#EPISODE_SHADOWED}); an UPDATE
     * or a CLOSE goes where its episode's OPEN went.
     */
    static boolean toAlerts(AnomalyEvent event, DeviceState s, boolean serving) {
        if (AnomalyEvent.OPEN.equals(event.type)) {
            if (!serving) {
                s.episodeReasons |= DeviceState.EPISODE_SHADOWED;
            }
            return serving;
        }
        return (s.episodeReasons & DeviceState.EPISODE_SHADOWED) == 0;
    }

    /**
     * Before model {@code model} steps a device: an episode it has open whose events go elsewhere
     * than where the model reports for the device now is closed there (a CLOSE event): the device
     * changed arms, or its state was promoted from the shadow. Returns whether it closed one (the
     * state must then be written back).
     */
    boolean handOver(
            int model,
            DeviceState s,
            String deviceId,
            boolean canary,
            long timestamp,
            Scorer.Emitter out) {
        boolean shadowed = (s.episodeReasons & DeviceState.EPISODE_SHADOWED) != 0;
        if (s.episodeOpen && shadowed == serves(model, canary)) {
            scorers[model].closeEpisode(s, deviceId, timestamp, out);
            return true;
        }
        return false;
    }

    /**
     * Without a shadow model: the shadow state a device's entry kept from a run with one has its
     * open episode on the anomalies topic (a device the shadow served in a canary, or the old
     * model's after a promotion) closed there, as the model that opened it: with that model gone,
     * nothing else would. One open on the shadow topic is left as it was: without a shadow that
     * topic need not exist. Returns whether the state changed.
     */
    boolean closeOrphan(DeviceState[] states, String deviceId, long timestamp, Scorer.Emitter out) {
        DeviceState kept = states[SHADOW];
        if (scorers.length == 2
                || kept == null
                || !kept.episodeOpen
                || (kept.episodeReasons & DeviceState.EPISODE_SHADOWED) != 0) {
            return false;
        }
        scorers[SERVING].closeEpisodeOf(kept, deviceId, timestamp, out);
        return true;
    }

    /** A step scored for a device of the arm {@code canary} by the model serving it. */
    void scored(boolean canary) {
        if (comparison != null) {
            comparison.scored(canary);
        }
    }

    /** An episode opened for a device of the arm {@code canary} by the model serving it. */
    private void opened(boolean canary) {
        if (comparison != null) {
            comparison.episodeOpened(canary);
        }
    }

    /**
     * After a step of one device that both models took ({@code servingScore}, {@code shadowScore}:
     * {@link Scorer#stepScore}, NaN for none): marks an episode both have open as shared ({@link
     * DeviceState#EPISODE_SHARED}, counted when it closes), and adds a step both scored past
     * warm-up to the correlation.
     */
    void compare(DeviceState serving, float servingScore, DeviceState shadow, float shadowScore) {
        if (serving.episodeOpen && shadow.episodeOpen) {
            serving.episodeReasons |= DeviceState.EPISODE_SHARED;
            shadow.episodeReasons |= DeviceState.EPISODE_SHARED;
        }
        if (Float.isNaN(servingScore) || Float.isNaN(shadowScore)) {
            return;
        }
        comparison.total().observe(servingScore, shadowScore);
        filling.observe(servingScore, shadowScore);
        if (windowSteps == 0 || filling.count() == windowSteps) {
            window.copyFrom(filling);
            if (windowSteps > 0) {
                filling.resetLocal();
            }
        }
    }

    @Override
    public void close() {
        for (Scorer s : scorers) {
            if (s != null) {
                s.close();
            }
        }
    }
}
