"""Grid sweep: sac_v over a grid of `Args` settings × seeds, on this machine or on a Ray cluster.

    python benchmarks/sweep.py --env-id LunarLanderContinuous-v3 --grid reward_scale=1,5,20,40 --seeds 5
    python benchmarks/sweep.py --grid min_pool=300,10000,20000 --grid hidden_sizes=64x64,256x256 --seeds 5
    python benchmarks/sweep.py --grid reward_scale=1,5,20,40 --backend ray --ray-address auto

Each (setting, seed) is one `sac_v.train` run. `--grid field=v1,v2,...` varies any `Args` field (repeat it for a cross
product); values take the field's type: numbers, true/false, a choice, or layer widths joined by x (64x64). Every other
sac_v flag is shared by all runs. Writes, under runs/experiments/<env-id>__<grid fields>/ (with --record the committed
record, docs/experiments/<env-id>__<grid fields>/): runs.csv (every evaluation of every finished run, appended as each
run finishes), failures.csv (the runs that raised, with their error), summary.md (one row per setting) and curves.png.
Started again with the same arguments, it skips the runs already finished and reruns only the missing and failed ones.

Backends: `local` runs a process pool sized to the CPU cores. `ray` runs the grid × seeds still missing as one Ray
Tune experiment, a trial per run: with no --ray-address it starts a local Ray instance; with one it connects to that
cluster and ships this checkout's code to its nodes (Ray's working_dir, without docs/, runs/ and git-ignored files).
Every node needs the project's dependencies in the Python Ray runs there, with the driver's Python and Ray versions
(pip install -e ".[ray]" on every node); the results come back to the driver, each run's TensorBoard folder stays on
its node. Needs the `bench` extra (matplotlib); the Ray backend needs the `ray` extra (Ray Tune).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import itertools
import os
import queue
import shlex
import socket
import sys
import threading
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import tyro
from common import (
    ROOT,
    RUN_MANAGEMENT,
    TARGETS,
    Provenance,
    Record,
    RecordArgs,
    RunKey,
    by_seed,
    check_counts,
    check_run_flags,
    cli,
    cpu_name,
    fmt,
    hardware_line,
    holding,
    median_steps,
    parse_with_paper,
    plot_curves,
    reach_and_finals,
    results_path,
    run_in_workers,
    run_record,
    run_seed,
    threshold_of,
)

from sac_v import Args, ConfigError, Evaluation, make_env, validate_args

# Fields a grid cannot vary, and why: the sweep sets them itself, or they change how a run is kept, not what it learns.
FIXED_FIELDS = {
    **dict.fromkeys(RUN_MANAGEMENT, "it changes how a run is saved or watched, not what it learns; pass it as a flag"),
    "resume": "a sweep starts every run afresh",
    "paper": "pass --paper beside --env-id (the paper's settings for the task), then vary its fields",
    "seed": "use --seeds and --first-seed",
    "exp_name": "the sweep names its runs after their setting",
    "env_id": "a sweep runs one env (its threshold and target are per env); pass --env-id",
}

# How a grid value of each field type is written (besides the choices of a Literal), and how it is read.
GRID_TYPES: dict[Any, tuple[str, Callable[[str], Any]]] = {
    bool: ("true or false", lambda text: {"true": True, "false": False}[text.lower()]),
    int: ("an integer", int),
    float: ("a number", float),
    str: ("text", str),
    tuple[int, ...]: ("layer widths joined by x, e.g. 64x64", lambda text: tuple(map(int, text.split("x")))),
}


@dataclasses.dataclass
class SweepArgs(RecordArgs):
    train: tyro.conf.OmitArgPrefixes[Args]
    """the sac_v settings shared by every run (the grid overrides its fields; each run's --seed and --exp-name are
    the sweep's)"""
    grid: tyro.conf.UseAppendAction[tuple[tuple[str, ...], ...]] = ()
    """field=value1,value2,... (e.g. reward_scale=1,5,20,40 or hidden_sizes=64x64,256x256); several give a cross
    product"""
    seeds: int = 5
    """runs per setting, with seeds first-seed, first-seed + 1, ..."""
    backend: Literal["local", "ray"] = "local"
    """local: a process pool on this machine; ray: a Ray Tune experiment on a local Ray instance or the cluster at
    --ray-address"""
    ray_address: str | None = None
    """address of a running Ray cluster (e.g. auto, or ray://head:10001); default: start a local Ray instance"""
    out_dir: Path | None = None
    """where results go (default runs/experiments/<env-id>__<grid fields>; with --record under docs/)"""


def field_types() -> dict[str, Any]:
    return typing.get_type_hints(Args)


def parse_value(field: str, text: str, hint: Any) -> Any:
    """One grid value as the field's type, or a ConfigError."""
    if typing.get_origin(hint) is Literal:
        if text in typing.get_args(hint):
            return text
        raise ConfigError(f"--grid {field}: {text!r} is not one of {', '.join(typing.get_args(hint))}")
    if hint not in GRID_TYPES:
        raise ConfigError(f"--grid cannot vary {field}: its type {hint} has no grid syntax")
    kind, parse = GRID_TYPES[hint]
    try:
        return parse(text)
    except (KeyError, ValueError):
        raise ConfigError(f"--grid {field}: {text!r} is not {kind}") from None


def format_value(value: Any) -> str:
    """A grid value as written in runs.csv, labels and run names; parse_value reads it back."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """`field=v1,v2,...` items to {field: typed values}, in the order given; bad items raise a ConfigError."""
    if not items:
        raise ConfigError(
            "give at least one --grid field=value1,value2,... (for seeds alone use benchmarks/learning.py)"
        )
    types = field_types()
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        field = name.strip().replace("-", "_")
        if not sep or not field:
            raise ConfigError(f"--grid {item!r} needs the form field=value1,value2,... (e.g. reward_scale=1,5,20,40)")
        if field not in types:
            close = difflib.get_close_matches(field, types, n=1)
            raise ConfigError(
                f"--grid: {field!r} is not a sac_v field" + (f"; did you mean {close[0]}?" if close else "")
            )
        if field in FIXED_FIELDS:
            raise ConfigError(f"--grid cannot vary {field}: {FIXED_FIELDS[field]}")
        if field in grid:
            raise ConfigError(f"--grid gives {field} twice; list all its values in one item, e.g. {field}=1,2")
        texts = [text.strip() for text in values.split(",")]
        if "" in texts:
            raise ConfigError(f"--grid {item!r} has an empty value; separate the values by single commas")
        grid[field] = [parse_value(field, text, types[field]) for text in texts]
        if len(set(grid[field])) < len(grid[field]):
            raise ConfigError(f"--grid {item!r} repeats a value")
    return grid


def grid_settings(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cross product of the grid's values, one {field: value} per setting."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def label(setting: dict[str, Any], sep: str = ",") -> str:
    return sep.join(f"{field}={format_value(value)}" for field, value in setting.items())


def grid_value(field: str, text: str) -> Any:
    """A grid field's value in runs.csv, as its type."""
    return parse_value(field, text, field_types()[field])


def shared_settings(train: Args, fields: Sequence[str]) -> dict[str, Any]:
    """The settings every run of the sweep shares: what a run learns from, less the grid's fields."""
    excluded = ("seed", "exp_name", *RUN_MANAGEMENT, *fields)
    return {k: v for k, v in dataclasses.asdict(train).items() if k not in excluded}


def write_summary(
    rows: list[dict[str, Any]],
    settings: list[dict[str, Any]],
    sweep: SweepArgs,
    threshold: float,
    hardware: str,
    command: str,
    out_dir: Path,
) -> None:
    fields = list(settings[0])
    target = TARGETS[sweep.train.env_id].steps if sweep.train.env_id in TARGETS else None
    header = [*fields, "runs", f"reached {threshold:g}"]
    header += [f"within {target:,} steps"] if target else []
    header += ["median steps to threshold", "final eval mean ± std"]
    lines = [
        f"# Sweep: sac_v on {sweep.train.env_id} over {', '.join(fields)}",
        "",
        f"Threshold: deterministic {sweep.train.eval_episodes}-episode eval mean ≥ {threshold:g}, checked every "
        f"{sweep.train.eval_every:,} env steps. Runs: finished seeds. Median steps: unreached seeds "
        "count as ∞. Final eval: mean ± std across seeds of each seed's last evaluation.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" for _ in header) + " |",
    ]
    for setting in settings:
        per_seed = runs_of(rows, setting)
        reach, finals = reach_and_finals(per_seed, threshold)
        cells = [format_value(v) for v in setting.values()] + [str(len(per_seed))]
        if per_seed:
            cells += [f"{np.isfinite(reach).sum()} / {len(per_seed)}"]
            cells += [f"{(reach <= target).sum()} / {len(per_seed)}"] if target else []
            cells += [fmt(median_steps(reach)), f"{finals.mean():.1f} ± {finals.std():.1f}"]
        else:
            cells += ["–"] * (len(header) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Shared settings: " + ", ".join(f"`{k}={v}`" for k, v in shared_settings(sweep.train, fields).items()),
        "",
        f"Hardware: {hardware}.",
        "",
    ]
    lines += ["Command:", "", "```", command, "```", ""] if command else []
    (out_dir / "summary.md").write_text("\n".join(lines))


