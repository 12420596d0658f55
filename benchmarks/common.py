"""The floor of benchmarks/, which every tool imports: provenance, records, statistics, summaries, plots, the flags
and checks of a record tool, the worker pool, and run_record, which runs what a record lacks and writes each run."""

import contextlib
import csv
import dataclasses
import functools
import importlib.util
import json
import multiprocessing
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import tyro

import sac_v
from buffer import atomic_path
from sac_v import Args, ConfigError, Evaluation, lock_folder, make_env, paper_args, train

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["seed", "step", "eval_mean", "eval_std", "wall_s"]  # a runs.csv's columns, after a sweep's grid fields
RUN_MANAGEMENT = ("resume", "save_buffer", "capture_video", "threads")  # how a run is kept or run, not what it learns
RunKey = tuple[tuple[Any, ...], int]  # a run of a record: its grid values (none outside a sweep) and its seed
Provenance = dict[RunKey, tuple[str, str]]  # each finished run's hardware line and commit
Backend = Callable[[dict[RunKey, tuple], int], Iterator[tuple[RunKey, Any]]]  # (jobs, workers) -> (key, outcome)


def machine() -> str:
    """The start of every hardware line: the CPU, its matmul extensions (where Linux lists them), cores, torch."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
    model, words = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE), set(cpuinfo.split())
    flags = ", ".join(flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in words)
    cpu = model[1].strip() if model else platform.processor() or "unknown CPU"
    return f"{cpu}{f' ({flags})' if flags else ''}, {os.cpu_count()} CPU cores, torch {torch.__version__}"


def commit(checkout: Path = ROOT) -> str:
    """The checkout's commit, -dirty when tracked code differs from it (docs/, where records go, does not count)."""
    git = functools.partial(subprocess.run, cwd=checkout, capture_output=True, text=True, check=True)
    try:
        described = git(["git", "describe", "--always", "--abbrev=12"]).stdout.strip()
        changed = git(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)docs"]).stdout
    except (OSError, subprocess.CalledProcessError):  # no git, or not a checkout
        return "not recorded"
    return described + ("-dirty" if changed.strip() else "")


def results_path(given: Path | None, record: bool, *parts: str, flag: str = "--out-dir") -> Path:
    """Where a tool writes: `given`; else under docs/ with --record, else the same path under runs/ (git-ignored)."""
    if given is not None and record:
        raise ConfigError(f"--record writes the committed record under docs/, {flag} elsewhere: give one of them")
    return given or (ROOT / "docs" if record else Path("runs")).joinpath(*parts)


def check_writable(out: Path, flag: str = "--out", kind: str = "CSV file") -> None:
    """Refuse an output file that cannot be written before the slow part starts."""
    if out.is_dir():
        sys.exit(f"error: {flag} {out} is a folder; give the {kind} to write")
    if under_file := next((p for p in out.parents if p.exists() and not p.is_dir()), None):
        sys.exit(f"error: {flag} {out} lies under {under_file}, which is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError as e:
        sys.exit(f"error: cannot write {flag} {out}: {e.strerror or e}")


def read_rows(path: Path, parse: Callable[[str, str], Any] = lambda column, text: text) -> list[dict[str, Any]]:
    """A runs.csv's whole rows (a kill cuts the last): seed and step as ints, metrics as floats, others parsed."""
    text = path.read_text() if path.exists() else ""
    rows = csv.DictReader(text[: text.rfind("\n") + 1].splitlines())
    return [
        {k: int(v) if k in METRICS[:2] else float(v) if k in METRICS else parse(k, v) for k, v in raw.items()}
        for raw in rows
        if None not in raw and None not in raw.values()
    ]


def append_rows(path: Path, columns: list[str], rows: list[dict[str, Any]], format: Callable[[Any], str] = str) -> None:
    """Append rows, a value outside METRICS written by format; a new file gets its header first."""
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, columns)
        if f.tell() == 0:
            writer.writeheader()
        writer.writerows({k: (v if k in METRICS else format(v)) for k, v in row.items()} for row in rows)


