#!/usr/bin/env python3
"""Train Vigil's GRU forecaster on a fleet's JSONL history and export the ONNX step model + card.

The step model is the contract of DESIGN.md ("Model contract"):
    inputs  x [batch, F] normalised features, h [batch, H] hidden state
    outputs h_next [batch, H], y [batch, F] forecast of the next step's normalised features
Scoring, calibrated here on training data only, is the job's (README "Scoring"), over the
target features (a feature is "context" when it is binary or constant in the training data, or
named by --context: the model sees it, the scores do not; a counter, a feature that only rises
or only falls from step to step, and a target that wanders, whose second half of history lies
mostly outside its first half's range on the median device (a random walk), are left out unless
--features names them):
    dynamics  r_i = (x_i - y_prev_i) / residual_scale_i,  mean over targets of r_i^2; a target
              forecast no better than its device's own mean would be (its residual_scale at
              least its spread within a device: a level each device holds) has a residual_scale
              of at least --residual-floor (0.5) times the targets' median
    level     each target's moving average over the level window against the device's own
              profile (learned over its first profile_steps steps, then adapting on quiet steps
              only), in the device's own unit of deviation: the largest over targets; while the
              profile is learned, from 5 % of its steps, against the profile so far in a unit
              blended from the fleet's, with a scale of its own (score.level.learning); with
              --gate-learning the steps above it are kept out of the profile
    stuck     the longest run of steps in which a watched target (one whose normal readings
              rarely repeat) repeated its value exactly
    variability  each target's log moving average of its squared step-to-step change against the
              device's own mean and spread of it (learned over the level's profile steps, then
              adapting target by target on quiet steps): the largest distance over targets
    correlation  the distance of the step's targets, as the model sees them, from the normal
              subspace: the fewest principal directions of the training steps that hold 90 % of
              their variance (none when that takes every direction: targets that move each on its
              own); no state, nothing learned from a device
    combined  max(dynamics / dynamics_scale, level / level_scale, stuck / stuck_scale,
              variability / variability_scale, correlation / correlation_scale), threshold 1
With --normalisation device, the model sees each target normalised by the device's own profile
(its mean and spread, blended in from the fleet's over the profile's learning steps), not by the
fleet's: training streams every device through its profile exactly as the job does.
With --dynamics-scale device the job holds each device's dynamics score to its own level: it
learns the score's root mean square over the device's first device_steps steps after warm-up,
in device_blocks (10) blocks, leaving out the one or two far above the others (a fault while it
learns), then adapting it on quiet steps with device_half_life_steps, and divides the score by
max(device_floor, min(device_ceiling, that / the card's dynamics rms)), the same over the held-out
steps calibrated here: a noisy device is held to its own level (at most device_ceiling, 4, times
less sensitive), a quiet one made up to 1 / device_floor times as sensitive (0.5; 1 with
--normalisation device); while it learns, once device_learning_blocks (3) blocks are complete, it
is held to the level of those. This is the default since 0.6.0; with --dynamics-scale fleet every
device is scored on the fleet's scale.

Usage: train.py --train FILE.jsonl --out DIR [--labels labels.csv] [--hidden 64] [--epochs 40]
                [--max-minutes 10] [--seed 7] [--features a,b,c] [--context a,b | none]
                [--gap-minutes 10] [--threshold-quantile 0.99] [--no-level] [--no-stuck]
                [--no-variability] [--no-correlation] [--normalisation fleet | device]
                [--dynamics-scale fleet | device]
                [--residual-floor 0.5]
Writes DIR/model.onnx, DIR/model.json (the card) and DIR/golden.json (vectors a Java test checks).
"""
import argparse
import csv
from array import array
import datetime as dt
import hashlib
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from torch import nn

WARMUP_STEPS = 20          # steps after a start or reset before the GRU's forecast is trusted
WINDOW = 160               # steps per training window (--window), shorter for short histories
MIN_WINDOW = WARMUP_STEPS + 11  # a window's loss counts the forecasts after the warm-up: 10 or more
THRESHOLD_QUANTILE = 0.99  # of held-out normal step scores: the dynamics score's unit
REPORTED_QUANTILES = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]
# A target whose forecast misses are at least its spread within a device (a level each device holds,
# with rare steps: the model forecasts it no better than the device's own mean) has a residual scale
# of at least this times the targets' median (--residual-floor): its misses are the model's, not the
# device's, and divided by a small scale they would outweigh the other targets' (EVALUATION.md,
# "Fleets of other shapes").
RESIDUAL_FLOOR = 0.5
# The level score (README "Scoring"; measurements in EVALUATION.md).
PROFILE_STEPS = 1000       # steps a device's profile is learned over (fewer for short histories)
DYNAMICS_HALF_LIFE = 20000  # steps: how slowly a device's learned level of forecast residual adapts
                            # (on quiet steps only); 10 times the profile's, EVALUATION.md
# The smallest divisor of a device's dynamics score: a device whose forecast residuals run quieter
# than the fleet's is made at most twice as sensitive (SMAP 0.702 -> 0.750, MSL 0.570 -> 0.603,
# synthetic unchanged against 1, which makes no device more sensitive: EVALUATION.md). 1 with
# --normalisation device, whose inputs already hold each device to its own spread (0.5 cost
# MSL 0.620 -> 0.561 and SMAP 0.616 -> 0.573 there).
DYNAMICS_DEVICE_FLOOR = 0.5
# The blocks a device's level is learned in: the one or two far above the others (a fault while it
# learns) are left out (cold ./vigil demo 43 -> 48 of 48 labels, SMAP 0.750 -> 0.748, MSL 0.603,
# synthetic 0.990 -> 1.0: EVALUATION.md).
DYNAMICS_DEVICE_BLOCKS = 10
# The largest divisor: a device is made at most 4 times less sensitive than the fleet, whatever it
# learned (a device faulty through most of its learning stays audible); 3 to 10 cost nothing on
# SMAP, MSL or the synthetic fleet, 2 cost SMAP 0.008 (EVALUATION.md).
DYNAMICS_DEVICE_CEILING = 4.0
LEVEL_WINDOW = 60          # steps of the moving average the level compares (alpha = 2 / (W + 1))
LEVEL_HALF_LIFE = 2000     # steps: how slowly a learned profile adapts (on quiet steps only)
LEVEL_FLOOR = 0.01         # the device's unit of deviation is at least this (normalised units)
LEVEL_DEVICE_QUANTILE = 0.95  # level scale: this quantile over devices of each one's largest level
# While a device's profile is learned (a new device, a model change), the level is measured against
# the profile so far once it has this share of its steps, in a unit blended from the fleet's. With
# DYNAMICS_LEARNING_BLOCKS, test splits replayed cold: MSL 0.500 -> 0.594, SMAP 0.670 -> 0.661,
# synthetic 0.990 -> 0.970 (EVALUATION.md, "A device that starts cold").
LEVEL_LEARNING_SHARE = 0.05
# While a device learns its level of forecast residual, it is held to its blocks so far once this
# many are complete (the blocks' outlier rule needs three; from the first, MSL gained 0.009 more
# and the synthetic fleet lost one more episode in the probe).
DYNAMICS_LEARNING_BLOCKS = 3
# The variability score: how much a target moves from step to step (the moving average, over this
# many steps, of its squared change) against the device's own normal, in log units. Learned over
# the level's profile steps from this step on (the average has settled), adapting like the level's
# profile (LEVEL_HALF_LIFE, on its quiet steps). Probed on SMAP, MSL and the synthetic pumps
# (EVALUATION.md, "How much a device's readings move"): W 50, floor 0.1, q0.95.
VARIABILITY_WINDOW = 50
VARIABILITY_FLOOR = 0.1    # fleet standard deviations: a change this small counts as none
VARIABILITY_MIN_VAR = 0.01  # the learned spread of the log is at least 0.1 (a constant target's)
# The correlation score: the distance of a step's targets (as the model sees them) from the normal
# subspace, the fewest principal directions of training's steps that hold this share of their
# variance (no score when that takes every direction). Probed on the synthetic and shape fleets
# (EVALUATION.md, "Against the fleet's normal relation"): 0.8 to 0.95 gave the same there.
CORRELATION_VARIANCE = 0.9
# Its scale: the largest distance over training's devices' normal histories, not the level's
# quantile: it never adapts to a device, so a training device above its scale would page for as
# long as it ran (servers: 2 more false episodes at the 0.95 quantile, none at the largest).
CORRELATION_DEVICE_QUANTILE = 1.0
NORMALISATION_FLOOR = 0.1  # per-device normalisation: a device's spread is at least this (fleet
                           # standard deviations): it magnifies a quiet device's readings 10x at most
