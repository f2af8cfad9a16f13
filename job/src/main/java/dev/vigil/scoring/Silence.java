package dev.vigil.scoring;

import dev.vigil.metrics.Metrics;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.state.DeviceState;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.streaming.api.operators.InternalTimerService;

/**
 * The silence watch ({@code vigil.alerts.silence-after}): a device that has had no step scored for
 * the silence period (it sent nothing, or only records that became dead letters, late or duplicate)
 * gets a silence OPEN on the anomalies topic, and a CLOSE at its next scored step. The period is
 * measured on the records' Flink timestamps (Kafka's), against the watermark, so a replay reports
 * the silences of the history it replays, and a device's own clock cannot fake one.
 *
 * <p>The watermark follows the slowest partition. When a device's records run ahead of it (a
 * replay, a backlog after downtime), the device may speak again before the watermark reaches its
 * silence: the step that ends the silence reports it then, with the OPEN the timer would have sent
 * (at the time seen plus the period) and its CLOSE. So the silences reported depend only on each
 * device's own records, however fast they are read; live, the OPEN comes when the watermark passes
 * the period.
 *
 * <p>One event-time timer per device at a time, kept in {@link DeviceState#silenceTimerMs}: a step
 * only records when the device was seen, and registers a timer when it has none (or its timer is a
 * period overdue: lost with a savepoint, or records read far ahead of the watermark); a timer that
 * fires before the device's silence is due registers the next one at that time. So a device that
 * steps every minute under a 10-minute period costs one timer firing per 10 minutes, not a timer
 * per step. Both operators call it with the state of the model that serves the device ({@link
 * Models#servedBy}), once ONNX Runtime has stepped that model's row and before its scores go out (a
 * step ONNX Runtime fails on, a dead letter {@code MODEL_ERROR}, is not the device seen), and the
 * other model's state gets a copy of the same fields, so that a promoted state or a rolled-back
 * canary keeps watching.
 *
 * <p>A device reported silent keeps one timer too, at the time it was last seen plus {@code
 * vigil.state.ttl}: if it is still silent then, the job forgets it ({@link Fired#FORGET}): its open
 * episodes are closed, its silence with a CLOSE whose reason is {@link AnomalyEvent#FORGOTTEN}, and
 * its state is removed, as the time-to-live would remove it a little later without a word. So a
 * consumer never keeps a silence open for a device the job no longer knows, and a device that comes
 * back after it starts fresh, as after the time-to-live.
 */
final class Silence {

    /** A device's event-time timers. */
    interface Timers {
        void register(String deviceId, long time);

        /** Deletes the device's timer at {@code time}, if there is one. */
        void delete(String deviceId, long time);

        /** The operator's current event time ({@code Long.MIN_VALUE} before the first). */
        long watermark();
    }

    /**
     * A device's timers in an operator's timer {@code service}, {@code setKey} making the device
     * the operator's current key first.
     */
    static Timers timers(Consumer<String> setKey, InternalTimerService<VoidNamespace> service) {
        return new Timers() {
            @Override
            public void register(String deviceId, long time) {
                setKey.accept(deviceId);
                service.registerEventTimeTimer(VoidNamespace.INSTANCE, time);
            }

            @Override
            public void delete(String deviceId, long time) {
                setKey.accept(deviceId);
                service.deleteEventTimeTimer(VoidNamespace.INSTANCE, time);
            }

            @Override
            public long watermark() {
                return service.currentWatermark();
            }
        };
    }

    /** What a device's timer did ({@link #fired}). */
    enum Fired {
        /** Nothing: a stale timer, a device already reported or never seen, or no state. */
        NOTHING,
        /** The device's state changed (a silence reported, the next timer noted): write it back. */
        CHANGED,
        /**
         * The device has been silent for {@code forgetAfterMs}: close what it has open ({@link
         * #forget} for the silence) and remove its state.
         */
        FORGET
    }

    private final long afterMs;
    private final long forgetAfterMs;
    private final Metrics.Silence metrics;

    /**
     * A watch of {@code afterMs} (0: off) that forgets a device silent for {@code forgetAfterMs}
     * (the state's time-to-live; 0: never), counting into {@code metrics} (null when off).
     */
    Silence(long afterMs, long forgetAfterMs, Metrics.Silence metrics) {
        this.afterMs = afterMs;
        this.forgetAfterMs = forgetAfterMs;
        this.metrics = metrics;
    }

    boolean on() {
        return afterMs > 0;
    }

    /**
     * Publishes how far behind the wall clock the watch's clock, {@code watermark} (the operator's
     * current watermark, read when the metric is reported), is: {@link
     * Metrics#SILENCE_WATCH_LAG_MS}. Nothing when the watch is off.
     */
    void publishLag(LongSupplier watermark) {
        if (metrics != null) {
            long opened = System.currentTimeMillis();
            metrics.lag(() -> lagMs(watermark.getAsLong(), System.currentTimeMillis(), opened));
        }
    }

