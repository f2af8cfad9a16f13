package dev.vigil.testing;

import dev.vigil.model.ModelBundle;
import java.nio.file.Files;
import java.nio.file.Path;

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

    private static ModelBundle model;

    /** The committed model, loaded once per JVM. */
    public static synchronized ModelBundle model() {
        if (model == null) {
            model = ModelBundle.load(modelDir());
        }
        return model;
    }
}
