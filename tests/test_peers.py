"""benchmarks/peers.py: Stable-Baselines3's SAC under sac_v's learning-benchmark protocol."""

import dataclasses
import re
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3", reason='the peer benchmark runs SB3\'s SAC: pip install -e ".[peers]"')
import numpy as np
import peers
import torch
from torch import nn

from sac_v import Args, ConfigError, lock_folder, make_env
from tests.helpers import tiny_args

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras

STEPS = [150, 300, 320]  # every eval_every env steps, and the last step


def peer_train_args(setting: peers.Setting) -> Args:
    """320 Pendulum steps under each setting: the zoo's (SB3's defaults but the learning rate) or a tiny sac_v's."""
    if setting == "zoo":
        return Args(env_id="Pendulum-v1", total_timesteps=320, eval_every=150, eval_episodes=1, device="cpu")
    return tiny_args(total_timesteps=320, eval_every=150, hidden_sizes=(16, 16), alpha=0.5, reward_scale=4.0)


@pytest.fixture(scope="module", params=["zoo", "sac-v-defaults"])
def trained(request):
    """One seed of each setting, learned in this process: its sac_v args, the SB3 model and its evaluations."""
    train = peer_train_args(request.param)
    model, evaluations = peers.train_seed(train, peers.sb3_settings(request.param, train), seed=1)
    return train, model, evaluations


def test_evaluations_come_every_eval_every_env_steps_and_at_the_last_step(trained):
    _, _, evaluations = trained
    assert [e.step for e in evaluations] == STEPS


def test_sb3_takes_one_gradient_step_per_env_step_after_learning_starts(trained):
    _, model, _ = trained
    assert model._n_updates == 320 - model.learning_starts > 0


def test_the_last_evaluation_is_the_final_deterministic_policy_on_the_protocols_episode_seeds(trained):
    train, model, evaluations = trained
    again = [peers.evaluate(model, make_env(train.env_id), 1, seed=1 + 10_000)[0] for _ in range(2)]
    assert again == [evaluations[-1].mean] * 2


@pytest.mark.parametrize("trained", ["sac-v-defaults"], indirect=True)
def test_sac_v_defaults_fixes_the_entropy_coefficient_at_alpha_over_reward_scale(trained):
    _, model, _ = trained
    assert (model.ent_coef_optimizer, model.ent_coef_tensor.item()) == (None, 0.5 / 4.0)


