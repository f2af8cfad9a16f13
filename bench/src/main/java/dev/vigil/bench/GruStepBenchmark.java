package dev.vigil.bench;

import dev.vigil.model.GruModel;
import dev.vigil.model.ModelBundle;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * One ONNX Runtime GRU step at batch sizes 1 to 1024, through the job's own {@link GruModel}
 * (direct buffers, bound tensors, one intra-op thread). Divide by the batch for the cost per row.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class GruStepBenchmark {

    @Param({"1", "4", "16", "64", "256", "1024"})
    public int batch;

    private GruModel model;

    @Setup(Level.Trial)
    public void open() {
        Path dir = Path.of(System.getProperty("vigil.bench.model", "bench/model"));
        model = GruModel.open(ModelBundle.load(dir), 1024);
        SplittableRandom r = new SplittableRandom(1);
        for (int i = 0; i < model.x().capacity(); i++) {
            model.x().put(i, (float) r.nextGaussian());
        }
        for (int i = 0; i < model.h().capacity(); i++) {
            model.h().put(i, (float) r.nextGaussian() * 0.3f);
        }
    }

    @Benchmark
    public void step() {
        model.run(batch);
    }

    @TearDown(Level.Trial)
    public void close() {
        model.close();
    }
}
