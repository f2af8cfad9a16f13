package dev.vigil.testing;

import dev.vigil.cli.LocalRun;
import dev.vigil.model.ModelBundle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobExecutionResult;

/** Where the committed test data lives, found from any module's working directory. */
public final class Fixtures {

    private Fixtures() {}

    /** The repository root: the first ancestor holding testdata/model. */
    public static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.isDirectory(p.resolve("testdata/model"))) {
            p = p.getParent();
        }
        if (p == null) {
            throw new IllegalStateException("cannot find testdata/model above " + Path.of(""));
        }
        return p;
    }

    public static Path modelDir() {
        return repoRoot().resolve("testdata/model");
    }

    /**
     * The configuration of a bounded test run of the whole job against {@code bootstrapServers}
     * (see {@link LocalRun}): the committed model, output topics and ids suffixed with {@code run},
     * parallelism 2. Callers add or override keys.
     */
    public static Map<String, String> boundedRun(
            String bootstrapServers, String run, Path checkpoints, String checkpointInterval) {
        return LocalRun.config(
                bootstrapServers, modelDir(), run, checkpoints, checkpointInterval, 2);
    }

    /** The output topics {@link #boundedRun} writes to. */
    public static List<String> outputTopics(String run) {
        return LocalRun.outputTopics(run);
    }

    /** A count the finished job accumulated (see {@code dev.vigil.pipeline.Metrics}). */
    public static long accumulated(JobExecutionResult result, String name) {
        return ((Number) result.getAccumulatorResult(name)).longValue();
    }

    private static ModelBundle model;

    /** The committed model, loaded once per JVM. */
    public static synchronized ModelBundle model() {
        if (model == null) {
            model = ModelBundle.load(modelDir());
        }
        return model;
    }
}
