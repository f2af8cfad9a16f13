package dev.vigil.state;

/**
 * Everything Vigil remembers about one device between two of its events: the GRU's memory, the
 * forecast to score the next step against, the order guard and the episode state machine.
 *
 * <p>Written by {@link DeviceStateSerializer} in Vigil's versioned format (never by Kryo); adding,
 * removing or retyping a field is a new format version, see this module's README. It must never
 * hold anything that can be derived from the model card or the configuration.
 */
public class DeviceState {

    /** Marks {@link #lastSeq} when the device's events carry no sequence number. */
    public static final long NO_SEQ = Long.MIN_VALUE;

    /** The model card version that produced {@link #hidden} and {@link #forecast}. */
    public String modelVersion;

    /** GRU hidden state h after the last scored step; length = the card's hidden size. */
    public float[] hidden;

    /** Forecast of the next step's normalised features made at the last step; length = features. */
    public float[] forecast;

    /**
     * Steps since the state was created or last reset, up to {@code Integer.MAX_VALUE}, where it
     * stays; warm-up counts these.
     */
    public int steps;

    /** Event time (epoch ms) of the last scored step. */
    public long lastTs;

    /** Sequence number of the last scored step, or {@link #NO_SEQ}. */
    public long lastSeq;

    /** Consecutive scored steps above the threshold, after warm-up. */
    public int aboveRun;

    /** Consecutive scored steps at or below the threshold while an episode is open. */
    public int belowRun;

    /** Whether an anomaly episode is open. */
    public boolean episodeOpen;

    /** Event time (epoch ms) of the step that opened the episode; the episode's identity. */
    public long episodeStart;

    /** Highest score seen in the open episode. */
    public float episodePeak;

    /** Steps scored since the episode opened, the opening step included. */
    public int episodeSteps;

    /** Per-feature sum of score shares over the open episode: which features dominated it. */
    public float[] episodeShares;

    /**
     * Which score components crossed the threshold in the open episode (or the run building one),
     * as {@code AnomalyEvent} reason bits: 1 dynamics, 2 level, 4 stuck, 8 variability, 16
     * correlation (format 2; a run or episode restored from format 1 reads as 1, dynamics); and
     * {@link #EPISODE_SHARED}, {@link #EPISODE_SHADOWED}.
     */
    public int episodeReasons;

    /**
     * A bit of {@link #episodeReasons}, not a reason: the job's other model (serving or shadow) had
     * an episode open on this device at some step of this one, so the two models share it.
     */
    public static final int EPISODE_SHARED = 1 << 8;

    /**
     * A bit of {@link #episodeReasons}, not a reason: this episode's OPEN went to the shadow topic
     * (its model did not serve the device), so its other events go there too. Without it (and in
     * every state written before it existed) an episode's events go to the anomalies topic.
     */
    public static final int EPISODE_SHADOWED = 1 << 9;

    /**
     * Slow moving average of this device's scores outside episodes, for the optional adaptive
     * threshold; 1 is the calibration level of the fleet the model was trained on.
     */
    public float scoreLevel;

    /**
     * Steps learned into the device's normal profile (format 2): counted up to the card's {@code
     * profile_steps}, then the profile adapts slowly. 0 for a new device, after a model change, and
     * for a device restored from format 1, which then starts learning its profile.
     */
    public int profileSteps;

    /**
     * Per target feature (the card's targets, in card order), format 2: a moving average of the
     * normalised observation over the level window, what the level score compares.
     */
    public float[] levelMean;

    /** Per target feature (format 2): the device's normal value of {@link #levelMean}. */
    public float[] profileMean;

    /**
     * Per target feature (format 2): the mean square of {@code levelMean - profileMean} in normal
     * operation, the device's own unit of deviation.
     */
    public float[] profileVar;

    /**
     * Per target feature (format 2), only under a card with per-device normalisation (null
     * otherwise): the mean square of the normalised value's deviation from {@link #profileMean},
     * the device's own spread, which the model's input is divided by.
     */
    public float[] valueVar;

    /**
     * Per feature the stuck score watches (format 2, the card's {@code score.stuck.features} in
     * order): the raw value of the last scored step, to see the next one repeat it.
     */
    public float[] lastValues;

    /**
     * Per watched feature (format 2): how many consecutive steps repeated the value exactly (0 when
     * the last step changed it, -1 before the first value).
     */
    public int[] unchangedRuns;