    /**
     * How far {@code watermark} is behind {@code now}: 0 once it is at the end of input, {@code now
     * - opened} while the operator, opened at {@code opened}, has had no watermark.
     */
    static long lagMs(long watermark, long now, long opened) {
        if (watermark == Long.MAX_VALUE) {
            return 0;
        }
        return Math.max(0, now - (watermark == Long.MIN_VALUE ? opened : watermark));
    }

    /** The period, in milliseconds (0: off). */
    long afterMs() {
        return afterMs;
    }

    /** How long a device stays silent before it is forgotten, in milliseconds (0: never). */
    long forgetAfterMs() {
        return forgetAfterMs;
    }

    /**
     * When a silent device is forgotten: a TTL after it was last seen; {@code NO_TIME}: never (no
     * TTL, or one so long that the time does not count in a long: a "never" of {@code
     * vigil.state.ttl}).
     */
    private long forgetAt(DeviceState s) {
        long at = s.lastSeenMs + forgetAfterMs;
        return forgetAfterMs > 0 && at > s.lastSeenMs ? at : DeviceState.NO_TIME;
    }

    /**
     * After a scored step of the device at Flink time {@code timestamp}: closes a reported silence,
     * or reports one the watermark has not reached yet (the events go to {@code sink}), notes the
     * time seen and registers a timer if none is pending. When off, clears the device's watch (so
     * that a watch turned on again measures from the device's steps, not from before it was off:
     * {@link #arm}); does nothing for a record without a timestamp.
     */
    void stepped(
            DeviceState s,
            String deviceId,
            long timestamp,
            Timers timers,
            Models.Sink sink,
            String modelVersion) {
        if (!on()) {
            s.lastSeenMs = DeviceState.NO_TIME;
            s.silenceTimerMs = DeviceState.NO_TIME;
            s.silent = false;
            return;
        }
        if (timestamp == Scorer.NO_TIMESTAMP) {
            return;
        }
        long watermark = timers.watermark();
        if (timestamp < watermark && watermark != Long.MAX_VALUE) {
            // A record stamped behind the fleet's clock (its producer's clock behind, on a
            // partition whose other producers keep the watermark): the device is talking now, so
            // it was seen at least at the watermark. Measured from its own time, its timer would be
            // due at once and every record would open and close a silence.
            timestamp = watermark;
        }
        if (s.lastSeenMs != DeviceState.NO_TIME && timestamp < s.lastSeenMs) {
            // Never back: after a restore, before the first watermark, such a record has only
            // its own stamp, and the next one, counted at the watermark again, would look like a
            // device that spoke after a silence.
            timestamp = s.lastSeenMs;
        }
        if (s.silent) {
            close(s, deviceId, timestamp, sink, modelVersion);
            if (s.silenceTimerMs != DeviceState.NO_TIME) { // the timer that would forget it
                timers.delete(deviceId, s.silenceTimerMs);
                s.silenceTimerMs = DeviceState.NO_TIME;
            }
        } else if (s.lastSeenMs != DeviceState.NO_TIME && timestamp - s.lastSeenMs > afterMs) {
            // A silence the watermark had not reached when the device spoke again: its records
            // ran ahead of the fleet's (a replay, a backlog after downtime). Reported now, as it
            // was: the OPEN the timer would have sent, then its CLOSE.
            open(s, deviceId, s.lastSeenMs + afterMs, sink, modelVersion);
            close(s, deviceId, timestamp, sink, modelVersion);
        }
        s.lastSeenMs = timestamp;
        // None pending, or one that should have fired a period ago: lost with a savepoint, or
        // far behind these records (read ahead of the watermark); moved to a period after this
        // step, so that a device has one timer however far its records run ahead.
        if (s.silenceTimerMs == DeviceState.NO_TIME || s.silenceTimerMs < timestamp - afterMs) {
            if (s.silenceTimerMs != DeviceState.NO_TIME) {
                timers.delete(deviceId, s.silenceTimerMs);
            }
            s.silenceTimerMs = timestamp + afterMs;
            timers.register(deviceId, s.silenceTimerMs);
        }
    }

