"""Multi-seed learning benchmark: does sac_v learn, how fast, and how reliably?

    python benchmarks/learning.py --env-id LunarLanderContinuous-v3 --seeds 10
    python benchmarks/learning.py --env-id Pendulum-v1 --total-timesteps 10000 --min-pool 1000 --reward-scale 40 \
        --eval-every 1000

Runs `sac_v.train` once per seed in parallel worker processes (--threads torch threads each) and writes, under
docs/benchmarks/<env>/: runs.csv (every evaluation of every seed, appended as each seed finishes, so a crash never
loses finished seeds), summary.md (steps to the threshold per seed, success count, median and IQR) and curves.png.
Started again with the same settings, it skips the seeds already in runs.csv and continues each unfinished seed from
its last checkpoint (its run folder runs/<env>__bench__<seed>__<time>, found by its settings; the run length may
differ, so a longer benchmark continues a shorter one's runs). Needs the `bench` extra (matplotlib).

    python benchmarks/learning.py --paper --env-id Hopper-v5 --total-timesteps 300000 --seeds 3
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import dataclasses
import importlib.util
import itertools
import json
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from throughput import cpu_name

import sac_v
from buffer import atomic_path
from sac_v import (
    Args,
    ConfigError,
    Evaluation,
    load_checkpoint,
    lock_folder,
    make_env,
    paper_args,
    path_name,
    train,
    validate_args,
)

# "Solved" lines; for the MuJoCo tasks, where published SAC curves stand at 300 000 env steps.
THRESHOLDS = {
    "LunarLanderContinuous-v3": 200.0,
    "Pendulum-v1": -200.0,
    "HalfCheetah-v5": 5000.0,
    "Hopper-v5": 2500.0,
    "Walker2d-v5": 2000.0,
}


class Target(NamedTuple):
    """One env's project targets, for runs of `total` env steps."""

    total: int  # the run length the targets are set for
    steps: int  # env steps within which ...
    share: float | None  # ... at least this share of seeds must reach the threshold (None: no such target)
    every_seed: bool  # whether every seed must reach it by the end of the run
    least_final: float | None  # the least final eval mean over seeds


TARGETS = {
    "LunarLanderContinuous-v3": Target(100_000, 50_000, 0.9, True, 240.0),
    "Pendulum-v1": Target(10_000, 10_000, 1.0, False, None),
    **{
        env_id: Target(300_000, 300_000, None, False, THRESHOLDS[env_id])
        for env_id in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")
    },
}
# Published SAC (v2) at 1 000 000 env steps, for the MuJoCo summaries: CleanRL (3 seeds, -v4 envs, training returns),
# Stable-Baselines3's zoo (1 run, deterministic, -v3 envs), the SAC v2 paper's curves (arXiv 1812.05905, read off).
PUBLISHED = {
    "HalfCheetah-v5": "CleanRL 9 635 ± 1 424, SB3 zoo 9 535, SAC v2 paper about 11 250",
    "Hopper-v5": "CleanRL 2 310 ± 343, SB3 zoo 2 326, SAC v2 paper about 3 250",
    "Walker2d-v5": "CleanRL 3 591 ± 911, SB3 zoo 3 863, SAC v2 paper about 4 800",
}
T = TypeVar("T")
CSV_FIELDS = ["seed", "step", "eval_mean", "eval_std", "wall_s"]
RUN_MANAGEMENT = ("resume", "save_buffer", "capture_video", "threads")  # how a run is kept or run, not what it learns


@dataclasses.dataclass
class BenchArgs:
    train: tyro.conf.OmitArgPrefixes[Args]
    """the sac_v settings shared by every seed (each run's --seed and --exp-name are the benchmark's)"""
    seeds: int = 10
    """number of seeds: first-seed, first-seed + 1, ..."""
    first_seed: int = 1
    """the first seed"""
    workers: int = 0
    """parallel worker processes (0: one per CPU core)"""
    threshold: float | None = None
    """eval return that counts as solved (default: LunarLander 200, Pendulum -200, HalfCheetah 5000, Hopper 2500,
    Walker2d 2000)"""
    out_dir: Path | None = None
    """where results go (default docs/benchmarks/<env-id>)"""
    overwrite: bool = False
    """discard earlier results in out_dir made with other settings"""