def test_a_seed_leaves_nothing_in_the_temp_folder(tmp_path, monkeypatch):
    """SB3 makes an empty tempdir/SB3-<time> folder at each learn() that is not given a logger."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    train = dataclasses.replace(peer_train_args("sac-v-defaults"), total_timesteps=150)
    peers.train_seed(train, peers.sb3_settings("sac-v-defaults", train), seed=1)
    assert list(tmp_path.iterdir()) == []


def test_sac_v_defaults_takes_sac_v_networks_batch_pool_buffer_and_learning_rate():
    train = peer_train_args("sac-v-defaults")
    model = peers.make_model(peers.sb3_settings("sac-v-defaults", train), train.env_id, seed=1)
    widths = [layer.out_features for layer in model.actor.latent_pi if isinstance(layer, nn.Linear)]
    widths += [layer.out_features for layer in model.critic.q_networks[0] if isinstance(layer, nn.Linear)][:-1]
    got = (widths, model.batch_size, model.learning_starts, model.buffer_size, model.tau, model.lr_schedule(1.0))
    assert got == ([16, 16, 16, 16], 32, 100, 10_000, 0.005, train.critic_lr)


def test_zoo_lunar_lander_takes_rl_zoo3s_tuned_hyperparameters_with_a_linear_learning_rate():
    model = peers.make_model(peers.sb3_settings("zoo", Args()), "LunarLanderContinuous-v3", seed=1)
    widths = [layer.out_features for layer in model.actor.latent_pi if isinstance(layer, nn.Linear)]
    got = dict(widths=widths, batch=model.batch_size, starts=model.learning_starts, tau=model.tau)
    got |= dict(buffer=model.buffer_size, lr_halfway=model.lr_schedule(0.5), ent_coef=model.ent_coef)
    assert got == dict(widths=[400, 300], batch=256, starts=10_000, tau=0.01, buffer=10**6, lr_halfway=3.65e-4) | dict(
        ent_coef="auto"
    )


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"])
def test_zoo_mujoco_takes_sb3s_defaults_with_ten_thousand_random_steps_from_the_zoos_v4_entry(env_id):
    train = Args(env_id=env_id, total_timesteps=300_000)
    settings = peers.sb3_settings("zoo", train)
    got = {k: settings[k] for k in ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma")}
    got |= {k: settings[k] for k in ("ent_coef", "net_arch", "gradient_steps")}
    want = dict(learning_rate=3e-4, buffer_size=10**6, learning_starts=10_000, batch_size=256, tau=0.005, gamma=0.99)
    assert got == want | dict(ent_coef="auto", net_arch=[256, 256], gradient_steps=1)
    _, line = peers.describe("zoo", settings, train)
    assert f"sac.yml for {env_id.replace('-v5', '-v4')}" in line and "replaces by 300,000" in line


def test_sac_v_defaults_gives_sb3_the_critic_learning_rate_and_the_gamma_given():
    train = dataclasses.replace(peer_train_args("sac-v-defaults"), policy_lr=1e-3, critic_lr=2e-3, gamma=0.98)
    peers.check_flags(train, "sac-v-defaults")  # both taken, not refused
    settings = peers.sb3_settings("sac-v-defaults", train)
    assert (settings["learning_rate"], settings["gamma"]) == (2e-3, 0.98)
    with pytest.raises(ConfigError, match="--gamma is a sac_v setting"):
        peers.check_flags(dataclasses.replace(Args(env_id="Pendulum-v1"), gamma=0.98), "zoo")


def test_zoo_pendulum_takes_sb3s_defaults_with_rl_zoo3s_learning_rate():
    settings = peers.sb3_settings("zoo", Args(env_id="Pendulum-v1"))
    got = {k: settings[k] for k in ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma")}
    want = dict(learning_rate=1e-3, buffer_size=10**6, learning_starts=100, batch_size=256, tau=0.005, gamma=0.99)
    assert got == want and (settings["ent_coef"], settings["net_arch"]) == ("auto", [256, 256])


def test_each_evaluation_records_the_mean_and_std_over_its_episodes():
    train = dataclasses.replace(peer_train_args("sac-v-defaults"), total_timesteps=150, eval_episodes=2)
    model, evaluations = peers.train_seed(train, peers.sb3_settings("sac-v-defaults", train), seed=1)
    returns = peers.evaluate(model, make_env(train.env_id), 2, seed=1 + 10_000)
    assert returns.std() > 0 and (evaluations[-1].mean, evaluations[-1].std) == (returns.mean(), returns.std())


def test_zoo_refuses_a_sac_v_hyperparameter_it_would_not_use():
    with pytest.raises(ConfigError, match="--reward-scale is a sac_v setting"):
        peers.check_flags(Args(env_id="Pendulum-v1", reward_scale=40.0), "zoo")


@pytest.mark.parametrize("setting", ["zoo", "sac-v-defaults"])
def test_runner_writes_learning_benchmark_results_for_sb3_then_skips_finished_seeds(in_tmp_dir, setting):
    pytest.importorskip("matplotlib", reason="the plot needs the peers extra")
    out = in_tmp_dir / "out"
    bench = peers.PeerArgs(peer_train_args(setting), seeds=1, workers=1, out_dir=out, setting=setting)
    peers.main(bench)
    first = peers.common.read_rows(out / "runs.csv")
    assert [(r["seed"], r["step"]) for r in first] == [(1, step) for step in STEPS]
    summary = (out / "summary.md").read_text()
    assert summary.startswith(f"# Learning benchmark: Stable-Baselines3's SAC, setting {setting}, on Pendulum-v1")
    assert f"Settings: stable-baselines3 {peers.stable_baselines3.__version__}" in summary
    assert (out / "curves.png").stat().st_size > 0

    (out / "curves.png").unlink()
    peers.main(dataclasses.replace(bench, workers=2))  # seed 1 is done: kept as it was, wall times too
    assert peers.common.read_rows(out / "runs.csv") == first
    assert (out / "summary.md").read_text() == summary and (out / "curves.png").stat().st_size > 0


def test_peer_benchmark_refuses_a_seed_rather_than_ignore_it(in_tmp_dir):
    train = dataclasses.replace(peer_train_args("zoo"), seed=3)
    with pytest.raises(ConfigError, match=r"--seed is set per run .*; pass --first-seed 3"):
        peers.main(peers.PeerArgs(train, seeds=1, workers=1, out_dir=in_tmp_dir / "out", setting="zoo"))
    assert not (in_tmp_dir / "out").exists()


def test_a_second_peer_benchmark_on_a_folder_in_use_is_refused(in_tmp_dir):
    out = in_tmp_dir / "out"
    out.mkdir()
    bench = peers.PeerArgs(peer_train_args("zoo"), seeds=1, workers=1, out_dir=out, setting="zoo")
    with (
        lock_folder(out, "another benchmark is writing it"),
        pytest.raises(ConfigError, match="is in use: another benchmark is writing it"),
    ):
        peers.main(bench)
    assert not (out / "runs.csv").exists()


class KilledError(Exception):
    """Stands for a kill right after a checkpoint."""


def stop_after_the_checkpoint_at(monkeypatch, step: int, keep: dict | None = None) -> None:
    """A checkpoint as ProtocolEvaluation.save writes it, then a stop once the checkpoint of `step` is written; `keep`
    gets the model's state."""
    save = peers.ProtocolEvaluation.save

    def save_then_stop(callback, *args, **kwargs):
        save(callback, *args, **kwargs)
        model = callback.model
        if model.num_timesteps == step:
            if keep is not None:
                keep["policy"] = {k: v.clone() for k, v in model.policy.state_dict().items()}
                keep["actor_optimizer"] = model.actor.optimizer.state_dict()["state"]
                keep["log_ent_coef"] = model.log_ent_coef.detach().clone()
                keep["observations"] = model.replay_buffer.observations[:step].copy()
                keep["n_updates"] = model._n_updates
                keep["torch_rng"] = torch.get_rng_state()
            raise KilledError

    monkeypatch.setattr(peers.ProtocolEvaluation, "save", save_then_stop)


