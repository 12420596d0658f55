import contextlib
import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import common
import learning
import numpy as np
import pytest
import torch

from sac_v import Args, ConfigError, lock_folder, train
from tests.helpers import ROOT, first_checkpoint, flags, run_cli, tiny_args

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras


def bench_args(out_dir: Path | None, **overrides) -> common.RecordArgs:
    train = tiny_args(total_timesteps=300, eval_every=150, **overrides)
    return common.RecordArgs(train=train, seeds=2, workers=2, out_dir=out_dir, threshold=-1e9)


def runs_only(folder: Path, config: dict) -> common.Record:
    """A record of seeds made with `config`, to read back; it runs nothing."""
    return common.Record(folder, config, report=print, job=print, backend=print, hardware=print)


def test_benchmark_writes_curves_summary_and_plot_then_skips_finished_seeds(in_tmp_dir):
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    out = in_tmp_dir / "out"
    learning.main(bench_args(out))
    rows = common.read_rows(out / "runs.csv")
    assert list(rows[0]) == ["seed", "step", "eval_mean", "eval_std", "wall_s"]
    assert sorted((r["seed"], r["step"]) for r in rows) == [(1, 150), (1, 300), (2, 150), (2, 300)]
    summary = (out / "summary.md").read_text()
    assert "**2 / 2**" in summary and "| 1 | 150 |" in summary  # threshold -1e9: reached at the first eval
    assert (out / "curves.png").stat().st_size > 0

    runs_before = sorted(p.name for p in (in_tmp_dir / "runs").iterdir())
    learning.main(bench_args(out))  # same settings again: nothing reruns, nothing is lost
    assert sorted(p.name for p in (in_tmp_dir / "runs").iterdir()) == runs_before
    assert common.read_rows(out / "runs.csv") == rows

    # with nothing to run, the summary and plot are written again from runs.csv, keeping the runs' hardware line
    (out / "summary.md").write_text("Hardware: the machine that ran them.\n")
    (out / "curves.png").unlink()
    learning.main(dataclasses.replace(bench_args(out), workers=1))
    summary = (out / "summary.md").read_text()
    assert "**2 / 2**" in summary and "Hardware: the machine that ran them.\n" in summary
    assert (out / "curves.png").stat().st_size > 0


def test_results_go_under_runs_by_default_and_into_docs_only_with_record(in_tmp_dir):
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    learning.main(dataclasses.replace(bench_args(None), seeds=1, workers=1))
    assert (in_tmp_dir / "runs" / "benchmarks" / "Pendulum-v1" / "summary.md").is_file()
    assert common.results_path(None, True, "benchmarks", "Pendulum-v1") == ROOT / "docs" / "benchmarks" / "Pendulum-v1"
    with pytest.raises(ConfigError, match="--record writes the committed record under docs/, --out-dir elsewhere"):
        learning.main(dataclasses.replace(bench_args(in_tmp_dir / "out"), record=True))
    assert not (in_tmp_dir / "out").exists()


def test_a_seed_run_later_keeps_the_earlier_seeds_commit_and_hardware(in_tmp_dir, monkeypatch):
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    out = in_tmp_dir / "out"
    learning.main(dataclasses.replace(bench_args(out), seeds=1, workers=1))
    summary = (out / "summary.md").read_text()
    hardware = summary.split("Hardware: ")[1].split(".\n")[0]
    (out / "summary.md").write_text(summary.replace(common.commit(), "aaaa"))  # seed 1 ran at another commit
    monkeypatch.setattr(common, "commit", lambda: "bbbb")
    learning.main(dataclasses.replace(bench_args(out), workers=1))  # runs seed 2 only
    summary = (out / "summary.md").read_text()
    assert "Commit: aaaa (seed 1); bbbb (seed 2).\n" in summary
    assert f"Hardware: {hardware}.\n" in summary  # one machine: one line


