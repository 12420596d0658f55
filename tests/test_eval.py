import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sac_v
from sac_v import ConfigError, evaluate
from sac_v_eval import EvalArgs, evaluate_checkpoint, list_runs
from tests.helpers import ROOT, run_cli, saved_policy


def test_evaluates_checkpoint_deterministically_and_prints_returns(tiny_run, capsys):
    returns = evaluate_checkpoint(EvalArgs(tiny_run, episodes=3, seed=4))
    assert returns.shape == (3,) and np.all(returns < 0)  # Pendulum's rewards are never positive
    out = capsys.readouterr().out.splitlines()
    assert out[-4:] == [f"  episode {i}: return {r:.1f}" for i, r in enumerate(returns, start=1)] + [
        f"mean return over 3 episodes: {returns.mean():.1f} ± {returns.std():.1f}"
    ]
    np.testing.assert_array_equal(returns, evaluate_checkpoint(EvalArgs(tiny_run, episodes=3, seed=4)))


def test_seed_sets_each_episodes_reset_seed_and_the_stochastic_action_noise(tiny_run):
    actor, env = saved_policy(tiny_run)
    expected = evaluate(actor, env, 2, seed=4)  # episodes reset with seeds 4 and 5
    np.testing.assert_array_equal(evaluate_checkpoint(EvalArgs(tiny_run, episodes=2, seed=4)), expected)
    assert not np.array_equal(evaluate_checkpoint(EvalArgs(tiny_run, episodes=2, seed=0)), expected)
    torch.manual_seed(4)
    expected = evaluate(actor, env, 2, seed=4, deterministic=False)
    stochastic = evaluate_checkpoint(EvalArgs(tiny_run, episodes=2, seed=4, stochastic=True))
    np.testing.assert_array_equal(stochastic, expected)


def test_stochastic_policy_differs_from_deterministic(tiny_run):
    deterministic = evaluate_checkpoint(EvalArgs(tiny_run, episodes=2, seed=0))
    stochastic = evaluate_checkpoint(EvalArgs(tiny_run, episodes=2, seed=0, stochastic=True))
    assert not np.array_equal(deterministic, stochastic)


def test_env_id_override_with_mismatched_shapes_is_refused(tiny_run):
    with pytest.raises(ConfigError, match="does not fit LunarLanderContinuous-v3"):
        evaluate_checkpoint(EvalArgs(tiny_run, episodes=1, env_id="LunarLanderContinuous-v3"))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint file"):
        evaluate_checkpoint(EvalArgs(tmp_path / "absent.pt"))


@pytest.mark.parametrize("argv", [[], ["--list"]])
def test_no_runs_folder_yet_says_to_train_one_first_and_prints_nothing_else(in_tmp_dir, argv):
    result = run_cli("sac_v_eval.py", *argv, cwd=in_tmp_dir)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: no checkpoint file or folder at runs; train one first with python sac_v.py\n"


def test_truncated_file_is_refused(tiny_run, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_run.read_bytes()[:2000])
    with pytest.raises(ConfigError, match="not a readable sac_v checkpoint"):
        evaluate_checkpoint(EvalArgs(truncated))


@pytest.mark.parametrize("content", [[1, 2, 3], {"weights": torch.zeros(2)}])
def test_non_checkpoint_file_is_refused(tmp_path, content):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(ConfigError, match="not a sac_v checkpoint"):
        evaluate_checkpoint(EvalArgs(path))


def test_newer_format_version_is_refused(tiny_run, tmp_path):
    data = torch.load(tiny_run, weights_only=True)
    data["format_version"] += 1
    torch.save(data, tmp_path / "future.pt")
    with pytest.raises(ConfigError, match="newer"):
        evaluate_checkpoint(EvalArgs(tmp_path / "future.pt"))