def stopped_seed(folder: Path, step: int, keep: dict | None = None) -> tuple[Args, dict]:
    """The zoo's Pendulum seed 1 (learning from step 100), stopped right after its checkpoint of `step` in folder."""
    train = peer_train_args("zoo")
    settings = peers.sb3_settings("zoo", train)
    with pytest.MonkeyPatch.context() as m, pytest.raises(KilledError):
        stop_after_the_checkpoint_at(m, step, keep)
        peers.train_seed(train, settings, 1, folder)
    return train, settings


def test_a_checkpoint_restores_networks_optimizers_entropy_coefficient_buffer_counters_and_rng(in_tmp_dir):
    stopped: dict = {}
    train, settings = stopped_seed(in_tmp_dir / "ckpt", 300, stopped)
    model = peers.make_model(settings, train.env_id, seed=1)
    callback = peers.ProtocolEvaluation(train, 1, in_tmp_dir / "ckpt")
    assert callback.load(model)
    policy = model.policy.state_dict()
    assert policy.keys() == stopped["policy"].keys() and all(policy[k].equal(stopped["policy"][k]) for k in policy)
    adam = model.actor.optimizer.state_dict()["state"]
    assert all(adam[i]["exp_avg_sq"].equal(stopped["actor_optimizer"][i]["exp_avg_sq"]) for i in adam)
    assert model.log_ent_coef.item() == stopped["log_ent_coef"].item() != 0.0
    assert model.ent_coef_optimizer.param_groups[0]["params"][0] is model.log_ent_coef  # restored in place
    rb = model.replay_buffer
    assert (rb.pos, rb.full) == (300, False) and np.array_equal(rb.observations[:300], stopped["observations"])
    assert (model.num_timesteps, model._n_updates) == (300, stopped["n_updates"]) == (300, 300 - 100)
    assert torch.get_rng_state().equal(stopped["torch_rng"])
    assert [e.step for e in callback.evaluations] == [150, 300]


