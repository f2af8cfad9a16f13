#!/usr/bin/env python3
"""Make the benchmark model: 16 features, hidden size 64 (the issue's sizes), trained briefly on a
synthetic fleet. Its scores mean nothing; it exists so benchmarks run the real ONNX step at the
sizes a production fleet would use. Usage (from the repository root, needs python3-torch):

    /usr/bin/python3 bench/model/make.py
"""
import json, os, subprocess, sys, tempfile
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
rng = np.random.default_rng(16)
F, LATENT, DEVICES, STEPS = 16, 4, 20, 2000
mix = rng.normal(0, 1, (LATENT, F))
names = [f"f{i:02d}" for i in range(F)]
with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "train.jsonl")
    with open(data, "w") as out:
        for d in range(DEVICES):
            z = np.zeros(LATENT)
            for t in range(STEPS):
                z = 0.98 * z + rng.normal(0, 0.2, LATENT)
                x = z @ mix + rng.normal(0, 0.05, F)
                out.write(json.dumps({"device_id": f"d{d}", "ts": 1764000000000 + t * 60000,
                                      "values": {n: round(float(v), 4) for n, v in zip(names, x)}}) + "\n")
    subprocess.run([sys.executable, os.path.join(root, "training", "train.py"), "--train", data,
                    "--out", here, "--hidden", "64", "--epochs", "2", "--seed", "16",
                    "--version-prefix", "bench-gru"], check=True)
