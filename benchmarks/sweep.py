"""Grid sweep: sac_v over a grid of `Args` settings × seeds, here or on a Ray cluster, into a record (common.Record) in
runs/experiments/<env-id>__<grid fields>/ (--record: docs/); a rerun runs the missing and failed runs. A cluster's nodes
need the project's dependencies (pip install -e ".[ray]") and the driver's Python and Ray; Ray ships them this checkout.

    python benchmarks/sweep.py --env-id LunarLanderContinuous-v3 --grid reward_scale=1,5,20,40 --seeds 5
    python benchmarks/sweep.py --grid min_pool=300,10000 --grid hidden_sizes=64x64,256x256 --backend ray
"""

import contextlib
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import common
import numpy as np
import tyro
from common import RUN_MANAGEMENT, RunKey

from sac_v import Args, ConfigError, Evaluation, validate_args

# Fields a grid cannot vary, and why: the sweep sets them itself, or they change how a run is kept, not what it learns.
FIXED_FIELDS = {
    **dict.fromkeys(RUN_MANAGEMENT, "it changes how a run is saved or watched, not what it learns; pass it as a flag"),
    "resume": "a sweep starts every run afresh",
    "paper": "pass --paper beside --env-id (the paper's settings for the task), then vary its fields",
    "seed": "use --seeds and --first-seed",
    "exp_name": "the sweep names its runs after their setting",
    "env_id": "a sweep runs one env (its threshold and target are per env); pass --env-id",
}
TYPES = get_type_hints(Args)
# How a grid value of each field type is written (besides the choices of a Literal), and how it is read.
GRID_TYPES: dict[Any, tuple[str, Callable[[str], Any]]] = {
    bool: ("true or false", lambda text: {"true": True, "false": False}[text.lower()]),
    int: ("an integer", int),
    float: ("a number", float),
    tuple[int, ...]: ("layer widths joined by x, e.g. 64x64", lambda text: tuple(map(int, text.split("x")))),
}
Grid = tyro.conf.UseAppendAction[tuple[tuple[str, ...], ...]]  # --grid a=1,2 --grid b=3 or --grid a=1,2 b=3


@dataclasses.dataclass
class SweepArgs(common.RecordArgs):
    grid: Grid = ()  # field=value1,value2,... (e.g. reward_scale=1,5,20,40); several: their cross product
    seeds: int = 5  # runs per setting, with seeds first-seed, first-seed + 1, ...
    backend: Literal["local", "ray"] = "local"  # local: a process pool; ray: Ray Tune, local or at --ray-address
    ray_address: str | None = None  # a running Ray cluster (e.g. auto, ray://head:10001); default: a local Ray instance


def grid_value(field: str, text: str) -> Any:
    """One grid value (as given, or in runs.csv) as the field's type, or a ConfigError."""
    hint = TYPES[field]
    choices = get_args(hint) if get_origin(hint) is Literal else ()
    kind, parse = (f"one of {', '.join(choices)}", {c: c for c in choices}.__getitem__) if choices else GRID_TYPES[hint]
    try:
        return parse(text)
    except (KeyError, ValueError):
        raise ConfigError(f"--grid {field}: {text!r} is not {kind}") from None


def format_value(value: Any) -> str:
    """A grid value as written in runs.csv, labels and run names; grid_value reads it back."""
    if isinstance(value, bool):
        return str(value).lower()
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def label(setting: dict[str, Any], sep: str = ",") -> str:
    return sep.join(f"{field}={format_value(value)}" for field, value in setting.items())


