"""Multi-seed learning benchmark: does sac_v learn, how fast, and how reliably? A record (common.Record) in
runs/benchmarks/<env>/ (--record: docs/); a rerun continues each unfinished seed from its run folder's checkpoint.

    python benchmarks/learning.py --env-id LunarLanderContinuous-v3 --seeds 10
    python benchmarks/learning.py --paper --env-id Hopper-v5 --total-timesteps 300000 --seeds 3 --record
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import common

from sac_v import Args, ConfigError, load_checkpoint, path_name, validate_args


def resumable_checkpoint(args: Args, config: dict[str, Any]) -> Path | None:
    """The most advanced checkpoint under runs/ of this seed's unfinished run with these settings (any run length)."""
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


def main(bench: common.RecordArgs) -> None:
    """The seeds not yet in the record, each from its checkpoint where it has one; then the summary and plot."""
    train = bench.train
    names = "the benchmark's runs are runs/<env>__bench__<seed>__<time>"
    threshold = common.check_record(bench, names, "the benchmark continues its unfinished seeds by itself")
    validate_args(train)
    out_dir = common.results_path(bench.out_dir, bench.record, "benchmarks", train.env_id)
    config = common.settings_of(train)

    def report(rows: list[dict[str, Any]], ran: common.Provenance) -> None:
        (out_dir / "summary.md").write_text(common.summary(rows, ran, train, threshold))
        per_seed = common.by_seed(rows)
        title = f"sac_v on {train.env_id}: {common.seeds_title(per_seed)}"
        common.plot_curves(out_dir / "curves.png", title, [(per_seed, "tab:blue", None)], threshold)

    def job(key: common.RunKey) -> tuple[Args]:
        args = dataclasses.replace(train, seed=key[1], exp_name="bench")
        if checkpoint := resumable_checkpoint(args, config):
            print(f"seed {args.seed}: continuing {checkpoint}")
            args = dataclasses.replace(args, resume=checkpoint)
        return (args,)

    pool = common.seed_pool(common.run_seed, train.threads)  # sac_v's --threads, per worker
    common.run_record(common.Record(out_dir, config, report, job, *pool), bench)


if __name__ == "__main__":
    stopped = "the seeds in flight saved their checkpoints; the same command continues them"
    common.cli(lambda: main(common.parse_with_paper(common.RecordArgs)), stopped)
