"""Collect the evaluation curves of finished sac_v runs from their TensorBoard logs into one CSV.

    python benchmarks/runs_to_csv.py runs/ --out docs/probes.csv

One row per evaluation: run, env_id, exp_name, seed, step, eval_mean (the `eval/episodic_return` scalar).
"""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path

import tyro
from common import check_writable
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from buffer import atomic_path


@dataclasses.dataclass
class CollectArgs:
    runs: tyro.conf.Positional[Path]
    """a folder of run folders, as sac_v.py writes them (runs/)"""
    out: Path = Path("evals.csv")
    """the CSV to write"""


def main(args: CollectArgs) -> None:
    if not args.runs.exists():
        sys.exit(f"error: no folder {args.runs}")
    if not args.runs.is_dir():
        sys.exit(f"error: {args.runs} is a file; give the folder of run folders (runs/)")
    run_dirs = sorted(p for p in args.runs.iterdir() if p.is_dir() and p.name.count("__") == 3)
    if not run_dirs:
        sys.exit(f"error: no run folders (env__exp__seed__time) in {args.runs}")
    check_writable(args.out)
    rows = []
    for run_dir in run_dirs:
        env_id, exp_name, seed, _ = run_dir.name.split("__")
        events = EventAccumulator(str(run_dir)).Reload()
        if "eval/episodic_return" not in events.Tags()["scalars"]:
            continue
        for event in events.Scalars("eval/episodic_return"):
            rows.append([run_dir.name, env_id, exp_name, seed, event.step, round(event.value, 2)])
    try:
        with atomic_path(args.out) as tmp, tmp.open("w", newline="") as f:  # an earlier CSV stays whole if this fails
            writer = csv.writer(f)
            writer.writerow(["run", "env_id", "exp_name", "seed", "step", "eval_mean"])
            writer.writerows(rows)
    except OSError as e:  # a full disk, say
        sys.exit(f"error: cannot write --out {args.out}: {e.strerror or e}")
    print(f"{len(rows)} evaluations of {len({r[0] for r in rows})} runs written to {args.out}")


if __name__ == "__main__":
    main(tyro.cli(CollectArgs))