def resumable_checkpoint(args: Args, config: dict[str, Any]) -> Path | None:
    """The most advanced checkpoint under runs/ of this seed's unfinished benchmark run with these settings (any run
    length), or None."""
    wanted = json.loads(json.dumps({k: v for k, v in config.items() if k not in ("total_timesteps", "exp_name")}))
    best, best_step = None, 0
    for path in Path("runs").glob(f"{path_name(args.env_id)}__bench__{args.seed}__*/sac_v.pt"):
        try:
            saved = load_checkpoint(path)
        except ConfigError as e:
            print(f"note: not resuming from {path}: {e}")
            continue
        same = json.loads(json.dumps({k: saved["args"].get(k) for k in wanted})) == wanted
        if same and best_step < saved["global_step"] < args.total_timesteps:
            best, best_step = path, saved["global_step"]
    return best


def run_seed(args: Args) -> list[Evaluation]:
    os.environ["TQDM_DISABLE"] = "1"  # parallel progress bars would garble one terminal; eval lines remain
    result = train(args)
    if result.stopped_by is not None:  # Ctrl-C reaches the workers too: a stopped run is not a finished seed
        raise RuntimeError(f"seed {args.seed} was stopped by signal {result.stopped_by} at its checkpoint")
    return result.evaluations


class InterruptError(Exception):
    """SIGINT or SIGTERM stopped the benchmark; the runs it had in flight saved their checkpoints."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


WORKER_BUSY = threading.Event()  # set while this worker process runs a job (start_worker)


def run_job(fn: Callable[..., Any], *job: Any) -> Any:
    WORKER_BUSY.set()
    try:
        return fn(*job)
    finally:
        WORKER_BUSY.clear()


def start_worker(parent: int) -> None:
    """A worker's initializer: a process group of its own (see run_in_workers), and a watch on its parent. Where the
    parent dies without a word (SIGKILL, the out-of-memory killer), the worker's run saves and stops as on a SIGTERM,
    and the worker exits, rather than train on with no one to record it and then wait for jobs forever."""
    os.setpgrp()
    # A run stopped here is continued by the benchmark's own command, not by sac_v.py --resume.
    sac_v.resume_command = lambda checkpoint: "rerun the benchmark's own command"

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        if WORKER_BUSY.is_set():
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 600  # an evaluation, then a checkpoint with its buffer
            while WORKER_BUSY.is_set() and time.monotonic() < deadline:
                time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run_in_workers(fn: Callable[..., Any], jobs: dict[Hashable, tuple], workers: int) -> Iterator[tuple[Hashable, Any]]:
    """Runs fn(*job) for each job in at most `workers` spawned processes; yields (key, result or exception) as each
    ends. SIGINT or SIGTERM to this process forwards one SIGTERM to each worker (sac_v.train saves and stops; a second
    signal stops it at once), starts no new job, waits for the workers and raises InterruptError. Each worker has a
    process group of its own: a signal to the terminal's group reaches it once, through this process, and a SIGTERM to
    this process alone does not leave a worker training with no one to record it; nor does a SIGKILL (start_worker)."""
    waiting = iter(jobs.items())
    running: dict[cf.Future, Hashable] = {}
    stopped: list[int] = []

    def forward(signum: int, frame: object) -> None:
        stopped.append(signum)
        for child in multiprocessing.active_children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(workers, context, initializer=start_worker, initargs=(os.getpid(),)) as pool:

            def start_next() -> None:
                """One job per free worker: a job queued inside the pool would start after a stop."""
                for key, job in itertools.islice(waiting, 1):
                    try:
                        running[pool.submit(run_job, fn, *job)] = key
                    except cf.process.BrokenProcessPool as e:  # a worker was killed (out of memory?): none can start
                        failed: cf.Future = cf.Future()
                        failed.set_exception(e)
                        running[failed] = key

            for _ in range(workers):
                start_next()
            while running:
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    key, error = running.pop(future), future.exception()
                    if stopped and error is not None:  # stopped at its checkpoint, or killed: not an outcome
                        continue
                    if not stopped:
                        start_next()
                    yield key, error or future.result()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopped:
        raise InterruptError(stopped[0])


def load_rows(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        text = f.read()
    if not text.endswith("\n"):  # a last row cut short by a kill or a full disk: that seed is run again
        text = text[: text.rfind("\n") + 1]
    rows = csv.DictReader(text.splitlines())
    return [{k: float(v) for k, v in row.items()} for row in rows if None not in row.values() and None not in row]


def finished_rows(runs_csv: Path, total_timesteps: int) -> list[dict[str, float]]:
    """The rows of the seeds in runs.csv that reached total_timesteps, with runs.csv rewritten to hold only those
    (partial leftovers dropped), through a new file so that a kill now cannot lose them; new seeds append to it."""
    rows = load_rows(runs_csv)
    done = {r["seed"] for r in rows if r["step"] == total_timesteps}
    rows = [r for r in rows if r["seed"] in done]
    kept = runs_csv.with_suffix(".csv.tmp")
    with kept.open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        writer.writeheader()
        writer.writerows({k: (int(v) if k in ("seed", "step") else v) for k, v in r.items()} for r in rows)
    kept.replace(runs_csv)
    return rows


def steps_to_threshold(rows: list[dict[str, float]], threshold: float) -> float:
    """First evaluation step with eval_mean >= threshold; inf if never."""
    hits = [row["step"] for row in rows if row["eval_mean"] >= threshold]
    return min(hits) if hits else float("inf")


def by_seed(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The rows of each seed, sorted by step; seeds in order."""
    seeds = sorted({int(r["seed"]) for r in rows})
    return {seed: sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["step"]) for seed in seeds}


