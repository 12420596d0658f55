"""One table from several learning records (benchmarks/learning.py or benchmarks/peers.py folders) of the same task.

    python benchmarks/compare.py --threshold -200 \\
        docs/benchmarks/Pendulum-v1/beside-sb3 docs/benchmarks/Pendulum-v1/peers/sb3-sac-v-defaults

Prints, per folder: the seeds, how many reached the threshold and the median env steps to it (unreached seeds count
as ∞), the final evaluation's mean ± std across seeds, the mean ± std across seeds of each seed's last five
evaluations (steadier than the final one alone), and the median wall time of a seed. Only the seeds every record has
are compared (--all-seeds: each record's own), so that a 10-seed record stands beside a 5-seed one on the same seeds.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import by_seed, fmt, load_rows, steps_to_threshold


@dataclasses.dataclass
class CompareArgs:
    records: tyro.conf.Positional[list[Path]]
    """folders holding a runs.csv"""
    threshold: float
    """the eval return that counts as solved"""
    all_seeds: bool = False
    """each record's own seeds, not only those every record has"""


def row(record: Path, threshold: float, seeds: set[int] | None = None) -> str:
    per_seed = {s: rows for s, rows in by_seed(load_rows(record / "runs.csv")).items() if seeds is None or s in seeds}
    reach = np.array([steps_to_threshold(rows, threshold) for rows in per_seed.values()])
    finals = np.array([rows[-1]["eval_mean"] for rows in per_seed.values()])
    last_five = np.array([np.mean([r["eval_mean"] for r in rows[-5:]]) for rows in per_seed.values()])
    wall = np.median([rows[-1]["wall_s"] for rows in per_seed.values()]) / 60
    median = np.percentile(reach, 50, method="inverted_cdf")
    return (
        f"| {record} | {len(reach)} | {np.isfinite(reach).sum()} / {len(reach)} | {fmt(median)} "
        f"| {finals.mean():.1f} ± {finals.std():.1f} | {last_five.mean():.1f} ± {last_five.std():.1f} | {wall:.1f} |"
    )


def main(args: CompareArgs) -> None:
    print(
        f"| record | seeds | ≥ {args.threshold:g} | median steps to it | final eval | last five evals | min per seed |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    seeds = [set(by_seed(load_rows(record / "runs.csv"))) for record in args.records]
    common = None if args.all_seeds else set.intersection(*seeds)
    for record in args.records:
        print(row(record, args.threshold, common))
    if common is not None and any(own != common for own in seeds):
        print(f"\nseeds every record has: {sorted(common)} (--all-seeds: each record's own)")


if __name__ == "__main__":
    main(tyro.cli(CompareArgs))
