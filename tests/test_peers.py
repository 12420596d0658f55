"""benchmarks/peers.py: Stable-Baselines3's SAC under sac_v's learning-benchmark protocol."""

import csv
import dataclasses
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3", reason='the peer benchmark runs SB3\'s SAC: pip install -e ".[peers]"')
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import peers

from sac_v import Args, ConfigError, make_env
from tests.helpers import tiny_args

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


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


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
    first = read_rows(out / "runs.csv")
    assert [(r["seed"], int(r["step"])) for r in first] == [("1", step) for step in STEPS]
    summary = (out / "summary.md").read_text()
    assert summary.startswith(f"# Learning benchmark: Stable-Baselines3's SAC, setting {setting}, on Pendulum-v1")
    assert f"Settings: stable-baselines3 {peers.stable_baselines3.__version__}" in summary
    assert (out / "curves.png").stat().st_size > 0

    (out / "curves.png").unlink()
    peers.main(dataclasses.replace(bench, workers=2))  # seed 1 is done: kept as it was, wall times too
    assert read_rows(out / "runs.csv") == first
    assert (out / "summary.md").read_text() == summary and (out / "curves.png").stat().st_size > 0


def test_peer_benchmark_refuses_a_seed_rather_than_ignore_it(in_tmp_dir):
    train = dataclasses.replace(peer_train_args("zoo"), seed=3)
    with pytest.raises(ConfigError, match=r"--seed is set for each run .*; pass --first-seed 3"):
        peers.main(peers.PeerArgs(train, seeds=1, workers=1, out_dir=in_tmp_dir / "out", setting="zoo"))
    assert not (in_tmp_dir / "out").exists()


def test_a_second_peer_benchmark_on_a_folder_in_use_is_refused(in_tmp_dir):
    out = in_tmp_dir / "out"
    out.mkdir()
    bench = peers.PeerArgs(peer_train_args("zoo"), seeds=1, workers=1, out_dir=out, setting="zoo")
    with peers.learning.holding(out), pytest.raises(ConfigError, match="is in use: another benchmark is writing it"):
        peers.main(bench)
    assert not (out / "runs.csv").exists()
