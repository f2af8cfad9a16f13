package dev.vigil.alerts;

import dev.vigil.serde.AnomalyEvent;
import dev.vigil.state.DeviceState;
import java.io.Serializable;

/**
 * The episode state machine of one device, on its {@link DeviceState}: open after {@code openAfter}
 * consecutive steps above the threshold, close after {@code closeAfter} consecutive steps at or
 * below it, and (when {@code updateEvery} > 0) an update every that many steps while open. It only
 * decides; the operator builds and emits the events.
 */
public final class EpisodeRules implements Serializable {

    private final int openAfter;
    private final int closeAfter;
    private final int updateEvery;

    public EpisodeRules(int openAfter, int closeAfter, int updateEvery) {
        if (openAfter < 1 || closeAfter < 1 || updateEvery < 0) {
            throw new IllegalArgumentException(
                    "open-after and close-after must be at least 1 and update-every at least 0");
        }
        this.openAfter = openAfter;
        this.closeAfter = closeAfter;
        this.updateEvery = updateEvery;
    }

    /**
     * Advances the machine by one scored step after warm-up and returns the event type it causes
     * ({@link AnomalyEvent#OPEN}, {@link AnomalyEvent#UPDATE}, {@link AnomalyEvent#CLOSE}) or null.
     * After a CLOSE the state's episode fields still describe the closed episode until the state is
     * next written, so the event can be built from them in the same step; they are stale after that
     * (the state format drops them, and the next run above the threshold resets them).
     */
    public String step(DeviceState s, long ts, float score, float threshold, float[] shares) {
        boolean above = score > threshold;
        if (!s.episodeOpen) {
            if (!above) {
                s.aboveRun = 0;
                return null;
            }
            if (s.aboveRun == 0) {
                s.episodeStart = ts; // an episode starts at the first step of its run
                s.episodePeak = 0f;
                java.util.Arrays.fill(s.episodeShares, 0f);
                s.episodeSteps = 0;
                s.episodeReasons = 0;
            }
            s.aboveRun++;
            accumulate(s, score, shares);
            if (s.aboveRun >= openAfter) {
                s.episodeOpen = true;
                s.belowRun = 0;
                return AnomalyEvent.OPEN;
            }
            return null;
        }
        accumulate(s, score, shares);
        if (above) {
            s.belowRun = 0;
        } else if (++s.belowRun >= closeAfter) {
            s.episodeOpen = false;
            s.aboveRun = 0;
            s.belowRun = 0;
            return AnomalyEvent.CLOSE;
        }
        // No UPDATE once the count has stopped at its limit: it would repeat the last one's id.
        if (updateEvery > 0
                && s.episodeSteps < Integer.MAX_VALUE
                && s.episodeSteps % updateEvery == 0) {
            return AnomalyEvent.UPDATE;
        }
        return null;
    }

    /**
     * Closes an open episode outside the normal rule (the device's memory was reset); returns
     * whether there was one to close.
     */
    public boolean forceClose(DeviceState s) {
        boolean wasOpen = s.episodeOpen;
        s.episodeOpen = false;
        s.aboveRun = 0;
        s.belowRun = 0;
        return wasOpen;
    }

    private static void accumulate(DeviceState s, float score, float[] shares) {
        if (s.episodeSteps < Integer.MAX_VALUE) { // stops at its limit: never negative
            s.episodeSteps++;
        }
        s.episodePeak = Math.max(s.episodePeak, score);
        for (int i = 0; i < shares.length; i++) {
            s.episodeShares[i] += shares[i];
        }
    }
}