def check_earlier_results(out_dir: Path, config: dict[str, Any], overwrite: bool, what: str = "settings") -> None:
    """Earlier results in out_dir count only if they were made with this config: refuse, or with overwrite discard
    them; then record the config."""
    runs_csv, config_json = out_dir / "runs.csv", out_dir / "config.json"
    config = json.loads(json.dumps(config))  # tuples become lists, as when read back
    try:
        earlier = json.loads(config_json.read_text()) if config_json.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        earlier = None  # damaged: its results cannot be told to match
    if runs_csv.exists() and earlier != config:
        if not overwrite:
            raise ConfigError(f"{runs_csv} holds results made with other {what}: pass --overwrite or --out-dir")
        runs_csv.unlink()
    with atomic_path(config_json) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")


def fmt(steps: float) -> str:
    return "not reached" if np.isinf(steps) else f"{steps:,.0f}"


def target_lines(env_id: str, threshold: float, total: int, reach: np.ndarray, finals: np.ndarray) -> list[str]:
    """The project's targets for this env, each met or missed and by how much (none for other envs)."""
    if env_id not in TARGETS or TARGETS[env_id].total != total or len(reach) == 0:
        return []
    _, within, share, every_seed, least_final = TARGETS[env_id]
    n = len(reach)

    def verdict(shortfall: float, unit: str) -> str:
        return (
            "**met**"
            if shortfall <= 0
            else f"**missed** by {shortfall:g}{unit}{'s' if unit and shortfall != 1 else ''}"
        )

    lines = ["", "Project targets:", ""]
    if share is not None:
        need, got = int(np.ceil(share * n)), int((reach <= within).sum())
        lines.append(
            f"- ≥ {threshold:g} within {within:,} env steps in at least {need} of {n} seeds: {got} of {n}, "
            + verdict(need - got, " seed")
        )
    if every_seed:
        got = int(np.isfinite(reach).sum())
        lines.append(f"- every seed ≥ {threshold:g} by {total:,} env steps: {got} of {n}, " + verdict(n - got, " seed"))
    if least_final is not None:
        shortfall = round(least_final - finals.mean(), 1)
        lines.append(f"- final eval mean ≥ {least_final:g}: {finals.mean():.1f}, " + verdict(shortfall, ""))
    return lines


def earlier_summary_line(out_dir: Path, field: str = "Hardware") -> str:
    """A line of the summary written when the runs ran (kept when nothing is left to run): hardware, or commit."""
    summary = out_dir / "summary.md"
    lines = summary.read_text().splitlines() if summary.exists() else []
    found = [line.removeprefix(f"{field}: ").removesuffix(".") for line in lines if line.startswith(f"{field}: ")]
    return found[0] if found else "not recorded"