def test_the_commit_is_dirty_when_code_changed_not_when_a_record_was_written(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    (tmp_path / "docs").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "docs" / "runs.csv").write_text("seed\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout[:12]
    (tmp_path / "docs" / "runs.csv").write_text("seed\n1\n")  # a record being written as the runs go
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert common.commit(tmp_path / "docs") == head
    (tmp_path / "code.py").write_text("a = 2\n")
    assert common.commit(tmp_path) == head + "-dirty"
    assert common.commit(tmp_path.parent) == "not recorded"  # not a checkout


def test_seed_lines_read_back_what_they_wrote(tmp_path):
    def read_back(line: str, seeds: set[int]) -> dict[int, str]:
        (tmp_path / "summary.md").write_text(f"# Learning benchmark\n\nHardware: {line}.\n")
        return common.earlier_values(tmp_path, "Hardware", seeds)

    assert common.seed_line({1: "a", 2: "a"}) == "a"
    line = common.seed_line({3: "b", 1: "a", 2: "a(R) x"})
    assert line == "a (seed 1); a(R) x (seed 2); b (seed 3)"
    assert read_back(line, {1, 2, 3}) == {1: "a", 2: "a(R) x", 3: "b"}
    one = "Intel(R) Xeon(R), 2 cores"  # a line from before seeds were told apart: every seed's
    assert read_back(one, {1, 2}) == {1: one, 2: one}
    assert read_back("a (seeds 1, 2)", {1, 2, 4}) == {1: "a", 2: "a", 4: "not recorded"}
    assert common.earlier_values(tmp_path, "Commit", {1}) == {1: "not recorded"}  # no such line
    (tmp_path / "summary.md").unlink()
    assert common.earlier_values(tmp_path, "Hardware", {1}) == {1: "not recorded"}  # no summary at all


def test_benchmark_refuses_to_mix_results_of_other_settings(in_tmp_dir):
    out = in_tmp_dir / "out"
    out.mkdir()
    (out / "runs.csv").write_text("seed,step,eval_mean,eval_std,wall_s\n1,300,-100.0,1.0,2.0\n")
    (out / "config.json").write_text('{"reward_scale": 1}')
    with pytest.raises(learning.ConfigError, match="other settings"):
        learning.main(bench_args(out))
    assert "1,300,-100.0" in (out / "runs.csv").read_text()


def test_a_second_benchmark_on_a_folder_in_use_is_refused_before_it_runs_a_seed(in_tmp_dir):
    out = in_tmp_dir / "out"
    out.mkdir()
    with lock_folder(out, "another benchmark is writing it"):  # as a benchmark still running on out would
        with pytest.raises(learning.ConfigError, match="is in use: another benchmark is writing it"):
            learning.main(bench_args(out))
        assert not (out / "runs.csv").exists() and not list(in_tmp_dir.glob("runs/*"))
    learning.main(dataclasses.replace(bench_args(out), seeds=1, workers=1))  # released: the same command runs
    assert {r["seed"] for r in common.read_rows(out / "runs.csv")} == {1}


def test_a_row_cut_short_by_a_kill_is_dropped_and_its_seed_run_again(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    runs_csv.write_text("seed,step,eval_mean,eval_std,wall_s\n1,300,-100.0,1.0,2.0\n2,300,-9")  # seed 2 cut short
    assert common.read_rows(runs_csv) == [dict(seed=1, step=300, eval_mean=-100.0, eval_std=1.0, wall_s=2.0)]
    runs_csv.write_text("seed,step,eval_mean,eval_std,wall_s\n1,300,-100.0,1.0,2.0\n2,300\n")  # fields missing
    assert [r["seed"] for r in common.read_rows(runs_csv)] == [1]


def test_a_damaged_config_counts_as_other_settings_and_is_rewritten_whole(in_tmp_dir):
    out = in_tmp_dir / "out"
    out.mkdir()
    (out / "runs.csv").write_text("seed,step,eval_mean,eval_std,wall_s\n1,300,-100.0,1.0,2.0\n")
    (out / "config.json").write_text('{"reward_sc')  # a write cut short
    record = runs_only(out, {"reward_scale": 5.0})
    with pytest.raises(learning.ConfigError, match="other settings: pass --overwrite"):
        record.earlier_rows(overwrite=False, total_timesteps=300)
    assert record.earlier_rows(overwrite=True, total_timesteps=300) == []
    assert json.loads((out / "config.json").read_text()) == {"reward_scale": 5.0}
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "runs.csv"]  # no .tmp left


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(seeds=0), "--seeds must be positive"),
        (dict(first_seed=-1), r"the seeds -1 to 0 must be in \[0, 2\*\*32\)"),
        (dict(first_seed=2**32 - 1), r"the seeds 4294967295 to 4294967296"),
        (dict(threshold=float("nan")), "--threshold must be a finite number"),
    ],
)
def test_seeds_and_threshold_no_run_could_use_are_refused_before_anything_is_written(in_tmp_dir, overrides, message):
    with pytest.raises(learning.ConfigError, match=message):
        learning.main(dataclasses.replace(bench_args(in_tmp_dir / "out"), **overrides))
    assert not (in_tmp_dir / "out").exists()


