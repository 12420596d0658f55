"""Multi-seed learning benchmark: does sac_v learn, how fast, and how reliably?

    python benchmarks/learning.py --env-id LunarLanderContinuous-v3 --seeds 10
    python benchmarks/learning.py --env-id Pendulum-v1 --total-timesteps 10000 --min-pool 1000 --reward-scale 40 \
        --eval-every 1000

Runs `sac_v.train` once per seed in parallel worker processes (--threads torch threads each) and writes, under
runs/benchmarks/<env>/ (with --record the committed record, docs/benchmarks/<env>/): runs.csv (every evaluation of
every seed, appended as each seed finishes, so a crash never loses finished seeds), summary.md (steps to the threshold
per seed, success count, median and IQR) and curves.png.
Started again with the same settings, it skips the seeds already in runs.csv and continues each unfinished seed from
its last checkpoint (its run folder runs/<env>__bench__<seed>__<time>, found by its settings; the run length may
differ, so a longer benchmark continues a shorter one's runs). Needs the `bench` extra (matplotlib).

    python benchmarks/learning.py --paper --env-id Hopper-v5 --total-timesteps 300000 --seeds 3 --record
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    METRICS,
    RUN_MANAGEMENT,
    InterruptError,
    RecordArgs,
    append_rows,
    by_seed,
    check_counts,
    check_earlier_results,
    check_run_flags,
    commit,
    earlier_seed_lines,
    earlier_summary_line,
    finished_rows,
    hardware_line,
    holding,
    parse_with_paper,
    plot_curves,
    results_path,
    run_in_workers,
    run_seed,
    seed_line,
    seeds_title,
    threshold_of,
    write_summary,
)

from sac_v import Args, ConfigError, load_checkpoint, make_env, path_name, validate_args


@dataclasses.dataclass
class BenchArgs(RecordArgs):
    out_dir: Path | None = None
    """where results go (default runs/benchmarks/<env-id>; with --record docs/benchmarks/<env-id>)"""


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


def plot(rows: list[dict[str, Any]], env_id: str, threshold: float, out_dir: Path) -> None:
    per_seed = by_seed(rows)
    title = f"sac_v on {env_id}: {seeds_title(per_seed)}"
    plot_curves(out_dir / "curves.png", title, [(per_seed, "tab:blue", None)], threshold)


def main(bench: BenchArgs) -> None:
    threshold = threshold_of(bench.threshold, bench.train.env_id)
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError('the learning benchmark plots with matplotlib: pip install -e ".[bench]"')
    validate_args(bench.train)
    check_counts(bench.seeds, bench.workers, bench.first_seed, threshold)
    check_run_flags(bench.train, "the benchmark's runs are runs/<env>__bench__<seed>__<time>")
    if bench.train.resume is not None:
        raise ConfigError("--resume continues one run; the benchmark continues its unfinished seeds by itself")
    make_env(bench.train.env_id).close()
    out_dir = results_path(bench.out_dir, bench.record, "benchmarks", bench.train.env_id)
    with holding(out_dir):
        run_benchmark(bench, threshold, out_dir)


def run_benchmark(bench: BenchArgs, threshold: float, out_dir: Path) -> None:
    """The seeds not yet in out_dir/runs.csv, each continued from its checkpoint where it has one; then the summary
    and plot."""
    runs_csv = out_dir / "runs.csv"
    config = {k: v for k, v in dataclasses.asdict(bench.train).items() if k not in ("seed", *RUN_MANAGEMENT)}
    check_earlier_results(out_dir, config, bench.overwrite)
    rows = finished_rows(runs_csv, [], lambda key: bench.train.total_timesteps)
    done = {int(r["seed"]) for r in rows}
    seeds = [s for s in range(bench.first_seed, bench.first_seed + bench.seeds) if s not in done]
    if done:
        print(f"skipping seeds already in {runs_csv}: {sorted(done)}")
    if not seeds:  # the summary and plot again, from the finished seeds in runs.csv
        write_summary(
            rows,
            bench.train,
            threshold,
            earlier_summary_line(out_dir),
            out_dir,
            earlier_summary_line(out_dir, "Commit"),
        )
        plot(rows, bench.train.env_id, threshold, out_dir)
        print(f"all seeds are done; summary and plot rewritten in {out_dir}")
        print("to run them again, pass --out-dir with a new folder")
        return

    workers = min(bench.workers or os.cpu_count() or 1, len(seeds))
    threads = bench.train.threads  # sac_v's --threads, per worker
    hardware = hardware_line(workers, threads)
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
        append_rows(runs_csv, METRICS, new)
        rows += new
        hardwares[seed], commits[seed] = hardware, ran_at
        write_summary(rows, bench.train, threshold, seed_line(hardwares), out_dir, seed_line(commits))
        plot(rows, bench.train.env_id, threshold, out_dir)
        print(f"seed {seed} done: final eval {outcome[-1].mean:.1f}, {outcome[-1].wall_s / 60:.1f} min")
    print(f"all done in {(time.time() - start) / 60:.1f} min; results in {out_dir}")
    if failures:
        sys.exit(f"error: {failures} seed(s) failed; rerun the same command to retry them")


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
