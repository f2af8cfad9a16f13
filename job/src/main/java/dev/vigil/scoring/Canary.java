package dev.vigil.scoring;

/**
 * Which devices a canary ({@code vigil.model.canary.fraction}) gives to the shadow model: those
 * whose {@link #bucket} lies below the fraction. The bucket is a stable hash of the device id: the
 * same on every run, parallelism and Flink version, independent of Flink's key groups (so the
 * canary spreads over all subtasks), and raising the fraction only adds devices.
 */
public final class Canary {

    private Canary() {}

    /** Whether the device is in a canary of {@code fraction} (0 to 1) of the fleet. */
    public static boolean contains(String deviceId, double fraction) {
        return fraction > 0 && bucket(deviceId) < fraction;
    }

    /**
     * A device's place in [0, 1): SplitMix64's finaliser over {@link String#hashCode()} (whose
     * value the Java language specifies), its top 53 bits as a fraction.
     */
    public static double bucket(String deviceId) {
        long z = deviceId.hashCode() + 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 11) * 0x1.0p-53;
    }
}