def runs_of(rows: list[dict[str, Any]], setting: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """The rows of one setting by seed, each seed's sorted by step."""
    return by_seed([r for r in rows if all(r[k] == v for k, v in setting.items())])


def plot(
    rows: list[dict[str, Any]], settings: list[dict[str, Any]], env_id: str, threshold: float, out_dir: Path
) -> None:
    colors = matplotlib_colors(len(settings))
    curves = [(runs_of(rows, s), colors(i % colors.N), label(s, ", ")) for i, s in enumerate(settings)]
    curves = [(per_seed, color, f"{name} ({len(per_seed)} seeds)") for per_seed, color, name in curves]
    title = f"sac_v on {env_id}: seeds (thin) and their mean (thick) per setting"
    plot_curves(out_dir / "curves.png", title, curves, threshold)


def matplotlib_colors(n: int) -> Any:
    import matplotlib

    return matplotlib.colormaps["tab10" if n <= 10 else "tab20"]


def check_ray_address(address: str) -> None:
    """Refuse at once a Ray cluster address that nothing answers at: ray.init would wait minutes, silent, first."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():  # "auto", or a form Ray resolves itself
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
    except OSError as e:
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {e.strerror or e}") from None


def start_ray(address: str | None, cpus: int) -> None:
    """A local Ray instance of `cpus` CPUs, whose workers import this checkout and write runs/ here as local ones do;
    or the cluster at `address`, to which this checkout's code is shipped, so every node runs the driver's version."""
    import ray

    if address is None:
        path = [str(ROOT / "benchmarks"), *filter(None, [os.environ.get("PYTHONPATH")])]  # sac_v: pip install -e
        ray.init(
            "local",
            num_cpus=cpus,
            include_dashboard=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(path)}},
        )
        return
    env = {
        "working_dir": str(ROOT),
        "excludes": ["docs/", "runs/", "videos/"],
        "env_vars": {"PYTHONPATH": "benchmarks"},
    }
    try:
        ray.init(address=address, runtime_env=env)
    except (ConnectionError, ray.exceptions.RayError) as e:
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {str(e).splitlines()[0]}") from None


def tune_trial(config: dict[str, int], jobs: list[tuple[Args]]) -> dict[str, Any]:
    """One Ray Tune trial: one sac_v run. Its result is its evaluations, or the exception it raised: the record keeps a
    failed run with its error, as the local backend does, and Tune does not retry it."""
    try:
        return {"evaluations": [tuple(e) for e in run_seed(*jobs[config["run"]])]}
    except Exception as e:
        return {"error": e}


def run_tune(jobs: dict[RunKey, tuple[Args]], workers: int, address: str | None, threads: int) -> Iterator[tuple]:
    """Runs the jobs as one Ray Tune experiment, a grid search over them with `threads` CPUs a trial, and yields (key,
    its evaluations or exception) as each trial ends. Tune's fit runs in a thread of its own, so that each run is
    recorded as it ends; the record, not Tune's experiment state (under runs/tune/), is what a rerun resumes."""
    import ray
    from ray import tune

    start_ray(address, workers * threads)
    keys, ended = list(jobs), queue.Queue()

    class Ended(tune.Callback):
        """Puts (key, outcome) on a queue as each trial ends."""

        def __init__(self, keys: list[RunKey], ended: queue.Queue) -> None:
            self.keys, self.ended = keys, ended

        def __getstate__(self) -> dict:  # Tune saves its callbacks for its own restore, which a sweep never asks for
            return {}

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result
            outcome = result["error"] if "error" in result else [Evaluation(*e) for e in result["evaluations"]]
            self.ended.put((self.keys[trial.config["run"]], outcome))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            error = RuntimeError(f"Ray lost the trial: see {trial.error_file}")  # its worker or node died
            self.ended.put((self.keys[trial.config["run"]], error))

    trainable = tune.with_resources(tune.with_parameters(tune_trial, jobs=list(jobs.values())), {"cpu": threads})
    tuner = tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search(list(range(len(keys))))},
        tune_config=tune.TuneConfig(max_concurrent_trials=workers),
        run_config=tune.RunConfig(
            storage_path=str(Path("runs/tune").resolve()), callbacks=[Ended(keys, ended)], verbose=0
        ),
    )
    fit = threading.Thread(target=tuner.fit, daemon=True)
    fit.start()
    try:
        for _ in keys:  # each trial ends once, complete or errored
            while True:
                try:
                    outcome = ended.get(timeout=1)
                    break
                except queue.Empty:
                    if not fit.is_alive():
                        raise RuntimeError("Ray Tune stopped before every trial ended") from None
            yield outcome
    finally:
        ray.shutdown()


