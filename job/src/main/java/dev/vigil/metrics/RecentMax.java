package dev.vigil.metrics;

/**
 * The largest value seen in the current and the previous window of processing time (windows of a
 * fixed length, aligned to the epoch): a gauge of what the operator saw lately, which two windows
 * without a value bring back to 0, so a value stays visible for one to two windows. Updated by the
 * task thread; read by the metric reporter's thread, which may see a value one update old.
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
        long start = nowMs - Math.floorMod(nowMs, windowMs);
        if (start != windowStart) {
            previous =
                    windowStart != Long.MIN_VALUE && start - windowStart == windowMs ? current : 0L;
            current = 0L;
            windowStart = start;
        }
        if (value > current) {
            current = value;
        }
    }

    long get(long nowMs) {
        long start = windowStart;
        if (start == Long.MIN_VALUE) {
            return 0L; // nothing seen yet
        }
        long now = nowMs - Math.floorMod(nowMs, windowMs);
        if (now == start) {
            return Math.max(current, previous);
        }
        return now - start == windowMs ? current : 0L; // the last update's window ended
    }
}