STUCK_MAX_REPEATS = 0.01   # a target is watched for stuck readings when fewer of its normal steps
                           # than this repeat the previous value exactly (held or quantized
                           # signals repeat all the time: a repeat tells nothing there)


def parse_ts(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


def read_fleet(path, features):
    """Per device: sorted, de-duplicated (times, values) with the same validation as the job. Each
    record's numbers are kept as an array of doubles beside its names (one tuple per distinct set
    of names), not as the parsed object: a few hundred bytes per record instead of kilobytes, so
    that a fleet of millions of records fits in memory."""
    first_names = None
    counts = {}
    layouts = {}  # each distinct tuple of a record's numeric names, kept once
    records = []
    with open(path, "rb") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if not isinstance(e, dict) or not isinstance(e.get("values"), dict):
                continue
            dev, ts = e.get("device_id"), parse_ts(e.get("ts"))
            if not isinstance(dev, str) or not dev or ts is None:
                continue
            names, numbers = [], array("d")
            for k, v in e["values"].items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    names.append(k)
                    try:
                        numbers.append(float(v))
                    except OverflowError:  # an integer beyond any double: not finite to the job
                        numbers.append(math.inf)
            names = layouts.setdefault(tuple(names), tuple(names))
            if first_names is None:
                first_names = names
            for k in names:
                counts[k] = counts.get(k, 0) + 1
            records.append((dev, ts, e.get("seq"), names, numbers))
    if not records:
        sys.exit(f"no readable records in {path}")
    if features is None:
        # Every name present in (nearly) every record, in the order the first record gives them.
        need = 0.99 * len(records)
        features = [k for k in first_names if counts.get(k, 0) >= need]
        features += sorted(k for k in counts if counts[k] >= need and k not in features)
    # Per layout, where each feature sits in its records' numbers (None: the record lacks it).
    places = {}
    for names in layouts.values():
        index = {k: i for i, k in enumerate(names)}
        where = [index.get(k) for k in features]
        places[id(names)] = None if None in where else where
    rows = {}
    for dev, ts, seq, names, numbers in records:
        where = places[id(names)]
        if where is None:
            continue
        x = array("d", (numbers[i] for i in where))
        if not all(math.isfinite(v) for v in x):
            continue
        rows.setdefault(dev, []).append((seq if isinstance(seq, int) else None, ts, x))
    del records
    if not rows:
        sys.exit(f"no record in {path} has every feature ({', '.join(features)}) as a finite number")
    fleet = {}
    for dev, rs in rows.items():
        rs.sort(key=lambda r: (r[1], r[0] if r[0] is not None else 0))
        kept, last = [], None
        for seq, ts, x in rs:
            key = seq if seq is not None else ts
            if last is not None and key <= last:
                continue  # the job's order guard drops these too
            last = key
            kept.append((ts, x))
        fleet[dev] = (np.array([k[0] for k in kept], dtype=np.int64),
                      np.array([k[1] for k in kept], dtype=np.float64))
    return features, fleet


COUNTER_RISING = 0.5     # a counter rises on at least this share of steps ...
COUNTER_FALLING = 0.001  # ... and falls on at most this share (a reset when its device restarts)


def without_counters(features, fleet):
    """The features and fleet without the counters: features that only ever rise (or only fall)
    from step to step in the training data, but for rare resets (uptime, energy or bytes totals, a
    cycle number). A counter's value leaves its training range and never comes back, so every
    score would take it as anomalous; the model and the scores leave it out (its rate, computed
    upstream, is the feature to watch). --features keeps any feature named."""
    steps, rising, falling = 0, np.zeros(len(features)), np.zeros(len(features))
    for ts, x in fleet.values():
        d = np.diff(x, axis=0)
        steps, rising, falling = steps + len(d), rising + (d > 0).sum(axis=0), falling + (d < 0).sum(axis=0)
    counters = [i for i in range(len(features)) if steps
                and max(rising[i], falling[i]) >= COUNTER_RISING * steps
                and min(rising[i], falling[i]) <= COUNTER_FALLING * steps]
    if not counters:
        return features, fleet
    if len(counters) == len(features):
        sys.exit(f"every feature is a counter ({', '.join(features)}): give their rates, or name"
                 " the features to keep with --features")
    names = [features[i] for i in counters]
    print(f"left out as counters (they only rise, or only fall, from step to step): {', '.join(names)}"
          " (--features keeps them)")
    keep = [i for i in range(len(features)) if i not in counters]
    return keep_columns(features, fleet, keep)


def keep_columns(features, fleet, keep):
    """The features and fleet with only the columns keep (indexes, in order)."""
    return [features[i] for i in keep], {dev: (ts, x[:, keep]) for dev, (ts, x) in fleet.items()}


WANDER_SHARE = 0.5            # a target wanders when, on the median device, at least this share
WANDER_RANGE = (0.005, 0.995)  # of the second half of its history lies outside this central range
WANDER_MIN_STEPS = 400        # of the first half (devices with at least this much history)


def without_wanderers(features, fleet, roles):
    """The features, fleet and roles without the targets that wander: features with no stationary
    normal in the training data (a random walk, a position, a level that drifts and never comes
    back), whose second half of history lies mostly outside the first half's range on the median
    device. The level score measures a device against its own normal, which such a feature does not
    have: once it leaves its training range it holds an episode open, and as the model's input it
    is out of range too. Binary and constant features are context, never tested here; when every
    target wanders, none is left out (a fleet of one watched feature keeps it), with a warning.
    --features keeps any feature named."""
    targets = [i for i, r in enumerate(roles) if r == "target"]
    shares = {i: [] for i in targets}
    for ts, x in fleet.values():
        if len(x) < WANDER_MIN_STEPS:
            continue
        half = len(x) // 2
        lo, hi = np.quantile(x[:half, targets], WANDER_RANGE, axis=0)
        rest = x[half:, targets]
        outside = ((rest < lo) | (rest > hi)).mean(axis=0)
        for j, i in enumerate(targets):
            shares[i].append(float(outside[j]))
    wander = [i for i in targets if shares[i] and float(np.median(shares[i])) >= WANDER_SHARE]
    if not wander:
        return features, fleet, roles
    described = ", ".join(f"{features[i]} ({np.median(shares[i]):.0%})" for i in wander)
    if len(wander) == len(targets):
        print(f"warning: every target wanders (the share of the second half of its history outside"
              f" the first half's central 99 %, on the median device): {described}; kept, so the"
              " level score will page once one leaves its training range")
        return features, fleet, roles
    print(f"left out as wandering (no stationary normal: the share of the second half of its history"
          f" outside the first half's central 99 %, on the median device): {described}"
          " (--features keeps them)")
    keep = [i for i in range(len(features)) if i not in wander]
    return (*keep_columns(features, fleet, keep), [roles[i] for i in keep])


def read_labels(path):
    spans = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            spans.setdefault(row["device_id"], []).append((int(row["start_ts"]), int(row["end_ts"])))
    return spans


def segments(fleet, labels, gap_ms):
    """Contiguous normal runs: split at silences longer than the gap and around labelled spans.
    Each is (device, times, values, index of its first step in the device's history)."""
    out = []
    for dev, (ts, x) in fleet.items():
        bad = np.zeros(len(ts), dtype=bool)
        for start, end in labels.get(dev, []):
            bad |= (ts >= start) & (ts <= end)
        start = 0
        for i in range(1, len(ts) + 1):
            cut = i == len(ts) or bad[i] != bad[i - 1] or ts[i] - ts[i - 1] > gap_ms
            if cut:
                if not bad[start]:
                    out.append((dev, ts[start:i], x[start:i], start))
                start = i
    return out


class Forecaster(nn.Module):
    def __init__(self, features, hidden):
        super().__init__()
        self.gru = nn.GRU(features, hidden)
        self.head = nn.Linear(hidden, features)

    def forward(self, x, h0=None):  # x [T, B, F]
        hs, h = self.gru(x, h0)
        return self.head(hs), h      # forecast of step t+1 made at step t


class Step(nn.Module):
    """One serving step with the trained weights: (x, h) -> (h_next, y)."""

    def __init__(self, trained):
        super().__init__()
        f, hdim = trained.gru.input_size, trained.gru.hidden_size
        self.cell = nn.GRUCell(f, hdim)
        self.cell.weight_ih.data.copy_(trained.gru.weight_ih_l0.data)
        self.cell.weight_hh.data.copy_(trained.gru.weight_hh_l0.data)
        self.cell.bias_ih.data.copy_(trained.gru.bias_ih_l0.data)
        self.cell.bias_hh.data.copy_(trained.gru.bias_hh_l0.data)
        self.head = trained.head

    def forward(self, x, h):
        h_next = self.cell(x, h)
        return h_next, self.head(h_next)


def windows(segs, length, count, rng):
    usable = [s for s in segs if len(s) > length]
    if not usable:
        longest = max((len(s) for s in segs), default=0)
        fix = (f"give a --window below it, of at least {MIN_WINDOW} (the warm-up of {WARMUP_STEPS}"
               " steps and 10 forecasts), or longer runs" if longest > MIN_WINDOW else
               f"training needs runs whose part is longer than {MIN_WINDOW} steps (the warm-up of"
               f" {WARMUP_STEPS} and 10 forecasts): give longer histories")
        sys.exit(f"no normal run's part to train on is longer than the window of {length} steps"
                 f" (the longest has {longest}): {fix} (training uses the first 70 % of each run,"
                 " validation the next 15 %; runs are cut at silences longer than --gap-minutes: a"
                 " fleet reporting less often needs a longer gap, and the job the same"
                 " vigil.scoring.gap)")
    weights = np.array([len(s) - length for s in usable], dtype=np.float64)
    picks = rng.choice(len(usable), size=count, p=weights / weights.sum())
    out = np.empty((length, count, usable[0].shape[1]), dtype=np.float32)
    for j, k in enumerate(picks):
        s = usable[k]
        o = rng.integers(0, len(s) - length)
        out[:, j, :] = s[o:o + length]
    return torch.from_numpy(out)


def training_window(fit_runs, requested):
    """The steps per training window: --window when given; else WINDOW, or, when the runs whose
    training parts are longer than that hold less than half of the training steps (a fleet of
    short histories: new devices, metrics sampled every few minutes), the length less one of the
    shortest part among the longest ones that hold half of the steps, so that at least half of the
    steps are trained on; never below MIN_WINDOW."""
    if requested is not None:
        return requested
    lengths = sorted((len(r) for r in fit_runs), reverse=True)
    half, held, median = sum(lengths) / 2, 0, 0
    for n in lengths:
        held, median = held + n, n
        if held >= half:
            break
    if median > WINDOW:
        return WINDOW
    window = max(MIN_WINDOW, median - 1)
    print(f"training window: {window} steps (the runs longer than {WINDOW} steps hold less than half"
          " of the training steps; --window sets it)")
    return window


def validation_runs(seg_inputs, fit_end, val_end):
    """Each run's validation part (steps fit_end..val_end), or, when no run's part is long enough
    for a window's loss to count a forecast (MIN_WINDOW), each part with the WARMUP_STEPS + 1 steps
    before it, so that the loss counts the validation part's own forecasts after the warm-up."""
    parts = [xn[i:j] for xn, i, j in zip(seg_inputs, fit_end, val_end)]
    if max(len(v) for v in parts) - 1 >= MIN_WINDOW:
        return parts
    return [xn[max(0, i - WARMUP_STEPS - 1):j] for xn, i, j in zip(seg_inputs, fit_end, val_end)]


def loss_on(model, batch, targets):
    """Next-step forecast error over the target features (context features are inputs only)."""
    y, _ = model(batch[:-1])
    return ((y[WARMUP_STEPS:, :, targets] - batch[1 + WARMUP_STEPS:, :, targets]) ** 2).mean()


def feature_roles(features, fleet, context):
    """'context' for the features named by --context (none: every feature is a target), else for
    features that are binary or constant in the training data (commands, modes, switches); the
    rest are 'target'. At least one feature must stay a target."""
    if context is not None:
        named = set() if context == "none" else set(c for c in context.split(",") if c)
        unknown = named - set(features)
        if unknown:
            sys.exit(f"--context names features the data does not have: {sorted(unknown)}")
        roles = ["context" if f in named else "target" for f in features]
    else:
        x = np.concatenate([v[1] for v in fleet.values()])
        roles = []
        for i in range(len(features)):
            col = x[:, i]
            distinct = np.unique(col[: min(len(col), 200_000)])
            constant = col.std() <= 1e-6 * max(1.0, float(np.abs(col).max()))
            roles.append("context" if len(distinct) <= 2 or constant else "target")
    if "target" not in roles:
        sys.exit("every feature is context (binary or constant): name the watched ones, or"
                 " pass --context none")
    return roles


def level_stream(z, profile_steps, window, half_life, floor, quiet=None, dtype=np.float32,
                 scale=None, norm_floor=None, while_learning=None):
    """The job's level score (StepMath.updateLevelMean, level, learnProfile) over one device's
    normalised target values z [T, Ft], in the job's order: move the level mean, score against
    the profile learned so far, then learn this step (while learning, every step, or with
    while_learning's "gated" only those whose level while learning is at or below its threshold:
    level / while_learning["scale"] <= 1; afterwards only where quiet[t] (all steps when quiet is
    None) and, when scale is given, where the level is at or below the threshold: level / scale
    <= 1, as the job gates it). The profile is learned once profile_steps steps have been learned
    into it. With norm_floor, also the model's inputs under per-device normalisation
    (StepMath.normaliseByDevice, before this step is learned). Returns the level per step (nan
    while the profile is learned; with while_learning {"after_steps", "unit"}, the level while
    learning once after_steps steps are learned, against the profile so far in a unit blended
    from the fleet's: StepMath.levelWhileLearning), the final (level_mean, profile_mean,
    profile_var) and the inputs (None without norm_floor)."""
    z = z.astype(dtype)
    T, F = z.shape
    one = dtype(1)
    alpha = dtype(2.0 / (window + 1))
    beta = dtype(0.0 if half_life == 0 else 1 - 0.5 ** (1.0 / half_life))
    floor = dtype(floor)
    m = np.zeros(F, dtype)
    mean = np.zeros(F, dtype)
    var = np.zeros(F, dtype)
    spread = np.zeros(F, dtype)
    out = np.full(T, np.nan)
    inputs = None if norm_floor is None else np.empty((T, F), dtype)
    fleet_var = None if while_learning is None else np.square(np.asarray(while_learning["unit"], dtype))
    gated = while_learning is not None and bool(while_learning.get("gated"))
    learning_scale = dtype(while_learning["scale"]) if gated else None
    n = 0  # steps learned into the profile
    for t in range(T):
        x = z[t]
        m = x.copy() if t == 0 else (m + alpha * (x - m)).astype(dtype)
        if n >= profile_steps:
            unit = np.maximum(np.sqrt(var).astype(dtype), floor)
            out[t] = float((np.abs(m - mean) / unit).max())
        elif while_learning is not None and n >= while_learning["after_steps"]:
            c = dtype(n) / dtype(profile_steps)
            unit = np.maximum(np.sqrt(c * var + (one - c) * fleet_var).astype(dtype), floor)
            out[t] = float((np.abs(m - mean) / unit).max())
        if inputs is not None:
            c = one if n >= profile_steps else dtype(n) / dtype(profile_steps)
            sd = np.maximum(np.sqrt(c * spread + (one - c)).astype(dtype), dtype(norm_floor))
            inputs[t] = (x - c * mean) / sd
        learning = n < profile_steps
        if learning:
            learns = not (gated and out[t] / learning_scale > 1)
        else:
            learns = beta > 0 and (quiet is None or quiet[t]) and (scale is None or not (out[t] / scale > 1))
        if learns:
            w = one / dtype(n + 1) if learning else beta
            mean = (mean + w * (x - mean)).astype(dtype)
            dm = (m - mean).astype(dtype)
            var = (var + w * (dm * dm - var)).astype(dtype)
            dv = (x - mean).astype(dtype)
            spread = (spread + w * (dv * dv - spread)).astype(dtype)
            if learning:
                n += 1
    return out, (m, mean, var), inputs


def variability_stream(z, profile_steps, window, half_life, floor, dtype=np.float32, scale=None):
    """The job's variability score (StepMath.updateVariability, variability, learnVariability)
    over one device's normalised target values z [T, Ft], in the job's order. Per target: the
    change from the last step d (0 at the first; the job also takes 0 after a gap or a reset of
    the device's memory, which this whole history does not see), m, the moving average of d^2 (alpha = 2 / (window
    + 1), from 0), and l = ln(m + floor^2). The device learns l's mean and variance per target over
    its steps window .. profile_steps - 1 (Welford: the variance holds the sum of squares until the
    last of them, then the mean square, at least VARIABILITY_MIN_VAR); afterwards the step's score is
    the largest |l - mean| / sqrt(variance) over targets, and each target whose own distance is at
    or below scale (every target when scale is None) adapts its mean, then its variance, with the
    half-life. Returns the score per step (nan until learned)."""
    z = z.astype(dtype)
    T, F = z.shape
    alpha = dtype(2.0 / (window + 1))
    beta = dtype(0.0 if half_life == 0 else 1 - 0.5 ** (1.0 / half_life))
    eps = dtype(floor) * dtype(floor)
    min_var = dtype(VARIABILITY_MIN_VAR)
    prev = z[0].copy()
    m = np.zeros(F, dtype)
    mean = np.zeros(F, dtype)
    var = np.zeros(F, dtype)
    out = np.full(T, np.nan)
    for t in range(T):
        d = (z[t] - prev).astype(dtype)
        prev = z[t]
        m = (m + alpha * (d * d - m)).astype(dtype)
        lv = np.log(m + eps).astype(dtype)
        if t < window:
            continue
        if t < profile_steps:
            w = dtype(1) / dtype(t - window + 1)
            dl = (lv - mean).astype(dtype)
            mean = (mean + w * dl).astype(dtype)
            var = (var + dl * (lv - mean)).astype(dtype)
            if t == profile_steps - 1:
                var = np.maximum((var * w).astype(dtype), min_var)
            continue
        r = (np.abs(lv - mean) / np.sqrt(var)).astype(dtype)
        out[t] = float(r.max())
        if beta > 0:
            quiet = np.ones(F, bool) if scale is None else ~(r / dtype(scale) > 1)
            new_mean = (mean + beta * (lv - mean)).astype(dtype)
            dv = (lv - new_mean).astype(dtype)
            new_var = np.maximum((var + beta * (dv * dv - var)).astype(dtype), min_var)
            mean = np.where(quiet, new_mean, mean)
            var = np.where(quiet, new_var, var)
    return out


def calibrate_variability(fleet, labels, norm, targets, profile_steps):
    """The variability score's section: its scale is the LEVEL_DEVICE_QUANTILE quantile over
    devices of each one's largest variability in its training history outside labelled spans
    (adapting on every step, as the level's calibration does), so that most devices would have
    stayed quiet through their own history. None when no device is long enough."""
    if profile_steps <= VARIABILITY_WINDOW:
        return None
    maxima = []
    for dev, (ts, x) in fleet.items():
        if len(ts) <= profile_steps:
            continue
        v = variability_stream(norm(x)[:, targets], profile_steps, VARIABILITY_WINDOW,
                               LEVEL_HALF_LIFE, VARIABILITY_FLOOR, dtype=np.float64)
        ok = ~np.isnan(v) & outside_labels(ts, labels.get(dev, []))
        if ok.any():
            maxima.append(float(v[ok].max()))
    if not maxima:
        return None
    return {"window_steps": VARIABILITY_WINDOW, "floor": VARIABILITY_FLOOR,
            "profile_steps": profile_steps, "half_life_steps": LEVEL_HALF_LIFE,
            "scale": max(float(np.quantile(maxima, LEVEL_DEVICE_QUANTILE)), 1e-6),
            "calibration": f"quantile {LEVEL_DEVICE_QUANTILE} over {len(maxima)} devices of each"
                           " one's largest variability in its training history"}


def model_inputs(z, targets, level):
    """What the model sees for one device's whole history of fleet-normalised values z [T, F]:
    z itself (fleet normalisation, level None), or with the targets normalised by the device's
    profile as the job does (level: the card's level section, whose scale gates learning)."""
    z = z.astype(np.float32)
    if level is None:
        return z
    _, _, by_device = level_stream(z[:, targets], level["profile_steps"], level["window_steps"],
                                   level["half_life_steps"], level["floor"], dtype=np.float32,
                                   scale=level["scale"], norm_floor=NORMALISATION_FLOOR,
                                   while_learning=level.get("learning"))
    z[:, targets] = by_device
    return z


def profile_steps_for(fleet):
    """PROFILE_STEPS, or half the median device history when histories are shorter than twice
    that (at least 100): the profile must be learned well inside a device's training history."""
    median = float(np.median([len(ts) for ts, _ in fleet.values()]))
    return int(PROFILE_STEPS if median >= 2 * PROFILE_STEPS else max(100, median // 2))


def step_interval_ms(fleet):
    """The median over devices of each one's median interval between two steps, in ms: the cadence
    the model learned. The job refuses a vigil.scoring.gap or vigil.alerts.silence-after that is not
    above it (a device at that cadence would be reset, or reported silent, at every step)."""
    per_device = [float(np.median(np.diff(ts))) for ts, _ in fleet.values() if len(ts) > 1]
    return int(np.median(per_device)) if per_device else 0


def unchanged_runs(x):
    """Per step, the longest run of consecutive steps in which a target repeated its value exactly
    (float32, as the job compares raw values): StepMath.unchangedRun over one device."""
    x = x.astype(np.float32).view(np.int32)  # bits, as the job compares: -0.0 is not 0.0
    run = np.zeros(x.shape[1], dtype=np.int64)
    out = np.zeros(len(x), dtype=np.int64)
    for t in range(1, len(x)):
        run = np.where(x[t] == x[t - 1], run + 1, 0)
        out[t] = run.max()
    return out


def stuck_features(fleet, targets):
    """The targets whose normal readings rarely repeat exactly (fewer than STUCK_MAX_REPEATS of
    their steps): only there does a run of repeats mean a reading stopped moving."""
    repeats = np.zeros(len(targets))
    steps = 0
    for ts, x in fleet.values():
        v = x[:, targets].astype(np.float32).view(np.int32)  # bits, as the job compares
        repeats += (v[1:] == v[:-1]).sum(axis=0)
        steps += max(len(v) - 1, 0)
    fractions = repeats / max(steps, 1)
    return [t for t, f in zip(targets, fractions) if f < STUCK_MAX_REPEATS], fractions


def outside_labels(ts, spans):
    """Which of the times ts lie outside every labelled (start, end) span, both ends inclusive."""
    ok = np.ones(len(ts), dtype=bool)
    for start, end in spans:
        ok &= ~((ts >= start) & (ts <= end))
    return ok


def calibrate_stuck(fleet, labels, watched):
    """The stuck score's scale: the longest run of an exactly repeated value of a watched target
    that any device had in its training history outside labelled spans (at least 1 step), so
    that a run longer than every one seen in normal data is what crosses the threshold."""
    longest = 0
    for dev, (ts, x) in fleet.items():
        runs = unchanged_runs(x[:, watched])
        ok = outside_labels(ts, labels.get(dev, []))
        if ok.any():
            longest = max(longest, int(runs[ok].max()))
    return max(longest, 1)


def calibrate_level(fleet, labels, norm, targets, profile_steps):
    """The level's scale: each device's training history streamed as the job would (profile
    learned from its first step, alerting off, so adapting on every step rather than only on
    quiet ones), its largest level outside labelled spans; the
    scale is the LEVEL_DEVICE_QUANTILE quantile of those over devices, so that most devices
    would have stayed quiet through their own history. None when no device is long enough."""
    maxima = []
    for dev, (ts, x) in fleet.items():
        if len(ts) <= profile_steps:
            continue
        lv, _, _ = level_stream(norm(x)[:, targets], profile_steps, LEVEL_WINDOW, LEVEL_HALF_LIFE,
                                LEVEL_FLOOR, dtype=np.float64)
        ok = ~np.isnan(lv) & outside_labels(ts, labels.get(dev, []))
        if ok.any():
            maxima.append(float(lv[ok].max()))
    if not maxima:
        return None, 0
    return max(float(np.quantile(maxima, LEVEL_DEVICE_QUANTILE)), 1e-6), len(maxima)


def calibrate_learning_level(fleet, labels, norm, targets, profile_steps):
    """The level while a device's profile is learned (README "Scoring"): from after_steps, a
    LEVEL_LEARNING_SHARE of profile_steps, the profile so far against the moving average, in a unit
    blended from the fleet's, unit: each target's median over devices of the unit its profile ends
    its learning with; scale: the LEVEL_DEVICE_QUANTILE quantile over devices of each one's largest
    such level over its learning steps outside labelled spans, as the learned level's. None when no
    device is long enough."""
    after = max(1, int(profile_steps * LEVEL_LEARNING_SHARE))
    units = [np.sqrt(level_stream(norm(x[:profile_steps])[:, targets], profile_steps, LEVEL_WINDOW,
                                  LEVEL_HALF_LIFE, LEVEL_FLOOR, dtype=np.float64)[1][2])
             for ts, x in fleet.values() if len(ts) >= profile_steps]
    if not units:
        return None
    unit = np.maximum(np.median(units, axis=0), LEVEL_FLOOR)
    learning = {"after_steps": after, "unit": [float(u) for u in unit]}
    maxima = []
    for dev, (ts, x) in fleet.items():
        n = min(len(ts), profile_steps)
        if n <= after:
            continue
        lv, _, _ = level_stream(norm(x[:n])[:, targets], profile_steps, LEVEL_WINDOW,
                                LEVEL_HALF_LIFE, LEVEL_FLOOR, dtype=np.float64, while_learning=learning)
        ok = ~np.isnan(lv) & outside_labels(ts[:n], labels.get(dev, []))
        if ok.any():
            maxima.append(float(lv[ok].max()))
    if not maxima:
        return None
    learning["scale"] = max(float(np.quantile(maxima, LEVEL_DEVICE_QUANTILE)), 1e-6)
    learning["calibration"] = (f"unit: median over {len(units)} devices of each one's learned unit;"
                               f" scale: quantile {LEVEL_DEVICE_QUANTILE} over {len(maxima)} devices"
                               " of each one's largest level while learning")
    return learning


def correlation_basis(normal):
    """The correlation score's normal subspace: over every device's targets as the model sees them
    (fleet's or device's units) at its steps outside labelled spans (normal: device -> [T, Ft]),
    the principal directions (about 0, the normalised mean), the fewest that hold
    CORRELATION_VARIANCE of their mean square. Returns the rows (orthonormal, [k, Ft]) and the share
    they hold, or (None, share of all but one direction) when that takes every direction: fewer
    than two targets, or targets that move each on its own, with no relation to watch."""
    width = next(iter(normal.values())).shape[1]
    if width < 2:
        return None, 0.0
    rows, share, k = principal_rows(np.concatenate(list(normal.values())))
    if k >= width:
        return None, float(share[-2])
    return rows[:k], float(share[k - 1])


def principal_rows(steps):
    """The principal directions of steps [T, Ft] about 0 (rows [Ft, Ft], by the share of the
    mean square each holds), the cumulative shares, and how many hold CORRELATION_VARIANCE."""
    steps = steps.astype(np.float64)
    w, v = np.linalg.eigh(steps.T @ steps / max(1, len(steps)))
    w, v = w[::-1], v[:, ::-1]
    share = np.cumsum(w) / max(float(w.sum()), 1e-12)
    return v.T.copy(), share, int(np.searchsorted(share, CORRELATION_VARIANCE)) + 1


def correlation_stream(z, basis):
    """The job's correlation distance (StepMath.correlation, in double) over target values z
    [T, Ft] against the rows of basis [k, Ft]: the root of the sum of squares of what the subspace
    leaves of each step, and each target's square of it (StepMath.correlationParts)."""
    z, basis = z.astype(np.float64), basis.astype(np.float64)
    r = z - (z @ basis.T) @ basis
    parts = r * r
    return np.sqrt(parts.sum(axis=1)), parts


def calibrate_correlation(normal, basis):
    """The correlation score's scale: each device's largest distance over its training history
    outside labelled spans (normal, as correlation_basis takes it), the CORRELATION_DEVICE_QUANTILE
    quantile of those over devices (the largest), so that every device would have stayed quiet
    through its own history."""
    maxima = [float(correlation_stream(z, basis)[0].max()) for z in normal.values() if len(z)]
    return max(float(np.quantile(maxima, CORRELATION_DEVICE_QUANTILE)), 1e-6), len(maxima)


def residuals(step_model, x):
    """Serve one normalised run like the job does, from h = 0: residuals of steps after warm-up."""
    with torch.no_grad():
        xs = torch.from_numpy(x.astype(np.float32))
        h = torch.zeros(1, step_model.cell.hidden_size)
        out, prev = [], None
        for t in range(len(xs)):
            if prev is not None and t >= WARMUP_STEPS:
                out.append((xs[t] - prev[0]).numpy())
            h, prev = step_model(xs[t:t + 1], h)
        return np.array(out).reshape(-1, x.shape[1])


DRIFT_DECILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def drift_bins(x):
    """Per feature of x [T, F] (raw values): the reference distribution the job's drift metrics
    compare the live input with (README, "Drift"): the deciles as bin edges (float32, ties merged:
    a binary feature has two) and the share of steps in each bin. A value v falls in the bin of
    the number of edges below it (DriftWindow.bin: v <= edge[0] is bin 0)."""
    out = []
    for f in range(x.shape[1]):
        v = x[:, f].astype(np.float32)
        edges = np.unique(np.quantile(v, DRIFT_DECILES).astype(np.float32))
        counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
        out.append({"edges": [float(e) for e in edges],
                    "shares": [float(c) for c in counts / counts.sum()]})
    return out


def add_drift_bins(model_dir, train, labels, gap_minutes):
    """Adds drift bins to a card trained before they existed, from its training data: the same
    steps (normal runs, the fit part of each) that its mean and std come from."""
    path = os.path.join(model_dir, "model.json")
    card = json.load(open(path))
    names = [f["name"] for f in card["features"]]
    features, fleet = read_fleet(train, names)
    segs = segments(fleet, read_labels(labels) if labels else {}, gap_minutes * 60_000)
    fit = np.concatenate([x[:int(len(x) * 0.70)] for _, _, x, _ in segs])
    for f, b in zip(card["features"], drift_bins(fit)):
        f["bins"] = b
    with open(path, "w") as out:
        json.dump(card, out, indent=2)
        out.write("\n")
    print(f"added drift bins of {len(fit)} training steps to {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--out", help="the model directory to write (required unless --add-drift-bins)")
    ap.add_argument("--add-drift-bins", metavar="MODEL_DIR",
                    help="only add drift bins to the card in MODEL_DIR, from its training data --train")
    ap.add_argument("--labels")
    ap.add_argument("--features", help="comma-separated feature names in model order (default: from the data)")
    ap.add_argument("--context", help="comma-separated features the model sees but never scores (commands,"
                    " setpoints, load); 'none' for none (default: the binary or constant ones)")
    ap.add_argument("--no-level", action="store_true", help="no level score")
    ap.add_argument("--gate-learning", action="store_true",
                    help="keep out of a device's profile, while it is learned, the steps whose level"
                         " while learning crosses the threshold (score.level.learning.gated): for"
                         " fleets whose new devices can be faulty early; a device whose values move"
                         " to a new normal while it learns stays in an episode until it relearns"
                         " (vigil.alerts.relearn-after)")
    ap.add_argument("--no-variability", action="store_true", help="no variability score")
    ap.add_argument("--no-stuck", action="store_true", help="no stuck score")
    ap.add_argument("--no-correlation", action="store_true", help="no correlation score")
    ap.add_argument("--normalisation", choices=["fleet", "device"], default="fleet",
                    help="what the model's target inputs are normalised by: the fleet's mean and"
                    " std, or each device's own profile (for fleets whose devices differ in level"
                    " or spread; needs the level score)")
    ap.add_argument("--dynamics-scale", choices=["fleet", "device"], default="device",
                    help="the forecast residual's scale: each device's own level (the default),"
                    " learned over its first steps, where it runs higher than the fleet's (at most"
                    " 4 times less sensitive) or lower (down to half the fleet's: at most twice as"
                    " sensitive; not lower with --normalisation device), or the fleet's for every"
                    " device; a device faulty through most of the steps it learns over is held to"
                    " its fault, within those bounds; EVALUATION.md")
    ap.add_argument("--residual-floor", type=float, default=RESIDUAL_FLOOR,
                    help="a target whose forecast misses are at least its spread within a device (a"
                         " level each device holds) has a residual scale of at least this times the"
                         f" targets' median ({RESIDUAL_FLOOR}; 0 for none), so that the model's small"
                         " misses on it do not outweigh the other targets'")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--max-minutes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--gap-minutes", type=float, default=10,
                    help="a device's history is cut into runs at silences longer than this (the"
                         " job's vigil.scoring.gap, 10 min by default, resets a device's memory at"
                         " the same: keep the two equal, and above the devices' reporting interval)")
    ap.add_argument("--window", type=int, default=None,
                    help=f"steps per training window ({WINDOW}; shorter for a fleet whose runs"
                         f" longer than {WINDOW} steps hold less than half of its training steps)")
    ap.add_argument("--windows-per-epoch", type=int, default=1024)
    ap.add_argument("--threshold-quantile", type=float, default=THRESHOLD_QUANTILE,
                    help="quantile of held-out normal step scores used as the threshold")
    ap.add_argument("--version-prefix", default="fleet-gru")
    a = ap.parse_args()
    if a.add_drift_bins:
        add_drift_bins(a.add_drift_bins, a.train, a.labels, a.gap_minutes)
        return
    if not a.out:
        ap.error("--out is required")
    if a.no_level and a.gate_learning:
        ap.error("--gate-learning gates the level's profile: it needs the level (drop --no-level)")
    if a.window is not None and a.window < MIN_WINDOW:
        ap.error(f"--window must be at least {MIN_WINDOW} (the warm-up of {WARMUP_STEPS} steps and"
                 " 10 forecasts for the loss)")
    if not 0 <= a.residual_floor <= 1:
        ap.error("--residual-floor is a share of the targets' median residual scale: 0 (none) to 1")

    started = time.time()
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = np.random.default_rng(a.seed)

    features, fleet = read_fleet(a.train, a.features.split(",") if a.features else None)
    if len(set(features)) != len(features):
        sys.exit(f"duplicate feature names: {features}")
    if not a.features:
        features, fleet = without_counters(features, fleet)
    roles = feature_roles(features, fleet, a.context)
    if not a.features:
        features, fleet, roles = without_wanderers(features, fleet, roles)
    labels = read_labels(a.labels) if a.labels else {}
    segs = segments(fleet, labels, a.gap_minutes * 60_000)
    F = len(features)
    targets = [i for i, r in enumerate(roles) if r == "target"]
    print(f"features ({F}): {', '.join(features)}")
    print(f"targets ({len(targets)}): {', '.join(features[i] for i in targets)}")
    print(f"devices: {len(fleet)}, normal runs: {len(segs)}, steps: {sum(len(s[1]) for s in segs)}")

    # Time split of every run: 70 % training, 15 % validation (early stopping), 15 % calibration.
    fit, val, cal = [], [], []
    for dev, ts, x, _ in segs:
        n = len(x)
        i, j = int(n * 0.70), int(n * 0.85)
        fit.append(x[:i]); val.append(x[i:j]); cal.append(x[j:])
    allfit = np.concatenate(fit)
    mean, std = allfit.mean(axis=0), allfit.std(axis=0)
    bins = drift_bins(allfit)
    std[std < 1e-6] = 1.0
    norm = lambda x: (x - mean) / std

    # The level score first: per-device normalisation streams each device through its profile.
    level = None
    if not a.no_level:
        profile_steps = profile_steps_for(fleet)
        level_scale, level_devices = calibrate_level(fleet, labels, norm, targets, profile_steps)
        if level_scale is None:
            print(f"no level score: no device has more than {profile_steps} steps of history")
        else:
            level = {"profile_steps": profile_steps, "half_life_steps": LEVEL_HALF_LIFE,
                     "window_steps": LEVEL_WINDOW, "floor": LEVEL_FLOOR, "scale": level_scale,
                     "calibration": f"quantile {LEVEL_DEVICE_QUANTILE} over {level_devices} devices"
                                    " of each one's largest level in its training history"}
            print(f"level scale (q{LEVEL_DEVICE_QUANTILE} over {level_devices} devices' maxima):"
                  f" {level_scale:.3f}, profile {profile_steps} steps")
            learning = calibrate_learning_level(fleet, labels, norm, targets, profile_steps)
            if learning is None and a.gate_learning:
                print("--gate-learning has nothing to gate: no device is long enough for the level"
                      " while learning")
            if learning is not None:
                if a.gate_learning:
                    # The job keeps out of a profile it learns the steps whose level while learning
                    # crosses the threshold (calibrated here without: training's devices are normal).
                    learning["gated"] = True
                level["learning"] = learning
                print(f"level while a profile is learned: from step {learning['after_steps']},"
                      f" scale {learning['scale']:.3f}")
    variability = None
    if not a.no_variability:
        variability = calibrate_variability(fleet, labels, norm, targets, profile_steps_for(fleet))
        if variability is None:
            print("no variability score: no device has enough steps of history")
        else:
            print(f"variability scale (q{LEVEL_DEVICE_QUANTILE}): {variability['scale']:.3f},"
                  f" window {VARIABILITY_WINDOW}, profile {variability['profile_steps']} steps")
    by_device = a.normalisation == "device"
    if by_device and level is None:
        sys.exit("--normalisation device needs the level score (the device's profile): drop"
                 " --no-level, or give devices more history than the profile needs")
    started_inputs = time.time()
    inputs = {dev: model_inputs(norm(x), targets, level if by_device else None)
              for dev, (ts, x) in fleet.items()}
    if by_device:
        print(f"per-device normalisation: streamed {len(inputs)} devices through their profiles"
              f" in {time.time() - started_inputs:.0f} s")
    correlation = None
    if not a.no_correlation:
        normal = {dev: x[outside_labels(fleet[dev][0], labels.get(dev, []))][:, targets]
                  for dev, x in inputs.items()}
        basis, held = correlation_basis(normal)
        if basis is None:
            print("no correlation score: " + ("it needs two targets or more" if len(targets) < 2 else
                  f"the targets move each on its own ({len(targets) - 1} of {len(targets)} directions"
                  f" hold {held:.3f} of their variance, under {CORRELATION_VARIANCE})"))
        else:
            corr_scale, corr_devices = calibrate_correlation(normal, basis)
            correlation = {"basis": [[float(v) for v in row] for row in basis], "variance": held,
                           "scale": corr_scale,
                           "calibration": f"quantile {CORRELATION_DEVICE_QUANTILE} over {corr_devices}"
                                          " devices of each one's largest distance in its training"
                                          " history;"
                                          f" basis: the {len(basis)} principal directions of the"
                                          " targets' normal steps that hold at least"
                                          f" {CORRELATION_VARIANCE} of their variance"}
            print(f"correlation: {len(basis)} of {len(targets)} directions hold {held:.3f} of the"
                  f" targets' variance; scale (q{CORRELATION_DEVICE_QUANTILE} over {corr_devices} devices'"
                  f" maxima) {corr_scale:.3f}")
    seg_inputs = [inputs[dev][lo:lo + len(x)] for dev, ts, x, lo in segs]
    fit_end = [int(len(xn) * 0.70) for xn in seg_inputs]
    val_end = [int(len(xn) * 0.85) for xn in seg_inputs]
    fit_n = [xn[:i] for xn, i in zip(seg_inputs, fit_end)]
    val_n = validation_runs(seg_inputs, fit_end, val_end)
    window = training_window(fit_n, a.window)

    model = Forecaster(F, a.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    val_batch = windows(val_n, min(window, max(len(v) for v in val_n) - 1), 256, np.random.default_rng(a.seed + 1))
    best, best_state, bad_epochs, epochs_run = float("inf"), None, 0, 0
    for epoch in range(a.epochs):
        model.train()
        data = windows(fit_n, window, a.windows_per_epoch, rng)
        for b in range(0, data.shape[1], 64):
            opt.zero_grad()
            loss = loss_on(model, data[:, b:b + 64], targets)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.eval()
        with torch.no_grad():
            v = loss_on(model, val_batch, targets).item()
        sched.step(v)
        epochs_run = epoch + 1
        print(f"epoch {epochs_run}: validation mse {v:.5f}", flush=True)
        if v < best - 1e-5:
            best, best_state, bad_epochs = v, {k: t.clone() for k, t in model.state_dict().items()}, 0
        else:
            bad_epochs += 1
            if bad_epochs >= 5:
                print("early stop: validation stopped improving")
                break
        if time.time() - started > a.max_minutes * 60:
            print(f"stop: --max-minutes {a.max_minutes} reached")
            break
    model.load_state_dict(best_state)
    step = Step(model).eval()

    # Calibration on held-out normal data only: serve each whole run from h = 0 as the job does,
    # and keep the residuals of its calibration part.
    cal_res = []
    for xn, c in zip(seg_inputs, cal):
        r = residuals(step, xn)
        cal_res.append(r[-min(len(c), len(r)):] if len(r) else r)
    cal_res = np.concatenate([r for r in cal_res if len(r)])
    scale = np.sqrt((cal_res ** 2).mean(axis=0))
    scale[scale < 1e-6] = 1e-6
    # Each feature's spread within a device: the root mean square over devices of its standard
    # deviation in the model's inputs.
    spread = np.sqrt(np.mean([xn.astype(np.float64).std(axis=0) ** 2
                              for xn in inputs.values() if len(xn) > 1], axis=0))
    floor = a.residual_floor * float(np.median(scale[targets]))
    floored = [i for i in targets if scale[i] >= spread[i] and scale[i] < floor]
    if floored:
        print(f"residual scale floored at {floor:.4g} ({a.residual_floor} times the targets' median),"
              " for targets forecast no better than their device's mean: "
              + ", ".join(f"{features[i]} {scale[i]:.4g} (spread {spread[i]:.4g})" for i in floored))
        scale[floored] = floor
    scores = ((cal_res[:, targets] / scale[targets]) ** 2).mean(axis=1)
    quantiles = {str(q): float(np.quantile(scores, q))
                 for q in sorted(set(REPORTED_QUANTILES + [a.threshold_quantile]))}
    dynamics_scale = float(np.quantile(scores, a.threshold_quantile))
    # The held-out steps' root mean square in threshold units: the fleet's level of residual, which a
    # device's own can be compared with (EVALUATION.md, per-device residual scale).
    dynamics_rms = float(np.sqrt(((scores / dynamics_scale) ** 2).mean()))
    print(f"calibration steps: {len(scores)}, dynamics scale (q{a.threshold_quantile}): {dynamics_scale:.3f},"
          f" rms in threshold units {dynamics_rms:.4f}")
    if a.dynamics_scale == "device":
        floor = DYNAMICS_DEVICE_FLOOR if a.normalisation == "fleet" else 1.0
        print(f"dynamics scale per device: each device's level over its first {profile_steps_for(fleet)}"
              f" steps, in {DYNAMICS_DEVICE_BLOCKS} blocks, against that rms; its divisor between"
              f" {floor} and {DYNAMICS_DEVICE_CEILING} (--dynamics-scale fleet: the fleet's for all)")

    stuck = None
    if not a.no_stuck:
        watched, repeats = stuck_features(fleet, targets)
        if not watched:
            print(f"no stuck score: every target repeats its value on more than"
                  f" {STUCK_MAX_REPEATS:.0%} of normal steps ({np.round(repeats, 3).tolist()})")
        else:
            stuck_scale = calibrate_stuck(fleet, labels, watched)
            stuck = {"scale": float(stuck_scale), "features": [features[i] for i in watched],
                     "calibration": "the longest run of an exactly repeated value of a watched"
                                    " target in any device's training history; watched: targets"
                                    f" repeating on fewer than {STUCK_MAX_REPEATS:.0%} of steps"}
            print(f"stuck scale: a run of {stuck_scale} repeated steps, watching"
                  f" {', '.join(features[i] for i in watched)}")

    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, "model.onnx")
    torch.onnx.export(
        step, (torch.zeros(1, F), torch.zeros(1, a.hidden)), onnx_path,
        input_names=["x", "h"], output_names=["h_next", "y"], opset_version=14,
        dynamic_axes={"x": {0: "batch"}, "h": {0: "batch"}, "h_next": {0: "batch"}, "y": {0: "batch"}})
    digest = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    data_digest = hashlib.sha256(open(a.train, "rb").read()).hexdigest()
    card = {
        "version": f"{a.version_prefix}-{dt.date.today().isoformat()}+sha256:{digest[:12]}",
        "hidden_size": a.hidden,
        "normalisation": a.normalisation,
        **({"normalisation_floor": NORMALISATION_FLOOR} if by_device else {}),
        "features": [
            {"name": n, "mean": float(mean[i]), "std": float(std[i]), "residual_scale": float(scale[i]),
             "role": roles[i], "bins": bins[i]}
            for i, n in enumerate(features)
        ],
        # Each component divided by its scale, the larger counts: 1.0 is the threshold of both.
        "score": {
            "combine": "max",
            "dynamics": {"scale": dynamics_scale,
                         "calibration": f"quantile {a.threshold_quantile} of held-out normal step scores",
                         "rms": dynamics_rms,
                         **({"device_steps": profile_steps_for(fleet),
                             "device_half_life_steps": DYNAMICS_HALF_LIFE,
                             "device_blocks": DYNAMICS_DEVICE_BLOCKS,
                             "device_learning_blocks": DYNAMICS_LEARNING_BLOCKS,
                             "device_ceiling": DYNAMICS_DEVICE_CEILING,
                             "device_floor": DYNAMICS_DEVICE_FLOOR
                             if a.normalisation == "fleet" else 1.0}
                            if a.dynamics_scale == "device" else {})},
            **({"level": level} if level else {}),
            **({"stuck": stuck} if stuck else {}),
            **({"variability": variability} if variability else {}),
            **({"correlation": correlation} if correlation else {}),
        },
        "threshold": 1.0,
        "threshold_quantile": a.threshold_quantile,
        "score_quantiles": quantiles,
        "warmup_steps": WARMUP_STEPS,
        "onnx": {"file": "model.onnx", "sha256": digest, "opset": 14,
                 "inputs": {"x": ["batch", F], "h": ["batch", a.hidden]},
                 "outputs": {"h_next": ["batch", a.hidden], "y": ["batch", F]}},
        "training": {
            "data": os.path.basename(a.train), "data_sha256": data_digest,
            "labels": os.path.basename(a.labels) if a.labels else None,
            "devices": len(fleet), "normal_runs": len(segs), "steps": int(sum(len(s[1]) for s in segs)),
            "split": "per normal run in time: 70% fit, 15% validation (early stopping), 15% calibration",
            "gap_minutes": a.gap_minutes, "step_interval_ms": step_interval_ms(fleet),
            "window": window, "epochs": epochs_run,
            "validation_mse": best, "seed": a.seed, "torch": torch.__version__,
            "seconds": round(time.time() - started, 1),
        },
    }
    with open(os.path.join(a.out, "model.json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    write_golden(os.path.join(a.out, "golden.json"), step, segs, cal, mean, std, scale, features, a.hidden,
                 targets)
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes), model.json, golden.json "
          f"in {time.time() - started:.0f} s; version {card['version']}")


def write_golden(path, step, segs, cal, mean, std, scale, features, hidden, targets):
    """What a Java test replays to show the job computes what training computed, in float32:
    raw inputs -> forecasts and dynamics scores; a profile case (normalised target values, with a
    shift, -> level scores and per-device normalised inputs, learning gated by the level, with a
    short profile so that it shows); a stuck case (raw target values with injected repeats ->
    the longest unchanged run per step)."""
    cases = []
    for k in range(min(2, len(segs))):
        dev, ts, x, _ = segs[k]
        raw = x[-len(cal[k]):][:WARMUP_STEPS + 10].astype(np.float32)
        h0 = np.zeros(hidden, dtype=np.float32) if k == 0 else \
            np.random.default_rng(k).normal(0, 0.3, hidden).astype(np.float32)
        h = torch.from_numpy(h0).unsqueeze(0)
        steps, prev = [], None
        with torch.no_grad():
            for t in range(len(raw)):
                xn = ((raw[t] - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32)
                score = None
                if prev is not None:
                    r = (xn - prev)[targets] / scale.astype(np.float32)[targets]
                    score = float((r * r).mean())
                h, y = step(torch.from_numpy(xn).unsqueeze(0), h)
                prev = y[0].numpy()
                steps.append({"values": [float(v) for v in raw[t]], "forecast": [float(v) for v in prev],
                              "score": score})
        cases.append({"device_id": dev, "h0": [float(v) for v in h0], "steps": steps,
                      "h_final": [float(v) for v in h[0].numpy()]})
    golden = {"features": features, "targets": targets, "cases": cases}

    dev, ts, x, _ = segs[0]
    z = ((x[:200].astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32))[:, targets]
    z[120:150, 0] += np.float32(3)  # a shift the level sees, so that learning stops for a while
    golden["profile_case"] = profile_case(z)
    z_learning = z.copy()
    z_learning[20:35, 0] += np.float32(3)  # and one while the profile is learned, which the gate keeps out
    golden["profile_case_gated"] = profile_case(z_learning, gated=True)
    golden["variability_case"] = variability_case(z)
    if z.shape[1] >= 2:
        golden["correlation_case"] = correlation_case(z)

    raw = x[:120][:, targets].astype(np.float32)
    raw[30:46, 0] = raw[29, 0]               # a frozen reading
    raw[60:71, -1] = raw[59, -1]             # another, on the last target (the first if only one)
    raw[80, 0], raw[81, 0] = np.float32(0.0), np.float32(-0.0)  # two readings, not a repeat
    golden["stuck_case"] = {"raw": [[float(v) for v in row] for row in raw],
                            "run": [int(v) for v in unchanged_runs(raw)]}
    with open(path, "w") as f:
        json.dump(golden, f)
        f.write("\n")


def profile_case(z, gated=False):
    """The golden vectors of the level and per-device normalisation over target values z [T, Ft]:
    the level per step (while the profile is learned too, from the fifth step) and the inputs;
    gated, with the profile's learning gated by the level while learning (its scale 2)."""
    case = {"profile_steps": 50, "window_steps": 10, "half_life_steps": 40, "floor": LEVEL_FLOOR,
            "scale": 2.0, "normalisation_floor": NORMALISATION_FLOOR,
            "learning": {"after_steps": 5, "unit": [0.5] * z.shape[1]}}
    if gated:
        case["learning"].update({"scale": 2.0, "gated": True})
    lv, _, by_device = level_stream(z, case["profile_steps"], case["window_steps"],
                                    case["half_life_steps"], case["floor"], dtype=np.float32,
                                    scale=case["scale"], norm_floor=case["normalisation_floor"],
                                    while_learning=case["learning"])
    case["z"] = [[float(v) for v in row] for row in z]
    case["level"] = [None if np.isnan(v) else float(v) for v in lv]
    case["inputs"] = [[float(v) for v in row] for row in by_device]
    return case


def variability_case(z):
    """The golden vectors of the variability score over target values z [T, Ft]: the score per
    step, with a profile of 50 steps learned from the tenth."""
    case = {"profile_steps": 50, "window_steps": 10, "half_life_steps": 40,
            "floor": VARIABILITY_FLOOR, "scale": 3.0}
    v = variability_stream(z, case["profile_steps"], case["window_steps"], case["half_life_steps"],
                           case["floor"], dtype=np.float32, scale=case["scale"])
    case["z"] = [[float(x) for x in row] for row in z]
    case["variability"] = [None if np.isnan(x) else float(x) for x in v]
    return case


def correlation_case(z):
    """The golden vectors of the correlation score over target values z [T, Ft] (Ft >= 2): a basis
    of the principal directions of its first 100 steps (as correlation_basis takes them), then the
    score and each target's part per step."""
    rows, _, k = principal_rows(z[:100])
    k = min(k, z.shape[1] - 1)  # capped, not refused: the case checks the arithmetic
    case = {"basis": [[float(x) for x in row] for row in rows[:k].astype(np.float32)], "scale": 0.5}
    distance, parts = correlation_stream(z.astype(np.float32), np.asarray(case["basis"], np.float32))
    case["z"] = [[float(x) for x in row] for row in z]
    case["correlation"] = [float(x) for x in distance / np.float32(case["scale"])]
    case["parts"] = [[float(x) for x in row] for row in parts]
    return case


if __name__ == "__main__":
    main()
