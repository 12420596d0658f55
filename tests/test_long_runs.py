"""Long runs: resume, stopping on a signal, atomic saves, the divergence guard."""

import io
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import sac_v
from buffer import ReplayBuffer
from sac_v import CHECKPOINT_VERSION, ConfigError, DivergenceError, TrainResult, train
from tests.helpers import ROOT, first_checkpoint, run_cli, tiny_args

NETWORKS = ("actor", "qf", "vf", "vf_target")
OPTIMIZERS = ("actor_optimizer", "q_optimizer", "v_optimizer")


class DoorbellPendulum(PendulumEnv):
    """Pendulum that sends its own process SIGTERM at its `ring_at`-th step, as a cluster scheduler would."""

    ring_at: int | None = None

    def step(self, action):
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == self.ring_at:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # never kill the test process itself
                raise RuntimeError("SIGTERM has no handler: train did not install one")
            signal.raise_signal(signal.SIGTERM)
        return super().step(action)


class NanRewardPendulum(PendulumEnv):
    """Pendulum whose reward is NaN from its 150th step on: a broken env or reward wrapper."""

    def step(self, action):
        self.steps = getattr(self, "steps", 0) + 1
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, float("nan") if self.steps >= 150 else reward, terminated, truncated, info


gym.register("Doorbell-v0", entry_point=DoorbellPendulum, max_episode_steps=50)
gym.register("NanReward-v0", entry_point=NanRewardPendulum, max_episode_steps=50)


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


class SplitRun(NamedTuple):
    full: TrainResult  # 400 steps in one go
    stopped: TrainResult  # the second piece, stopped by SIGTERM
    stopped_checkpoint: dict
    stopped_buffer: ReplayBuffer
    resumed: TrainResult  # the third piece, which ends at step 400


