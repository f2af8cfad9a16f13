package dev.vigil.alerts;

import dev.vigil.state.DeviceState;
import java.io.Serializable;

/**
 * The score threshold a device's step is compared with: the model card's, or (adaptive) the card's
 * scaled by a slow moving average of the device's own score level outside episodes.
 *
 * <p>The adaptive threshold suits fleets where some devices are normally noisier than the data the
 * model was calibrated on: it stops them alerting all the time. It never goes below the card's
 * threshold, learns only outside episodes and from scores clipped at the threshold, so a burst
 * cannot teach it to ignore the next one; a fault that develops more slowly than the half-life can
 * still be learned as normal, which is why it is off by default.
 */
public final class Thresholds implements Serializable {

    private final float base;
    private final float alpha;

    /**
     * @param base the card's threshold
     * @param halfLifeSteps half-life of the score level in steps; 0 for a fixed threshold
     */
    public Thresholds(float base, int halfLifeSteps) {
        this.base = base;
        this.alpha = halfLifeSteps <= 0 ? 0f : (float) (1 - Math.pow(0.5, 1.0 / halfLifeSteps));
    }

    public float effective(DeviceState s) {
        return alpha == 0f ? base : base * Math.max(1f, s.scoreLevel);
    }

    /** Moves the device's score level towards this step's score, outside episodes only. */
    public void learn(DeviceState s, float score) {
        if (alpha != 0f && !s.episodeOpen && s.aboveRun == 0) {
            s.scoreLevel += alpha * (Math.min(score, base) - s.scoreLevel);
        }
    }
}