    /**
     * Steps learned into {@link #dynamicsMeanSquare} (format 3): counted up to the card's {@code
     * score.dynamics.device_steps}, then the mean square only adapts. 0 for a new device, after a
     * model change and for a device restored from an older format, which then starts learning it.
     */
    public int dynamicsSteps;

    /**
     * The mean square of the device's dynamics score (threshold units) over its first {@link
     * #dynamicsSteps} steps after warm-up, then adapting on quiet steps with the card's {@code
     * device_half_life_steps} (format 3): its own level of forecast residual, which the card's
     * per-device scale compares with the fleet's.
     */
    public float dynamicsMeanSquare;

    /**
     * While the device's level of forecast residual is learned in blocks (format 6): the sum of the
     * completed blocks' mean squares, the largest and the second largest of them; {@link
     * #dynamicsMeanSquare} then holds the current block's. Null once the level is learned (or
     * before it starts, or for a device restored mid-way from an older format, which then counts
     * its steps so far as even blocks).
     */
    public float[] dynamicsBlocks;

    /**
     * The variability score's steps seen since its profile started (format 7), counted up to the
     * card's {@code score.variability.profile_steps} only: at that count the profile is learned.
     */
    public int variabilitySteps;

    /**
     * Per target feature (format 7; null without a variability score): the moving average of the
     * squared change from the last step, the mean of its log over the learned steps (then
     * adapting), and that log's variance (while learned: the running sum of squares, Welford).
     */
    public float[] variabilityMeanSquare;

    public float[] variabilityMean;
    public float[] variabilityVar;

    /** Per target feature (format 7): the last step's fleet-normalised value. */
    public float[] variabilityLast;

    /**
     * The records' time of the first step of the current run of steps in which the level or the
     * variability score crossed the threshold, {@link #NO_TIME} outside such a run (format 7): how
     * long the device has stayed away from its normal profile, which {@code
     * vigil.alerts.relearn-after} compares.
     */
    public long profileAboveSince = NO_TIME;

    /** Marks {@link #lastSeenMs} and {@link #silenceTimerMs} when there is none. */
    public static final long NO_TIME = Long.MIN_VALUE;

    /**
     * The Flink timestamp (the record's Kafka time, which the watermark follows) of the device's
     * last scored step, {@link #NO_TIME} before the first one or for a record without one (format
     * 4): what the silence watch measures a device's silence from.
     */
    public long lastSeenMs = NO_TIME;

    /**
     * The event time of the silence timer the device has registered, {@link #NO_TIME} for none
     * (format 4). One timer per device at a time: it is moved when it fires, or when the device's
     * records run more than a period past it. For a device reported silent, the timer that forgets
     * it (its last time seen plus the state's time-to-live; none in states kept before it).
     */
    public long silenceTimerMs = NO_TIME;

    /**
     * Whether the device's silence was reported (a silence OPEN) and its CLOSE is due at its next
     * scored step (format 4).
     */
    public boolean silent;

    /**
     * The shadow model's state of this device, null for none (format 5): a job with a shadow model
     * keeps each device's two states in one entry, the serving model's with the shadow's inside it,
     * so that a step reads and writes the state backend once for both. Only the outermost state
     * holds one.
     */
    public DeviceState shadow;

    /**
     * Whether this is only a holder of {@link #shadow}: the serving model has no state for the
     * device (format 5). Its own fields mean nothing.
     */
    public boolean vacant;

    /**
     * Not stored, nor copied: set by the scorer once this object is known to fit its model (the
     * card's sizes, a finite memory), so that a state the operator keeps on the heap between steps
     * is not checked again at every step. A state read from a snapshot or a copy is a new object,
     * not yet checked.
     */
    public transient boolean fitted;

    public DeviceState() {}

    /**
     * The value that keeps a device's serving and shadow state (either may be null): the serving
     * state holding the shadow's, or a holder ({@link #vacant}) of the shadow's alone; null when
     * both are.
     */
    public static DeviceState entry(DeviceState serving, DeviceState shadow) {
        if (serving == null) {
            if (shadow == null) {
                return null;
            }
            serving = new DeviceState();
            serving.vacant = true;
            serving.lastSeq = NO_SEQ;
        }
        serving.shadow = shadow;
        return serving;
    }

