package dev.vigil.scoring;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The canary's choice of devices: fixed for good, spread evenly, growing with the fraction. */
class CanaryTest {

    /**
     * These values may never change: a device would move between arms on an upgrade. The same
     * function is written in Python in deploy/local/bin/check-anomalies.py, which smoke.sh uses.
     */
    @Test
    void shouldPlaceADeviceWhereItAlwaysWas() {
        assertThat(Canary.bucket("pump-00")).isEqualTo(0.9098187676812598);
        assertThat(Canary.bucket("pump-17")).isEqualTo(0.5064602923262674);
        assertThat(Canary.bucket("dev-12345")).isEqualTo(0.34915628192097237);
        assertThat(Canary.contains("pump-17", 0.5)).isFalse();
        assertThat(Canary.contains("pump-17", 0.51)).isTrue();
    }

    @Test
    void shouldTakeTheFractionOfAFleetAndOnlyAddDevicesAsItGrows() {
        int n = 100_000;
        int[] below = new int[11];
        for (int i = 0; i < n; i++) {
            String device = "device-" + i;
            double b = Canary.bucket(device);
            assertThat(b).isGreaterThanOrEqualTo(0).isLessThan(1);
            for (int k = 0; k <= 10; k++) {
                boolean in = Canary.contains(device, k / 10.0);
                below[k] += in ? 1 : 0;
                if (k > 0 && Canary.contains(device, (k - 1) / 10.0)) {
                    assertThat(in).as("%s left the canary as it grew", device).isTrue();
                }
            }
        }
        assertThat(below[0]).isZero();
        assertThat(below[10]).isEqualTo(n);
        for (int k = 1; k < 10; k++) {
            // within 4 binomial standard deviations of k/10 of the fleet
            double sd = Math.sqrt(n * 0.1 * k * (1 - 0.1 * k));
            assertThat((double) below[k])
                    .isCloseTo(n * k / 10.0, org.assertj.core.data.Offset.offset(4 * sd));
        }
    }
}
