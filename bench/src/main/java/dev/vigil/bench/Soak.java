package dev.vigil.bench;

import com.sun.management.GarbageCollectorMXBean;
import dev.vigil.config.VigilConfig;
import dev.vigil.job.VigilJob;
import dev.vigil.pipeline.VigilPipeline;
import dev.vigil.serde.InputFormat;
import dev.vigil.tools.LocalRun;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * {@code ./vigil bench --soak MINUTES}: the batched job, unbounded, fed at a steady rate by a fixed
 * fleet for that long, sampling the memory that could grow: the process's resident set (the JVM
 * with the in-process broker, Flink's mini cluster, RocksDB and ONNX Runtime, all native memory
 * included), the heap after the last garbage collection, and RocksDB's files on disk. Flat means
 * the state, the buffers and the native libraries reached a steady size: the last quarter of the
 * run is compared with the second (the first is warm-up).
 */
final class Soak {

    private final Bench bench;
    private final int minutes;
    private final double rate;

    Soak(Bench bench, int minutes, double rate) {
        this.bench = bench;
        this.minutes = minutes;
        this.rate = rate;
    }

    /** One sample of the run. */
    record Sample(
            double minute,
            long recordsIn,
            double rssMb,
            double heapAfterGcMb,
            double heapUsedMb,
            double rocksDbDiskMb) {}

    Map<String, Object> run() throws Exception {
        Path rocksDb = Files.createTempDirectory("soak-rocksdb-");
        VigilConfig config =
                bench.config(
                        "soak",
                        Bench.LIVE,
                        false,
                        false,
                        Map.of("state.backend.rocksdb.localdir", rocksDb.toString()));
        StreamExecutionEnvironment env = VigilPipeline.environment(config);
        VigilJob.define(env, config, bench.bundle());
        JobClient job = env.executeAsync("bench-soak");
        List<Sample> samples = new ArrayList<>();
        long start = System.nanoTime();
        long everyMs = Math.max(10_000, minutes * 60_000L / 30); // about 30 samples
        ScheduledExecutorService sampler = Executors.newSingleThreadScheduledExecutor();
        sampler.scheduleAtFixedRate(
                () -> {
                    Sample s = sample(job, rocksDb, (System.nanoTime() - start) / 60e9);
                    synchronized (samples) {
                        samples.add(s);
                    }
                    System.out.printf(
                            Locale.ROOT,
                            "%6.1f min  records in %10d  rss %7.1f MB  heap after gc %6.1f MB"
                                    + "  (used %6.1f)  rocksdb on disk %6.1f MB%n",
                            s.minute(),
                            s.recordsIn(),
                            s.rssMb(),
                            s.heapAfterGcMb(),
                            s.heapUsedMb(),
                            s.rocksDbDiskMb());
                },
                everyMs,
                everyMs,
                TimeUnit.MILLISECONDS);
        long sent;
        try {
            sent =
                    bench.produce(
                            Bench.LIVE,
                            InputFormat.JSON,
                            bench.devices(),
                            Integer.MAX_VALUE,
                            rate,
                            minutes * 60_000L);
        } finally {
            sampler.shutdown();
            sampler.awaitTermination(1, TimeUnit.MINUTES);
            job.cancel().get(1, TimeUnit.MINUTES);
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("soak_minutes", minutes);
        out.put("soak_rate_eps", Math.round(rate));
        out.put("soak_devices", bench.devices());
        out.put("soak_events_sent", sent);
        List<Sample> all;
        synchronized (samples) {
            all = List.copyOf(samples);
        }
        if (all.size() >= 4) {
            List<Sample> second = all.subList(all.size() / 4, all.size() / 2);
            List<Sample> last = all.subList(all.size() * 3 / 4, all.size());
            change(out, "rss_mb", second, last, Sample::rssMb);
            change(out, "heap_after_gc_mb", second, last, Sample::heapAfterGcMb);
            change(out, "rocksdb_disk_mb", second, last, Sample::rocksDbDiskMb);
        }
        out.put("soak_samples", all);
        LocalRun.deleteRecursively(rocksDb);
        return out;
    }

    /** The mean of a quantity over the second and the last quarter of the run, and its change. */
    private static void change(
            Map<String, Object> out,
            String name,
            List<Sample> second,
            List<Sample> last,
            java.util.function.ToDoubleFunction<Sample> f) {
        double a = second.stream().mapToDouble(f).average().orElse(Double.NaN);
        double b = last.stream().mapToDouble(f).average().orElse(Double.NaN);
        out.put(name + "_second_quarter", round(a));
        out.put(name + "_last_quarter", round(b));
        out.put(name + "_change_pct", round(100 * (b - a) / a));
    }

    private static Sample sample(JobClient job, Path rocksDb, double minute) {
        long recordsIn = -1;
        try {
            Object n = job.getAccumulators().get(10, TimeUnit.SECONDS).get("records_in");
            recordsIn = n instanceof Number number ? number.longValue() : -1;
        } catch (Exception e) {
            // a sample without the count rather than none
        }
        MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        long afterGc = 0;
        for (var gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            if (gc instanceof GarbageCollectorMXBean hotspot && hotspot.getLastGcInfo() != null) {
                // the old generation's collector sees the whole heap; take the largest view
                long used =
                        hotspot.getLastGcInfo().getMemoryUsageAfterGc().values().stream()
                                .mapToLong(MemoryUsage::getUsed)
                                .sum();
                afterGc = Math.max(afterGc, used);
            }
        }
        return new Sample(
                round(minute),
                recordsIn,
                round(rssBytes() / 1048576.0),
                round(afterGc / 1048576.0),
                round(heap.getUsed() / 1048576.0),
                round(directoryBytes(rocksDb) / 1048576.0));
    }

    /** The process's resident set (VmRSS of /proc/self/status), or -1 where there is none. */
    static long rssBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // not Linux
        }
        return -1;
    }

    private static long directoryBytes(Path dir) {
        try (var files = Files.walk(dir)) {
            return files.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
        } catch (IOException | java.io.UncheckedIOException e) {
            return -1; // files come and go under compaction: a missed sample, not a failure
        }
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }
}