def seed_values(line: str, seeds: set[int]) -> dict[int, str]:
    """Each seed's value in a summary line (commit, hardware): one value for all, or as `seed_line` groups them."""
    values = {}
    for part in line.split("; "):
        if found := re.fullmatch(r"(.*) \(seeds? ([\d, ]+)\)", part):
            values |= {int(s): found[1] for s in found[2].split(", ")}
    return {s: values.get(s, "not recorded") for s in seeds} if values else dict.fromkeys(seeds, line)


def earlier_seed_lines(out_dir: Path, seeds: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    """The hardware and the commit each finished seed ran with, from the summary written when it ran."""
    hardware, ran_at = (seed_values(earlier_summary_line(out_dir, field), seeds) for field in ("Hardware", "Commit"))
    return hardware, ran_at


def seed_line(values: dict[int, str]) -> str:
    """One value where every seed ran with it; else each value with its seeds: `a (seeds 1, 2); b (seed 3)`."""
    groups: dict[str, list[int]] = {}
    for seed in sorted(values):
        groups.setdefault(values[seed], []).append(seed)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{v} (seed{'s' * (len(s) > 1)} {', '.join(map(str, s))})" for v, s in groups.items())


def commit(checkout: Path = Path(__file__).parent) -> str:
    """The commit of this checkout, marked -dirty when tracked code differs from it (docs/, where the records are
    written, does not count). Read when the runs start: the checkout may move on while they run."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=checkout, capture_output=True, text=True)

    try:
        described = git("describe", "--always", "--abbrev=12")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)docs")
    except OSError:
        return "not recorded"
    if described.returncode or changed.returncode:
        return "not recorded"
    return described.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def write_summary(
    rows: list[dict[str, float]],
    bench: BenchArgs,
    threshold: float,
    hardware: str,
    out_dir: Path,
    ran_at: str,
    title: str | None = None,
    settings_line: str | None = None,
) -> None:
    """summary.md; `title` and `settings_line` replace sac_v's (a peer's runs name their own settings)."""
    per_seed = by_seed(rows)
    seeds = list(per_seed)
    reach = np.array([steps_to_threshold(per_seed[s], threshold) for s in seeds])
    finals = np.array([per_seed[s][-1]["eval_mean"] for s in seeds])
    q1, median, q3 = np.percentile(reach, [25, 50, 75], method="inverted_cdf") if seeds else (np.inf,) * 3
    lines = [
        title or f"# Learning benchmark: {bench.train.env_id}",
        "",
        f"Threshold: deterministic {bench.train.eval_episodes}-episode eval mean ≥ {threshold:g}, "
        f"checked every {bench.train.eval_every:,} env steps, {bench.train.total_timesteps:,} env steps per seed.",
        "",
        f"- seeds that reached the threshold: **{np.isfinite(reach).sum()} / {len(seeds)}**",
    ]
    if (target := TARGETS.get(bench.train.env_id)) and target.share is not None:
        within = (reach <= target.steps).sum()
        lines.append(f"- seeds that reached it within {target.steps:,} env steps: **{within} / {len(seeds)}**")
    lines += [
        f"- median env steps to threshold: **{fmt(median)}** (IQR {fmt(q1)} – {fmt(q3)}; unreached seeds count as ∞)",
        f"- final eval mean over seeds: **{finals.mean():.1f}** ± {finals.std():.1f} (std across seeds)",
        *target_lines(bench.train.env_id, threshold, bench.train.total_timesteps, reach, finals),
        *(
            [f"- published SAC (v2) at 1 000 000 env steps: {PUBLISHED[bench.train.env_id]}"]
            if bench.train.env_id in PUBLISHED
            else []
        ),
        "",
        "| seed | steps to threshold | final eval mean | best eval mean | wall time (min) | env steps/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for seed, steps, final in zip(seeds, reach, finals, strict=True):
        best = max(r["eval_mean"] for r in per_seed[seed])
        last = per_seed[seed][-1]
        lines.append(
            f"| {seed} | {fmt(steps)} | {final:.1f} | {best:.1f} | {last['wall_s'] / 60:.1f} "
            f"| {last['step'] / last['wall_s']:.0f} |"
        )
    settings = {
        k: v for k, v in dataclasses.asdict(bench.train).items() if k not in ("seed", "exp_name", *RUN_MANAGEMENT)
    }
    lines += [
        "",
        settings_line or "Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()),
        "",
        f"Hardware: {hardware}.",
        "",
        f"Commit: {ran_at}.",
        "",
    ]
    (out_dir / "summary.md").write_text("\n".join(lines))


def plot_seeds(ax: Any, per_seed: dict[int, list[dict[str, Any]]], color: Any, label: str | None = None) -> None:
    """Each seed's evaluation curve thin, and their mean over the steps every seed has thick."""
    curves = {seed: {r["step"]: r["eval_mean"] for r in rows} for seed, rows in per_seed.items()}
    for curve in curves.values():
        ax.plot(list(curve), list(curve.values()), color=color, alpha=0.25, linewidth=1)
    common = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
    if common:
        mean = [np.mean([c[s] for c in curves.values()]) for s in common]
        ax.plot(common, mean, color=color, linewidth=2.5, label=label)


