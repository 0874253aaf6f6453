"""What the machine offers this process."""
from __future__ import annotations

import os


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: OpenMP's busy-wait after a parallel region, in spins (libgomp's default is 300,000, a few tenths of a ms).
OPENMP_SPINS = "30000"


def shorten_openmp_spin() -> None:
    """Shorten the busy-wait of idle OpenMP threads, unless the user chose one (``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT``). A run keeps loader and storing threads beside torch's and the metric kernels' OpenMP
    threads; with libgomp's default spin, threads between two small parallel regions keep a core busy that the
    loaders need (about 2 ms of CPU per image in ``benchmarks/bench_harness.py`` on 2 cores). The shorter spin
    still bridges the gaps between a model's operators. It takes effect only if called before torch or numba
    start OpenMP, so the CLI calls it first."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPINS)
