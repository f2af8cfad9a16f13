package dev.vigil.serde;

/** The score of one step of one device, for the optional "scores" topic. */
public class ScoredStep {
    public String deviceId;
    public long ts;
    public float score;

    public ScoredStep() {}

    public ScoredStep(String deviceId, long ts, float score) {
        this.deviceId = deviceId;
        this.ts = ts;
        this.score = score;
    }
}
