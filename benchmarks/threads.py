"""Threads that share the cores: training speed of one run alone and of runs side by side, by torch threads per run.

    python benchmarks/threads.py                                          # writes runs/benchmarks/threads.md
    python benchmarks/threads.py --record                                 # the committed docs/benchmarks/threads.md
    python benchmarks/threads.py --hidden-sizes 256 256 --batch-size 256  # the paper's sizes

Each run is its own process taking sac_v's training step once learning has begun (act, env step, store, sample, one
gradient step: throughput.py's Loop) on LunarLanderContinuous-v3. The runs of a case warm up, then all count their
steps over the same `--seconds` window. Cases: one run at sac_v's default `--threads auto` (as many threads as the cores
others leave idle, counted each second), at 1 and at 2 torch threads, OpenMP's idle threads waiting as libgomp does by
default (spinning a while, then sleeping) or sleeping at once (OMP_WAIT_POLICY=passive); two runs side by side, each at
auto, at 1 thread, and at 2 threads in either way; one run at auto and at 1 thread beside the test suite (`pytest -q`,
started before the window). Run it on a quiet machine: anything else on the cores skews every case.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import tyro
from common import ROOT, cpu_flags, cpu_name, results_path

from sac_v import ConfigError

DEFAULT, PASSIVE = {}, {"OMP_WAIT_POLICY": "passive"}  # libgomp's default: spin a while, then sleep
SUITE = {"SUITE": "1"}  # not an environment variable: the case runs beside the test suite
ONE, TWO = "one run, 1 thread", "one run, 2 threads"
CASES = (  # (name, runs side by side, --threads of each run, extra environment)
    ("one run, --threads auto (the default)", 1, "auto", DEFAULT),
    (ONE, 1, "1", DEFAULT),
    (TWO, 1, "2", DEFAULT),
    ("one run, 2 threads sleeping (OMP_WAIT_POLICY=passive)", 1, "2", PASSIVE),
    ("two runs, auto each", 2, "auto", DEFAULT),
    ("two runs, 1 thread each", 2, "1", DEFAULT),
    ("two runs, 2 threads each", 2, "2", DEFAULT),
    ("two runs, 2 threads each, sleeping", 2, "2", PASSIVE),
    ("one run, auto, beside the test suite", 1, "auto", SUITE),
    ("one run, 1 thread, beside the test suite", 1, "1", SUITE),
)


@dataclasses.dataclass
class BenchArgs:
    seconds: float = 20.0
    """length of the timed window of each case"""
    warmup_s: float = 8.0
    """time given to every run of a case to start and warm up before the window opens"""
    hidden_sizes: tuple[int, ...] = (200, 200)
    """hidden layers of every network (sac_v's default)"""
    batch_size: int = 200
    """minibatch of each gradient step (sac_v's default)"""
    output: Path | None = None
    """markdown file the table is written to (default runs/benchmarks/threads.md)"""
    record: bool = False
    """write the committed table, docs/benchmarks/threads.md"""


def worker(threads: str, start_at: float, stop_at: float, batch_size: int, hidden_sizes: tuple[int, ...]) -> None:
    """One run: warm up, wait for the window, print the steps per second it took within it. Its threads are sac_v's
    (Threads): auto counts the idle cores again each second, as a training run does."""
    import throughput
    import torch

    import sac_v

    args = sac_v.Args(device="cpu", batch_size=batch_size, hidden_sizes=hidden_sizes)
    args.threads = threads if threads == "auto" else int(threads)
    env = sac_v.make_env(throughput.ENV_ID)
    torch_threads = sac_v.Threads(args, env)
    step, sample_action = throughput.project_update_step(env, args, torch.device("cpu"))
    loop = throughput.Loop(step, sample_action, args, torch.device("cpu"), pool=2_000)
    loop.run(20)
    while time.time() < start_at:
        loop.run(10)  # warm up until the window opens: auto settles on its count as it would in a run
        torch_threads.adapt()
    start, steps = time.time(), 0  # later than start_at where the warm-up overran: the window is then shorter
    while steps == 0 or time.time() < stop_at:
        loop.run(10)
        torch_threads.adapt()
        steps += 10
    print(steps / (time.time() - start))


def run_case(runs: int, threads: str, extra_env: dict[str, str], bench: BenchArgs) -> list[float]:
    """Steps per second of each of `runs` processes side by side."""
    start_at = time.time() + bench.warmup_s
    stop_at = start_at + bench.seconds
    inherited = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env = {**inherited, **({} if threads == "auto" else {"OMP_NUM_THREADS": threads}), **extra_env}
    sizes = [str(bench.batch_size), *map(str, bench.hidden_sizes)]
    command = [sys.executable, __file__, "--worker", threads, str(start_at), str(stop_at), *sizes]
    suite = None
    if env.pop("SUITE", None):  # the test suite, as a developer runs it beside a training run
        suite = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so that its test runs end with it
        )
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(runs)]
    speeds = [float(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    if suite is not None:
        if suite.poll() is not None:
            sys.exit("error: the test suite ended before the window closed; its case did not run beside it")
        os.killpg(suite.pid, signal.SIGKILL)
        suite.wait()
    return speeds


def main(bench: BenchArgs) -> None:
    try:
        output = results_path(bench.output, bench.record, "benchmarks", "threads.md", flag="--output")
    except ConfigError as e:
        sys.exit(f"error: {e}")
    import torch

    speeds = {}
    for name, runs, threads, extra_env in CASES:
        speeds[name] = run_case(runs, threads, extra_env, bench)
        print(name, " / ".join(f"{s:.0f}" for s in speeds[name]), flush=True)
    one, two = speeds[ONE][0], speeds[TWO][0]  # one run alone: at 1 thread; at 2
    rows = [
        f"| {name} | {' / '.join(f'{s:.0f}' for s in each)} | {sum(each):.0f} | {min(each) / one:.2f} "
        f"| {min(each) / two:.2f} |"
        for name, each in speeds.items()
    ]
    sizes = f"{' × '.join(map(str, bench.hidden_sizes))}, batch {bench.batch_size}"
    section = [
        f"## {sizes}",
        "",
        "| case | env steps/s of each run | together | slowest / alone at 1 thread | slowest / alone at 2 threads |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"Hardware: {cpu_name()} ({', '.join(cpu_flags())}), {os.cpu_count()} CPU cores, torch {torch.__version__}.",
        f"Command: `python benchmarks/threads.py --hidden-sizes {' '.join(map(str, bench.hidden_sizes))} "
        f"--batch-size {bench.batch_size}`.",
        "",
    ]
    write_section(output, f"## {sizes}", section)
    print(f"wrote {output}")


def write_section(path: Path, heading: str, section: list[str]) -> None:
    """Replace the section under `heading` in `path` (or add it), keeping the other sizes' sections."""
    head = [
        "# Threads that share the cores",
        "",
        "Env steps per second of sac_v's training step (act, env step, store, sample, one gradient step) on",
        "LunarLanderContinuous-v3, each run its own process, all runs of a case timed over the same window.",
        "",
    ]
    sections = {}
    if path.exists():
        for part in path.read_text().split("\n## ")[1:]:
            sections["## " + part.splitlines()[0]] = [*("## " + part).rstrip("\n").splitlines(), ""]
    sections[heading] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + [line for lines in sections.values() for line in lines]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), tuple(map(int, sys.argv[6:])))
    else:
        main(tyro.cli(BenchArgs))