@pytest.fixture(scope="module")
def split_run(tmp_path_factory) -> SplitRun:
    """One uninterrupted 400-step run, and the same run in three pieces: stopped at step 60 (still collecting random
    actions, mid-episode), resumed and stopped by SIGTERM at step 230 (learning, mid-episode), resumed to 400.
    Episodes last 50 steps, so the stops fall in the 2nd and 5th episodes, which began without a seed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("split"))
        args = dict(env_id="Doorbell-v0", total_timesteps=400)
        full = train(tiny_args(**args, exp_name="full"))
        first = train(tiny_args(**{**args, "total_timesteps": 60}, exp_name="split"))
        # the resumed env first replays the 10 steps of the episode in progress: its 180th step is global step 230
        mp.setattr(DoorbellPendulum, "ring_at", 180)
        time.sleep(1.1)
        stopped = train(tiny_args(**args, resume=first.checkpoint))
        mp.setattr(DoorbellPendulum, "ring_at", None)
        stopped_checkpoint = load(stopped.checkpoint)
        stopped_buffer = ReplayBuffer.load(sac_v.buffer_path(stopped.checkpoint))
        # TensorBoard reads a run's event files in name order, and a name is the second it was opened, then a counter
        # of this process: a new second keeps the pieces in order, as separate processes at separate times are.
        time.sleep(1.1)
        resumed = train(tiny_args(**args, resume=stopped.checkpoint))
        absolute = [
            run._replace(run_dir=run.run_dir.resolve(), checkpoint=run.checkpoint.resolve())
            for run in (full, stopped, resumed)
        ]
    return SplitRun(absolute[0], absolute[1], stopped_checkpoint, stopped_buffer, absolute[2])


def test_rng_snapshot_in_a_checkpoint_restores_every_random_stream():
    """Python's, numpy's and torch's global streams (an env or wrapper may draw from them) and the action space's,
    through torch.save and a weights_only load, as a checkpoint stores them."""
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    space.seed(0)
    saved = io.BytesIO()
    torch.save(sac_v.rng_states(space), saved)
    draws = (random.random(), np.random.rand(), torch.rand(1).item(), space.sample().tolist())
    saved.seek(0)
    sac_v.set_rng_states(torch.load(saved, weights_only=True), space)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), space.sample().tolist()) == draws


def test_run_stopped_and_resumed_twice_ends_bit_identical_to_an_uninterrupted_one(split_run):
    full, resumed = load(split_run.full.checkpoint), load(split_run.resumed.checkpoint)
    assert resumed["global_step"] == full["global_step"] == 400
    for net in NETWORKS:
        for name, value in full[net].items():
            assert torch.equal(value, resumed[net][name]), f"{net}.{name}"
    for name in OPTIMIZERS:
        for index, state in full[name]["state"].items():
            assert torch.equal(state["exp_avg_sq"], resumed[name]["state"][index]["exp_avg_sq"]), name


def test_sigterm_stops_after_the_current_step_with_a_checkpoint_and_buffer_of_that_step(split_run):
    assert split_run.stopped.stopped_by == signal.SIGTERM
    assert split_run.stopped_checkpoint["global_step"] == 230
    assert split_run.stopped_buffer.added == 230


@pytest.mark.parametrize("save_buffer", ["always", "never"])
def test_the_stop_message_names_the_replay_buffer_only_where_one_was_saved(
    in_tmp_dir, monkeypatch, capsys, save_buffer
):
    monkeypatch.setattr(DoorbellPendulum, "ring_at", 120)
    stopped = train(tiny_args(env_id="Doorbell-v0", total_timesteps=400, save_buffer=save_buffer))
    buffer = " and its replay buffer" if save_buffer == "always" else ""
    assert f"stopped by SIGTERM at step 120: saved {stopped.checkpoint}{buffer}\n" in capsys.readouterr().out


def test_resumed_run_continues_in_the_same_folder_and_tensorboard_curves(split_run):
    full, resumed = split_run.full, split_run.resumed
    assert resumed.run_dir.name.startswith("Doorbell-v0__split__1__")
    events = EventAccumulator(str(resumed.run_dir)).Reload()
    assert [e.step for e in events.Scalars("losses/v_loss")] == [100, 200, 300, 400]
    full_events = EventAccumulator(str(full.run_dir)).Reload()
    assert [e.value for e in events.Scalars("losses/v_loss")] == [e.value for e in full_events.Scalars("losses/v_loss")]
    # the evaluations of every piece: the end of the first, the periodic ones (a signal stops without evaluating)
    assert [e.step for e in resumed.evaluations] == [60, 200, 400]


def test_resume_hides_the_scalars_a_crash_logged_after_the_checkpoint(tiny_run_copy):
    saved = {path: path.read_bytes() for path in tiny_run_copy.parent.glob("sac_v.*")}
    train(tiny_args(total_timesteps=300, resume=tiny_run_copy))
    for path, content in saved.items():  # as if the run had crashed at step 300 with only its step-100 files saved
        path.write_bytes(content)
    train(tiny_args(total_timesteps=300, resume=tiny_run_copy))
    events = EventAccumulator(str(tiny_run_copy.parent)).Reload()
    assert [e.step for e in events.Scalars("losses/v_loss")] == [100, 200, 300]


def test_signal_handlers_are_restored_when_train_returns(in_tmp_dir):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    train(tiny_args(total_timesteps=20, eval_every=20))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_resume_may_change_learning_rates(tiny_run_copy):
    resumed = train(tiny_args(total_timesteps=120, resume=tiny_run_copy, policy_lr=1e-5, critic_lr=2e-5))
    lrs = [load(resumed.checkpoint)[name]["param_groups"][0]["lr"] for name in OPTIMIZERS]
    assert lrs == [1e-5, 2e-5, 2e-5]


def test_resume_without_a_saved_buffer_refills_it_and_says_so(in_tmp_dir, capsys):
    first = train(tiny_args(total_timesteps=150, eval_every=150, save_buffer="never"))
    assert not sac_v.buffer_path(first.checkpoint).exists()
    capsys.readouterr()
    resumed = train(tiny_args(total_timesteps=200, eval_every=50, resume=first.checkpoint))
    out = capsys.readouterr().out
    assert "no replay buffer" in out
    assert len(resumed.buffer) == 50 and load(resumed.checkpoint)["global_step"] == 200
    # the buffer refills with random actions, but the policy evaluated has 50 gradient steps behind it
    assert re.search(r"step 200: eval return .* of the policy$", out, re.MULTILINE), out


def test_resume_that_stops_saving_the_buffer_removes_the_one_of_an_earlier_checkpoint(in_tmp_dir):
    first = train(tiny_args(total_timesteps=150, eval_every=150))
    assert sac_v.buffer_path(first.checkpoint).exists()
    train(tiny_args(total_timesteps=200, resume=first.checkpoint, save_buffer="never"))
    assert not sac_v.buffer_path(first.checkpoint).exists()  # it no longer belongs to the checkpoint


def test_resume_mid_episode_longer_than_the_buffer_says_it_is_not_exact(in_tmp_dir, capsys):
    first = train(tiny_args(total_timesteps=130, eval_every=130, min_pool=100, buffer_size=100))  # 200-step episodes
    train(tiny_args(total_timesteps=140, min_pool=100, buffer_size=100, resume=first.checkpoint))
    assert "the episode in progress (130 steps) is longer than the buffer" in capsys.readouterr().out


def test_paper_beside_resume_of_a_run_without_it_is_refused(tiny_run_copy):
    with pytest.raises(ConfigError, match="--paper sets the flags of a new run"):
        sac_v.parse_args(["--resume", str(tiny_run_copy), "--paper"])


def test_resume_command_quotes_paths_and_names_this_script_from_here(in_tmp_dir):
    python, script, flag, checkpoint = shlex.split(sac_v.resume_command(Path("my runs/r/sac_v.pt")))
    assert (python, flag, checkpoint) == ("python", "--resume", "my runs/r/sac_v.pt")
    assert (in_tmp_dir / script).resolve() == ROOT / "sac_v.py"


BAD_RESUMES = [
    (dict(env_id="MountainCarContinuous-v0"), "trained on Pendulum-v1, not MountainCarContinuous-v0"),
    (dict(hidden_sizes=(64, 64)), "has --hidden-sizes 32 32; a resumed run keeps them"),
    (dict(total_timesteps=100), "already at step 100"),
    (dict(buffer_size=5000), "resume with --buffer-size 10000"),
    (dict(seed=7), "has --seed 1; a resumed run keeps it"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_RESUMES)
def test_resume_that_cannot_continue_the_run_is_refused_before_anything_is_written(tiny_run_copy, overrides, message):
    before = {path.name: path.read_bytes() for path in tiny_run_copy.parent.iterdir()}
    with pytest.raises(ConfigError, match=message):
        train(tiny_args(**{"total_timesteps": 200, **overrides}, resume=tiny_run_copy))
    assert {path.name: path.read_bytes() for path in tiny_run_copy.parent.iterdir()} == before


def test_resume_from_a_newer_format_is_refused(tiny_run_copy):
    data = load(tiny_run_copy)
    data["format_version"] = CHECKPOINT_VERSION + 1
    torch.save(data, tiny_run_copy)
    with pytest.raises(ConfigError, match="newer"):
        train(tiny_args(total_timesteps=200, resume=tiny_run_copy))


@pytest.mark.parametrize("version", [1, 2])
def test_resume_from_an_older_format_is_refused(tiny_run_copy, version):
    data = load(tiny_run_copy)
    torch.save(
        {k: v for k, v in data.items() if k not in ("rng", "episode")} | {"format_version": version}, tiny_run_copy
    )
    with pytest.raises(ConfigError, match=f"format {version}, older"):
        train(tiny_args(total_timesteps=200, resume=tiny_run_copy))


def test_a_buffer_of_the_same_size_from_another_seed_is_refused(tiny_run_copy):
    """Its transition count matches: only the id both files of a save hold tells the two runs apart."""
    other = train(tiny_args(total_timesteps=100, eval_every=100, seed=2, exp_name="other"))
    sac_v.buffer_path(tiny_run_copy).write_bytes(sac_v.buffer_path(other.checkpoint).read_bytes())
    with pytest.raises(ConfigError, match="were not saved together; move the buffer away"):
        train(tiny_args(total_timesteps=200, resume=tiny_run_copy))


def test_a_checkpoint_from_before_buffer_ids_pairs_its_buffer_by_count_and_says_so(tiny_run_copy, capsys):
    data = load(tiny_run_copy)
    del data["buffer_id"]
    torch.save(data, tiny_run_copy)
    result = train(tiny_args(total_timesteps=120, resume=tiny_run_copy))
    assert "predates buffer ids: its buffer is paired by its transition count only" in capsys.readouterr().out
    assert len(result.buffer) == 120 and load(tiny_run_copy)["buffer_id"] is not None


def test_buffer_saved_at_another_step_than_the_checkpoint_is_refused(tiny_run_copy):
    rb = ReplayBuffer.load(sac_v.buffer_path(tiny_run_copy))
    rb.add(np.zeros(3), np.zeros(1), 0.0, np.zeros(3), False)  # as if a crash fell between the two writes
    rb.save(sac_v.buffer_path(tiny_run_copy))
    with pytest.raises(ConfigError, match="not saved together"):
        train(tiny_args(total_timesteps=200, resume=tiny_run_copy))


TINY_FLAGS = [
    *("--env-id", "Pendulum-v1", "--min-pool", "100", "--batch-size", "32", "--buffer-size", "10000"),
    *("--hidden-sizes", "32", "32", "--reward-scale", "5", "--eval-every", "200", "--eval-episodes", "1"),
    *("--device", "cpu"),
]


def start_cli_run(folder: Path) -> tuple[subprocess.Popen, Path]:
    """A million-step CLI run in folder, once it has written its first checkpoint."""
    command = [sys.executable, str(ROOT / "sac_v.py"), *TINY_FLAGS, "--total-timesteps", "1000000"]
    proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if (checkpoint := first_checkpoint(proc, folder)) is None:
        proc.kill()  # never leave a million-step run behind a failed test
        pytest.fail(f"no first checkpoint; stderr: {proc.communicate()[1][-2000:]}")
    return proc, checkpoint


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_cli_stopped_by_signal_saves_prints_the_resume_command_and_exits_128_plus_signal(in_tmp_dir, signum, status):
    proc, _ = start_cli_run(in_tmp_dir)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err

    [checkpoint] = in_tmp_dir.glob("runs/*/sac_v.pt")
    step = load(checkpoint)["global_step"]
    assert f"stopped by {signum.name} at step {step}" in out
    assert ReplayBuffer.load(sac_v.buffer_path(checkpoint)).added == step
    python, *resume = shlex.split(re.search(r"resume with: (.*)", out).group(1))
    assert resume[1:] == ["--resume", str(checkpoint.relative_to(in_tmp_dir))]

    if signum != signal.SIGINT:
        return  # the printed command is the same after each signal: running it once is enough
    # the printed command, run where it was printed (not the repository), continues the run with its stored flags
    command = [sys.executable, *resume, "--total-timesteps", str(step + 30)]
    proc = subprocess.run(command, cwd=in_tmp_dir, capture_output=True, text=True, timeout=120)
    assert python == "python" and proc.returncode == 0, proc.stderr
    assert load(checkpoint)["global_step"] == step + 30


@pytest.mark.parametrize("gap_s", [0, 0.002, 0.005, 0.01, 0.05, 0.5])
def test_ctrl_c_twice_at_any_spacing_ends_saying_what_is_saved_and_how_to_resume(in_tmp_dir, gap_s):
    """Within a few ms the two may reach the process as one (a plain stop); later, the second stops at once, during
    the save or after it; either way the last line says what the checkpoint holds and no traceback is printed."""
    proc, _ = start_cli_run(in_tmp_dir)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    # a second one that comes while the interpreter ends, its handlers gone, ends it by SIGINT: $? is 130 either way
    assert proc.returncode in (130, -signal.SIGINT) and "Traceback" not in err and "Exception ignored" not in err, err
    said = re.search(r"stopped (?:at once )?by (?:a second )?SIGINT at step (\d+): (.*)\nresume with: .*\n", out + err)
    assert said is not None, (out, err)
    [checkpoint] = in_tmp_dir.glob("runs/*/sac_v.pt")
    step, path = load(checkpoint)["global_step"], checkpoint.relative_to(in_tmp_dir)
    saved = [f"saved {path} and its replay buffer", f"saved {path}", f"nothing since step {step} was saved in {path}"]
    assert (said.group(2) in saved[:2] and said.group(1) == str(step)) or said.group(2) == saved[2], (out, err)


def test_resume_of_a_run_another_process_trains_is_refused_before_anything_is_written(in_tmp_dir):
    proc, checkpoint = start_cli_run(in_tmp_dir)
    try:
        events = sorted(checkpoint.parent.glob("events.out.tfevents.*"))
        second = run_cli("sac_v.py", "--resume", str(checkpoint), "--total-timesteps", "2000000", cwd=in_tmp_dir)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        message = f"error: {checkpoint.parent} is in use: another process is training this run; stop it, then resume"
        assert second.stderr.strip() == message
        assert sorted(checkpoint.parent.glob("events.out.tfevents.*")) == events  # no second writer
        assert proc.poll() is None  # the first run trains on
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    step = load(checkpoint)["global_step"]
    # the process that held the run has ended, so the same command resumes it now
    resumed = run_cli("sac_v.py", "--resume", str(checkpoint), "--total-timesteps", str(step + 30), cwd=in_tmp_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert load(checkpoint)["global_step"] == step + 30


def test_train_holds_its_run_folder_until_it_returns(tiny_run_copy):
    held = sac_v.lock_folder(tiny_run_copy.parent, sac_v.RUN_IN_USE)  # as a process training this run would
    before = {path.name: path.read_bytes() for path in tiny_run_copy.parent.iterdir()}
    with pytest.raises(ConfigError, match="is in use: another process is training this run"):
        train(tiny_args(total_timesteps=200, resume=tiny_run_copy))
    assert {path.name: path.read_bytes() for path in tiny_run_copy.parent.iterdir()} == before
    held.close()
    train(tiny_args(total_timesteps=200, resume=tiny_run_copy))
    sac_v.lock_folder(
        tiny_run_copy.parent, sac_v.RUN_IN_USE
    ).close()  # train released it: taking it again does not raise


def test_cli_resume_with_another_env_is_refused_in_one_line(tiny_run_copy):
    proc = run_cli(
        "sac_v.py", "--resume", str(tiny_run_copy), "--env-id", "LunarLanderContinuous-v3", cwd=tiny_run_copy.parent
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "not LunarLanderContinuous-v3" in proc.stderr


def test_non_finite_loss_stops_training_naming_the_loss_and_keeping_the_last_good_checkpoint(in_tmp_dir):
    args = tiny_args(env_id="NanReward-v0", eval_every=100)
    with pytest.raises(DivergenceError) as error:
        train(args)
    message = str(error.value)
    # NaN rewards from step 150 on; the losses are checked when logged, every 100 steps
    assert re.search(r"qf1_loss is nan at step 200; the last good checkpoint \(step 100\) is kept", message)
    assert "--reward-scale" in message
    [checkpoint] = in_tmp_dir.glob("runs/*/sac_v.pt")
    saved = load(checkpoint)
    assert saved["global_step"] == 100
    assert all(torch.isfinite(value).all() for net in NETWORKS for value in saved[net].values())


def test_non_finite_parameters_are_never_written_over_the_last_good_checkpoint(in_tmp_dir):
    with pytest.raises(DivergenceError, match=r"parameter actor\.\S+ is not finite at step 160"):
        train(tiny_args(env_id="NanReward-v0", eval_every=80))
    [checkpoint] = in_tmp_dir.glob("runs/*/sac_v.pt")
    assert load(checkpoint)["global_step"] == 80
    assert ReplayBuffer.load(sac_v.buffer_path(checkpoint)).added == 80


def test_cli_reports_divergence_in_one_line(in_tmp_dir, monkeypatch, capsys):
    argv = ["sac_v.py", *TINY_FLAGS, "--env-id", "NanReward-v0", "--total-timesteps", "400"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        sac_v.main()
    assert str(exit_info.value.code).startswith("error: qf1_loss is nan at step 200")
    assert "\n" not in str(exit_info.value.code)


KILLED_MID_WRITE = """
import io, sys, time
from pathlib import Path