def parse_grid(items: Sequence[str]) -> list[dict[str, Any]]:
    """`field=v1,v2,...` items to the settings of their cross product, {field: typed value} each, or a ConfigError."""
    if not items:
        raise ConfigError("give at least one --grid field=value1,value2,... (seeds alone: benchmarks/learning.py)")
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        field, texts = name.strip().replace("-", "_"), [text.strip() for text in values.split(",")]
        if not sep or not field:
            raise ConfigError(f"--grid {item!r} needs the form field=value1,value2,... (e.g. reward_scale=1,5,20,40)")
        if field not in TYPES:
            close = [f"; did you mean {match}?" for match in difflib.get_close_matches(field, TYPES, n=1)]
            raise ConfigError(f"--grid: {field!r} is not a sac_v field{''.join(close)}")
        if field in FIXED_FIELDS:
            raise ConfigError(f"--grid cannot vary {field}: {FIXED_FIELDS[field]}")
        if field in grid:
            raise ConfigError(f"--grid gives {field} twice; list all its values in one item, e.g. {field}=1,2")
        if "" in texts:
            raise ConfigError(f"--grid {item!r} has an empty value; separate the values by single commas")
        grid[field] = [grid_value(field, text) for text in texts]
        if len(set(grid[field])) < len(grid[field]):
            raise ConfigError(f"--grid {item!r} repeats a value")
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def report(settings: list, sweep: SweepArgs, threshold: float, command: str, out: Path, rows: list, ran: dict) -> None:
    """summary.md, a row per setting: its seeds' success count, median steps to the threshold and finals; curves.png."""
    fields, train = list(settings[0]), sweep.train
    per_setting = [common.by_seed([r for r in rows if all(r[k] == v for k, v in s.items())]) for s in settings]
    target = common.TARGETS[train.env_id].steps if train.env_id in common.TARGETS else None
    header = [*fields, "runs", f"reached {threshold:g}", *([f"within {target:,} steps"] if target else [])]
    header += ["median steps to threshold", "final eval mean ± std"]
    lines = [
        f"# Sweep: sac_v on {train.env_id} over {', '.join(fields)}",
        "",
        f"Threshold: deterministic {train.eval_episodes}-episode eval mean ≥ {threshold:g}, checked every "
        f"{train.eval_every:,} env steps. Runs: finished seeds. Median steps: unreached seeds "
        "count as ∞. Final eval: mean ± std across seeds of each seed's last evaluation.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" for _ in header) + " |",
    ]
    for setting, per_seed in zip(settings, per_setting, strict=True):
        reach, finals = common.reach_and_finals(per_seed, threshold)
        cells = [format_value(v) for v in setting.values()] + [str(len(per_seed))]
        if per_seed:
            cells += [f"{np.isfinite(reach).sum()} / {len(per_seed)}"]
            cells += [f"{(reach <= target).sum()} / {len(per_seed)}"] if target else []
            cells += [common.fmt(common.median_steps(reach)), f"{finals.mean():.1f} ± {finals.std():.1f}"]
        lines.append("| " + " | ".join(cells + ["–"] * (len(header) - len(cells))) + " |")
    shared = ", ".join(f"`{k}={v}`" for k, v in common.settings_of(train, "exp_name", *fields).items())
    hardware, commits = ("; ".join(dict.fromkeys(line[i] for line in ran.values())) for i in (0, 1))
    lines += ["", f"Shared settings: {shared}", "", f"Hardware: {hardware}.", "", f"Commit: {commits}.", ""]
    lines += ["Command:", "", "```", command, "```", ""] if command else []
    (out / "summary.md").write_text("\n".join(lines))

    from matplotlib import colormaps

    colors = colormaps["tab10" if len(settings) <= 10 else "tab20"]
    names = [f"{label(s, ', ')} ({len(p)} seeds)" for s, p in zip(settings, per_setting, strict=True)]
    curves = [(p, colors(i % colors.N), name) for i, (p, name) in enumerate(zip(per_setting, names, strict=True))]
    title = f"sac_v on {train.env_id}: seeds (thin) and their mean (thick) per setting"
    common.plot_curves(out / "curves.png", title, curves, threshold)


def tune_trial(config: dict[str, int], jobs: list[tuple[Args]]) -> dict[str, Any]:
    """One Ray Tune trial, one sac_v run: its evaluations, or the exception it raised (recorded, not retried)."""
    try:
        return {"evaluations": [tuple(e) for e in common.run_seed(*jobs[config["run"]])]}
    except Exception as e:
        return {"error": e}


