import contextlib
import dataclasses
import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common
import numpy as np
import pytest
import sweep

from sac_v import Args, ConfigError, lock_folder, train
from tests.helpers import ROOT, flags, run_cli, tiny_args

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras

TOTAL = 300  # env steps per run: 200 gradient steps after tiny_args' min pool of 100


def tiny_train() -> Args:
    return tiny_args(total_timesteps=TOTAL, eval_every=150)


def sweep_args(out_dir: Path, *grid: str, **overrides) -> sweep.SweepArgs:
    settings = dict(train=tiny_train(), grid=(grid,), seeds=2, workers=2, out_dir=out_dir, threshold=-1e9)
    return sweep.SweepArgs(**{**settings, **overrides})


def finished(rows: list[dict[str, Any]]) -> set[tuple[float, int]]:
    """The (reward_scale, seed) pairs whose last evaluation, at TOTAL steps, is in the rows."""
    return {(r["reward_scale"], r["seed"]) for r in rows if r["step"] == TOTAL}


def run_folders(runs: Path, reward_scale: float, seed: int) -> list[Path]:
    return list(runs.glob(f"Pendulum-v1__sweep-reward_scale={reward_scale}__{seed}__*"))


def test_grid_values_take_the_type_of_their_field():
    settings = sweep.parse_grid(
        ["reward-scale=1,5", "min_pool=300, 20000", "hidden_sizes=64x64,256", "bf16=true,False", "device=cpu"]
    )
    assert (len(settings), settings[0]) == (
        16,
        dict(reward_scale=1.0, min_pool=300, hidden_sizes=(64, 64), bf16=True, device="cpu"),
    )
    assert settings[-1] == dict(reward_scale=5.0, min_pool=20_000, hidden_sizes=(256,), bf16=False, device="cpu")
    assert [type(v) for v in (settings[0]["reward_scale"], settings[0]["min_pool"])] == [float, int]


