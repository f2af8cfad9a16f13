package dev.vigil.metrics;

import org.apache.flink.api.common.accumulators.Accumulator;

/**
 * The Pearson correlation of two models' scores over the steps both scored, on {@code log(1 +
 * score)} so that a few huge residuals do not decide it (README, "Shadow"). Kept as five sums and a
 * count, so that subtasks merge exactly: as an accumulator it is the whole run's correlation, as a
 * gauge one window's. {@link #observe} allocates nothing.
 */
public final class ScoreCorrelation implements Accumulator<double[], Double> {

    private static final long serialVersionUID = 1L;

    private long n;
    private double sx;
    private double sy;
    private double sxx;
    private double syy;
    private double sxy;

    /** One step's scores (threshold units, 0 or more) of the serving and the shadow model. */
    public void observe(float serving, float shadow) {
        // log(1 + x), not log1p: exact enough for x >= 0 and a third of its time (an intrinsic)
        double x = Math.log(1.0 + Math.max(0f, serving));
        double y = Math.log(1.0 + Math.max(0f, shadow));
        n++;
        sx += x;
        sy += y;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
    }

    public long count() {
        return n;
    }

    /** The correlation, or NaN with fewer than 2 steps or a model whose scores did not vary. */
    public double correlation() {
        if (n < 2) {
            return Double.NaN;
        }
        double cov = sxy - sx * sy / n;
        double vx = sxx - sx * sx / n;
        double vy = syy - sy * sy / n;
        return vx > 0 && vy > 0 ? cov / Math.sqrt(vx * vy) : Double.NaN;
    }

    /** Takes another's sums in place of this one's (a window ending). */
    public void copyFrom(ScoreCorrelation other) {
        n = other.n;
        sx = other.sx;
        sy = other.sy;
        sxx = other.sxx;
        syy = other.syy;
        sxy = other.sxy;
    }

    /** A pair {serving, shadow}. */
    @Override
    public void add(double[] pair) {
        observe((float) pair[0], (float) pair[1]);
    }

    @Override
    public Double getLocalValue() {
        return correlation();
    }

    @Override
    public void resetLocal() {
        n = 0;
        sx = sy = sxx = syy = sxy = 0;
    }

    @Override
    public void merge(Accumulator<double[], Double> other) {
        ScoreCorrelation o = (ScoreCorrelation) other;
        n += o.n;
        sx += o.sx;
        sy += o.sy;
        sxx += o.sxx;
        syy += o.syy;
        sxy += o.sxy;
    }

    @Override
    public ScoreCorrelation clone() {
        ScoreCorrelation c = new ScoreCorrelation();
        c.merge(this);
        return c;
    }
}
