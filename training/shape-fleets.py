#!/usr/bin/env python3
"""Writes small labelled fleets of shapes real telemetry takes and the spacecraft and pump fleets
do not, each as DIR/<name>/{train,test}.jsonl and labels.csv for training/evaluate-fleet.sh
(EVALUATION.md, "Fleets of other shapes"). Seeded: the same files every run.

    single    one device, 6,000 steps to train on, a level shift and a frozen reading in its test
    short     200 devices of 250 steps each (150 to train on), a spike on every tenth
    messy     20 devices with missing, null and "NaN" values, duplicates and a 6-hour silence
    counter   20 servers whose records carry an uptime counter beside their metrics
    newpumps  10 pumps to train on; 20 other pumps, new in the test, each faulty from its 400th
              to 560th step for 600 steps, while it still learns its normal

    servers   24 servers of workloads 0.3 to 3 times apart, 12 correlated metrics with a daily
              cycle, two of them near-constant on each server (its swap, its thread count), five
              days to train on, two to test with four faults (a CPU spike, a network that stops
              while the CPU works, a memory leak, a disk write rate frozen) and, unlabelled, a
              server whose swap moves up by a hair for good

usage: training/shape-fleets.py DIR
"""
import json
import math
import os
import random
import sys

T0 = 1_750_000_000_000