def test_a_stopped_seed_resumes_from_its_last_checkpoint_and_keeps_its_evaluations(in_tmp_dir):
    folder = in_tmp_dir / "ckpt"
    train, settings = stopped_seed(folder, 150)
    saved = torch.load(folder / peers.CHECKPOINT, weights_only=True)
    torch.save(saved | {"wall_s": 1000.0}, folder / peers.CHECKPOINT)  # as if the first process had run 1000 s
    model, evaluations = peers.train_seed(train, settings, 1, folder)
    assert [e.step for e in evaluations] == STEPS and tuple(evaluations[0]) == tuple(saved["evaluations"][0])
    assert model._num_timesteps_at_start == 150 and model.replay_buffer.pos == 320  # 150 restored, 170 new
    assert model._n_updates == 320 - model.learning_starts
    assert 1000 < evaluations[1].wall_s < 1000 + 120  # the learning time of both processes


def test_a_finished_seed_returns_its_evaluations_without_learning_and_drops_its_buffer(in_tmp_dir):
    folder = in_tmp_dir / "ckpt"
    train = peer_train_args("zoo")
    settings = peers.sb3_settings("zoo", train)
    _, first = peers.train_seed(train, settings, 1, folder)
    assert len(torch.load(folder / peers.CHECKPOINT, weights_only=True)["buffer"]["observations"]) == 0
    model, again = peers.train_seed(train, settings, 1, folder)
    assert again == first and model._n_updates == 320 - model.learning_starts and model.replay_buffer.pos == 0


@pytest.mark.parametrize("damage", ["truncated", "of an older format"])
def test_a_seed_whose_checkpoint_cannot_be_used_starts_again_with_a_note(in_tmp_dir, capsys, damage):
    folder = in_tmp_dir / "ckpt"
    train, settings = stopped_seed(folder, 150)
    data = (folder / peers.CHECKPOINT).read_bytes()
    if damage == "truncated":
        (folder / peers.CHECKPOINT).write_bytes(data[: len(data) // 2])
    else:  # the networks and counters without the buffer that now goes in the same file
        saved = torch.load(folder / peers.CHECKPOINT, weights_only=True)
        torch.save({k: v for k, v in saved.items() if k != "buffer"}, folder / peers.CHECKPOINT)
    note = "its checkpoint in .* is unusable"
    model, evaluations = peers.train_seed(train, settings, 1, folder)
    assert re.search(f"note: seed 1 starts again: {note}", capsys.readouterr().out)
    assert model._num_timesteps_at_start == 0 and [e.step for e in evaluations] == STEPS


def test_checkpoints_of_other_settings_or_run_lengths_live_in_other_folders():
    bench = peers.PeerArgs(peer_train_args("zoo"), seeds=1, setting="zoo")
    config = peers.peer_config(bench, peers.sb3_settings("zoo", bench.train))
    folder = peers.checkpoint_dir(config, 1)
    assert folder.parent == Path("runs") and folder.name.startswith("Pendulum-v1__sb3-zoo__1__")
    assert peers.checkpoint_dir(config | {"total_timesteps": 640}, 1) != folder != peers.checkpoint_dir(config, 2)
    assert peers.checkpoint_dir(config | {"sb3": {**config["sb3"], "tau": 0.01}}, 1) != folder


def test_runner_resumes_an_unfinished_seed_from_its_checkpoint(in_tmp_dir):
    pytest.importorskip("matplotlib", reason="the plot needs the peers extra")
    bench = peers.PeerArgs(peer_train_args("zoo"), seeds=1, workers=1, out_dir=in_tmp_dir / "out", setting="zoo")
    folder = peers.checkpoint_dir(peers.peer_config(bench, peers.sb3_settings("zoo", bench.train)), 1)
    stopped_seed(folder, 150)
    at_stop = torch.load(folder / peers.CHECKPOINT, weights_only=True)["evaluations"][0]
    peers.main(bench)
    rows = peers.common.read_rows(in_tmp_dir / "out" / "runs.csv")
    assert [r["step"] for r in rows] == STEPS
    assert (rows[0]["eval_mean"], rows[0]["wall_s"]) == (at_stop[1], at_stop[3])