def plot(rows: list[dict[str, float]], env_id: str, threshold: float, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    per_seed = by_seed(rows)
    plot_seeds(ax, per_seed, "tab:blue")
    seeds = list(per_seed)
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("deterministic eval return")
    curves = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds (thin) and their mean (thick)"
    ax.set_title(f"sac_v on {env_id}: {curves}")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=120)
    plt.close(fig)


def bench_workers(bench: BenchArgs) -> int:
    return bench.workers or os.cpu_count() or 1


def check_counts(seeds: int, workers: int, first_seed: int = 1, threshold: float = 0.0) -> None:
    """Refuse counts, seeds and a threshold that no run could use, before anything is written."""
    if seeds < 1 or workers < 0:
        raise ConfigError("--seeds must be positive, --workers non-negative")
    if not 0 <= first_seed <= 2**32 - seeds:
        raise ConfigError(f"the seeds {first_seed} to {first_seed + seeds - 1} must be in [0, 2**32)")
    if not math.isfinite(threshold):
        raise ConfigError(f"--threshold must be a finite number, got {threshold}")


def check_run_flags(train: Args, run_names: str) -> None:
    """Refuse --seed and --exp-name, which a benchmark sets for each of its runs, rather than ignore them."""
    if train.seed != Args.seed:
        raise ConfigError(f"--seed is set for each run from --first-seed and --seeds; pass --first-seed {train.seed}")
    if train.exp_name != Args.exp_name:
        raise ConfigError(f"--exp-name is set for each run: {run_names}")


def main(bench: BenchArgs) -> None:
    threshold = bench.threshold if bench.threshold is not None else THRESHOLDS.get(bench.train.env_id)
    if threshold is None:
        raise ConfigError(f"no default threshold for {bench.train.env_id}: pass --threshold")
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError('the learning benchmark plots with matplotlib: pip install -e ".[bench]"')
    validate_args(bench.train)
    check_counts(bench.seeds, bench.workers, bench.first_seed, threshold)
    check_run_flags(bench.train, "the benchmark's runs are runs/<env>__bench__<seed>__<time>")
    if bench.train.resume is not None:
        raise ConfigError("--resume continues one run; the benchmark continues its unfinished seeds by itself")
    make_env(bench.train.env_id).close()
    out_dir = bench.out_dir or Path("docs/benchmarks") / bench.train.env_id
    with holding(out_dir):
        run_benchmark(bench, threshold, out_dir)