def write(out, name, train, test, labels, kind="point"):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for file, records in (("train.jsonl", train), ("test.jsonl", test)):
        with open(os.path.join(d, file), "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    with open(os.path.join(d, "labels.csv"), "w") as f:
        f.write("device_id,start_ts,end_ts,class\n")
        for device, start, end in labels:
            f.write(f"{device},{start},{end},{kind}\n")
    print(f"{name}: {len(train)} records to train on, {len(test)} to test, {len(labels)} labels")


def single(rng):
    train, test, level = [], [], 0.0
    for t in range(9000):
        s = math.sin(t / 50)
        level += rng.gauss(0, 0.01)
        v = {"a": 10 + 3 * s + rng.gauss(0, 0.2), "b": 5 + 1.5 * s + rng.gauss(0, 0.1), "c": 7.0,
             "d": float((t // 300) % 2), "e": level, "f": rng.gauss(0, 1)}
        if 7000 <= t < 7200:
            v["b"] += 2.0
        if 8000 <= t < 8100:
            v["f"] = 0.123
        (train if t < 6000 else test).append({"device_id": "only-one", "ts": T0 + t * 1000, "values": v})
    return train, test, [("only-one", T0 + 7_000_000, T0 + 7_199_000),
                         ("only-one", T0 + 8_000_000, T0 + 8_099_000)]


def short(rng):
    train, test, labels = [], [], []
    for k in range(200):
        device, base = f"dev-{k:03d}", rng.uniform(-5, 5)
        for t in range(250):
            v = {"x": base + math.sin(t / 10 + k) + rng.gauss(0, 0.1), "y": rng.gauss(0, 1),
                 "z": base * 2 + rng.gauss(0, 0.3)}
            if k % 10 == 0 and 200 <= t < 210:
                v["x"] += 6
            (train if t < 150 else test).append({"device_id": device, "ts": T0 + t * 60_000, "values": v})
        if k % 10 == 0:
            labels.append((device, T0 + 200 * 60_000, T0 + 209 * 60_000))
    return train, test, labels


def messy(rng):
    train, test, silence = [], [], 6 * 3600 * 1000
    for k in range(20):
        for t in range(3000):
            v = {"p": 100 + 10 * math.sin(t / 30) + rng.gauss(0, 1), "q": rng.gauss(50, 5),
                 "r": float(rng.random() < 0.1)}
            if k == 3 and 2500 <= t < 2550:
                v["p"] += 40
            u = rng.random()
            if u < 0.003:
                del v["q"]
            elif u < 0.006:
                v["q"] = None
            elif u < 0.008:
                v["q"] = "NaN"
            r = {"device_id": f"m{k}", "ts": T0 + t * 5000 + (silence if t >= 1500 else 0), "values": v}
            part = train if t < 2000 else test
            part.append(r)
            if rng.random() < 0.002:
                part.append(dict(r))
    return train, test, [("m3", T0 + 2500 * 5000 + silence, T0 + 2549 * 5000 + silence)]


def counter(rng):
    train, test, labels = [], [], []
    for k in range(20):
        device, uptime = f"srv{k:02d}", rng.randint(0, 100_000)
        for t in range(4000):
            load = 40 + 15 * math.sin(t / 60 + k)
            v = {"cpu": load + rng.gauss(0, 3), "mem": 60 + rng.gauss(0, 2),
                 "net": 20 + 0.3 * load + rng.gauss(0, 1), "uptime_s": float(uptime + t * 60)}
            if k % 4 == 0 and 3300 <= t < 3400:
                v["mem"] += 15
            (train if t < 3000 else test).append({"device_id": device, "ts": T0 + t * 60_000, "values": v})
        if k % 4 == 0:
            labels.append((device, T0 + 3300 * 60_000, T0 + 3399 * 60_000))
    return train, test, labels


def newpumps(rng):
    def step(t, k):
        load = 0.6 + 0.3 * math.sin(t / 200 + k)
        return {"rpm": 1000 + 800 * load + rng.gauss(0, 15), "current": 5 + 10 * load + rng.gauss(0, 0.3),
                "pressure": 2 + 3 * load + rng.gauss(0, 0.08), "temp": 40 + 20 * load + rng.gauss(0, 0.5)}
    train, test, labels = [], [], []
    for k in range(10):
        for t in range(5000):
            train.append({"device_id": f"old-{k}", "ts": T0 + t * 1000, "values": step(t, k)})
    shift = {"pressure": 0.5, "temp": 4.0, "current": 1.5}
    for k in range(20):
        device, feature, start = f"new-{k:02d}", list(shift)[k % 3], 400 + 40 * (k % 5)
        for t in range(1500):
            v = step(t, k + 3)
            if start <= t < start + 600:
                v[feature] += shift[feature]
            test.append({"device_id": device, "ts": T0 + 6_000_000 + t * 1000, "values": v})
        labels.append((device, T0 + 6_000_000 + start * 1000, T0 + 6_000_000 + (start + 599) * 1000))
    return train, test, labels


def servers(rng):
    day, train_steps, steps = 1440, 5 * 1440, 7 * 1440
    train, test, labels = [], [], []
    faults = {"srv-03": ("spike", 7500), "srv-08": ("netstop", 8000), "srv-13": ("leak", 8800),
              "srv-18": ("frozen", 9400)}
    for k in range(24):
        device, w = f"srv-{k:02d}", 0.3 * 10 ** rng.uniform(0, 1)
        swap, threads, mem, phase = rng.uniform(0, 2000), float(rng.randint(80, 400)), 40.0, rng.uniform(0, 6.3)
        kind, at = faults.get(device, (None, -1))
        for t in range(steps):
            cycle = 0.5 + 0.4 * math.sin(2 * math.pi * t / day + phase)
            cpu = w * 30 * cycle + rng.gauss(0, 1.5 * w)
            mem += rng.gauss(0, 0.05) + 0.02 * (40 - mem)
            v = {"cpu": cpu, "load": cpu / 25 + rng.gauss(0, 0.05 * w), "net_in": w * 200 * cycle + rng.gauss(0, 8 * w),
                 "net_out": w * 150 * cycle + rng.gauss(0, 6 * w), "disk_read": w * 50 * cycle * rng.uniform(0.5, 1.5),
                 "disk_write": w * 30 * cycle + rng.gauss(0, 2 * w), "mem": mem, "ctx_switch": w * 1e4 * cycle + rng.gauss(0, 300 * w),
                 "latency_ms": 5 + 20 * cycle ** 3 + rng.gauss(0, 0.5), "errors": float(rng.random() < 0.01),
                 "swap": swap, "threads": threads}
            if rng.random() < 0.001:
                threads += rng.choice((-1.0, 1.0))
            if k == 21 and t >= 7200 + 600:
                v["swap"] = swap + 0.1  # a hair more swap, for good: normal
            if kind == "spike" and at <= t < at + 10:
                v["cpu"] += 40 * w
                v["load"] += 1.6 * w
            elif kind == "netstop" and at <= t < at + 60:
                v["net_in"], v["net_out"] = rng.gauss(0, 1), rng.gauss(0, 1)
            elif kind == "leak" and at <= t < at + 360:
                v["mem"] += 30 * (t - at) / 360
            elif kind == "frozen" and at <= t < at + 120:
                v["disk_write"] = 12.5
            (train if t < train_steps else test).append({"device_id": device, "ts": T0 + t * 60_000, "values": v})
        if kind:
            length = {"spike": 10, "netstop": 60, "leak": 360, "frozen": 120}[kind]
            labels.append((device, T0 + at * 60_000, T0 + (at + length - 1) * 60_000))
    return train, test, labels


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: training/shape-fleets.py DIR")
    for name, make in (("single", single), ("short", short), ("messy", messy), ("counter", counter),
                       ("newpumps", newpumps), ("servers", servers)):
        train, test, labels = make(random.Random(name))
        write(sys.argv[1], name, train, test, labels, "contextual" if name == "newpumps" else "point")


if __name__ == "__main__":
    main()
