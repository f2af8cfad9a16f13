package dev.vigil.testdata;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A seeded, deterministic fleet of pumps with physically related features, and labelled anomalies
 * of six kinds in its test period. The same seed gives the same bytes on every machine.
 *
 * <p>Each device has a latent load (daily cycle, slow random drift, occasional smooth changes of
 * operating point) that drives rpm, current, flow and pressure; temperature follows load with a
 * lag; vibration follows rpm; ambient temperature has its own daily cycle. The test stream also
 * carries the faults a real feed has (duplicates, late re-sends, malformed records, silences) so
 * every path of the job is exercised; those are not anomalies and carry no label.
 */
public final class FleetGenerator {

    public static final List<String> FEATURES =
            List.of(
                    "load_pct",
                    "rpm",
                    "current_a",
                    "flow_lpm",
                    "pressure_bar",
                    "temperature_c",
                    "vibration_mm_s",
                    "ambient_c");

    public static final List<String> KINDS =
            List.of("spike", "level_shift", "drift", "stuck", "broken_correlation", "noise_burst");

    /** First event time of the training period: 2025-11-24T16:00:00Z. */
    public static final long START_TS = 1_764_000_000_000L;

    public static final long STEP_MS = 60_000L;

    /** What to generate. */
    public record Spec(
            long seed, int devices, int trainSteps, int testSteps, int anomaliesPerDevice) {
        public static Spec defaults() {
            return new Spec(20261125L, 24, 5760, 1440, 2);
        }
    }

    /** A labelled anomaly window, inclusive of both ends. */
    public record Label(String deviceId, long startTs, long endTs, String kind, String feature) {}

    /** One generated step of one device, before it is written as JSON. */
    private record Step(String deviceId, long ts, long seq, double[] values) {}

    private final Spec spec;

    public FleetGenerator(Spec spec) {
        this.spec = spec;
    }

    public static String deviceId(int i) {
        return String.format(Locale.ROOT, "pump-%02d", i);
    }

    /** Devices whose events carry no {@code seq} (order is then decided by {@code ts}). */
    static boolean withoutSeq(int device) {
        return device % 4 == 3;
    }

    /** Devices that send {@code ts} as an ISO-8601 string instead of epoch milliseconds. */
    static boolean isoTimestamps(int device) {
        return device % 5 == 4;
    }

    /** Writes train.jsonl, test.jsonl and labels.csv into {@code dir}. */
    public void writeTo(Path dir) throws IOException {
        Files.createDirectories(dir);
        List<List<Step>> train = new ArrayList<>();
        List<List<Step>> test = new ArrayList<>();
        List<Label> labels = new ArrayList<>();
        for (int d = 0; d < spec.devices(); d++) {
            Device device = new Device(d, new SplittableRandom(spec.seed() * 1_000_003L + d));
            train.add(device.run(0, spec.trainSteps(), List.of()));
            List<Label> deviceLabels = device.planAnomalies(spec);
            labels.addAll(deviceLabels);
            test.add(device.run(spec.trainSteps(), spec.testSteps(), deviceLabels));
        }
        writeStream(dir.resolve("train.jsonl"), train, null);
        writeStream(dir.resolve("test.jsonl"), test, new SplittableRandom(spec.seed() ^ 0x5eed));
        labels.sort(Comparator.comparing(Label::deviceId).thenComparingLong(Label::startTs));
        try (BufferedWriter w = Files.newBufferedWriter(dir.resolve("labels.csv"))) {
            w.write("device_id,start_ts,end_ts,kind,feature\n");
            for (Label l : labels) {
                w.write(
                        l.deviceId()
                                + ","
                                + l.startTs()
                                + ","
                                + l.endTs()
                                + ","
                                + l.kind()
                                + ","
                                + l.feature()
                                + "\n");
            }
        }
    }

