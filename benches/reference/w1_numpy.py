#!/usr/bin/env python3
"""Dev-only numpy reference for workload W1 (not part of the build or CI).

W1: a 20-node linear-Gaussian chain, X0 = e0, Xi = 0.9 * X(i-1) + ei, with
ei ~ N(0, 1) drawn per node by numpy.random.default_rng().standard_normal(n,
dtype=float32), f32 arithmetic throughout, metric mean(X19) (accumulated in
f64). Samples are processed in chunks so memory stays bounded for any N.

Usage: python3 w1_numpy.py N [--chunk C] [--seed S]
Prints one JSON line: samples, nodes, seconds, node_samples_per_s, mean_x19.
"""

import argparse
import json
import time

import numpy as np

NODES = 20
COEF = np.float32(0.9)


def run(n: int, chunk: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    total = 0.0
    done = 0
    t0 = time.perf_counter()
    while done < n:
        m = min(chunk, n - done)
        x = rng.standard_normal(m, dtype=np.float32)  # X0 = e0
        for _ in range(1, NODES):
            e = rng.standard_normal(m, dtype=np.float32)
            x = COEF * x + e  # stays float32
        total += float(x.sum(dtype=np.float64))
        done += m
    secs = time.perf_counter() - t0
    return {
        "workload": "W1",
        "impl": "numpy",
        "numpy": np.__version__,
        "samples": n,
        "nodes": NODES,
        "seconds": secs,
        "node_samples_per_s": n * NODES / secs,
        "mean_x19": total / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=float, help="number of samples, e.g. 1e6")
    ap.add_argument("--chunk", type=int, default=1 << 20, help="samples per chunk (bounds memory)")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    print(json.dumps(run(int(a.n), a.chunk, a.seed)))


if __name__ == "__main__":
    main()
