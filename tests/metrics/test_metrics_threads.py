"""Every metric is the same bits whatever numba's thread count, so a rescore on another machine is exact."""
from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, numba, numpy as np
from zsadbench.metrics import compute_metrics
rng = np.random.default_rng(7)
maps = rng.random((24, 256, 256), dtype=np.float32)  # 6 chunks of 2^18 pixels: more than 4 x 1 thread
masks = np.zeros(maps.shape, bool)
for i in range(0, 24, 2):
    y, x = rng.integers(0, 200, 2)
    masks[i, y:y + rng.integers(3, 50), x:x + rng.integers(3, 50)] = True
    maps[i][masks[i]] += rng.random() * 0.5
scores = maps.reshape(24, -1).max(1)
labels = masks.reshape(24, -1).any(1)
out = {}
for threads in (1, 2, 3, 4):
    numba.set_num_threads(threads)
    values = compute_metrics(scores, labels, maps, masks)
    out[threads] = {k: float(v).hex() for k, v in values.items()}
print(json.dumps(out))
"""


def test_metrics_are_bitwise_equal_for_every_thread_count():
    env = dict(os.environ, NUMBA_NUM_THREADS="4")
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    per_threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(per_threads) == 4 and len(per_threads["1"]) == 8
    for threads, values in per_threads.items():
        assert values == per_threads["1"], f"{threads} threads give other bits than 1 thread"
