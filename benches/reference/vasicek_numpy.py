#!/usr/bin/env python3
"""Dev-only numpy reference for the Vasicek portfolio (benches/vasicek.toml;
not part of the build or CI).

Per path: z ~ N(0, 1); per borrower: default iff sqrt(rho) z + sqrt(1 - rho)
e < threshold, e ~ N(0, 1) drawn with numpy.random.default_rng()
.standard_normal(dtype=float32); loss_rate = lgd * mean over borrowers.
Paths are processed in chunks so memory stays bounded (chunk × borrowers
float32). Reports the same statistics as the scenario: mean and the 99%
value at risk / expected shortfall of loss_rate, plus unit evaluations per
second (paths × borrowers / wall time).

Usage: python3 vasicek_numpy.py PATHS [--units U] [--chunk C] [--seed S]
Prints one JSON line.
"""

import argparse
import json
import math
import time

import numpy as np

RHO = 0.15
THRESHOLD = -2.0537489
LGD = 0.45


def run(paths: int, units: int, chunk: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    a = np.float32(math.sqrt(RHO))
    b = np.float32(math.sqrt(1.0 - RHO))
    losses = np.empty(paths, dtype=np.float64)
    done = 0
    t0 = time.perf_counter()
    while done < paths:
        m = min(chunk, paths - done)
        z = rng.standard_normal(m, dtype=np.float32)[:, None]
        e = rng.standard_normal((m, units), dtype=np.float32)
        defaults = (a * z + b * e) < np.float32(THRESHOLD)
        losses[done : done + m] = LGD * defaults.mean(axis=1)
        done += m
    seconds = time.perf_counter() - t0
    srt = np.sort(losses)
    k = int(math.ceil(0.99 * paths))
    var99 = float(srt[k - 1])
    es99 = float(srt[k:].mean()) if k < paths else var99
    return {
        "paths": paths,
        "units": units,
        "seconds": seconds,
        "unit_evaluations_per_s": paths * units / seconds,
        "expected_loss": float(losses.mean()),
        "var99": var99,
        "es99": es99,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", type=int)
    p.add_argument("--units", type=int, default=10_000)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    print(json.dumps(run(a.paths, a.units, a.chunk, a.seed)))


if __name__ == "__main__":
    main()