def test_cli_evaluates_and_exits_zero(tiny_run, tmp_path):
    proc = run_cli("sac_v_eval.py", str(tiny_run), "--episodes", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mean return over 2 episodes" in proc.stdout


def test_cli_refuses_a_text_file_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    proc = run_cli("sac_v_eval.py", "notes.txt", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")


@pytest.mark.parametrize(
    ("flags", "message"), [(("--seed", "-1"), "--seed must be in"), (("--episodes", "0"), "--episodes")]
)
def test_cli_refuses_a_bad_seed_or_episode_count_in_one_line(tiny_run, tmp_path, flags, message):
    proc = run_cli("sac_v_eval.py", str(tiny_run), *flags, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {message}") and proc.stderr.count("\n") == 1


def test_cli_ctrl_c_stops_the_evaluation_quietly_with_status_130(tiny_run, tmp_path):
    command = [sys.executable, "-u", str(ROOT / "sac_v_eval.py"), str(tiny_run.parent), "--episodes", "100000"]
    # SIGINT as a terminal leaves it, also where pytest itself ignores it (a background job of a script: cmd &)
    terminal = dict(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **terminal
    )
    try:
        assert proc.stdout.readline().startswith("newest checkpoint under"), proc.stderr.read()  # evaluating now
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()  # never left evaluating 100 000 episodes after a failure
    assert proc.returncode == 130 and stderr == ""


def test_env_with_other_action_bounds_is_refused_naming_both(tiny_run):
    data = torch.load(tiny_run, weights_only=True)
    env = sac_v.make_env("Pendulum-v1")
    sac_v.check_spaces(data, env, "Pendulum-v1")  # its own env fits
    data["actor"]["action_bias"] = data["actor"]["action_bias"] + 2  # as if trained on actions in [0, 4]
    with pytest.raises(ConfigError, match=r"acts within low \[0.0\], high \[4.0\]; Pendulum-v1 within low \[-2"):
        sac_v.check_spaces(data, env, "Pendulum-v1")


def test_capture_video_without_the_video_extra_is_refused(tiny_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"--capture-video needs pip install"):
        evaluate_checkpoint(EvalArgs(tiny_run, episodes=1, capture_video=True))


def test_checkpoint_whose_env_has_other_shapes_is_refused_naming_both_envs(tiny_run, tmp_path):
    data = torch.load(tiny_run, weights_only=True)
    data["args"]["env_id"] = "MountainCarContinuous-v0"  # weights of a Pendulum policy, another env in its args
    torch.save(data, tmp_path / "mislabelled.pt")
    with pytest.raises(ConfigError) as error:
        evaluate_checkpoint(EvalArgs(tmp_path / "mislabelled.pt", episodes=1))
    message = str(error.value)
    assert "observation size 3, action size 1" in message and "observation size 2, action size 1" in message
    assert message.count("MountainCarContinuous-v0") == 2


def test_format_1_checkpoint_still_evaluates(tiny_run, tmp_path):
    data = torch.load(tiny_run, weights_only=True)
    old_keys = {"format_version", "global_step", "args", "eval_return", "actor", "qf1", "qf2", "vf", "vf_target"}
    torch.save({k: v for k, v in data.items() if k in old_keys} | {"format_version": 1}, tmp_path / "v1.pt")
    np.testing.assert_array_equal(
        evaluate_checkpoint(EvalArgs(tmp_path / "v1.pt", episodes=2)),
        evaluate_checkpoint(EvalArgs(tiny_run, episodes=2)),
    )


@pytest.fixture
def runs(tiny_run, tmp_path) -> Path:
    """runs/ with two runs: the shared tiny run, then a newer one at step 7."""
    older, newer = tmp_path / "runs" / "older" / "sac_v.pt", tmp_path / "runs" / "newer" / "sac_v.pt"
    older.parent.mkdir(parents=True)
    newer.parent.mkdir()
    older.write_bytes(tiny_run.read_bytes())
    data = torch.load(tiny_run, weights_only=True)
    torch.save(data | {"global_step": 7, "eval_step": 5, "eval_return": -123.4}, newer)
    os.utime(older, (1, 1))  # unmistakably older
    return tmp_path / "runs"


def test_folder_evaluates_its_newest_checkpoint(runs, capsys):
    evaluate_checkpoint(EvalArgs(runs, episodes=1))
    out = capsys.readouterr().out
    assert f"newest checkpoint under {runs}: {runs / 'newer' / 'sac_v.pt'}" in out
    assert "(step 7) on Pendulum-v1" in out


def test_list_prints_each_run_with_env_step_and_the_step_and_return_of_its_last_evaluation(runs, tiny_run, capsys):
    list_runs(runs)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "env", "step", "eval", "at", "eval", "return"]
    expected_older = torch.load(tiny_run, weights_only=True)["eval_return"]
    assert lines[1].split() == [str(runs / "older"), "Pendulum-v1", "100", "100", f"{expected_older:.1f}"]
    assert lines[2].split() == [str(runs / "newer"), "Pendulum-v1", "7", "5", "-123.4"]


def test_list_of_a_run_stopped_before_its_first_evaluation_shows_none(tiny_run, tmp_path, capsys):
    data = torch.load(tiny_run, weights_only=True)
    torch.save(data | {"eval_step": -1, "eval_return": float("nan"), "evaluations": []}, tmp_path / "sac_v.pt")
    list_runs(tmp_path)
    assert capsys.readouterr().out.splitlines()[1].split()[-2:] == ["-", "-"]


def test_list_of_a_checkpoint_without_eval_step_shows_the_step_of_its_last_evaluation(tiny_run, tmp_path, capsys):
    data = torch.load(tiny_run, weights_only=True)
    del data["eval_step"]  # a format that kept the evaluations but not the last one's step
    torch.save(
        data | {"evaluations": [(150, -900.0, 1.0, 1.0), (300, data["eval_return"], 1.0, 2.0)]}, tmp_path / "sac_v.pt"
    )
    list_runs(tmp_path)
    assert capsys.readouterr().out.splitlines()[1].split()[-2] == "300"


def test_cli_list_of_one_unreadable_file_fails_in_one_line(tmp_path):
    (tmp_path / "sac_v.pt").write_text("not a checkpoint")
    proc = run_cli("sac_v_eval.py", "sac_v.pt", "--list", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("error: sac_v.pt is not a readable")


def test_cli_list_defaults_to_runs_in_the_current_folder(runs):
    proc = run_cli("sac_v_eval.py", "--list", cwd=runs.parent)
    assert proc.returncode == 0, proc.stderr
    assert "runs/older" in proc.stdout and "runs/newer" in proc.stdout


def test_folder_without_checkpoints_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"no sac_v\.pt checkpoint under"):
        evaluate_checkpoint(EvalArgs(tmp_path))


def test_env_whose_lower_action_bound_alone_differs_is_refused(tiny_run):
    data = torch.load(tiny_run, weights_only=True)
    data["actor"]["action_bias"] = data["actor"]["action_bias"] + 1  # as if trained on actions in [0, 2]
    data["actor"]["action_scale"] = data["actor"]["action_scale"] - 1
    with pytest.raises(ConfigError, match=r"acts within low \[0.0\], high \[2.0\]"):
        sac_v.check_spaces(data, sac_v.make_env("Pendulum-v1"), "Pendulum-v1")


def test_env_whose_upper_action_bound_alone_differs_is_refused(tiny_run):
    data = torch.load(tiny_run, weights_only=True)
    data["actor"]["action_bias"] = data["actor"]["action_bias"] + 1  # as if trained on actions in [-2, 4]
    data["actor"]["action_scale"] = data["actor"]["action_scale"] + 1
    with pytest.raises(ConfigError, match=r"acts within low \[-2.0\], high \[4.0\]"):
        sac_v.check_spaces(data, sac_v.make_env("Pendulum-v1"), "Pendulum-v1")


def test_cli_list_into_a_closed_pipe_ends_quietly(runs):
    """As `sac_v_eval.py --list | head -0`: the reader is gone before the first line, which goes nowhere."""
    command = [sys.executable, str(ROOT / "sac_v_eval.py"), "--list", str(runs)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0 and err == ""