@pytest.mark.parametrize("out_dir", ["afile", "afile/sub"])
def test_an_out_dir_that_cannot_be_a_folder_is_one_sentence(in_tmp_dir, out_dir):
    (in_tmp_dir / "afile").write_text("")
    argv = [*flags(tiny_args(total_timesteps=300)), "--seeds", "1", "--workers", "1", "--out-dir", out_dir]
    result = run_cli("benchmarks/learning.py", *argv, cwd=in_tmp_dir)
    assert result.returncode == 1 and result.stderr.startswith("error: cannot create the results folder")
    assert result.stderr.count("\n") == 1


def test_steps_to_threshold_is_the_first_evaluation_at_or_above_it():
    rows = [{"step": s, "eval_mean": m} for s, m in [(1, -5.0), (2, 3.0), (3, -1.0), (4, 9.0)]]
    assert common.reach_and_finals({1: rows}, 3.0)[0].tolist() == [2]
    assert common.reach_and_finals({1: rows}, 10.0)[0].tolist() == [float("inf")]


def test_benchmark_keeps_results_whose_config_predates_the_run_management_flags(in_tmp_dir):
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    out = in_tmp_dir / "out"
    out.mkdir()
    bench = bench_args(out, capture_video=True, save_buffer="never")  # flags that do not change what is learned
    old_config = {k: v for k, v in dataclasses.asdict(bench.train).items() if k not in common.RUN_MANAGEMENT}
    del old_config["seed"]
    (out / "config.json").write_text(json.dumps(old_config))
    rows = "seed,step,eval_mean,eval_std,wall_s\n1,300,-100.0,1.0,2.0\n2,300,-90.0,1.0,2.0\n"
    (out / "runs.csv").write_text(rows)
    learning.main(bench)  # both seeds are done: nothing runs, nothing is discarded
    assert (out / "runs.csv").read_text() == rows


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(seed=3), "--seed is set per run .*; pass --first-seed 3"),
        (dict(exp_name="mine"), "--exp-name is set"),
    ],
)
def test_benchmark_refuses_the_flags_it_sets_for_each_run_rather_than_ignore_them(in_tmp_dir, overrides, message):
    with pytest.raises(learning.ConfigError, match=message):
        learning.main(bench_args(in_tmp_dir / "out", **overrides))
    assert not (in_tmp_dir / "out").exists()


def test_benchmark_refuses_resume(in_tmp_dir):
    with pytest.raises(learning.ConfigError, match="continues its unfinished seeds by itself"):
        learning.main(bench_args(in_tmp_dir / "out", resume=in_tmp_dir / "sac_v.pt"))


def test_benchmark_continues_an_unfinished_seed_from_its_checkpoint_in_its_run_folder(in_tmp_dir):
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    bench = dataclasses.replace(bench_args(in_tmp_dir / "out"), seeds=1, workers=1)
    # A run of the same settings elsewhere (another reward scale) must not be taken for this seed's.
    train(dataclasses.replace(bench.train, seed=1, exp_name="bench", total_timesteps=150, reward_scale=1.0))
    stopped = train(dataclasses.replace(bench.train, seed=1, exp_name="bench", total_timesteps=150))
    learning.main(bench)
    runs = sorted((in_tmp_dir / "runs").iterdir())
    assert len(runs) == 2, "the unfinished seed went on in its own folder, not a new one"
    rows = common.read_rows(in_tmp_dir / "out" / "runs.csv")
    assert (rows[0]["step"], rows[0]["eval_mean"]) == (150, stopped.evaluations[0].mean)
    assert torch.load(stopped.checkpoint, weights_only=True)["global_step"] == 300
    learning.main(dataclasses.replace(bench, overwrite=True, train=dataclasses.replace(bench.train, reward_scale=2.0)))
    assert len(list((in_tmp_dir / "runs").iterdir())) == 3, "other settings start a fresh run"


