#!/usr/bin/env python3
"""A heterogeneous copy of a labelled fleet: the same devices and anomalies, but each device of
another size, as a fleet of pumps of different sizes or servers with different workloads is.
Every numeric feature value of a device is multiplied by the device's size factor (log-uniform in
[1/SPREAD, SPREAD], fixed by the device id), so that devices differ in level and in spread;
labels are copied unchanged. Lines that are not a
record with a "values" object (malformed on purpose in a test stream) are copied as they are.

Usage: resize-fleet.py IN_DIR OUT_DIR [--spread 3]
IN_DIR holds train.jsonl, test.jsonl and labels.csv (./vigil testdata writes them).
EVALUATION.md measures the fleet's against per-device normalisation on the result."""
import argparse
import hashlib
import json
import math
import os
import shutil


def factor(device, spread):
    """Deterministic in the device id: log-uniform in [1/spread, spread]."""
    u = int.from_bytes(hashlib.sha256(device.encode()).digest()[:8], "big") / 2 ** 64
    return math.exp((2 * u - 1) * math.log(spread))


def resize(src, dst, spread):
    with open(src, "rb") as f, open(dst, "wb") as out:
        for line in f:
            try:
                e = json.loads(line)
                values, device = e["values"], e["device_id"]
                if not isinstance(values, dict) or not isinstance(device, str):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                out.write(line)
                continue
            k = factor(device, spread)
            for name, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    values[name] = round(v * k, 6)
            out.write((json.dumps(e) + "\n").encode())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--spread", type=float, default=3.0)
    a = ap.parse_args()
    os.makedirs(a.dst, exist_ok=True)
    for name in ("train.jsonl", "test.jsonl"):
        resize(os.path.join(a.src, name), os.path.join(a.dst, name), a.spread)
    shutil.copy(os.path.join(a.src, "labels.csv"), os.path.join(a.dst, "labels.csv"))


if __name__ == "__main__":
    main()