def test_grid_settings_are_the_cross_product_of_the_fields():
    settings = sweep.parse_grid(["reward_scale=1,5", "min_pool=300,10000,20000"])
    assert settings == [
        {"reward_scale": r, "min_pool": m} for r, m in itertools.product([1.0, 5.0], [300, 10_000, 20_000])
    ]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["reward_scale"], "needs the form field=value1,value2"),
        (["=5"], "needs the form field=value1,value2"),
        (["rewad_scale=1"], "'rewad_scale' is not a sac_v field; did you mean reward_scale?"),
        (["reward_scale="], "has an empty value"),
        (["reward_scale=1,,5"], "has an empty value"),
        (["reward_scale=high"], "'high' is not a number"),
        (["min_pool=1.5"], "'1.5' is not an integer"),
        (["hidden_sizes=64-64"], "is not layer widths joined by x"),
        (["device=tpu"], "is not one of auto, cpu, cuda"),
        (["bf16=yes"], "is not true or false"),
        (["reward_scale=1", "reward-scale=5"], "gives reward_scale twice"),
        (["reward_scale=1,1.0"], "repeats a value"),
        (["seed=1,2"], "cannot vary seed: use --seeds"),
        (["resume=a.pt"], "cannot vary resume: a sweep starts every run afresh"),
        ([], "give at least one --grid"),
    ],
)
def test_bad_grid_is_refused_with_a_clear_sentence(items, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        sweep.parse_grid(items)


def test_cli_reports_a_bad_grid_as_one_error_line_and_writes_nothing(tmp_path):
    result = run_cli("benchmarks/sweep.py", "--env-id", "Pendulum-v1", "--grid", "reward_scale=1,x", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: --grid reward_scale: 'x' is not a number"
    assert list(tmp_path.iterdir()) == []


def test_sweep_writes_every_run_a_summary_and_a_plot_then_skips_finished_runs(in_tmp_dir):
    out = in_tmp_dir / "out"
    sweep.main(sweep_args(out, "reward_scale=1,5"))
    rows = common.read_rows(out / "runs.csv", sweep.grid_value)
    assert list(rows[0]) == ["reward_scale", "seed", "step", "eval_mean", "eval_std", "wall_s"]
    expected = {(r, s, step) for r in (1.0, 5.0) for s in (1, 2) for step in (150, 300)}
    assert sorted((r["reward_scale"], r["seed"], r["step"]) for r in rows) == sorted(expected)
    summary = (out / "summary.md").read_text()
    assert "| 1.0 | 2 | 2 / 2 | 2 / 2 | 150 |" in summary  # threshold -1e9: reached at the first eval
    assert "| 5.0 | 2 | 2 / 2 | 2 / 2 | 150 |" in summary
    assert (out / "curves.png").stat().st_size > 0

    folders = sorted((in_tmp_dir / "runs").iterdir())
    sweep.main(sweep_args(out, "reward_scale=1,5"))  # same arguments again: nothing reruns, nothing is lost
    assert sorted((in_tmp_dir / "runs").iterdir()) == folders
    assert common.read_rows(out / "runs.csv", sweep.grid_value) == rows
    sweep.main(sweep_args(out, "reward_scale=5,1"))  # the same grid in another order is the same sweep
    assert sorted((in_tmp_dir / "runs").iterdir()) == folders
    assert sorted(common.read_rows(out / "runs.csv", sweep.grid_value), key=str) == sorted(rows, key=str)

    # with nothing to run, the summary and plot are written again from runs.csv, keeping the runs' hardware and commit
    assert f"\nCommit: {common.commit()}.\n" in summary
    (out / "summary.md").write_text("Hardware: the machine that ran them.\n\nCommit: abc123.\n")
    (out / "curves.png").unlink()
    sweep.main(sweep_args(out, "reward_scale=1,5"))
    summary = (out / "summary.md").read_text()
    assert "| 5.0 | 2 | 2 / 2 | 2 / 2 | 150 |" in summary and "Hardware: the machine that ran them.\n" in summary
    assert "\nCommit: abc123.\n" in summary
    assert (out / "curves.png").stat().st_size > 0


def ended(pid: int) -> bool:
    """Whether the process is gone or a zombie (which no parent may reap here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the processes in /proc (Linux)")
def test_interrupted_sweep_resumes_without_repeating_or_missing_runs(tmp_path):
    out = tmp_path / "out"
    argv = [*flags(tiny_train()), "--grid", "reward_scale=1,5", "--seeds", "2", "--workers", "1", "--threads", "1"]
    argv += ["--threshold", "-1e9", "--out-dir", str(out)]
    sweep_py = str(ROOT / "benchmarks" / "sweep.py")
    process = subprocess.Popen(
        [sys.executable, sweep_py, *argv], cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 90
        while not (out / "runs.csv").exists() or not finished(common.read_rows(out / "runs.csv", sweep.grid_value)):
            assert process.poll() is None and time.time() < deadline, "the sweep ended or stalled before a run finished"
            time.sleep(0.05)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the sweep dies at once, as when the out-of-memory killer picks it
        process.wait()
    assert children  # the worker, in a process group of its own, outlives the sweep only until it sees it gone
    deadline = time.time() + 60
    while alive := [pid for pid in children if not ended(int(pid))]:
        assert time.time() < deadline, f"processes {alive} of the killed sweep are still running"
        time.sleep(0.1)
    before = common.read_rows(out / "runs.csv", sweep.grid_value)
    done_before = finished(before)
    assert 0 < len(done_before) < 4

    result = run_cli("benchmarks/sweep.py", *argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = common.read_rows(out / "runs.csv", sweep.grid_value)
    assert finished(after) == {(r, s) for r in (1.0, 5.0) for s in (1, 2)}
    assert len(after) == 8  # two evaluations per run, none twice
    assert [r for r in after if (r["reward_scale"], r["seed"]) in done_before] == [
        r for r in before if (r["reward_scale"], r["seed"]) in done_before
    ]
    for reward_scale, seed in done_before:  # one run folder: it did not run again
        assert len(run_folders(tmp_path / "runs", reward_scale, seed)) == 1


def test_paper_gives_the_sweeps_runs_the_papers_settings_and_flags_beside_it_win():
    argv = ["--paper", "--env-id", "Hopper-v5", "--min-pool", "500", "--grid", "tau=0.01"]
    train = common.parse_with_paper(sweep.SweepArgs, argv).train
    assert (train.batch_size, train.policy_lr, train.min_pool) == (256, 3e-4, 500)
    with pytest.raises(ConfigError, match="--paper knows the paper's MuJoCo tasks"):
        common.parse_with_paper(sweep.SweepArgs, ["--paper", "--env-id", "Pendulum-v1", "--grid", "tau=0.01"])


def test_a_grid_cannot_vary_paper(in_tmp_dir):
    with pytest.raises(ConfigError, match="--grid cannot vary paper"):
        sweep.main(sweep_args(in_tmp_dir / "out", "paper=true,false"))


def test_labels_and_run_names_write_each_value_as_the_grid_reads_it():
    assert sweep.label({"hidden_sizes": (64, 64), "bf16": True, "tau": 0.01}) == "hidden_sizes=64x64,bf16=true,tau=0.01"


def test_summary_rows_count_solved_seeds_median_and_finals_of_each_setting_of_a_two_field_grid(tmp_path):
    settings = sweep.parse_grid(["reward_scale=1,5", "tau=0.005,0.01"])
    evals = {  # seed: eval_mean at 5 000 and 10 000 env steps, for reward_scale 1 and tau 0.005
        1: (-150.0, -100.0),  # reaches -200 at 5 000
        2: (-300.0, -190.0),  # at 10 000, Pendulum's target step: it counts as within it
        3: (-400.0, -350.0),  # never: the median of 5 000, 10 000 and ∞ is 10 000, their mean ∞
    }
    rows = [
        dict(reward_scale=1.0, tau=0.005, seed=seed, step=step, eval_mean=m, eval_std=0.0, wall_s=1.0)
        for seed, means in evals.items()
        for step, m in zip((5000, 10000), means, strict=True)
    ]
    for setting in settings[1:]:  # one seed each, that shares a value with the first setting but never solves
        rows += [
            setting | dict(seed=1, step=step, eval_mean=-500.0, eval_std=0.0, wall_s=1.0) for step in (5000, 10000)
        ]
    ran = {(tuple(s.values()), 1): ("hw", "abc") for s in settings}
    sweep.report(settings, sweep_args(tmp_path), -200.0, "python benchmarks/sweep.py", tmp_path, rows, ran)
    lines = (tmp_path / "summary.md").read_text().splitlines()
    finals = np.array([-100.0, -190.0, -350.0])
    assert f"| 1.0 | 0.005 | 3 | 2 / 3 | 2 / 3 | 10,000 | {finals.mean():.1f} ± {finals.std():.1f} |" in lines
    assert "| 5.0 | 0.01 | 1 | 0 / 1 | 0 / 1 | not reached | -500.0 ± 0.0 |" in lines
    assert lines[-9:] == [
        "Hardware: hw.",
        "",
        "Commit: abc.",
        "",
        "Command:",
        "",
        "```",
        "python benchmarks/sweep.py",
        "```",
    ]
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_a_grid_over_total_timesteps_finds_each_setting_finished_at_its_own_length(in_tmp_dir):
    out = in_tmp_dir / "out"
    sweep.main(sweep_args(out, "total_timesteps=150,300", seeds=1))
    folders, rows = sorted((in_tmp_dir / "runs").iterdir()), common.read_rows(out / "runs.csv", sweep.grid_value)
    assert sorted((r["total_timesteps"], r["step"]) for r in rows) == [(150, 150), (300, 150), (300, 300)]
    sweep.main(sweep_args(out, "total_timesteps=150,300", seeds=1))  # both finished: nothing reruns
    assert (
        sorted((in_tmp_dir / "runs").iterdir()) == folders
        and common.read_rows(out / "runs.csv", sweep.grid_value) == rows
    )


@pytest.mark.parametrize(("field", "value"), [("seed", 3), ("exp_name", "mine")])
def test_sweep_refuses_the_flags_it_sets_for_each_run_rather_than_ignore_them(in_tmp_dir, field, value):
    train = dataclasses.replace(tiny_train(), **{field: value})
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} is set per run"):
        sweep.main(sweep_args(in_tmp_dir / "out", "reward_scale=1,5", train=train))
    assert not (in_tmp_dir / "out").exists()


def test_a_second_sweep_on_a_folder_in_use_is_refused_before_it_runs(in_tmp_dir):
    out = in_tmp_dir / "out"
    out.mkdir()
    with (
        lock_folder(out, "a sweep"),
        pytest.raises(ConfigError, match="is in use"),
    ):  # as a sweep still running on out would
        sweep.main(sweep_args(out, "tau=0.01"))
    assert not (out / "runs.csv").exists() and not list(in_tmp_dir.glob("runs/*"))


def test_failing_run_is_recorded_and_the_others_finish(in_tmp_dir):
    out = in_tmp_dir / "out"
    with pytest.raises(SystemExit, match=r"1 run\(s\) failed .* rerun the same command to retry them"):
        sweep.main(sweep_args(out, "reward_scale=5,1e38", seeds=1))  # 1e38 overflows the Q target: DivergenceError
    assert finished(common.read_rows(out / "runs.csv", sweep.grid_value)) == {(5.0, 1)}
    [failure] = common.read_rows(out / "failures.csv")
    assert failure["reward_scale"] == "1e+38" and failure["seed"] == 1
    assert failure["error"].startswith("DivergenceError: qf1_loss is inf")


def test_read_runs_drops_a_row_cut_short_by_a_kill(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("reward_scale,seed,step,eval_mean,eval_std,wall_s\n5.0,1,150,-1.0,0.0,2.0\n5.0,1,300,-1.0\n")
    assert common.read_rows(path, sweep.grid_value) == [
        {"reward_scale": 5.0, "seed": 1, "step": 150, "eval_mean": -1.0, "eval_std": 0.0, "wall_s": 2.0}
    ]


def test_sweep_refuses_to_mix_results_of_other_settings(in_tmp_dir):
    out = in_tmp_dir / "out"
    out.mkdir()
    (out / "runs.csv").write_text("reward_scale,seed,step,eval_mean,eval_std,wall_s\n5.0,1,300,-100.0,1.0,2.0\n")
    (out / "config.json").write_text(json.dumps({"settings": {}, "grid": {"reward_scale": [5.0]}}))
    with pytest.raises(ConfigError, match="other settings: pass --overwrite or --out-dir"):
        sweep.main(sweep_args(out, "reward_scale=5"))
    assert "5.0,1,300,-100.0" in (out / "runs.csv").read_text()


def test_ray_backend_without_ray_installed_says_how_to_install_it(in_tmp_dir, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "ray" else find_spec(name))
    with pytest.raises(ConfigError, match=r'--backend ray needs Ray: pip install -e "\.\[ray\]"'):
        sweep.main(sweep_args(in_tmp_dir / "out", "reward_scale=1,5", backend="ray"))


def test_ray_address_that_nothing_answers_at_is_refused_at_once_before_anything_is_written(in_tmp_dir):
    with socket.socket() as closed:  # a port of this machine that no one listens on
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    start = time.time()
    with pytest.raises(ConfigError, match=f"cannot connect to the Ray cluster at {address}: Connection refused"):
        sweep.main(sweep_args(in_tmp_dir / "out", "tau=0.01", backend="ray", ray_address=address))
    assert time.time() - start < 10 and not (in_tmp_dir / "out").exists()


def test_ray_backend_finishes_every_run_on_a_local_ray_instance(in_tmp_dir):
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    out = in_tmp_dir / "out"
    sweep.main(sweep_args(out, "reward_scale=1,5", backend="ray"))  # a local Ray instance of 2 CPUs
    rows = common.read_rows(out / "runs.csv", sweep.grid_value)
    assert finished(rows) == {(r, s) for r in (1.0, 5.0) for s in (1, 2)}
    assert len(rows) == 8
    assert (out / "summary.md").exists() and (out / "curves.png").exists()
    # A Ray task runs the very training a local run does: same seed, same evaluations.
    local = train(dataclasses.replace(tiny_train(), reward_scale=5.0, seed=2)).evaluations
    assert [r["eval_mean"] for r in rows if (r["reward_scale"], r["seed"]) == (5.0, 2)] == [e.mean for e in local]


def test_ray_backend_records_a_failing_trial_with_its_error_and_the_others_finish(in_tmp_dir):
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    pytest.importorskip("pyarrow", reason="Ray Tune is not installed: pip install -e '.[ray]'")
    out = in_tmp_dir / "out"
    with pytest.raises(SystemExit, match=r"1 run\(s\) failed .* rerun the same command to retry them"):
        sweep.main(sweep_args(out, "reward_scale=5,1e38", seeds=1, backend="ray"))
    assert finished(common.read_rows(out / "runs.csv", sweep.grid_value)) == {(5.0, 1)}
    [failure] = common.read_rows(out / "failures.csv")
    assert failure["error"].startswith("DivergenceError: qf1_loss is inf")
