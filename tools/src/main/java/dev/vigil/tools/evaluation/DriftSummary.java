package dev.vigil.tools.evaluation;

import dev.vigil.model.ModelCard;
import dev.vigil.scoring.DriftWindow;
import dev.vigil.serde.InputFormat;
import dev.vigil.serde.ScoredStep;
import dev.vigil.serde.TelemetryEvent;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A stream against its model's training data, as the job's drift metrics measure it (README,
 * "Drift", {@link DriftWindow}) but over the whole stream as one window: per feature the mean shift
 * in training stds and the population stability index (null without bins), and the share of
 * forecast residuals above the card's q0.99, each device's first {@code warmup_steps} scores left
 * out as the job leaves out its warm-up (null without scores or without the quantile in the card).
 * For the reports of {@code vigil demo} and {@code vigil evaluate}.
 */
public final class DriftSummary {

    private final ModelCard card;
    private final DriftWindow drift;

    private DriftSummary(ModelCard card, DriftWindow drift) {
        this.card = card;
        this.drift = drift;
    }

    /**
     * Over the records of a JSONL stream that parse, and the scores of its steps in each device's
     * order (a silence that resets a device's memory starts another warm-up, which this does not
     * see).
     */
    public static DriftSummary of(ModelCard card, Path jsonl, List<ScoredStep> scores)
            throws IOException {
        DriftWindow drift = new DriftWindow(card, Integer.MAX_VALUE);
        InputFormat.Parser parser = InputFormat.JSON.parser(card.featureNames());
        try (BufferedReader lines = Files.newBufferedReader(jsonl, StandardCharsets.UTF_8)) {
            String line;
            while ((line = lines.readLine()) != null) {
                TelemetryEvent e = parser.parse(line.getBytes(StandardCharsets.UTF_8)).event();
                if (e != null) {
                    drift.observe(e.values, Float.NaN);
                }
            }
        }
        Map<String, Integer> seen = new HashMap<>();
        for (ScoredStep step : scores == null ? List.<ScoredStep>of() : scores) {
            if (seen.merge(step.deviceId, 1, Integer::sum) > card.warmupSteps()) {
                drift.observeResidual(step.dynamics * card.dynamicsScale());
            }
        }
        drift.close();
        return new DriftSummary(card, drift);
    }

    /** {@code {features: [{name, mean_shift_std, psi}], share_above_q99}} for a JSON report. */
    public Map<String, Object> json() {
        List<Map<String, Object>> features = new ArrayList<>();
        for (int f = 0; f < card.featureCount(); f++) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", card.names()[f]);
            m.put("mean_shift_std", orNull(drift.meanShift(f)));
            m.put("psi", orNull(drift.psi(f)));
            features.add(m);
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("features", features);
        out.put("share_above_q99", orNull(drift.shareAboveQuantile99()));
        return out;
    }

    /** One line: the largest PSI and the share of residuals above q0.99. */
    public String line() {
        String widest = null;
        float widestPsi = 0f;
        for (int f = 0; f < card.featureCount(); f++) {
            if (drift.psi(f) > widestPsi) {
                widestPsi = drift.psi(f);
                widest = card.names()[f];
            }
        }
        float share = drift.shareAboveQuantile99();
        return String.format(
                Locale.ROOT,
                "drift against the training data: largest PSI %s; %s of forecast residuals above"
                        + " the card's q0.99 (about 1 %% when the model fits)",
                widest == null
                        ? "none (no bins in the card)"
                        : String.format(Locale.ROOT, "%.3f (%s)", widestPsi, widest),
                Float.isNaN(share)
                        ? "an unknown share"
                        : String.format(Locale.ROOT, "%.2f %%", 100 * share));
    }

    private static Object orNull(float v) {
        return Float.isNaN(v) ? null : ReportFormat.round(v);
    }
}