def earlier_values(out_dir: Path, field: str, seeds: set[int]) -> dict[int, str]:
    """Each seed's value in the summary's Hardware or Commit line: one for all, or as seed_line groups them."""
    summary = out_dir / "summary.md"
    found = re.search(rf"^{field}: (.*?)\.?$", summary.read_text() if summary.exists() else "", re.MULTILINE)
    values, line = {}, found[1] if found else "not recorded"
    for part in line.split("; "):
        if match := re.fullmatch(r"(.*) \(seeds? ([\d, ]+)\)", part):
            values |= {int(s): match[1] for s in match[2].split(", ")}
    return {s: values.get(s, "not recorded") for s in seeds} if values else dict.fromkeys(seeds, line)


def seed_line(values: dict[int, str]) -> str:
    """One value where every seed ran with it; else each value with its seeds: `a (seeds 1, 2); b (seed 3)`."""
    groups: dict[str, list[int]] = {}
    for seed in sorted(values):
        groups.setdefault(values[seed], []).append(seed)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{v} (seed{'s' * (len(s) > 1)} {', '.join(map(str, s))})" for v, s in groups.items())


def settings_of(train: Args, *left_out: str) -> dict[str, Any]:
    """What a run learns from: the flags less its seed, how it is kept (RUN_MANAGEMENT) and `left_out`."""
    return {k: v for k, v in dataclasses.asdict(train).items() if k not in ("seed", *RUN_MANAGEMENT, *left_out)}


