package dev.vigil.metrics;

/**
 * The largest value seen in the current and the previous window of processing time: a gauge of what
 * the operator saw lately, which a window without values brings back to 0. Updated by the task
 * thread; read by the metric reporter's thread, which may see a value one update old.
 */
final class RecentMax {

    private final long windowMs;
    private volatile long windowStart = Long.MIN_VALUE;
    private volatile long current;
    private volatile long previous;

    RecentMax(long windowMs) {
        this.windowMs = windowMs;
    }

    void update(long value, long nowMs) {
        roll(nowMs);
        if (value > current) {
            current = value;
        }
    }

    long get(long nowMs) {
        long start = windowStart;
        if (start == Long.MIN_VALUE || nowMs - start >= 2 * windowMs) {
            return 0L; // nothing in this window or the one before
        }
        return nowMs - start >= windowMs ? current : Math.max(current, previous);
    }

    private void roll(long nowMs) {
        long start = windowStart;
        if (start != Long.MIN_VALUE && nowMs - start < windowMs) {
            return;
        }
        previous = start != Long.MIN_VALUE && nowMs - start < 2 * windowMs ? current : 0L;
        current = 0L;
        windowStart = nowMs;
    }
}
