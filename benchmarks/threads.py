"""Threads that share the cores: training speed of one run alone and of runs side by side, by torch threads per run.

    python benchmarks/threads.py                     # writes docs/benchmarks/threads.md

Each run is its own process taking sac_v's training step once learning has begun (act, env step, store, sample, one
gradient step: throughput.py's Loop) on LunarLanderContinuous-v3 at sac_v's default sizes. The runs of a case warm up,
then all count their steps over the same `--seconds` window. Cases: one run at 1 and at 2 torch threads; two runs side
by side at 1 thread each, at 2 threads each, and at 2 threads each with OMP_WAIT_POLICY=passive (OpenMP threads that
sleep instead of spinning while they wait). Run it on a quiet machine: anything else on the cores skews every case.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
CASES = (  # (name, runs side by side, torch threads per run, extra environment)
    ("one run, 1 thread", 1, 1, {}),
    ("one run, 2 threads", 1, 2, {}),
    ("two runs, 1 thread each", 2, 1, {}),
    ("two runs, 2 threads each", 2, 2, {}),
    ("two runs, 2 threads each, OMP_WAIT_POLICY=passive", 2, 2, {"OMP_WAIT_POLICY": "passive"}),
)


@dataclasses.dataclass
class BenchArgs:
    seconds: float = 20.0
    """length of the timed window of each case"""
    warmup_s: float = 8.0
    """time given to every run of a case to start and warm up before the window opens"""
    output: Path = Path("docs/benchmarks/threads.md")
    """markdown file the table is written to"""


def worker(threads: int, start_at: float, stop_at: float) -> None:
    """One run: warm up, wait for the window, print the steps per second it took within it."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import throughput

    import sac_v

    torch.set_num_threads(threads)
    args = sac_v.Args(device="cpu")
    env = sac_v.make_env(throughput.ENV_ID)
    step, sample_action = throughput.project_update_step(env, args, torch.device("cpu"))
    loop = throughput.Loop(step, sample_action, args, torch.device("cpu"), pool=2_000)
    loop.run(20)
    while time.time() < start_at:
        time.sleep(0.01)
    start, steps = time.time(), 0  # later than start_at where the warm-up overran: the window is then shorter
    while steps == 0 or time.time() < stop_at:
        loop.run(10)
        steps += 10
    print(steps / (time.time() - start))


def run_case(runs: int, threads: int, extra_env: dict[str, str], bench: BenchArgs) -> list[float]:
    """Steps per second of each of `runs` processes side by side."""
    start_at = time.time() + bench.warmup_s
    stop_at = start_at + bench.seconds
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **extra_env}
    command = [sys.executable, __file__, "--worker", str(threads), str(start_at), str(stop_at)]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(runs)]
    return [float(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]


def main(bench: BenchArgs) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from throughput import cpu_name

    rows, alone = [], None
    for name, runs, threads, extra_env in CASES:
        speeds = run_case(runs, threads, extra_env, bench)
        alone = alone or speeds[0]  # the first case: one run, 1 thread
        each = " / ".join(f"{s:.0f}" for s in speeds)
        rows.append(f"| {name} | {each} | {sum(speeds):.0f} | {min(speeds) / alone:.2f} |")
        print(rows[-1], flush=True)
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in Path("/proc/cpuinfo").read_text()]
    lines = [
        "# Threads that share the cores",
        "",
        "Env steps per second of sac_v's training step (act, env step, store, sample, one gradient step) on",
        "LunarLanderContinuous-v3 at the default sizes (200 × 200, batch 200), each run its own process, all runs of a",
        f"case timed over the same {bench.seconds:g} s window.",
        "",
        "| case | env steps/s of each run | together | slowest run / one run alone at 1 thread |",
        "| --- | ---: | ---: | ---: |",
        *rows,
        "",
        f"Hardware: {cpu_name()} ({', '.join(flags)}), {os.cpu_count()} CPU cores, torch {torch.__version__}.",
        "",
        "Command: `python benchmarks/threads.py`.",
        "",
    ]
    bench.output.parent.mkdir(parents=True, exist_ok=True)
    bench.output.write_text("\n".join(lines))
    print(f"wrote {bench.output}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        main(tyro.cli(BenchArgs))