def by_seed(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The rows of each seed, sorted by step; seeds in order."""
    seeds = sorted({int(r["seed"]) for r in rows})
    return {seed: sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["step"]) for seed in seeds}


def reach_and_finals(seeds: dict[int, list[dict[str, Any]]], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's env steps to the threshold (inf: never) and its last evaluation's mean."""
    reach = [min((r["step"] for r in rows if r["eval_mean"] >= threshold), default=np.inf) for rows in seeds.values()]
    return np.array(reach, dtype=float), np.array([rows[-1]["eval_mean"] for rows in seeds.values()])


def median_steps(reach: np.ndarray) -> float:
    """The median of steps to the threshold, taken from the values themselves: unreached seeds count as inf."""
    return np.percentile(reach, 50, method="inverted_cdf")


def fmt(steps: float) -> str:
    return "not reached" if np.isinf(steps) else f"{steps:,.0f}"


class Target(NamedTuple):  # an env's "solved" line, and the project's targets for runs of `total` env steps
    threshold: float  # for MuJoCo, where published SAC curves stand at 300 000 env steps
    total: int
    steps: int  # env steps within which at least `share` of the seeds must reach the threshold (None: no such target)
    share: float | None
    every_seed: bool  # whether every seed must reach it by the end of the run
    least_final: float | None  # the least final eval mean over seeds


TARGETS = {
    "LunarLanderContinuous-v3": Target(200.0, 100_000, 50_000, 0.9, True, 240.0),
    "Pendulum-v1": Target(-200.0, 10_000, 10_000, 1.0, False, None),
    "HalfCheetah-v5": Target(5000.0, 300_000, 300_000, None, False, 5000.0),
    "Hopper-v5": Target(2500.0, 300_000, 300_000, None, False, 2500.0),
    "Walker2d-v5": Target(2000.0, 300_000, 300_000, None, False, 2000.0),
}
THRESHOLDS = {env_id: target.threshold for env_id, target in TARGETS.items()}
# Published SAC (v2) at 1 000 000 env steps, for the MuJoCo summaries: CleanRL (3 seeds, -v4 envs, training returns),
# Stable-Baselines3's zoo (1 run, deterministic, -v3 envs), the SAC v2 paper's curves (arXiv 1812.05905, read off).
PUBLISHED = {
    "HalfCheetah-v5": "CleanRL 9 635 ± 1 424, SB3 zoo 9 535, SAC v2 paper about 11 250",
    "Hopper-v5": "CleanRL 2 310 ± 343, SB3 zoo 2 326, SAC v2 paper about 3 250",
    "Walker2d-v5": "CleanRL 3 591 ± 911, SB3 zoo 3 863, SAC v2 paper about 4 800",
}


def target_lines(env_id: str, threshold: float, total: int, reach: np.ndarray, finals: np.ndarray) -> list[str]:
    """The project's targets for this env, each met or missed and by how much (none for other envs)."""
    if env_id not in TARGETS or TARGETS[env_id].total != total or len(reach) == 0:
        return []
    _, _, within, share, every_seed, least_final = TARGETS[env_id]
    n, lines = len(reach), ["", "Project targets:", ""]

    def verdict(shortfall: float, unit: str = "") -> str:
        plural = "s" if unit and shortfall != 1 else ""
        return "**met**" if shortfall <= 0 else f"**missed** by {shortfall:g}{unit}{plural}"

    if share is not None:
        need, got = int(np.ceil(share * n)), int((reach <= within).sum())
        text = f"- ≥ {threshold:g} within {within:,} env steps in at least {need} of {n} seeds: {got} of {n}, "
        lines.append(text + verdict(need - got, " seed"))
    if every_seed:
        got = int(np.isfinite(reach).sum())
        lines.append(f"- every seed ≥ {threshold:g} by {total:,} env steps: {got} of {n}, " + verdict(n - got, " seed"))
    if least_final is not None:
        shortfall = round(least_final - finals.mean(), 1)
        lines.append(f"- final eval mean ≥ {least_final:g}: {finals.mean():.1f}, " + verdict(shortfall))
    return lines


def summary(rows: list[dict], ran: Provenance, train: Args, threshold: float, heading: tuple | None = None) -> str:
    """The summary.md of a record of seeds; `heading`, a title and a Settings line, replaces sac_v's (a peer's)."""
    title, settings_line = heading or (None, None)
    per_seed = by_seed(rows)
    reach, finals = reach_and_finals(per_seed, threshold)
    q1, median, q3 = np.percentile(reach, [25, 50, 75], method="inverted_cdf") if per_seed else (np.inf,) * 3
    lines = [
        title or f"# Learning benchmark: {train.env_id}",
        "",
        f"Threshold: deterministic {train.eval_episodes}-episode eval mean ≥ {threshold:g}, "
        f"checked every {train.eval_every:,} env steps, {train.total_timesteps:,} env steps per seed.",
        "",
        f"- seeds that reached the threshold: **{np.isfinite(reach).sum()} / {len(per_seed)}**",
    ]
    if (target := TARGETS.get(train.env_id)) and target.share is not None:
        within = (reach <= target.steps).sum()
        lines.append(f"- seeds that reached it within {target.steps:,} env steps: **{within} / {len(per_seed)}**")
    lines += [
        f"- median env steps to threshold: **{fmt(median)}** (IQR {fmt(q1)} – {fmt(q3)}; unreached seeds count as ∞)",
        f"- final eval mean over seeds: **{finals.mean():.1f}** ± {finals.std():.1f} (std across seeds)",
        *target_lines(train.env_id, threshold, train.total_timesteps, reach, finals),
    ]
    if train.env_id in PUBLISHED:
        lines.append(f"- published SAC (v2) at 1 000 000 env steps: {PUBLISHED[train.env_id]}")
    lines += ["", "| seed | steps to threshold | final eval mean | best eval mean | wall time (min) | env steps/s |"]
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for (seed, seed_rows), steps, final in zip(per_seed.items(), reach, finals, strict=True):
        last = seed_rows[-1]
        best, minutes, rate = max(r["eval_mean"] for r in seed_rows), last["wall_s"] / 60, last["step"] / last["wall_s"]
        lines.append(f"| {seed} | {fmt(steps)} | {final:.1f} | {best:.1f} | {minutes:.1f} | {rate:.0f} |")
    settings = ", ".join(f"`{k}={v}`" for k, v in settings_of(train, "exp_name").items())
    hardware, commits = ({seed: line[i] for (_, seed), line in ran.items()} for i in (0, 1))
    lines += ["", settings_line or f"Settings: {settings}", "", f"Hardware: {seed_line(hardware)}.", ""]
    return "\n".join([*lines, f"Commit: {seed_line(commits)}.", ""])


def plot_curves(path: Path, title: str, curves: list[tuple[dict, Any, str | None]], threshold: float) -> None:
    """curves.png: for each (per_seed, color, label), each seed's curve thin, their mean thick, the threshold dashed."""
    from matplotlib.figure import Figure  # no pyplot: no backend, no figure left open

    ax = Figure(figsize=(7, 4.5), layout="tight").subplots()
    for per_seed, color, label in curves:
        seeds = [{r["step"]: r["eval_mean"] for r in rows} for rows in per_seed.values()]
        for curve in seeds:
            ax.plot(list(curve), list(curve.values()), color=color, alpha=0.25, linewidth=1)
        if steps := sorted(set.intersection(*(set(c) for c in seeds))) if seeds else []:
            ax.plot(steps, [np.mean([c[s] for c in seeds]) for s in steps], color=color, linewidth=2.5, label=label)
    ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="env steps", ylabel="deterministic eval return", title=title)
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    ax.figure.savefig(path, dpi=120)