    /**
     * A timer of the device fired at event time {@code time}: reports its silence if it is due (an
     * OPEN to {@code sink}) and registers the timer that forgets it, else registers the next timer
     * when this was the pending one ({@link Fired#CHANGED}: {@code s} must be written back); says
     * {@link Fired#FORGET} for a device reported silent whose time to be forgotten has come.
     * Nothing for a stale timer, a device never seen, or no state ({@code s} null: expired).
     */
    Fired fired(
            DeviceState s,
            String deviceId,
            long time,
            Timers timers,
            Models.Sink sink,
            String modelVersion) {
        if (!on() || s == null || s.lastSeenMs == DeviceState.NO_TIME) {
            return Fired.NOTHING;
        }
        if (s.silent) {
            long forget = forgetAt(s);
            return forget != DeviceState.NO_TIME && forget <= time ? Fired.FORGET : Fired.NOTHING;
        }
        long due = s.lastSeenMs + afterMs;
        if (due <= time) {
            open(s, deviceId, time, sink, modelVersion);
            // The next step deletes it and registers a silence timer.
            s.silenceTimerMs = forgetAt(s);
            if (s.silenceTimerMs != DeviceState.NO_TIME) {
                timers.register(deviceId, s.silenceTimerMs);
            }
            return Fired.CHANGED;
        }
        if (s.silenceTimerMs != DeviceState.NO_TIME && s.silenceTimerMs > time) {
            return Fired.NOTHING; // a later timer is pending: this one is stale
        }
        s.silenceTimerMs = due;
        timers.register(deviceId, due);
        return Fired.CHANGED;
    }

    /**
     * The end of a silence reported for {@code s}, a device forgotten at event time {@code time}
     * ({@link Fired#FORGET}): its CLOSE, with reason {@link AnomalyEvent#FORGOTTEN}, to {@code
     * sink}. The caller closes the device's score episodes and removes its state.
     */
    void forget(DeviceState s, String deviceId, long time, Models.Sink sink, String version) {
        s.silent = false;
        metrics.closed.inc(); // opened less closed stays the silences still open
        metrics.forgotten.inc();
        AnomalyEvent close = event(deviceId, s.lastSeenMs, AnomalyEvent.CLOSE, time, version);
        close.reason = AnomalyEvent.FORGOTTEN;
        sink.alert(close, time);
    }

    /**
     * Arms the watch of a device restored from a state kept without it ({@link SilenceArming}: a
     * savepoint of a version before the watch, of a job that ran with it off, or armed for another
     * period): a timer at the time it was last seen plus the period, where that time is the Flink
     * timestamp of its last step if the state has it, else the event time ({@code ts}) of its last
     * scored step. A device already reported silent (its CLOSE comes at its next step) gets the
     * timer that forgets it instead (a state kept before devices were forgotten, for another
     * time-to-live, or after that timer fired with nothing done: a drain, the watch off). Returns
     * whether it armed the device ({@code s} is then written back, counted among those armed);
     * false when off, for a device never scored, or a silent one under no time-to-live.
     */
    boolean arm(DeviceState s, String deviceId, Timers timers) {
        if (!on()) {
            return false;
        }
        if (s.silent) {
            long forget = forgetAt(s);
            if (forget == DeviceState.NO_TIME) {
                return false;
            }
            // Registered even when the state names it: it may have fired already (the final
            // watermark of a drain, or while the watch was off) and did nothing then.
            timers.register(deviceId, forget);
            s.silenceTimerMs = forget;
            return true; // written, as every device the walk arms
        }
        long seen = s.lastSeenMs != DeviceState.NO_TIME ? s.lastSeenMs : s.lastTs;
        if (seen == Long.MIN_VALUE) {
            return false; // never scored: lastTs is Long.MIN_VALUE too
        }
        s.lastSeenMs = seen;
        s.silenceTimerMs = seen + afterMs;
        timers.register(deviceId, s.silenceTimerMs);
        return true;
    }

    private void open(DeviceState s, String deviceId, long time, Models.Sink sink, String version) {
        s.silent = true;
        metrics.opened.inc();
        sink.alert(event(deviceId, s.lastSeenMs, AnomalyEvent.OPEN, time, version), time);
    }

    private void close(
            DeviceState s, String deviceId, long time, Models.Sink sink, String version) {
        s.silent = false;
        metrics.closed.inc();
        sink.alert(event(deviceId, s.lastSeenMs, AnomalyEvent.CLOSE, time, version), time);
    }

    /** A silence episode's event: since {@code lastSeen}, at {@code time}. */
    private static AnomalyEvent event(
            String deviceId, long lastSeen, String type, long time, String modelVersion) {
        AnomalyEvent a = new AnomalyEvent();
        a.eventId = AnomalyEvent.silenceId(deviceId, lastSeen, type);
        a.type = type;
        a.deviceId = deviceId;
        a.ts = time;
        a.episodeStart = lastSeen;
        a.durationMs = AnomalyEvent.CLOSE.equals(type) ? time - lastSeen : 0;
        a.modelVersion = modelVersion;
        a.reason = AnomalyEvent.SILENCE;
        a.topFeatureNames = new String[0];
        a.topFeatureShares = new float[0];
        return a;
    }
}