def parse_sweep_args(argv: list[str] | None = None) -> SweepArgs:
    return parse_with_paper(SweepArgs, argv)


def main(sweep: SweepArgs, command: str = "") -> None:
    grid = parse_grid([item for group in sweep.grid for item in group])
    fields, settings = list(grid), grid_settings(grid)
    threshold = threshold_of(sweep.threshold, sweep.train.env_id)
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError('the sweep plots with matplotlib: pip install -e ".[bench]"')
    if sweep.train.resume is not None:
        raise ConfigError("--resume continues one run; the sweep starts every run afresh")
    if sweep.ray_address is not None and sweep.backend != "ray":
        raise ConfigError("--ray-address needs --backend ray")
    if sweep.ray_address is not None:
        check_ray_address(sweep.ray_address)
    if sweep.backend == "ray" and not all(importlib.util.find_spec(name) for name in ("ray", "pandas", "pyarrow")):
        raise ConfigError('--backend ray needs Ray: pip install -e ".[ray]"')
    check_counts(sweep.seeds, sweep.workers, sweep.first_seed, threshold)
    check_run_flags(sweep.train, FIXED_FIELDS["exp_name"])
    for setting in settings:  # a bad combination is refused before anything runs
        try:
            validate_args(dataclasses.replace(sweep.train, **setting))
        except ConfigError as e:
            raise ConfigError(f"grid setting {label(setting)}: {e}") from None
    make_env(sweep.train.env_id).close()
    out_dir = results_path(sweep.out_dir, sweep.record, "experiments", "__".join([sweep.train.env_id, *fields]))
    # The grid in another order is the same set of runs.
    same_runs = {field: sorted(grid[field]) for field in sorted(grid)}
    config = {"settings": shared_settings(sweep.train, fields), "grid": same_runs}

    def report(rows: list[dict[str, Any]], ran: Provenance) -> None:
        hardware = "; ".join(dict.fromkeys(hw for hw, _ in ran.values()))
        write_summary(rows, settings, sweep, threshold, hardware, command, out_dir)
        plot(rows, settings, sweep.train.env_id, threshold, out_dir)

    def total(key: RunKey) -> int:
        return dict(zip(fields, key[0], strict=True)).get("total_timesteps", sweep.train.total_timesteps)

    def job(key: RunKey) -> tuple[Args]:
        setting = dict(zip(fields, key[0], strict=True))
        return (dataclasses.replace(sweep.train, **setting, seed=key[1], exp_name=f"sweep-{label(setting)}"),)

    threads = sweep.train.threads  # sac_v's --threads, per run
    if sweep.backend == "local":
        backend, hardware = (
            functools.partial(run_in_workers, run_seed),
            functools.partial(hardware_line, threads=threads),
        )
    else:
        backend = functools.partial(run_tune, address=sweep.ray_address, threads=1 if threads == "auto" else threads)
        where = (
            f"the Ray cluster at {sweep.ray_address}" if sweep.ray_address else f"a local Ray instance on {cpu_name()}"
        )
        line = f"{where}, {threads} torch thread(s) per run, torch {torch.__version__}"

        def hardware(workers: int) -> str:
            return line

    seeds = range(sweep.first_seed, sweep.first_seed + sweep.seeds)
    keys = [(tuple(setting.values()), seed) for setting in settings for seed in seeds]
    record = Record(out_dir, config, report, total, fields, grid_value, format_value, what="settings or grid")
    with holding(out_dir):
        run_record(record, keys, job, backend, hardware, sweep.workers, sweep.overwrite)


if __name__ == "__main__":
    stopped = "the finished runs are in runs.csv; rerun the same command to run the rest"
    cli(lambda: main(parse_sweep_args(), command=shlex.join(["python", *sys.argv])), stopped)