def seeds_title(seeds: dict) -> str:
    return f"seed {next(iter(seeds))}" if len(seeds) == 1 else f"{len(seeds)} seeds (thin) and their mean (thick)"


@dataclasses.dataclass
class RecordArgs:
    """The flags of a tool that runs seeds into a record."""

    train: tyro.conf.OmitArgPrefixes[Args]  # sac_v's settings, shared by every run (the tool sets --seed, --exp-name)
    seeds: int = 10  # number of seeds: first-seed, first-seed + 1, ...
    first_seed: int = 1  # the first seed
    workers: int = 0  # runs at a time on this machine (0: one per CPU core)
    threshold: float | None = None  # eval return that counts as solved (default per env: LunarLander 200, ...)
    out_dir: Path | None = None  # where results go (default: the tool's folder under runs/, or docs/ with --record)
    record: bool = False  # write the committed record under docs/ (default: the same path under runs/)
    overwrite: bool = False  # discard earlier results in out_dir made with other settings


def check_record(bench: RecordArgs, run_names: str, resumes: str) -> float:
    """The threshold; before anything is written, refuse what no run could use and the flags the tool sets per run."""
    train = bench.train
    threshold = bench.threshold if bench.threshold is not None else THRESHOLDS.get(train.env_id)
    if threshold is None:
        raise ConfigError(f"no default threshold for {train.env_id}: pass --threshold")
    first, last = bench.first_seed, bench.first_seed + bench.seeds - 1
    for ok, message in [
        (importlib.util.find_spec("matplotlib"), 'the record is plotted with matplotlib: pip install -e ".[bench]"'),
        (bench.seeds > 0 and bench.workers >= 0, "--seeds must be positive, --workers non-negative"),
        (0 <= first <= last < 2**32, f"the seeds {first} to {last} must be in [0, 2**32)"),
        (np.isfinite(threshold), f"--threshold must be a finite number, got {threshold}"),
        (train.seed == Args.seed, f"--seed is set per run from --first-seed; pass --first-seed {train.seed}"),
        (train.exp_name == Args.exp_name, f"--exp-name is set per run: {run_names}"),
        (train.resume is None, f"--resume continues one run; {resumes}"),
    ]:
        if not ok:
            raise ConfigError(message)
    make_env(train.env_id).close()
    return threshold


def parse_with_paper(cls: type, argv: list[str] | None = None) -> Any:
    """A tool's command line; with --paper, the paper's settings for the task are the defaults its flags override."""
    argv = sys.argv[1:] if argv is None else argv
    first = tyro.cli(cls, args=[a for a in argv if a not in ("-h", "--help")], default=cls(train=Args()))
    return tyro.cli(cls, args=argv, default=cls(train=paper_args(first.train.env_id) if first.train.paper else Args()))


def run_seed(args: Args) -> list[Evaluation]:
    """One sac_v run in a worker: its evaluations."""
    os.environ["TQDM_DISABLE"] = "1"  # parallel progress bars would garble one terminal; eval lines remain
    result = train(args)
    if result.stopped_by is not None:  # Ctrl-C reaches the workers too: a stopped run is not a finished seed
        raise RuntimeError(f"seed {args.seed} was stopped by signal {result.stopped_by} at its checkpoint")
    return result.evaluations


def work(conn: Connection, fn: Callable[..., Any]) -> None:
    """A worker in a process group of its own: fn(*job), or its exception, for each job; saves and stops if orphaned."""
    os.setpgrp()
    sac_v.resume_command = lambda checkpoint: "rerun the benchmark's own command"  # not sac_v.py --resume

    def watch() -> None:
        multiprocessing.parent_process().join()  # returns once the tool's process is gone
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
    with contextlib.suppress(EOFError, OSError):  # the pipe closed: the tool is done, or gone
        for job in iter(conn.recv, None):
            try:
                outcome = fn(*job)
            except Exception as e:
                outcome = e
            conn.send(outcome)


