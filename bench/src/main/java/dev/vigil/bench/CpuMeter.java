package dev.vigil.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;

/**
 * The CPU time a job run spends, from Linux's per-thread scheduler statistics ({@code
 * /proc/self/task/TID/schedstat}: nanoseconds on a CPU). The bench runs the broker, the mini
 * cluster and the job in one JVM; the run's share is the threads that start after {@link #start()}
 * (the job's tasks, its Kafka consumer and producers, its timer threads, any native thread it
 * starts) and the threads of the process's pools that the job uses: the garbage collector's ({@code
 * GC Thread#N}, {@code G1 ...}, {@code VM Thread}) and RocksDB's flushes and compactions ({@code
 * rocksdb:...}, one pool per process, started by the first run). Left out: the broker, the JIT
 * compiler, the bench's threads and the cluster's own ({@code flink-pekko...}, {@code
 * jobmanager-...}: pools that grow when a run needs more threads, so that a new one would count in
 * one run and not in the next).
 *
 * <p>A daemon thread reads every thread's time each {@value #PERIOD_MS} ms, so that a thread that
 * ends with the job is counted up to its last reading. A new thread's name is read again at every
 * reading (a thread starts with its creator's name and takes its own a moment later); which threads
 * count is decided by their last name. Readings cost one or two file reads per thread, the same in
 * every run.
 */
final class CpuMeter implements AutoCloseable {

    private static final Path TASKS = Path.of("/proc/self/task");
    static final long PERIOD_MS = 100;

    /** One reading: when, and the CPU nanoseconds of every thread that may count. */
    private record Reading(long atNanos, Map<Long, Long> cpuNanos) {}

    /**
     * The CPU the counted threads spent from one reading to another, and the time between them: the
     * window asked for, widened to the readings around it.
     */
    record Spent(double cpuSeconds, double seconds, Map<String, Double> byName) {}

    private final List<Reading> readings = new ArrayList<>();
    // The threads alive at start (read by the reader thread only), and every thread's last name.
    private final Set<Long> before = new HashSet<>();
    private final Map<Long, String> names = new ConcurrentHashMap<>();
    private final CountDownLatch started = new CountDownLatch(1);
    private final Thread reader;
    private volatile boolean stopped;

    private CpuMeter() {
        reader = new Thread(this::run, "bench-cpu-meter");
        reader.setDaemon(true);
    }

    /** Whether this machine has the per-thread statistics (Linux). */
    static boolean available() {
        return Files.isDirectory(TASKS);
    }

    /** Starts counting: the threads alive now, other than the pools', are not. */
    static CpuMeter start() throws InterruptedException {
        CpuMeter meter = new CpuMeter();
        meter.reader.start();
        meter.started.await();
        return meter;
    }

    private void run() {
        try {
            for (long tid : tids()) {
                before.add(tid);
            }
            read();
            started.countDown();
            while (!stopped) {
                Thread.sleep(PERIOD_MS);
                read();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            started.countDown();
        }
    }

    private void read() {
        long at = System.nanoTime();
        Map<Long, Long> cpu = new HashMap<>();
        for (long tid : tids()) {
            boolean old = before.contains(tid);
            if (!old || !names.containsKey(tid)) { // an old thread keeps its name
                String name = comm(tid);
                if (name == null) {
                    continue; // it ended
                }
                names.put(tid, name);
            }
            if (!old || pool(names.get(tid))) {
                long ns = cpuNanos(tid);
                if (ns >= 0) {
                    cpu.put(tid, ns);
                }
            }
        }
        synchronized (readings) {
            readings.add(new Reading(at, cpu));
        }
    }

    /** A pool of the process that the job's work runs on, whenever it was started. */
    private static boolean pool(String name) {
        return name.startsWith("GC Thread")
                || name.startsWith("G1 ")
                || name.equals("VM Thread")
                || name.startsWith("rocksdb:");
    }

    /** A thread started in a run that is not the run's: the cluster's and the JIT compiler's. */
    private static boolean notTheJobs(String name) {
        return name.startsWith("flink-pekko")
                || name.startsWith("jobmanager-")
                || name.startsWith("C1 CompilerThre")
                || name.startsWith("C2 CompilerThre");
    }

    /**
     * What the counted threads spent between two {@link System#nanoTime()} instants, to within a
     * reading: from the last reading at or before {@code fromNanos} to the first at or after {@code
     * toNanos}. A thread that started in between counts from zero; one that ended, to its last
     * reading.
     */
    Spent spent(long fromNanos, long toNanos) {
        List<Reading> all;
        synchronized (readings) {
            all = List.copyOf(readings);
        }
        int from = 0;
        while (from + 1 < all.size() && all.get(from + 1).atNanos() <= fromNanos) {
            from++;
        }
        int to = from;
        while (to + 1 < all.size() && all.get(to).atNanos() < toNanos) {
            to++;
        }
        Map<Long, Long> last = new HashMap<>();
        for (int i = from; i <= to; i++) {
            last.putAll(all.get(i).cpuNanos());
        }
        Map<Long, Long> base = all.get(from).cpuNanos();
        long ns = 0;
        Map<String, Double> byName = new HashMap<>();
        for (Map.Entry<Long, Long> e : last.entrySet()) {
            String name = names.get(e.getKey());
            if (notTheJobs(name)) {
                continue;
            }
            long spent = e.getValue() - base.getOrDefault(e.getKey(), 0L);
            ns += spent;
            byName.merge(name.replaceAll("[0-9]+", "N"), spent / 1e9, Double::sum);
        }
        return new Spent(ns / 1e9, (all.get(to).atNanos() - all.get(from).atNanos()) / 1e9, byName);
    }

    /** Stops the readings (within a period: an interrupt could cut a file read short). */
    @Override
    public void close() throws InterruptedException {
        stopped = true;
        reader.join();
    }

    private static List<Long> tids() {
        List<Long> tids = new ArrayList<>();
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(TASKS)) {
            for (Path task : tasks) {
                tids.add(Long.parseLong(task.getFileName().toString()));
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list " + TASKS, e);
        }
        return tids;
    }

    /** The thread's time on a CPU in nanoseconds, or -1 if it has ended. */
    private static long cpuNanos(long tid) {
        String stat = read(TASKS.resolve(tid + "/schedstat"));
        if (stat == null) {
            return -1;
        }
        int space = stat.indexOf(' ');
        return Long.parseLong(space < 0 ? stat.trim() : stat.substring(0, space));
    }

    /** The thread's name (Linux keeps its first 15 characters), or null if it has ended. */
    private static String comm(long tid) {
        String comm = read(TASKS.resolve(tid + "/comm"));
        return comm == null ? null : comm.trim();
    }

    private static String read(Path file) {
        try {
            return new String(Files.readAllBytes(file), StandardCharsets.US_ASCII);
        } catch (NoSuchFileException e) {
            return null; // the thread ended
        } catch (IOException e) {
            if (Files.notExists(file)) {
                return null;
            }
            throw new IllegalStateException("cannot read " + file, e);
        }
    }
}
