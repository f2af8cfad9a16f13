package dev.vigil.serde;

/**
 * One change in a device's anomaly episode: it opened, is still open (update) or closed. The {@link
 * #eventId} is a pure function of (device, episode start, type, and the step for updates), so a
 * replay after a failure writes the same ids.
 */
public class AnomalyEvent {

    public static final String OPEN = "OPEN";
    public static final String UPDATE = "UPDATE";
    public static final String CLOSE = "CLOSE";

    public String eventId;

    /** {@link #OPEN}, {@link #UPDATE} or {@link #CLOSE}. */
    public String type;

    public String deviceId;

    /** Event time of the step that caused this event. */
    public long ts;

    /** Event time of the step that opened the episode. */
    public long episodeStart;

    /** Score of the step that caused this event. */
    public float score;

    public float threshold;
    public float peakScore;

    /** Steps in the episode so far, the opening step included. */
    public int steps;

    /** For CLOSE: event time of the closing step minus the episode start; 0 otherwise. */
    public long durationMs;

    public String modelVersion;

    /**
     * For CLOSE: the episode was open for {@code vigil.alerts.relearn-after} with the level still
     * out, and the device learns its normal profile again from this step (its normal moved, or a
     * fault lasted that long); false otherwise. Written only when true.
     */
    public boolean relearned;

    /**
     * Which score components crossed the threshold during the episode so far, joined by {@code +}
     * in this order: {@code dynamics} (the step was not what the recent past predicted), {@code
     * level} (the device is not where it normally is), {@code stuck} (a reading stopped moving),
     * {@code variability} (its readings move more, or less, than they normally do). Or {@link
     * #SILENCE} alone: the device has had no step scored for {@code vigil.alerts.silence-after} (an
     * episode of its own, see {@link #silenceId}), or {@link #FORGOTTEN} for the CLOSE of such an
     * episode when the job forgot the device.
     */
    public String reason;

    /** Features that explain the score (for CLOSE: the whole episode), largest share first. */
    public String[] topFeatureNames;

    public float[] topFeatureShares;

    public AnomalyEvent() {}

    /**
     * Bits of {@link #reason(int)}: the forecast residual, the level, stuck, variability and
     * correlation scores.
     */
    public static final int REASON_DYNAMICS = 1;

    public static final int REASON_LEVEL = 2;
    public static final int REASON_STUCK = 4;
    public static final int REASON_VARIABILITY = 8;
    public static final int REASON_CORRELATION = 16;

    private static final String[] REASON_NAMES = {
        "dynamics", "level", "stuck", "variability", "correlation"
    };

    /**
     * The reason of a silence episode: OPEN when a device has had no step scored for the silence
     * period, CLOSE at its next one. Its times are the records' Flink timestamps (the Kafka
     * timestamps the watermark follows); score, threshold, peak and steps are 0, and it names no
     * features.
     */
    public static final String SILENCE = "silence";

    /**
     * The reason of a silence episode's CLOSE when the device did not come back: it stayed silent
     * for {@code vigil.state.ttl}, and the job forgot it (its state removed; if it comes back, it
     * starts fresh). Same {@link #silenceId} as the CLOSE it takes the place of.
     */
    public static final String FORGOTTEN = "forgotten";

    /** The components of a set of reason bits joined by {@code +}, {@code dynamics} for none. */
    public static String reason(int bits) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < REASON_NAMES.length; i++) {
            if ((bits & (1 << i)) != 0) {
                b.append(b.length() == 0 ? "" : "+").append(REASON_NAMES[i]);
            }
        }
        return b.length() == 0 ? REASON_NAMES[0] : b.toString();
    }

    /**
     * The id of a silence episode's event: {@code device:start:silence:TYPE}, where start is the
     * time the device was last seen; never the id of a score episode's event.
     */
    public static String silenceId(String deviceId, long lastSeen, String type) {
        return deviceId + ":" + lastSeen + ":" + SILENCE + ":" + type;
    }

    /** Whether this event belongs to a silence episode rather than to a score episode. */
    public boolean isSilence() {
        return SILENCE.equals(reason) || FORGOTTEN.equals(reason);
    }

    public static String eventId(String deviceId, long episodeStart, String type, int steps) {
        String id = deviceId + ":" + episodeStart + ":" + type;
        return UPDATE.equals(type) ? id + ":" + steps : id;
    }
}