def run_in_workers(fn: Callable[..., Any], jobs: dict[Hashable, tuple], workers: int) -> Iterator[tuple[Hashable, Any]]:
    """fn(*job) for each job in `workers` spawned processes, yielding (key, result or exception) as each ends. SIGINT
    or SIGTERM is forwarded to the workers as SIGTERM (runs save and stop), then KeyboardInterrupt(message, signal)."""
    context, waiting, processes = multiprocessing.get_context("spawn"), iter(jobs.items()), {}
    for conn, end in (context.Pipe() for _ in range(workers)):
        processes[conn] = context.Process(target=work, args=(end, fn))
        processes[conn].start()
        end.close()  # the worker's end: when the worker dies, this end reads EOF
    idle, running, stopped = list(processes), {}, []

    def forward(signum: int, frame: object) -> None:
        stopped.append(signum)
        for process in processes.values():
            process.terminate()

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            while idle and not stopped and (item := next(waiting, None)):
                running[idle[-1]] = item[0]
                idle.pop().send(item[1])
            if not running:  # done; or every worker was killed, and the runs left fail
                for key, _ in [] if stopped else waiting:
                    yield key, RuntimeError("no worker process was left to run it")
                break
            for conn in wait(list(running)):
                key = running.pop(conn)
                try:
                    outcome = conn.recv()
                    idle.append(conn)
                except (EOFError, OSError):  # killed (out of memory?) before it could answer
                    outcome = RuntimeError("its worker process was killed")
                if not (stopped and isinstance(outcome, Exception)):  # stopped at its checkpoint: not an outcome
                    yield key, outcome
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for conn, process in processes.items():  # closed early, the runs in flight save and stop
            conn.close()
            if conn in running:
                process.terminate()
            process.join()
    if stopped:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(stopped[0]).name}", stopped[0])


def seed_pool(fn: Callable[..., list[Evaluation]], threads: int | str, *versions: str) -> tuple[Backend, Callable]:
    """The local backend of run_record, each run fn(*job) in the worker pool, and the hardware line of its runs."""
    each = f"worker processes × {threads} torch threads"
    return functools.partial(run_in_workers, fn), lambda workers: ", ".join([machine(), f"{workers} {each}", *versions])


@dataclasses.dataclass
class Record:
    """A results folder: runs.csv (appended as each run ends), failures.csv, config.json and what `report` writes."""

    out_dir: Path
    config: dict[str, Any]
    report: Callable[[list[dict[str, Any]], Provenance], None]  # summary.md and curves.png from the rows
    job: Callable[[RunKey], tuple]  # what the backend runs for a run: fn(*job(key))
    backend: Backend
    hardware: Callable[[int], str]  # the hardware line of runs that share the machine `workers` at a time
    fields: list[str] = dataclasses.field(default_factory=list)  # a sweep's grid fields, the columns before METRICS
    parse: Callable[[str, str], Any] = lambda column, text: text  # a grid value from runs.csv
    format: Callable[[Any], str] = str  # a grid value into runs.csv

    def key(self, row: dict[str, Any]) -> RunKey:
        return tuple(row[f] for f in self.fields), row["seed"]

    def earlier_rows(self, overwrite: bool, total_timesteps: int) -> list[dict[str, Any]]:
        """Earlier finished runs' rows, alone in runs.csv; refused (overwrite: discarded) if of another config.json."""
        runs_csv, config_json = self.out_dir / "runs.csv", self.out_dir / "config.json"
        config = json.loads(json.dumps(self.config))  # tuples become lists, as when read back
        try:
            earlier = json.loads(config_json.read_text()) if config_json.exists() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            earlier = None  # damaged: its results cannot be told to match
        if runs_csv.exists() and earlier != config:
            if not overwrite:
                raise ConfigError(f"{runs_csv} holds results made with other settings: pass --overwrite or --out-dir")
            runs_csv.unlink()
        with atomic_path(config_json) as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")
        rows = read_rows(runs_csv, self.parse)
        # a run is finished at --total-timesteps, or at its grid value
        done = {self.key(r) for r in rows if r["step"] == r.get("total_timesteps", total_timesteps)}
        rows = [r for r in rows if self.key(r) in done]
        with atomic_path(runs_csv) as tmp:
            tmp.unlink(missing_ok=True)  # left by a kill
            append_rows(tmp, [*self.fields, *METRICS], rows, self.format)
        return rows