    /** The serving model's state in a value {@link #entry} wrote (null for none). */
    public static DeviceState servingIn(DeviceState entry) {
        return entry == null || entry.vacant ? null : entry;
    }

    /** The shadow model's state in a value {@link #entry} wrote (null for none). */
    public static DeviceState shadowIn(DeviceState entry) {
        return entry == null ? null : entry.shadow;
    }

    /** A fresh device: zero memory, no forecast yet, nothing open. */
    public static DeviceState fresh(String modelVersion, int hiddenSize, int features) {
        DeviceState s = new DeviceState();
        s.modelVersion = modelVersion;
        s.hidden = new float[hiddenSize];
        s.forecast = new float[features];
        s.episodeShares = new float[features];
        s.lastSeq = NO_SEQ;
        s.lastTs = Long.MIN_VALUE;
        s.scoreLevel = 1f;
        return s;
    }

    /**
     * A fresh device that keeps {@code from}'s order guard (last scored {@code ts} and {@code
     * seq}): a reset must not let steps it already scored in again. The silence watch is kept too:
     * it is about the device, not the model.
     */
    public static DeviceState freshKeepingOrder(
            DeviceState from, String modelVersion, int hiddenSize, int features) {
        DeviceState s = fresh(modelVersion, hiddenSize, features);
        s.lastTs = from.lastTs;
        s.lastSeq = from.lastSeq;
        s.copySilence(from);
        return s;
    }

    /** Takes {@code from}'s silence watch: last seen, timer and whether a silence is reported. */
    public void copySilence(DeviceState from) {
        lastSeenMs = from.lastSeenMs;
        silenceTimerMs = from.silenceTimerMs;
        silent = from.silent;
    }

    /**
     * Forgets the normal profile (a model change: the profile is in the old card's units), the
     * device's level of forecast residual with it; both are learned again from the next step.
     * Arrays are (re)allocated for {@code targets} features, {@link #valueVar} only when {@code
     * spread} (per-device normalisation).
     */
    public void resetProfile(int targets, boolean spread) {
        profileSteps = 0;
        levelMean = new float[targets];
        profileMean = new float[targets];
        profileVar = new float[targets];
        valueVar = spread ? new float[targets] : null;
        dynamicsSteps = 0;
        dynamicsMeanSquare = 0f;
        dynamicsBlocks = null;
    }

    /**
     * Forgets the variability score's profile and averages (a model change, a new card: they are in
     * the old card's units); learned again from the next step. Null arrays for 0 targets (a card
     * without the score).
     */
    public void resetVariability(int targets) {
        variabilitySteps = 0;
        variabilityMeanSquare = targets == 0 ? null : new float[targets];
        variabilityMean = targets == 0 ? null : new float[targets];
        variabilityVar = targets == 0 ? null : new float[targets];
        variabilityLast = targets == 0 ? null : new float[targets];
    }

    /**
     * Forgets the normal profile alone (the device's normal moved: {@code
     * vigil.alerts.relearn-after}); it is learned again from the next step, and the level of
     * forecast residual stays. The profile's arrays are zeroed in place.
     */
    public void relearnProfile() {
        profileSteps = 0;
        for (float[] a : new float[][] {levelMean, profileMean, profileVar, valueVar}) {
            if (a != null) {
                java.util.Arrays.fill(a, 0f);
            }
        }
    }

    /** Forgets the unchanged-value runs: the next step starts them (sized for watched features). */
    public void resetRuns(int targets) {
        lastValues = new float[targets];
        unchangedRuns = new int[targets];
        java.util.Arrays.fill(unchangedRuns, -1); // -1: no value seen yet
    }

    /**
     * Forgets the open episode and the run that would open one, as if none were open (a copy of a
     * state whose episode stays with the original).
     */
    public void forgetEpisode() {
        aboveRun = 0;
        belowRun = 0;
        episodeOpen = false;
        episodeStart = 0L;
        episodePeak = 0f;
        episodeSteps = 0;
        if (episodeShares != null) {
            java.util.Arrays.fill(episodeShares, 0f);
        }
        episodeReasons = 0;
    }

    /**
     * Forgets the GRU's memory and the warm-up count (after a gap or a model change) but keeps the
     * order guard and any open episode, which a reset must not silently drop.
     */
    public void resetMemory() {
        java.util.Arrays.fill(hidden, 0f);
        java.util.Arrays.fill(forecast, 0f);
        steps = 0;
        aboveRun = 0;
    }
}
