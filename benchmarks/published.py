"""sac_v's MuJoCo records beside published multi-seed SAC (docs/published-sac/raw/, cited in sources.md there): per
task, mean ± std over seeds at 100 000, 300 000 and 1 000 000 env steps, and a plot.

    python benchmarks/published.py           # writes runs/published-sac/beside.md and runs/published-sac/<Task>.png
    python benchmarks/published.py --record  # the committed ones, docs/published-sac/beside.md and <Task>.png
"""

import csv
from pathlib import Path

import numpy as np
import tyro
from common import ROOT, by_seed, read_rows

PUBLISHED = ROOT / "docs" / "published-sac"
TASKS = ("HalfCheetah", "Hopper", "Walker2d", "Ant")
STEPS = (100_000, 300_000, 1_000_000)
# Source folder in raw/ -> (label, env steps its logged step leaves out: Tianshou 2021 logs after 10 000 random steps)
SOURCES = {
    "tianshou_2021_v3": ("[S1] Tianshou 2021, -v3, det.", 10_000),
    "spinningup_sac_lqnew": ("[S2] Spinning Up SAC, -v2, det.", 0),
    "lwdrl_sac_lqnew": ("[S3] LWDRL SAC, -v2, det.", 0),
    "mushroomrl_benchmark_v3": ("[S4] MushroomRL, -v3, stochastic", 0),
    "nnabla_rl_sac": ("[S5] nnabla-rl SAC, -v2, det.", 0),
    "nnabla_rl_icml2018sac": ("[S6] nnabla-rl SAC v1 (with V), -v2, det.", 0),
}
Curves = dict[int, dict[int, float]]  # {seed: {env step: eval mean}}


def read_curves(path: Path, offset: int = 0) -> Curves:
    """The curves of a published raw/ file (env_step, then a column per seed), or of a sac_v record's runs.csv."""
    if path.name == "runs.csv":
        return {seed: {r["step"]: r["eval_mean"] for r in rows} for seed, rows in by_seed(read_rows(path)).items()}
    rows = list(csv.DictReader(path.read_text().splitlines()))
    seeds = [name for name in rows[0] if name.startswith("seed_")]
    return {i: {int(float(r["env_step"])) + offset: float(r[s]) for r in rows if r[s]} for i, s in enumerate(seeds)}


def at(curves: Curves, step: int, tolerance: int = 10_000) -> np.ndarray:
    """Each seed's evaluation at the logged step nearest `step`, within `tolerance`: seeds not there drop out."""
    nearest = [(curve, min(curve, key=lambda s: abs(s - step))) for curve in curves.values()]
    return np.array([curve[s] for curve, s in nearest if abs(s - step) <= tolerance])


def cell(values: np.ndarray) -> str:
    return f"{values.mean():,.0f} ± {values.std():,.0f} ({len(values)})".replace(",", " ") if len(values) else "–"


def plot(task: str, ours: Curves, long: Curves, theirs: dict[str, Curves], out: Path) -> Path:
    from matplotlib.figure import Figure  # no pyplot: no backend, no figure left open

    ax = Figure(figsize=(8, 4.5), layout="tight").subplots()
    for label, curves in theirs.items():
        steps = sorted(set.intersection(*(set(c) for c in curves.values())))
        ax.plot(steps, [np.mean([c[s] for c in curves.values()]) for s in steps], linewidth=1, label=label)
    steps = sorted({s for c in ours.values() for s in c})
    mean, std = np.array([[at(ours, s, tolerance=0).mean(), at(ours, s, tolerance=0).std()] for s in steps]).T
    ax.plot(steps, mean, color="black", linewidth=2, label=f"sac_v, {len(ours)} seeds (± std)")
    ax.fill_between(steps, mean - std, mean + std, color="black", alpha=0.15)
    for seed, curve in long.items():  # a seed run on to 1 000 000 steps: a run of its own, not the record's seed
        ax.plot(*zip(*sorted(curve.items()), strict=True), "k--", linewidth=1, label=f"sac_v seed {seed}, 1M run")
    ax.set(xlabel="env steps", ylabel="evaluation return (mean over seeds)", title=task, xlim=(0, 1_000_000))
    ax.legend(fontsize=7)
    ax.figure.savefig(path := out / f"{task}.png", dpi=110)
    return path


def main(record: bool = False) -> None:
    """:param record: write the committed table and plots, docs/published-sac/ (default runs/published-sac/)"""
    out = PUBLISHED if record else Path("runs") / "published-sac"
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# sac_v beside published multi-seed SAC",
        "",
        "Mean ± std over seeds (number of seeds) of the evaluation return at each step; the last column is sac_v's",
        "mean at 300 000 minus the source's, in the source's between-seed standard deviations. Sources and their",
        "protocols: [sources.md](sources.md). Written by `python benchmarks/published.py --record`.",
        "",
    ]
    raw = PUBLISHED / "raw"
    for task in TASKS:
        theirs = {label: read_curves(raw / name / f"{task}.csv", skip) for name, (label, skip) in SOURCES.items()}
        ours_dir = ROOT / "docs" / "benchmarks" / f"{task}-v5"  # sac_v's record, and its seed run on to 1M steps
        ours, long = read_curves(ours_dir / "runs.csv"), read_curves(ours_dir / "1m" / "runs.csv")
        mine = [at(ours, STEPS[0]), at(ours, STEPS[1]), at(long, STEPS[2])]
        lines += [f"### {task}", "", "| run | 100 000 | 300 000 | 1 000 000 | sac_v at 300 000, in the source's stds |"]
        sac_v = " | ".join(map(cell, mine))
        lines += ["| --- | ---: | ---: | ---: | ---: |", f"| **sac_v, `-v5`, det.** | {sac_v} | |"]
        for label, curves in theirs.items():
            other = at(curves, 300_000)
            gap = f"{(mine[1].mean() - other.mean()) / other.std():+.1f}" if len(mine[1]) and len(other) else "–"
            lines.append(f"| {label} | {' | '.join(cell(at(curves, s)) for s in STEPS)} | {gap} |")
        lines.append("")
        if ours:
            lines += [f"![{task}]({plot(task, ours, long, theirs, out).name})", ""]
    (out / "beside.md").write_text("\n".join(lines))
    print(f"wrote {out / 'beside.md'}")


if __name__ == "__main__":
    tyro.cli(main)