import numpy as np
import torch

import sac_v
from buffer import ReplayBuffer

checkpoint, buffer, target = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
rb = ReplayBuffer(3, 1, capacity=10, seed=0)
rb.add(np.zeros(3), np.zeros(1), 1.0, np.ones(3), False)
sac_v.save_checkpoint(checkpoint, args={"env_id": "first"}, actor={}, global_step=1)
rb.save(buffer)


def write_half_then_hang(real_write):
    def write(file, *args, **kwargs):
        data = io.BytesIO()
        real_write(data, *args, **kwargs)
        with open(file, "wb") if isinstance(file, (str, Path)) else file as f:
            f.write(data.getvalue()[: len(data.getvalue()) // 2])
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
    return write


rb.add(np.ones(3), np.ones(1), 2.0, np.ones(3), True)
if target == "checkpoint":
    real_save = torch.save
    torch.save = lambda obj, file: write_half_then_hang(lambda f, o: real_save(o, f))(file, obj)
    sac_v.save_checkpoint(checkpoint, args={"env_id": "second"}, actor={}, global_step=2)
else:
    np.savez_compressed = write_half_then_hang(np.savez_compressed)
    rb.save(buffer)
"""


@pytest.mark.parametrize("target", ["checkpoint", "buffer"])
def test_process_killed_while_saving_leaves_the_previous_files_intact(tmp_path, target):
    checkpoint, buffer = tmp_path / "sac_v.pt", tmp_path / "sac_v.buffer.npz"
    command = [sys.executable, "-c", KILLED_MID_WRITE, str(checkpoint), str(buffer), target]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n", proc.stderr.read()
    proc.kill()  # SIGKILL: no handler, no cleanup, as in a power cut or the kernel's OOM killer
    proc.wait()

    written = checkpoint if target == "checkpoint" else buffer
    assert written.with_name(written.name + ".tmp").stat().st_size > 0  # it did die mid-write
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 1
    rb = ReplayBuffer.load(buffer)
    assert rb.added == 1 and rb.rewards[0] == 1.0


def test_cli_resume_of_a_run_folder_continues_its_checkpoint(tiny_run_copy):
    args, checkpoint = sac_v.parse_args(["--resume", str(tiny_run_copy.parent), "--total-timesteps", "200"])
    assert args.resume == tiny_run_copy and checkpoint["global_step"] == 100
    result = train(args, checkpoint)
    assert result.checkpoint == tiny_run_copy and load(tiny_run_copy)["global_step"] == 200


def test_cli_resume_reads_the_checkpoint_once(tiny_run_copy, monkeypatch):
    """parse_args reads the checkpoint for its flags and hands it to train, which does not read it again."""
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda path, **kwargs: reads.append(path) or real_load(path, **kwargs))
    monkeypatch.setattr(sys, "argv", ["sac_v.py", "--resume", str(tiny_run_copy), "--total-timesteps", "200"])
    sac_v.main()
    assert [Path(path) for path in reads].count(tiny_run_copy) == 1


def test_divergence_before_any_checkpoint_says_so(in_tmp_dir):
    with pytest.raises(DivergenceError, match=r"qf1_loss is nan at step 200, before any checkpoint; try a lower"):
        train(tiny_args(env_id="NanReward-v0", eval_every=400))  # the first checkpoint would be at step 400


def test_a_run_that_diverged_releases_its_folder_even_while_its_error_is_held(in_tmp_dir):
    """The error's traceback keeps train's frame, and its Run, alive: the folder must be released when the run ends,
    not when the garbage is collected, or a notebook or worker that holds the error cannot resume the run."""
    with pytest.raises(DivergenceError) as error:
        train(tiny_args(env_id="NanReward-v0", eval_every=100))
    [run_dir] = in_tmp_dir.glob("runs/*")
    assert error.value.__traceback__ is not None  # still held here
    sac_v.lock_folder(run_dir, sac_v.RUN_IN_USE).close()


def test_resume_restores_the_last_training_return_and_the_training_time(in_tmp_dir):
    first = train(tiny_args(total_timesteps=250, eval_every=250))  # one 200-step episode finished
    before = torch.load(first.checkpoint, weights_only=True)
    assert np.isfinite(before["train_return"])
    resumed = train(tiny_args(total_timesteps=260, resume=first.checkpoint))  # no episode ends in steps 251-260
    after = torch.load(resumed.checkpoint, weights_only=True)
    assert after["train_return"] == before["train_return"]
    assert after["wall_s"] > before["wall_s"]  # the clock goes on from the earlier processes' time
    assert [e.step for e in resumed.evaluations] == [250, 260]
    assert resumed.evaluations[1].wall_s > resumed.evaluations[0].wall_s


def test_resume_continues_an_episode_as_long_as_the_buffer_holds_exactly(in_tmp_dir, capsys):
    first = train(tiny_args(total_timesteps=30, eval_every=30))  # 30 steps into the first episode, all in the buffer
    assert torch.load(first.checkpoint, weights_only=True)["episode"]["length"] == len(first.buffer) == 30
    capsys.readouterr()
    resumed = train(tiny_args(total_timesteps=40, resume=first.checkpoint))
    assert "not an exact continuation" not in capsys.readouterr().out
    assert torch.load(resumed.checkpoint, weights_only=True)["episode"]["length"] == 40


def test_a_buffer_left_beside_a_checkpoint_saved_without_one_is_not_read(in_tmp_dir, capsys):
    """A crash between the checkpoint's replace and the stale buffer's unlink (save_checkpoint) leaves this pair."""
    first = train(tiny_args(total_timesteps=150, eval_every=150, save_buffer="never"))
    stale = ReplayBuffer(3, 1, 10_000)
    stale.add(np.zeros(3), np.zeros(1), 0.0, np.zeros(3), False)
    stale.save(sac_v.buffer_path(first.checkpoint))
    capsys.readouterr()
    resumed = train(tiny_args(total_timesteps=200, eval_every=50, resume=first.checkpoint))
    assert "no replay buffer" in capsys.readouterr().out
    assert len(resumed.buffer) == 50


def test_resume_warns_when_the_env_does_not_replay_its_episode_exactly(in_tmp_dir, capsys):
    first = train(tiny_args(total_timesteps=30, eval_every=30))
    path = sac_v.buffer_path(first.checkpoint)
    rb = ReplayBuffer.load(path)
    rb.next_obs[29] += 1.0  # as if the env had reached another state: a non-deterministic env
    rb.save(path, tag=rb.tag)
    capsys.readouterr()
    train(tiny_args(total_timesteps=40, resume=first.checkpoint))
    assert "did not replay its episode exactly" in capsys.readouterr().out


def test_a_second_signal_goes_to_the_previous_handler_and_the_handlers_are_restored():
    calls = []

    def previous_handler(signum, frame):
        calls.append(signum)

    before = signal.signal(signal.SIGTERM, previous_handler)
    try:
        with sac_v.stop_signals() as received:
            signal.raise_signal(signal.SIGTERM)
            assert (received, calls) == ([signal.SIGTERM], [])
            signal.raise_signal(signal.SIGTERM)  # a second one stops at once (Ctrl-C twice)
            assert (received, calls) == ([signal.SIGTERM], [signal.SIGTERM])
        assert signal.getsignal(signal.SIGTERM) is previous_handler
    finally:
        signal.signal(signal.SIGTERM, before)
