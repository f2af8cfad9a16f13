package dev.vigil.serde;

/**
 * The score of one step of one device, for the optional "scores" topic: the combined score the
 * episodes follow, and its components in threshold units ({@code NaN} when a component has no
 * value: no forecast yet, no learned profile, or a card without that component).
 */
public class ScoredStep {
    public String deviceId;
    public long ts;
    public float score;
    public float dynamics = Float.NaN;
    public float level = Float.NaN;
    public float stuck = Float.NaN;
    public float variability = Float.NaN;
    public float correlation = Float.NaN;

    public ScoredStep() {}

    public ScoredStep(String deviceId, long ts, float score) {
        this.deviceId = deviceId;
        this.ts = ts;
        this.score = score;
    }

    public ScoredStep(
            String deviceId,
            long ts,
            float score,
            float dynamics,
            float level,
            float stuck,
            float variability,
            float correlation) {
        this(deviceId, ts, score);
        this.dynamics = dynamics;
        this.level = level;
        this.stuck = stuck;
        this.variability = variability;
        this.correlation = correlation;
    }
}