def run_tune(jobs: dict[RunKey, tuple[Args]], workers: int, address: str | None, threads: int) -> Iterator[tuple]:
    """The jobs as one Ray Tune experiment (locally, or on the cluster at `address`), `threads` CPUs a trial, yielding
    (key, evaluations or exception) as each trial ends: Tune's fit runs in a thread of its own."""
    import ray
    from ray import tune

    if address is None:  # a local instance, whose workers import this checkout (run folders: in Ray's trial dirs)
        path = os.pathsep.join([str(common.ROOT / "benchmarks"), *filter(None, [os.environ.get("PYTHONPATH")])])
        env = {"env_vars": {"PYTHONPATH": path}}
        ray.init("local", num_cpus=workers * threads, include_dashboard=False, runtime_env=env)
    else:  # the cluster, to which this checkout's code is shipped, so that every node runs the driver's version
        env = {"working_dir": str(common.ROOT), "excludes": ["docs/", "runs/", "videos/"]}
        try:
            ray.init(address=address, runtime_env=env | {"env_vars": {"PYTHONPATH": "benchmarks"}})
        except (ConnectionError, ray.exceptions.RayError) as e:
            why = str(e).splitlines()[0]  # Ray's own log names a missing token; its exception does not
            why += "" if "RAY_AUTH_MODE" in os.environ else " (a cluster with token auth wants RAY_AUTH_MODE=token)"
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {why}") from None
    keys, ended = list(jobs), queue.Queue()

    class Ended(tune.Callback):
        """Puts (key, outcome) on a queue as each trial ends, complete or lost (its worker or node died)."""

        def __init__(self, keys: list[RunKey], ended: queue.Queue) -> None:
            self.keys, self.ended = keys, ended

        def __getstate__(self) -> dict:  # Tune saves its callbacks for its own restore, which a sweep never asks for
            return {}

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = {"error": RuntimeError(f"Ray lost the trial: see {trial.error_file}")} | (trial.last_result or {})
            outcome = [Evaluation(*e) for e in result["evaluations"]] if "evaluations" in result else result["error"]
            self.ended.put((self.keys[trial.config["run"]], outcome))

        on_trial_error = on_trial_complete

    trainable = tune.with_resources(tune.with_parameters(tune_trial, jobs=list(jobs.values())), {"cpu": threads})
    store = str(Path("runs/tune").resolve())  # Tune's experiment state, which no rerun reads
    run_config = tune.RunConfig(storage_path=store, callbacks=[Ended(keys, ended)], verbose=0)
    space, limit = {"run": tune.grid_search(list(range(len(keys))))}, tune.TuneConfig(max_concurrent_trials=workers)
    tuner = tune.Tuner(trainable, param_space=space, tune_config=limit, run_config=run_config)
    fit = threading.Thread(target=tuner.fit, daemon=True)
    fit.start()
    try:
        for _ in keys:  # each trial ends once, complete or errored
            while fit.is_alive() or not ended.empty():
                with contextlib.suppress(queue.Empty):
                    yield ended.get(timeout=1)
                    break
            else:
                raise RuntimeError("Ray Tune stopped before every trial ended")
    finally:
        ray.shutdown()


def main(sweep: SweepArgs, command: str = "") -> None:
    """The runs of the grid × seeds not yet in the record, on the backend; then the summary and plot."""
    settings, train = parse_grid([item for group in sweep.grid for item in group]), sweep.train
    fields = list(settings[0])
    threshold = common.check_record(sweep, FIXED_FIELDS["exp_name"], FIXED_FIELDS["resume"])
    if sweep.ray_address is not None and sweep.backend != "ray":
        raise ConfigError("--ray-address needs --backend ray")
    if sweep.backend == "ray" and not all(importlib.util.find_spec(name) for name in ("ray", "pandas", "pyarrow")):
        raise ConfigError('--backend ray needs Ray: pip install -e ".[ray]"')
    host, _, port = (sweep.ray_address or "").removeprefix("ray://").rpartition(":")
    if port.isdigit():  # refused at once: ray.init would wait minutes, silent, at an address nothing answers at
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
        except OSError as e:
            raise ConfigError(f"cannot connect to the Ray cluster at {sweep.ray_address}: {e.strerror or e}") from None
    for setting in settings:  # a bad combination is refused before anything runs
        try:
            validate_args(dataclasses.replace(train, **setting))
        except ConfigError as e:
            raise ConfigError(f"grid setting {label(setting)}: {e}") from None
    out_dir = common.results_path(sweep.out_dir, sweep.record, "experiments", "__".join([train.env_id, *fields]))
    same_runs = {f: sorted({s[f] for s in settings}) for f in sorted(fields)}  # the grid in any order: the same runs
    config = {"settings": common.settings_of(train, "exp_name", *fields), "grid": same_runs}

    def job(key: RunKey) -> tuple[Args]:
        setting = dict(zip(fields, key[0], strict=True))
        return (dataclasses.replace(train, **setting, seed=key[1], exp_name=f"sweep-{label(setting)}"),)

    backend = common.seed_pool(common.run_seed, train.threads)  # sac_v's --threads, per run
    if sweep.backend == "ray":
        address, cpus = sweep.ray_address, 1 if train.threads == "auto" else train.threads
        where = f"the Ray cluster at {address}, driven from" if address else "a local Ray instance on"
        line = f"{where} {common.machine()}, {train.threads} torch thread(s) per run"
        backend = functools.partial(run_tune, address=address, threads=cpus), lambda workers: line
    write = functools.partial(report, settings, sweep, threshold, command, out_dir)
    record = common.Record(out_dir, config, write, job, *backend, fields, grid_value, format_value)
    common.run_record(record, sweep, [tuple(setting.values()) for setting in settings])


if __name__ == "__main__":
    stopped = "the finished runs are in runs.csv; rerun the same command to run the rest"
    common.cli(lambda: main(common.parse_with_paper(SweepArgs), command=shlex.join(["python", *sys.argv])), stopped)
