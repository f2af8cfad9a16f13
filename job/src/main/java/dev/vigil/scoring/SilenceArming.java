package dev.vigil.scoring;

import dev.vigil.state.DeviceState;
import dev.vigil.state.DeviceStateSchema;
import java.util.List;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.runtime.state.KeyedStateBackend;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives every device of a restored state a silence timer when the state was kept without the
 * watch's timers for this period: a savepoint of a version before the silence watch (state format 3
 * or older), of a job that ran with it off, or with another {@code vigil.alerts.silence-after}.
 * Without this, a device that never sends again after such a restore would never be reported
 * silent, since a device's timer is otherwise registered only by its steps.
 *
 * <p>The operator's own state (a union list, {@value DeviceStateSchema#SILENCE_WATCH_PERIOD_NAME},
 * part of the savepoint and never renamed) records the period its devices' timers were set for and,
 * negated (so that a list written before it reads as it did), the time after which a silent device
 * is forgotten ({@link Silence#forgetAfterMs}); a restore whose record is missing or differs walks
 * every device of the subtask's state once ({@link Silence#arm}: a timer at its last step plus the
 * period; a device already reported silent keeps its pending CLOSE and gets the timer that forgets
 * it). A job started fresh, or restored from a state armed for the same period and time-to-live,
 * walks nothing; a state snapshotted after the final watermark ({@link #drained}) walks every
 * device. With the watch off the record is cleared, so turning it on again arms every device.
 */
final class SilenceArming {

    private static final Logger LOG = LoggerFactory.getLogger(SilenceArming.class);

    private final ListState<Long> period;
    private final boolean restored;
    private long armedFor;
    private long armedToForget;

    /** From the operator's {@code initializeState}: reads the period the state was armed for. */
    SilenceArming(StateInitializationContext context) throws Exception {
        period =
                context.getOperatorStateStore()
                        .getUnionListState(DeviceStateSchema.silenceWatchPeriodDescriptor());
        restored = context.isRestored();
        for (Long p : period.get()) { // every subtask wrote the same
            if (p >= 0) {
                armedFor = p;
            } else {
                armedToForget = -p;
            }
        }
    }

    /**
     * From the operator's {@code open}, once the models and their state are ready: arms every
     * device of {@code backend} when the restored state needs it, then records the period.
     */
    void open(
            Silence silence,
            KeyedStateBackend<String> backend,
            DeviceStates states,
            Models models,
            Silence.Timers timers)
            throws Exception {
        if (!silence.on()) {
            period.clear();
            return;
        }
        if (restored
                && (armedFor != silence.afterMs() || armedToForget != silence.forgetAfterMs())) {
            long started = System.nanoTime();
            int armed = 0;
            List<String> devices = DeviceStates.devices(backend, DeviceStateSchema.STATE_NAME);
            DeviceState[] both = new DeviceState[2];
            for (String deviceId : devices) {
                backend.setCurrentKey(deviceId);
                states.read(both);
                int served = models.watching(both, models.canary(deviceId));
                DeviceState s = both[served];
                if (s != null && silence.arm(s, deviceId, timers)) {
                    models.copySilence(both, served);
                    states.write(both);
                    armed++;
                }
            }
            LOG.info(
                    "Silence watch: {} of {} restored devices armed for {} ms, forgotten after {}"
                            + " ms of silence (the state was kept {}) in {} ms",
                    armed,
                    devices.size(),
                    silence.afterMs(),
                    silence.forgetAfterMs(),
                    armedFor == 0
                            ? "without the watch"
                            : "for "
                                    + armedFor
                                    + " ms, "
                                    + (armedToForget == 0
                                            ? "without forgetting"
                                            : "forgotten after " + armedToForget + " ms"),
                    (System.nanoTime() - started) / 1_000_000);
        }
        record(silence);
    }

    /**
     * The final watermark passed ({@code flink stop --drain}, or the end of a bounded input): it
     * fired every device's timer, and reported nothing, so a state snapshotted from here on has no
     * pending timer. Without a record of the period, a job restored from it walks every device and
     * arms its timer again, so that a device that never sends again is still reported.
     */
    void drained() {
        period.clear();
    }

    private void record(Silence silence) throws Exception {
        period.update(
                silence.forgetAfterMs() > 0
                        ? List.of(silence.afterMs(), -silence.forgetAfterMs())
                        : List.of(silence.afterMs()));
    }
}
