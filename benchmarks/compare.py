"""Records of one task side by side, on the seeds every record has (--all-seeds: each its own); or, with --logs, the
evaluations in loose sac_v runs' TensorBoard logs as one CSV.

    python benchmarks/compare.py --threshold -200 docs/benchmarks/Pendulum-v1/beside-sb3 docs/benchmarks/Pendulum-v1
    python benchmarks/compare.py --logs runs/ --out probes.csv
"""

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
    records: tyro.conf.Positional[list[Path]] = dataclasses.field(default_factory=list)  # folders holding a runs.csv
    threshold: float | None = None  # the eval return that counts as solved
    all_seeds: bool = False  # each record's own seeds, not only those every record has
    logs: Path | None = None  # a folder of sac_v run folders: their TensorBoard logs' evaluations to --out, no table
    out: Path = Path("evals.csv")  # the CSV that --logs writes


def load_record(record: Path) -> dict[int, list[dict[str, float]]]:
    """The evaluations of each seed in record/runs.csv; anything but a learning record ends the run in one sentence."""
    runs_csv = record / "runs.csv"
    if not runs_csv.is_file():
        sys.exit(f"error: no runs.csv in {record}")
    try:
        columns = next(csv.reader(runs_csv.read_text().splitlines()[:1]), [])
        if set(columns) != set(METRICS):  # a sweep's has its grid fields too, and one curve per setting and seed
            sys.exit(f"error: {runs_csv} is not a learning record: its columns are {', '.join(columns)}")
        per_seed = by_seed(read_rows(runs_csv))
    except OSError as e:
        sys.exit(f"error: cannot read {runs_csv}: {e.strerror or e}")
    except ValueError:
        sys.exit(f"error: {runs_csv} has a row that is not all numbers")
    if not per_seed:
        sys.exit(f"error: {runs_csv} holds no evaluation")
    return per_seed


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
        events, tag = EventAccumulator(str(run_dir)).Reload(), "eval/episodic_return"
        evaluations = events.Scalars(tag) if tag in events.Tags()["scalars"] else []  # none: stopped before the first
        rows += [[run_dir.name, *run_dir.name.split("__")[:3], e.step, round(e.value, 2)] for e in evaluations]
    try:
        with atomic_path(out) as tmp, tmp.open("w", newline="") as f:  # an earlier CSV stays whole if this fails
            csv.writer(f).writerows([["run", "env_id", "exp_name", "seed", "step", "eval_mean"], *rows])
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
    loaded = [(record, load_record(record)) for record in args.records]  # every record checked before the table
    common = None if args.all_seeds else set.intersection(*(set(per_seed) for _, per_seed in loaded))
    if common is not None and not common:
        sys.exit("error: the records share no seed (--all-seeds compares each record's own)")
    head = f"| record | seeds | ≥ {args.threshold:g} | median steps to it | final eval | last five evals"
    print(f"{head} | minutes per seed |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for record, per_seed in loaded:
        per_seed = {s: rows for s, rows in per_seed.items() if common is None or s in common}
        reach, finals = reach_and_finals(per_seed, args.threshold)
        last_five = np.array([np.mean([r["eval_mean"] for r in rows[-5:]]) for rows in per_seed.values()])
        minutes = np.median([rows[-1]["wall_s"] for rows in per_seed.values()]) / 60
        cells = [len(reach), f"{np.isfinite(reach).sum()} / {len(reach)}", fmt(median_steps(reach))]
        cells += [f"{finals.mean():.1f} ± {finals.std():.1f}", f"{last_five.mean():.1f} ± {last_five.std():.1f}"]
        print(f"| {record} | {' | '.join(map(str, cells))} | {minutes:.1f} |")
    if common is not None and any(set(per_seed) != common for _, per_seed in loaded):
        print(f"\nseeds every record has: {sorted(common)} (--all-seeds: each record's own)")


if __name__ == "__main__":
    main(tyro.cli(CompareArgs))