def run_benchmark(bench: BenchArgs, threshold: float, out_dir: Path) -> None:
    """The seeds not yet in out_dir/runs.csv, each continued from its checkpoint where it has one; then the summary
    and plot."""
    runs_csv = out_dir / "runs.csv"
    config = {k: v for k, v in dataclasses.asdict(bench.train).items() if k not in ("seed", *RUN_MANAGEMENT)}
    check_earlier_results(out_dir, config, bench.overwrite)
    rows = finished_rows(runs_csv, bench.train.total_timesteps)
    done = {int(r["seed"]) for r in rows}
    seeds = [s for s in range(bench.first_seed, bench.first_seed + bench.seeds) if s not in done]
    if done:
        print(f"skipping seeds already in {runs_csv}: {sorted(done)}")
    if not seeds:  # the summary and plot again, from the finished seeds in runs.csv
        write_summary(
            rows, bench, threshold, earlier_summary_line(out_dir), out_dir, earlier_summary_line(out_dir, "Commit")
        )
        plot(rows, bench.train.env_id, threshold, out_dir)
        print(f"all seeds are done; summary and plot rewritten in {out_dir}")
        print("to run them again, pass --out-dir with a new folder")
        return

    workers = min(bench_workers(bench), len(seeds))
    threads = bench.train.threads  # sac_v's --threads, per worker
    hardware = f"{cpu_name()}, {os.cpu_count()} CPU cores, {workers} worker processes × {threads} torch threads"
    hardware += f", torch {torch.__version__}"
    print(f"{len(seeds)} seeds on {bench.train.env_id}, {workers} workers × {threads} torch threads")
    ran_at = commit()
    hardwares, commits = earlier_seed_lines(out_dir, done)  # the seeds of earlier sessions keep theirs

    runs = {s: dataclasses.replace(bench.train, seed=s, exp_name="bench") for s in seeds}
    for s, args in runs.items():
        if checkpoint := resumable_checkpoint(args, config):
            print(f"seed {s}: continuing {checkpoint}")
            runs[s] = dataclasses.replace(args, resume=checkpoint)

    start = time.time()
    failures = 0
    for seed, outcome in run_in_workers(run_seed, {s: (args,) for s, args in runs.items()}, workers):
        if isinstance(outcome, Exception):  # a crashed seed is reported; the finished ones are already on disk
            failures += 1
            print(f"seed {seed} failed: {type(outcome).__name__}: {outcome}", file=sys.stderr)
            continue
        new = [dict(seed=seed, step=e.step, eval_mean=e.mean, eval_std=e.std, wall_s=e.wall_s) for e in outcome]
        with runs_csv.open("a", newline="") as f:
            csv.DictWriter(f, CSV_FIELDS).writerows(new)
        rows += new
        hardwares[seed], commits[seed] = hardware, ran_at
        write_summary(rows, bench, threshold, seed_line(hardwares), out_dir, seed_line(commits))
        plot(rows, bench.train.env_id, threshold, out_dir)
        print(f"seed {seed} done: final eval {outcome[-1].mean:.1f}, {outcome[-1].wall_s / 60:.1f} min")
    print(f"all done in {(time.time() - start) / 60:.1f} min; results in {out_dir}")
    if failures:
        sys.exit(f"error: {failures} seed(s) failed; rerun the same command to retry them")


def holding(out_dir: Path) -> contextlib.AbstractContextManager:
    """Create the results folder; one benchmark at a time writes it (sac_v's folder lock): a second one would run the
    seeds in flight again and append their rows twice."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"cannot create the results folder {out_dir}: a file has its name or its parent's") from None
    except OSError as e:
        raise ConfigError(f"cannot create the results folder {out_dir}: {e.strerror}") from None
    in_use = "another benchmark is writing it; wait, or pass another --out-dir"
    return lock_folder(out_dir, in_use) or contextlib.nullcontext()


def parse_with_paper(cls: type[T], argv: list[str] | None = None) -> T:
    """The command line of a tool whose `train` field holds sac_v's flags; with --paper, the paper's settings for the
    task are the defaults it overrides."""
    argv = sys.argv[1:] if argv is None else argv
    first = tyro.cli(cls, args=[a for a in argv if a not in ("-h", "--help")], default=cls(train=Args()))
    train_defaults = paper_args(first.train.env_id) if first.train.paper else Args()
    return tyro.cli(cls, args=argv, default=cls(train=train_defaults))


def parse_bench_args(argv: list[str] | None = None) -> BenchArgs:
    return parse_with_paper(BenchArgs, argv)


if __name__ == "__main__":
    try:
        main(parse_bench_args())
    except ConfigError as e:
        sys.exit(f"error: {e}")
    except InterruptError as e:
        print(f"{e}: the seeds in flight saved their checkpoints; the same command continues them", file=sys.stderr)
        sys.exit(128 + e.signum)