    /** Reads a labels.csv as written by {@link #writeTo}. */
    public static List<Label> readLabels(Path file) throws IOException {
        List<Label> labels = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (line.isBlank() || line.startsWith("device_id,")) {
                continue;
            }
            String[] f = line.split(",", -1);
            labels.add(
                    new Label(
                            f[0],
                            Long.parseLong(f[1]),
                            Long.parseLong(f[2]),
                            f.length > 3 ? f[3] : "",
                            f.length > 4 ? f[4] : ""));
        }
        return labels;
    }

    /**
     * Interleaves the devices by time, as a live feed would, and (when {@code faults} is given)
     * adds duplicates, late re-sends and malformed records.
     */
    private void writeStream(Path file, List<List<Step>> devices, SplittableRandom faults)
            throws IOException {
        List<Step> all = new ArrayList<>();
        devices.forEach(all::addAll);
        all.sort(Comparator.comparingLong(Step::ts).thenComparing(Step::deviceId));
        List<Step> recent = new ArrayList<>();
        try (BufferedWriter w = Files.newBufferedWriter(file)) {
            for (Step s : all) {
                if (faults != null && faults.nextDouble() < 0.001) {
                    w.write(malformed(s, faults));
                    w.write('\n');
                    continue; // the step is lost to the feed, as a corrupted record would be
                }
                String line = json(s);
                w.write(line);
                w.write('\n');
                if (faults != null) {
                    double r = faults.nextDouble();
                    if (r < 0.003) {
                        w.write(line); // an at-least-once producer's duplicate
                        w.write('\n');
                    } else if (r < 0.004 && recent.size() > 50) {
                        w.write(json(recent.get(recent.size() - 50))); // a late re-send
                        w.write('\n');
                    }
                    recent.add(s);
                    if (recent.size() > 200) {
                        recent.subList(0, 100).clear();
                    }
                }
            }
        }
    }

    private static String json(Step s) {
        int device = Integer.parseInt(s.deviceId().substring(s.deviceId().indexOf('-') + 1));
        StringBuilder b = new StringBuilder(256);
        b.append("{\"device_id\":\"").append(s.deviceId()).append("\",\"ts\":");
        if (isoTimestamps(device)) {
            b.append('"').append(Instant.ofEpochMilli(s.ts())).append('"');
        } else {
            b.append(s.ts());
        }
        if (!withoutSeq(device)) {
            b.append(",\"seq\":").append(s.seq());
        }
        b.append(",\"values\":{");
        for (int f = 0; f < FEATURES.size(); f++) {
            if (f > 0) {
                b.append(',');
            }
            b.append('"').append(FEATURES.get(f)).append("\":");
            b.append(String.format(Locale.ROOT, "%.4f", s.values()[f]));
        }
        return b.append("}}").toString();
    }

    /** A record that must become a dead letter, one of several realistic ways. */
    private static String malformed(Step s, SplittableRandom r) {
        String good = json(s);
        return switch (r.nextInt(6)) {
            case 0 -> good.substring(0, good.length() / 2); // truncated
            case 1 -> good.replace("\"vibration_mm_s\":", "\"vibration_mm_sx\":"); // missing
            case 2 -> good.replaceFirst("\"pressure_bar\":[-0-9.]+", "\"pressure_bar\":NaN");
            case 3 -> good.replaceFirst("\"rpm\":[-0-9.]+", "\"rpm\":null");
            case 4 -> good.replaceFirst("\"ts\":(\"[^\"]*\"|[0-9]+),", "");
            default -> good.replaceFirst("\"device_id\":\"[^\"]*\"", "\"device_id\":\"\"");
        };
    }

    /** One pump: its constants and its latent state, stepped in time. */
    private static final class Device {
        final int index;
        final String id;
        final SplittableRandom r;
        final double baseLoad;
        final double dailyAmp;
        final double phase;
        final double ambientBase;
        final double rpmGain;
        final double tempGain;
        // latent state
        double drift;
        double operatingPoint;
        double target;
        double temperature;
        int silentFor;

        Device(int index, SplittableRandom r) {
            this.index = index;
            this.id = deviceId(index);
            this.r = r;
            baseLoad = 35 + 30 * r.nextDouble();
            dailyAmp = 6 + 10 * r.nextDouble();
            phase = 2 * Math.PI * r.nextDouble();
            ambientBase = 12 + 14 * r.nextDouble();
            rpmGain = 11 + 2 * r.nextDouble();
            tempGain = 0.3 + 0.1 * r.nextDouble();
            temperature = ambientBase + tempGain * baseLoad;
        }

        /** Anomaly windows in the test period: apart, after warm-up, of assorted kinds. */
        List<Label> planAnomalies(Spec spec) {
            List<Label> labels = new ArrayList<>();
            int slot = spec.testSteps() / Math.max(1, spec.anomaliesPerDevice());
            for (int a = 0; a < spec.anomaliesPerDevice(); a++) {
                String kind = KINDS.get((index + a * 7) % KINDS.size());
                int length =
                        switch (kind) {
                            case "spike" -> 3 + r.nextInt(4);
                            case "noise_burst" -> 20 + r.nextInt(30);
                            case "drift" -> 120 + r.nextInt(120);
                            default -> 60 + r.nextInt(60);
                        };
                int earliest = a * slot + 150;
                int latest = (a + 1) * slot - length - 60;
                int start = earliest + r.nextInt(Math.max(1, latest - earliest));
                String feature = featureFor(kind);
                long startTs = tsOf(spec.trainSteps() + start);
                labels.add(new Label(id, startTs, startTs + (length - 1) * STEP_MS, kind, feature));
            }
            return labels;
        }

        private String featureFor(String kind) {
            List<String> candidates =
                    switch (kind) {
                        case "stuck" -> List.of("rpm", "flow_lpm", "current_a", "temperature_c");
                        case "broken_correlation" ->
                                List.of("current_a", "flow_lpm", "pressure_bar");
                        default ->
                                List.of(
                                        "rpm",
                                        "current_a",
                                        "flow_lpm",
                                        "pressure_bar",
                                        "temperature_c",
                                        "vibration_mm_s");
                    };
            return candidates.get(r.nextInt(candidates.size()));
        }

        static long tsOf(int step) {
            return START_TS + step * STEP_MS;
        }

        List<Step> run(int firstStep, int steps, List<Label> labels) {
            List<Step> out = new ArrayList<>(steps);
            double[] stuckValue = new double[FEATURES.size()];
            double[] walk = new double[FEATURES.size()];
            for (int i = 0; i < steps; i++) {
                int step = firstStep + i;
                double day = 2 * Math.PI * step / 1440.0;
                // latent load: daily cycle, slow drift, smooth moves between operating points
                drift = 0.995 * drift + r.nextGaussian() * 0.6;
                if (r.nextDouble() < 1.0 / 400) {
                    target = (r.nextDouble() - 0.5) * 20;
                }
                operatingPoint += (target - operatingPoint) / 15;
                double load =
                        clamp(baseLoad + dailyAmp * Math.sin(day + phase) + drift + operatingPoint);
                double ambient = ambientBase + 4 * Math.sin(day + phase / 2);
                temperature += (ambient + tempGain * load - temperature) / 25 + noise(0.03);

                double[] v = new double[FEATURES.size()];
                v[0] = load + noise(0.4);
                v[1] = 900 + rpmGain * load + noise(6);
                v[2] = 4 + 0.09 * load + noise(0.06);
                v[3] = 0.08 * (v[1] - 900) + noise(0.3);
                v[4] = 1.5 + 0.025 * v[3] + noise(0.015);
                v[5] = temperature + noise(0.08);
                v[6] = 0.5 + 0.0015 * v[1] + noise(0.05);
                v[7] = ambient + noise(0.08);

                long ts = tsOf(step);
                boolean silent = silentFor > 0;
                for (Label l : labels) {
                    if (ts >= l.startTs() && ts <= l.endTs()) {
                        int f = FEATURES.indexOf(l.feature());
                        int k = (int) ((ts - l.startTs()) / STEP_MS);
                        int n = (int) ((l.endTs() - l.startTs()) / STEP_MS) + 1;
                        double scale = SCALE[f];
                        switch (l.kind()) {
                            case "spike" -> v[f] += 5 * scale;
                            case "level_shift" -> v[f] += 2.0 * scale;
                            case "drift" -> v[f] += 3.0 * scale * (k + 1) / n;
                            case "stuck" -> {
                                if (k == 0) {
                                    stuckValue[f] = v[f];
                                }
                                v[f] = stuckValue[f];
                            }
                            case "broken_correlation" -> {
                                if (k == 0) {
                                    walk[f] = v[f];
                                }
                                walk[f] += noise(0.25 * scale);
                                v[f] = walk[f];
                            }
                            case "noise_burst" -> v[f] += noise(1.2 * scale);
                            default -> throw new IllegalStateException(l.kind());
                        }
                    }
                }
                // Now and then a device goes quiet for a while (network, maintenance): not an
                // anomaly, but the job must reset its memory after a long silence.
                if (silentFor > 0) {
                    silentFor--;
                } else if (labels.isEmpty() || !insideOrNear(labels, ts)) {
                    if (r.nextDouble() < 1.0 / 3000) {
                        silentFor = 20 + r.nextInt(40);
                    }
                }
                if (!silent) {
                    out.add(new Step(id, ts, step, v));
                }
            }
            return out;
        }

        private static boolean insideOrNear(List<Label> labels, long ts) {
            for (Label l : labels) {
                if (ts >= l.startTs() - 200 * STEP_MS && ts <= l.endTs() + 60 * STEP_MS) {
                    return true;
                }
            }
            return false;
        }

        private double noise(double sd) {
            return r.nextGaussian() * sd;
        }

        private static double clamp(double load) {
            return Math.max(5, Math.min(100, load));
        }
    }

    /** A typical spread of each feature across the fleet, the unit of anomaly magnitudes. */
    private static final double[] SCALE = {8, 100, 0.7, 8, 0.2, 3, 0.15, 3};

    /** {@code java ... FleetGenerator DIR [seed]}: writes the default fleet into DIR. */
    public static void main(String[] args) throws IOException {
        if (args.length < 1) {
            System.err.println("usage: FleetGenerator OUTPUT_DIR [SEED]");
            System.exit(2);
        }
        Spec spec = Spec.defaults();
        if (args.length > 1) {
            Spec d = spec;
            spec =
                    new Spec(
                            Long.parseLong(args[1]),
                            d.devices(),
                            d.trainSteps(),
                            d.testSteps(),
                            d.anomaliesPerDevice());
        }
        new FleetGenerator(spec).writeTo(Path.of(args[0]));
    }
}
