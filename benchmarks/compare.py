"""One table from several learning records (benchmarks/learning.py or benchmarks/peers.py folders) of the same task;
or, with --logs, the evaluations of loose sac_v runs collected from their TensorBoard logs into one CSV.

    python benchmarks/compare.py --threshold -200 \\
        docs/benchmarks/Pendulum-v1/beside-sb3 docs/benchmarks/Pendulum-v1/peers/sb3-sac-v-defaults
    python benchmarks/compare.py --logs runs/ --out probes.csv

The table gives, per folder: the seeds, how many reached the threshold and the median env steps to it (unreached seeds
count as ∞), the final evaluation's mean ± std across seeds, the mean ± std across seeds of each seed's last five
evaluations (steadier than the final one alone), and the median wall time of a seed. Only the seeds every record has
are compared (--all-seeds: each record's own), so that a 10-seed record stands beside a 5-seed one on the same seeds.
The CSV of --logs has one row per evaluation: run, env_id, exp_name, seed, step, eval_mean (the `eval/episodic_return`
scalar).
"""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np
import tyro
from common import METRICS, by_seed, check_writable, fmt, median_steps, reach_and_finals, read_rows
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from buffer import atomic_path


@dataclasses.dataclass
class CompareArgs:
    records: tyro.conf.Positional[list[Path]] = dataclasses.field(default_factory=list)
    """folders holding a runs.csv"""
    threshold: float | None = None
    """the eval return that counts as solved"""
    all_seeds: bool = False
    """each record's own seeds, not only those every record has"""
    logs: Path | None = None
    """a folder of sac_v run folders (runs/): write the evaluations in their TensorBoard logs to --out, no table"""
    out: Path = Path("evals.csv")
    """the CSV that --logs writes"""


def load_record(record: Path) -> dict[int, list[dict[str, float]]]:
    """The evaluations of each seed in record/runs.csv; anything but a learning record ends the run in one sentence."""
    runs_csv = record / "runs.csv"
    if not runs_csv.is_file():
        sys.exit(f"error: no runs.csv in {record}")
    try:
        with runs_csv.open(newline="") as f:
            columns = next(csv.reader(f), [])
        # benchmarks/sweep.py writes its grid fields before these columns, one curve per setting and seed: merged by
        # seed, the settings would pass for one
        if grid := [c for c in columns if c not in METRICS]:
            sys.exit(f"error: {runs_csv} is a sweep's output (grid: {', '.join(grid)}), not a learning record")
        if missing := [c for c in METRICS if c not in columns]:
            sys.exit(f"error: {runs_csv} is not a learning record: it has no {', '.join(missing)} column")
        per_seed = by_seed(read_rows(runs_csv))
    except OSError as e:
        sys.exit(f"error: cannot read {runs_csv}: {e.strerror or e}")
    except (TypeError, ValueError):  # a value that is not a number, or a row cut short (float(None))
        sys.exit(f"error: {runs_csv} has a row that is not all numbers")
    if not per_seed:
        sys.exit(f"error: {runs_csv} holds no evaluation")
    return per_seed


def row(record: Path, threshold: float, seeds: set[int] | None = None) -> str:
    per_seed = {s: rows for s, rows in load_record(record).items() if seeds is None or s in seeds}
    reach, finals = reach_and_finals(per_seed, threshold)
    last_five = np.array([np.mean([r["eval_mean"] for r in rows[-5:]]) for rows in per_seed.values()])
    wall = np.median([rows[-1]["wall_s"] for rows in per_seed.values()]) / 60
    median = median_steps(reach)
    return (
        f"| {record} | {len(reach)} | {np.isfinite(reach).sum()} / {len(reach)} | {fmt(median)} "
        f"| {finals.mean():.1f} ± {finals.std():.1f} | {last_five.mean():.1f} ± {last_five.std():.1f} | {wall:.1f} |"
    )


def collect(runs: Path, out: Path) -> None:
    """Every evaluation logged by the run folders in `runs` (sac_v's env__exp__seed__time), in run-name order."""
    if not runs.exists():
        sys.exit(f"error: no folder {runs}")
    if not runs.is_dir():
        sys.exit(f"error: {runs} is a file; give the folder of run folders (runs/)")
    run_dirs = sorted(p for p in runs.iterdir() if p.is_dir() and p.name.count("__") == 3)
    if not run_dirs:
        sys.exit(f"error: no run folders (env__exp__seed__time) in {runs}")
    check_writable(out)
    rows = []
    for run_dir in run_dirs:
        env_id, exp_name, seed, _ = run_dir.name.split("__")
        events = EventAccumulator(str(run_dir)).Reload()
        if "eval/episodic_return" not in events.Tags()["scalars"]:
            continue
        for event in events.Scalars("eval/episodic_return"):
            rows.append([run_dir.name, env_id, exp_name, seed, event.step, round(event.value, 2)])
    try:
        with atomic_path(out) as tmp, tmp.open("w", newline="") as f:  # an earlier CSV stays whole if this fails
            writer = csv.writer(f)
            writer.writerow(["run", "env_id", "exp_name", "seed", "step", "eval_mean"])
            writer.writerows(rows)
    except OSError as e:  # a full disk, say
        sys.exit(f"error: cannot write --out {out}: {e.strerror or e}")
    print(f"{len(rows)} evaluations of {len({r[0] for r in rows})} runs written to {out}")


def main(args: CompareArgs) -> None:
    if args.logs is not None:
        if args.records:
            sys.exit("error: --logs collects the evaluations of run folders; give no record folders beside it")
        return collect(args.logs, args.out)
    if not args.records:
        sys.exit("error: no record folders given")
    if args.threshold is None:
        sys.exit("error: the table needs --threshold, the eval return that counts as solved")
    seeds = [set(load_record(record)) for record in args.records]  # every record checked before the table starts
    common = None if args.all_seeds else set.intersection(*seeds)
    if common is not None and not common:
        sys.exit("error: the records share no seed (--all-seeds compares each record's own)")
    print(
        f"| record | seeds | ≥ {args.threshold:g} | median steps to it | final eval | last five evals "
        "| minutes per seed |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for record in args.records:
        print(row(record, args.threshold, common))
    if common is not None and any(own != common for own in seeds):
        print(f"\nseeds every record has: {sorted(common)} (--all-seeds: each record's own)")


if __name__ == "__main__":
    main(tyro.cli(CompareArgs))
