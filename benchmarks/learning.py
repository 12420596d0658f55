"""Multi-seed learning benchmark: does sac_v learn, how fast, and how reliably?

    python benchmarks/learning.py --env-id LunarLanderContinuous-v3 --seeds 10
    python benchmarks/learning.py --env-id Pendulum-v1 --total-timesteps 10000 --min-pool 1000 --reward-scale 40 \
        --eval-every 1000

Runs `sac_v.train` once per seed in parallel worker processes (--threads torch threads each) and writes, under
runs/benchmarks/<env>/ (with --record the committed record, docs/benchmarks/<env>/): runs.csv (every evaluation of
every seed, appended as each seed finishes, so a crash never loses finished seeds), failures.csv (the seeds that raised,
with their error), summary.md (steps to the threshold per seed, success count, median and IQR) and curves.png.
Started again with the same settings, it skips the seeds already in runs.csv and continues each unfinished seed from
its last checkpoint (its run folder runs/<env>__bench__<seed>__<time>, found by its settings; the run length may
differ, so a longer benchmark continues a shorter one's runs). Needs the `bench` extra (matplotlib).

    python benchmarks/learning.py --paper --env-id Hopper-v5 --total-timesteps 300000 --seeds 3 --record
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from common import (
    RUN_MANAGEMENT,
    Provenance,
    Record,
    RecordArgs,
    RunKey,
    by_seed,
    check_counts,
    check_run_flags,
    cli,
    hardware_line,
    holding,
    parse_with_paper,
    plot_curves,
    results_path,
    run_in_workers,
    run_record,
    run_seed,
    seed_lines,
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
    """The seeds not yet in the record, each continued from its checkpoint where it has one; then the summary and
    plot."""
    train = bench.train
    threshold = threshold_of(bench.threshold, train.env_id)
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError('the learning benchmark plots with matplotlib: pip install -e ".[bench]"')
    validate_args(train)
    check_counts(bench.seeds, bench.workers, bench.first_seed, threshold)
    check_run_flags(train, "the benchmark's runs are runs/<env>__bench__<seed>__<time>")
    if train.resume is not None:
        raise ConfigError("--resume continues one run; the benchmark continues its unfinished seeds by itself")
    make_env(train.env_id).close()
    out_dir = results_path(bench.out_dir, bench.record, "benchmarks", train.env_id)
    config = {k: v for k, v in dataclasses.asdict(train).items() if k not in ("seed", *RUN_MANAGEMENT)}

    def report(rows: list[dict[str, Any]], ran: Provenance) -> None:
        hardware, ran_at = seed_lines(ran)
        write_summary(rows, train, threshold, hardware, out_dir, ran_at)
        plot(rows, train.env_id, threshold, out_dir)

    def job(key: RunKey) -> tuple[Args]:
        args = dataclasses.replace(train, seed=key[1], exp_name="bench")
        if checkpoint := resumable_checkpoint(args, config):
            print(f"seed {args.seed}: continuing {checkpoint}")
            args = dataclasses.replace(args, resume=checkpoint)
        return (args,)

    record = Record(out_dir, config, report, total=lambda key: train.total_timesteps)
    keys = [((), seed) for seed in range(bench.first_seed, bench.first_seed + bench.seeds)]
    with holding(out_dir):
        run_record(
            record,
            keys,
            job,
            functools.partial(run_in_workers, run_seed),
            lambda workers: hardware_line(workers, train.threads),  # sac_v's --threads, per worker
            bench.workers,
            bench.overwrite,
        )


def parse_bench_args(argv: list[str] | None = None) -> BenchArgs:
    return parse_with_paper(BenchArgs, argv)


if __name__ == "__main__":
    stopped = "the seeds in flight saved their checkpoints; the same command continues them"
    cli(lambda: main(parse_bench_args()), stopped)