def processes_in(folder: Path) -> list[int]:
    """The processes whose working directory is `folder` (Linux's /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cwd").readlink() == folder:
                pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds the workers through Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_benchmark_alone_stops_its_worker_at_a_checkpoint_and_starts_no_other_seed(tmp_path, signum):
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    argv = [*flags(tiny_args(total_timesteps=1_000_000)), "--seeds", "2", "--workers", "1", "--threshold", "-1e9"]
    command = [sys.executable, str(ROOT / "benchmarks" / "learning.py"), *argv]
    with (tmp_path / "log").open("w") as log:  # a file, not a pipe: an orphaned worker would hold a pipe open
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert first_checkpoint(proc, tmp_path), (tmp_path / "log").read_text()[-2000:]
        os.kill(proc.pid, signum)  # to the benchmark's process only, as `kill` or a scheduler sends it
        assert proc.wait(timeout=120) == 128 + signum
        time.sleep(0.5)
        assert processes_in(tmp_path) == [], "a worker went on training after the benchmark ended"
    finally:
        for pid in [proc.pid, *processes_in(tmp_path)]:  # never leave a million-step run behind a failed test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    log = (tmp_path / "log").read_text()
    assert "Traceback" not in log and "the same command continues them" in log
    [checkpoint] = tmp_path.glob("runs/*/sac_v.pt")  # seed 2 never started
    step = torch.load(checkpoint, weights_only=True)["global_step"]
    assert "stopped by SIGTERM at step" in log and f"at step {step}:" in log  # the worker saved at the stop
    assert "resume with: rerun the benchmark's own command" in log and "sac_v.py --resume" not in log

    # the stopped seed goes on from there, in its folder
    more = [*argv, "--total-timesteps", str(step + 30), "--seeds", "1", "--out-dir", "more"]
    result = run_cli("benchmarks/learning.py", *more, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"seed 1: continuing {checkpoint.relative_to(tmp_path)}" in result.stdout
    assert torch.load(checkpoint, weights_only=True)["global_step"] == step + 30


def test_benchmark_takes_the_papers_settings_with_paper_and_lets_flags_win():
    argv = ["--paper", "--env-id", "HalfCheetah-v5", "--min-pool", "500", "--seeds", "3"]
    bench = common.parse_with_paper(common.RecordArgs, argv)
    assert (bench.train.reward_scale, bench.train.min_pool, bench.train.policy_lr, bench.seeds) == (5.0, 500, 3e-4, 3)


def test_benchmark_records_the_torch_threads_per_worker_and_refuses_a_zero(in_tmp_dir):
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    out = in_tmp_dir / "out"
    bench = dataclasses.replace(bench_args(out), seeds=1, workers=2)  # one seed keeps one worker busy
    learning.main(dataclasses.replace(bench, train=dataclasses.replace(bench.train, threads=2)))
    assert "1 worker processes × 2 torch threads" in (out / "summary.md").read_text()
    with pytest.raises(learning.ConfigError, match="--threads must be positive"):
        learning.main(dataclasses.replace(bench, train=dataclasses.replace(bench.train, threads=0)))


SAC_V_CONFIGS = [p for p in sorted((ROOT / "docs").glob("**/config.json")) if "peers" not in p.relative_to(ROOT).parts]


@pytest.mark.parametrize("config_json", SAC_V_CONFIGS, ids=lambda p: str(p.parent.relative_to(ROOT)))  # peers/: SB3's
def test_committed_results_record_every_sac_v_setting(config_json):
    """A sac_v flag added later must be written into the committed configs at the value those runs used, and one
    removed must leave them, or the documented commands would refuse their own results as made with other settings.
    (A grid may vary a flag removed since: such a sweep is a record of the commit it ran at.)"""
    config = json.loads(config_json.read_text())
    settings, grid = (config["settings"], config["grid"]) if "settings" in config else (config, {})
    not_recorded = {"seed", "exp_name", *common.RUN_MANAGEMENT, *grid}
    assert set(settings) - {"exp_name"} == {f.name for f in dataclasses.fields(Args)} - not_recorded


def test_summary_states_each_project_target_met_or_missed_and_by_how_much():
    reach = np.array([40_000, 60_000, np.inf, 45_000])
    lines = common.target_lines("LunarLanderContinuous-v3", 200, 100_000, reach, np.array([250.0, 230.0, 0.0, 240.0]))
    assert "- ≥ 200 within 50,000 env steps in at least 4 of 4 seeds: 2 of 4, **missed** by 2 seeds" in lines
    assert "- every seed ≥ 200 by 100,000 env steps: 3 of 4, **missed** by 1 seed" in lines
    assert "- final eval mean ≥ 240: 180.0, **missed** by 60" in lines
    # of ten seeds, nine must be solved within 50 000 steps; a seed solved at 50 000 itself counts
    ten = common.target_lines(
        "LunarLanderContinuous-v3", 200, 100_000, np.array([40_000] * 8 + [50_000, 90_000]), np.full(10, 250.0)
    )
    assert "- ≥ 200 within 50,000 env steps in at least 9 of 10 seeds: 9 of 10, **met**" in ten
    met = common.target_lines("Pendulum-v1", -200, 10_000, np.array([5_000, 6_000]), np.array([-130.0, -140.0]))
    assert met[-1] == "- ≥ -200 within 10,000 env steps in at least 2 of 2 seeds: 2 of 2, **met**"
    assert common.target_lines("HalfCheetah-v5", 0, 10_000, reach, reach) == []


def test_thresholds_are_the_documented_ones_and_a_final_mean_target_counts_tenths():
    # as docs/results.md and docs/mujoco.md give them
    documented = {"LunarLanderContinuous-v3": 200, "Pendulum-v1": -200, "HalfCheetah-v5": 5000, "Hopper-v5": 2500}
    documented["Walker2d-v5"] = 2000
    assert documented == common.THRESHOLDS
    lines = common.target_lines("Walker2d-v5", 2000, 300_000, np.array([np.inf]), np.array([1999.6]))
    assert lines[-1] == "- final eval mean ≥ 2000: 1999.6, **missed** by 0.4"


def test_mujoco_summaries_hold_the_300k_target_and_only_for_300k_runs():
    finals = np.array([2000.0, 2600.0, 2300.0])
    lines = common.target_lines("Hopper-v5", 2500, 300_000, np.array([np.inf, 250_000, np.inf]), finals)
    assert lines[-1] == "- final eval mean ≥ 2500: 2300.0, **missed** by 200"
    assert not any("within" in line for line in lines), "no share-of-seeds target for the MuJoCo tasks"
    assert common.target_lines("Hopper-v5", 2500, 1_000_000, np.array([np.inf]), np.array([3000.0])) == []


SUMMARY_ROWS = [  # eval_mean per seed at steps 5 000, 10 000, 15 000 and 20 000; the threshold is -200
    *[(1, s, m) for s, m in zip((5000, 10000, 15000, 20000), (-300.0, -150.0, -100.0, -90.0), strict=True)],
    *[(2, s, m) for s, m in zip((5000, 10000, 15000, 20000), (-300.0, -300.0, -190.0, -180.0), strict=True)],
    *[(3, s, m) for s, m in zip((5000, 10000, 15000, 20000), (-100.0, -300.0, -300.0, -300.0), strict=True)],
    *[(4, s, m) for s, m in zip((5000, 10000, 15000, 20000), (-400.0, -350.0, -300.0, -250.0), strict=True)],
]


def test_summary_counts_solved_seeds_and_takes_median_iqr_finals_and_bests_of_the_right_values():
    rows = [dict(seed=seed, step=step, eval_mean=m, eval_std=0.0, wall_s=step / 100) for seed, step, m in SUMMARY_ROWS]
    ran = {((), seed): ("hw", "abc") for seed in (1, 2, 3, 4)}
    lines = common.summary(rows, ran, tiny_args(total_timesteps=20_000, eval_every=5000), -200.0).splitlines()
    # steps to -200: seed 1 10 000, seed 2 15 000, seed 3 5 000 (then it falls back), seed 4 never
    assert "- seeds that reached the threshold: **3 / 4**" in lines
    assert "- seeds that reached it within 10,000 env steps: **2 / 4**" in lines  # Pendulum's target: 10 000
    # {5 000, 10 000, 15 000, ∞}: quartiles taken from the values themselves, not interpolated
    assert "- median env steps to threshold: **10,000** (IQR 5,000 – 15,000; unreached seeds count as ∞)" in lines
    finals = np.array([-90.0, -180.0, -300.0, -250.0])
    assert f"- final eval mean over seeds: **{finals.mean():.1f}** ± {finals.std():.1f} (std across seeds)" in lines
    assert "| 3 | 5,000 | -300.0 | -100.0 | 3.3 | 100 |" in lines  # final -300, best -100
    assert "| 4 | not reached | -250.0 | -250.0 | 3.3 | 100 |" in lines
    assert lines[-3:] == ["Hardware: hw.", "", "Commit: abc."]


def test_the_plot_draws_each_seeds_curve_and_their_mean(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    from matplotlib.figure import Figure

    drawn = []
    real_savefig = Figure.savefig

    def savefig(fig, *args, **kwargs):
        drawn.extend((list(line.get_xdata()), list(line.get_ydata())) for line in fig.axes[0].lines)
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    rows = [dict(seed=seed, step=step, eval_mean=seed * step) for seed in (1, 2) for step in (10, 20)]
    common.plot_curves(tmp_path / "curves.png", "sac_v", [(common.by_seed(rows), "tab:blue", None)], -200.0)
    curves = [([10, 20], [10, 20]), ([10, 20], [20, 40]), ([10, 20], [15, 30])]  # seed 1, seed 2, their mean
    assert drawn[:3] == curves and (tmp_path / "curves.png").stat().st_size > 0


def write_runs_csv(path: Path, rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(common.METRICS)
        writer.writerows(rows)


def test_finished_rows_keeps_only_the_seeds_that_reached_the_last_step(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    # seed 2's rows stop at step 150: its second row never got written (a kill between two rows)
    write_runs_csv(runs_csv, [(1, 150, -1.0, 0.0, 1.0), (1, 300, -2.0, 0.0, 2.0), (2, 150, -3.0, 0.0, 1.0)])
    rows = runs_only(tmp_path, {}).earlier_rows(overwrite=False, total_timesteps=300)
    assert [(r["seed"], r["step"]) for r in rows] == [(1, 150), (1, 300)]
    assert common.read_rows(runs_csv) == rows, "runs.csv keeps only the finished seeds' rows"


@pytest.mark.parametrize(
    "last_line",
    ["2,300,-90.0,1.0,2", "2,300,-9,1.0,2.0,7\n"],
    ids=["cut within its last field, so no newline", "more fields than the header"],
)
def test_a_damaged_row_is_dropped(tmp_path, last_line):
    runs_csv = tmp_path / "runs.csv"
    runs_csv.write_text("seed,step,eval_mean,eval_std,wall_s\n1,300,-100.0,1.0,2.0\n" + last_line)
    assert [r["seed"] for r in common.read_rows(runs_csv)] == [1]


def test_results_without_their_config_count_as_other_settings(tmp_path):
    write_runs_csv(tmp_path / "runs.csv", [(1, 300, -100.0, 1.0, 2.0)])
    with pytest.raises(learning.ConfigError, match="other settings"):
        runs_only(tmp_path, {"reward_scale": 5.0}).earlier_rows(overwrite=False, total_timesteps=300)


def bench_config(args: Args) -> dict:
    return {k: v for k, v in dataclasses.asdict(args).items() if k not in ("seed", *common.RUN_MANAGEMENT)}


@pytest.mark.parametrize("reverse", [False, True], ids=["found in name order", "found in reverse order"])
def test_the_resumed_checkpoint_is_the_most_advanced_in_whatever_order_they_are_found(in_tmp_dir, monkeypatch, reverse):
    args = tiny_args(total_timesteps=300, eval_every=50, exp_name="bench")
    for steps in (50, 150, 100):
        train(dataclasses.replace(args, total_timesteps=steps))
    real_glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter(sorted(real_glob(self, pattern), reverse=reverse)))
    found = learning.resumable_checkpoint(args, bench_config(args))
    assert found is not None and torch.load(found, weights_only=True)["global_step"] == 150


def test_a_finished_run_is_not_resumed_for_an_unfinished_seed(in_tmp_dir):
    """A seed whose run ended but whose rows were lost (a kill mid-append) runs again: --resume would refuse it."""
    args = tiny_args(total_timesteps=100, eval_every=100, exp_name="bench")
    train(args)
    assert learning.resumable_checkpoint(args, bench_config(args)) is None


def test_the_last_seeds_below_two_to_the_32_are_accepted():
    bench = dataclasses.replace(bench_args(None), first_seed=2**32 - 2)  # seeds 4294967294 and 4294967295
    assert common.check_record(bench, "", "") == -1e9