def run_record(record: Record, bench: RecordArgs, settings: list[tuple[Any, ...]] | None = None) -> None:
    """Run each setting's seeds the record lacks, writing each run's rows, hardware, commit and report as it ends."""
    out_dir, fields, format = record.out_dir, record.fields, record.format
    runs_csv, failures_csv = out_dir / "runs.csv", out_dir / "failures.csv"
    seeds = range(bench.first_seed, bench.first_seed + bench.seeds)
    keys = [(values, seed) for values in settings or [()] for seed in seeds]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the results folder {out_dir}: {e.strerror}") from None
    lock = lock_folder(out_dir, "another benchmark is writing it; wait, or pass another --out-dir")
    with lock or contextlib.nullcontext():
        rows = record.earlier_rows(bench.overwrite, bench.train.total_timesteps)
        failures_csv.unlink(missing_ok=True)  # every failed run is retried now, and recorded again if it fails again
        done = {record.key(r) for r in rows}
        if done:
            print(f"skipping {len(done)} of {len(keys)} runs already finished in {runs_csv}")
        hardwares, commits = (earlier_values(out_dir, f, {seed for _, seed in done}) for f in ("Hardware", "Commit"))
        ran = {key: (hardwares[key[1]], commits[key[1]]) for key in done}
        if not (jobs := {key: record.job(key) for key in keys if key not in done}):  # the report again, from runs.csv
            record.report(rows, ran)
            print(f"all {len(keys)} runs are done; summary and plot rewritten in {out_dir}")
            print("to run them again, pass --out-dir with a new folder")
            return
        workers = min(bench.workers or os.cpu_count() or 1, len(jobs))
        line, ran_at = record.hardware(workers), commit()  # read now: the checkout may move on while the runs go
        print(f"{len(jobs)} runs to go on {line}")
        start, failures = time.time(), 0
        with contextlib.closing(record.backend(jobs, workers)) as outcomes:  # on Ctrl-C, stop the backend's runs now
            for (values, seed), outcome in outcomes:
                setting = dict(zip(fields, values, strict=True))
                name = f"{','.join(f'{f}={format(v)}' for f, v in setting.items())} seed {seed}".lstrip()
                if isinstance(outcome, Exception):  # reported; the finished runs are on disk already
                    failures += 1
                    error = " ".join(f"{type(outcome).__name__}: {outcome}".split())
                    failure = setting | {"seed": seed, "error": error}
                    append_rows(failures_csv, [*fields, "seed", "error"], [failure], format)
                    print(f"{name} failed: {error}", file=sys.stderr)
                    continue
                new = [setting | dict(zip(METRICS, (seed, *e), strict=True)) for e in outcome]
                append_rows(runs_csv, [*fields, *METRICS], new, format)
                rows += new
                ran[(values, seed)] = (line, ran_at)
                record.report(rows, ran)
                print(f"{name} done: final eval {outcome[-1].mean:.1f}, {outcome[-1].wall_s / 60:.1f} min")
        print(f"{len(jobs) - failures} runs done in {(time.time() - start) / 60:.1f} min; results in {out_dir}")
        if failures:
            sys.exit(f"error: {failures} run(s) failed (see {failures_csv}); rerun the same command to retry them")


def cli(main: Callable[[], None], stopped: str) -> None:
    """Run a tool: a ConfigError ends it in one line; a signal with `stopped` (how to go on) and status 128 + signal."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill outside the pool stops it as Ctrl-C does
    try:
        main()
    except ConfigError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt as e:  # Ctrl-C or a kill; from the pool, with the signal that stopped its runs
        message, signum = e.args or ("interrupted", signal.SIGINT)
        print(f"{message}: {stopped}", file=sys.stderr)
        sys.exit(128 + signum)
