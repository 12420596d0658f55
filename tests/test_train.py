import dataclasses
import itertools
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import sac_v
from sac_v import Actor, Args, ConfigError, evaluate, make_env, parse_args, train, validate_args
from tests.helpers import run_cli, saved_policy, tiny_args


def test_namespaced_env_id_names_one_run_folder(in_tmp_dir):
    gym.register(
        "sacvtest/Pendulum-v1", entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv", max_episode_steps=50
    )
    try:
        result = train(tiny_args(env_id="sacvtest/Pendulum-v1", total_timesteps=200, eval_every=200))
    finally:
        del gym.registry["sacvtest/Pendulum-v1"]
    assert result.run_dir.parent == Path("runs") and result.run_dir.name.startswith("sacvtest-Pendulum-v1__sac_v__1__")


def test_evaluation_episode_i_is_seeded_seed_plus_i_and_acts_with_tanh_of_the_mean():
    env = make_env("Pendulum-v1")
    torch.manual_seed(0)
    actor = Actor(env.observation_space, env.action_space, (8,))
    both = evaluate(actor, env, 2, seed=3)
    assert both[1] == evaluate(actor, env, 1, seed=4)[0] and both[0] != both[1]
    # deterministic: the same return whatever torch's random state, which a sampled action would draw from
    torch.manual_seed(1)
    assert evaluate(actor, env, 1, seed=3)[0] == both[0] != evaluate(actor, env, 1, seed=3, deterministic=False)[0]


def test_training_evaluates_on_episode_seeds_apart_from_the_training_seed(in_tmp_dir, monkeypatch):
    """seed + 10 000, as peers.py evaluates SB3: both envs never replay an episode the run trained on."""
    seeds, real_evaluate = [], sac_v.evaluate
    monkeypatch.setattr(
        sac_v, "evaluate", lambda *a, seed, **k: seeds.append(seed) or real_evaluate(*a, seed=seed, **k)
    )
    train(tiny_args(seed=3, total_timesteps=200, eval_every=100))
    assert seeds == [10_003, 10_003]


def test_the_first_min_pool_actions_are_random_then_each_action_is_sampled_from_the_policy(in_tmp_dir, monkeypatch):
    """Steps 1 to min_pool act uniformly at random; from then on a ~ π(·|s), sampled (SAC explores so), not tanh(μ)."""
    drawn, real_fast_paths = [], sac_v.fast_paths

    def recording_fast_paths(step, sample_action, args):
        step, sample_action = real_fast_paths(step, sample_action, args)
        return step, lambda obs: drawn.append(sample_action(obs)) or drawn[-1]

    monkeypatch.setattr(sac_v, "fast_paths", recording_fast_paths)
    rb = train(tiny_args(total_timesteps=110, min_pool=100, eval_every=110)).buffer
    assert len(drawn) == 10
    for i, (sampled, _, deterministic) in enumerate(drawn):
        np.testing.assert_array_equal(rb.actions[100 + i], sampled[0].numpy())
        assert not np.array_equal(rb.actions[100 + i], deterministic[0].numpy())


def test_short_run_takes_gradient_steps_logs_and_checkpoints(in_tmp_dir):
    result = train(tiny_args())
    assert result.run_dir.parent == Path("runs")
    assert result.run_dir.name.startswith("Pendulum-v1__sac_v__1__")

    checkpoint = torch.load(result.checkpoint, weights_only=True)
    assert checkpoint["global_step"] == 400
    assert checkpoint["args"]["env_id"] == "Pendulum-v1"
    # one gradient step per env step from the moment the pool holds min_pool transitions
    for name in ("actor_optimizer", "q_optimizer", "v_optimizer"):
        steps = {float(state["step"]) for state in checkpoint[name]["state"].values()}
        assert steps == {400 - 100 + 1}, name
    assert [evaluation.step for evaluation in result.evaluations] == [200, 400]
    assert not torch.equal(checkpoint["vf"]["net.0.weight"], checkpoint["vf_target"]["net.0.weight"])

    events = EventAccumulator(str(result.run_dir)).Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "charts/episodic_return",
        "charts/episodic_length",
        "charts/SPS",
        "eval/episodic_return",
        "losses/qf1_loss",
        "losses/qf2_loss",
        "losses/v_loss",
        "losses/actor_loss",
        "values/qf1",
        "values/qf2",
        "values/v",
        "values/v_target",
        "values/q_target",
        "policy/entropy",
        "policy/log_std",
    }
    assert expected <= tags
    # training scalars every 100 steps, once learning has started at step 100
    assert [e.step for e in events.Scalars("losses/v_loss")] == [100, 200, 300, 400]
    assert any("hyperparameters" in tag for tag in events.Tags()["tensors"])
    # Pendulum's episodes end at its 200-step time limit
    assert [(e.step, e.value) for e in events.Scalars("charts/episodic_length")] == [(200, 200.0), (400, 200.0)]
    # env steps per second over each 100 steps since the last log, as the logs' own clock times say
    speeds = events.Scalars("charts/SPS")
    for last, e in itertools.pairwise(speeds):
        assert e.value == pytest.approx((e.step - last.step) / (e.wall_time - last.wall_time), rel=0.1)


class Recorder:
    """A SummaryWriter that keeps the last value and step of each scalar."""

    def __init__(self):
        self.scalars = {}

    def add_scalar(self, tag, value, step):
        self.scalars[tag] = (value, step)


def test_training_scalars_go_under_their_group_with_the_policys_mean_log_std_on_the_batch():
    env = make_env("Pendulum-v1")
    actor = Actor(env.observation_space, env.action_space, (16,))
    logs = sac_v.Logs(tiny_args(), Path("."))
    logs.writer = Recorder()
    run = sac_v.Run(tiny_args(), env, {}, {}, None, Path("sac_v.pt"), {}, logs=logs)
    obs = torch.randn(8, 3)
    stats = {"v_loss": torch.tensor(1.5), "qf1": torch.tensor(-2.0), "entropy": torch.tensor(0.5)}
    run.log_training(300, stats, actor, obs)
    log_std = actor(obs)[1].mean().item()
    assert logs.writer.scalars == {
        "losses/v_loss": (1.5, 300),
        "values/qf1": (-2.0, 300),
        "policy/entropy": (0.5, 300),
        "policy/log_std": (pytest.approx(log_std), 300),
    }
    assert log_std != pytest.approx(actor(obs)[0].mean().item())


def test_each_evaluation_records_the_mean_and_std_of_its_episodes_returns(in_tmp_dir):
    result = train(tiny_args(total_timesteps=200, eval_every=200, eval_episodes=2))
    actor, env = saved_policy(result.checkpoint)
    returns = evaluate(actor, env, 2, seed=1 + 10_000)
    assert returns.std() > 1  # the std differs from the variance
    evaluation = result.evaluations[-1]
    assert (evaluation.mean, evaluation.std) == pytest.approx((returns.mean(), returns.std()))


@pytest.mark.parametrize(("nbytes", "saved"), [(2**30 - 1, True), (2**30, False)], ids=["under 1 GB", "1 GB"])
def test_save_buffer_auto_saves_a_buffer_under_one_gigabyte_only(in_tmp_dir, monkeypatch, nbytes, saved):
    monkeypatch.setattr(sac_v.ReplayBuffer, "nbytes", property(lambda self: nbytes))
    result = train(tiny_args(total_timesteps=150, eval_every=150))
    assert sac_v.buffer_path(result.checkpoint).exists() == saved


POSITIVE = ["total_timesteps", "batch_size", "gradient_steps", "min_pool", "buffer_size", "reward_scale", "policy_lr"]
POSITIVE += ["critic_lr", "eval_every", "eval_episodes", "threads"]


@pytest.mark.parametrize("field", POSITIVE)
def test_a_zero_count_size_rate_or_scale_is_refused(field):
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} must be positive, got 0"):
        validate_args(dataclasses.replace(Args(), **{field: 0}))


@pytest.mark.parametrize("hidden_sizes", [(), (64, 0)], ids=["no layer", "a layer of width 0"])
def test_hidden_sizes_without_a_layer_or_with_one_of_width_zero_are_refused(hidden_sizes):
    with pytest.raises(ConfigError, match="--hidden-sizes needs positive widths"):
        validate_args(dataclasses.replace(Args(), hidden_sizes=hidden_sizes))


def test_gradient_steps_takes_that_many_updates_per_env_step(in_tmp_dir):
    result = train(tiny_args(total_timesteps=200, eval_every=200, gradient_steps=3))
    checkpoint = torch.load(result.checkpoint, weights_only=True)
    for name in ("actor_optimizer", "q_optimizer", "v_optimizer"):
        steps = {float(state["step"]) for state in checkpoint[name]["state"].values()}
        assert steps == {3 * (200 - 100 + 1)}, name


def test_v_target_network_starts_as_exact_copy_of_v(in_tmp_dir):
    result = train(tiny_args(total_timesteps=50, min_pool=100, eval_every=50))  # no gradient step yet
    checkpoint = torch.load(result.checkpoint, weights_only=True)
    for name, value in checkpoint["vf"].items():
        assert torch.equal(value, checkpoint["vf_target"][name])


def test_same_seed_gives_bit_identical_parameters(in_tmp_dir):
    first = torch.load(train(tiny_args(exp_name="a")).checkpoint, weights_only=True)
    second = torch.load(train(tiny_args(exp_name="b")).checkpoint, weights_only=True)
    other = torch.load(train(tiny_args(exp_name="c", seed=2)).checkpoint, weights_only=True)
    for net in ("actor", "qf", "vf", "vf_target"):
        for name, value in first[net].items():
            assert torch.equal(value, second[net][name]), f"{net}.{name}"
    assert not torch.equal(first["actor"]["mean.weight"], other["actor"]["mean.weight"])


class CountdownEnv(gym.Env):
    """Observation = steps taken. Odd episodes end for real at step 3; even ones hit the time limit of 5."""

    observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.episode = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = self.episode % 2 == 1 and self.t == 3
        return np.array([self.t], np.float32), 1.0, terminated, False, {}


gym.register("Countdown-v0", entry_point=CountdownEnv, max_episode_steps=5)


def test_time_limit_is_stored_as_non_terminal_with_the_true_final_observation(in_tmp_dir):
    args = tiny_args(env_id="Countdown-v0", total_timesteps=16, min_pool=32, batch_size=4, eval_every=16)
    rb = train(args).buffer
    obs, next_obs, terminated = rb.obs[:16, 0], rb.next_obs[:16, 0], rb.terminated[:16]
    # episodes: 3 steps (terminated), 5 steps (truncated), 3, 5
    np.testing.assert_array_equal(obs, [0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(next_obs, obs + 1)  # the final observation, never the reset one
    np.testing.assert_array_equal(np.flatnonzero(terminated), [2, 10])  # the truncations at 7 and 15 are not


BAD_ARGS = [
    (dict(env_id="NoSuchEnv-v9"), "NoSuchEnv-v9"),
    (dict(env_id="CartPole-v1"), "continuous actions"),
    (dict(batch_size=0), "--batch-size"),
    (dict(gradient_steps=0), "--gradient-steps"),
    (dict(min_pool=0), "--min-pool"),
    (dict(min_pool=20_000, buffer_size=10_000), "cannot exceed --buffer-size"),
    (dict(min_pool=16), "at least --batch-size"),
    (dict(tau=0.0), "--tau"),
    (dict(tau=1.5), "--tau"),
    (dict(gamma=-0.1), "--gamma"),
    (dict(gamma=1.01), "--gamma"),
    (dict(seed=2**32), r"--seed must be in \[0, 2\*\*32\)"),  # numpy's seed would raise a traceback on it
    (dict(seed=-1), r"--seed must be in \[0, 2\*\*32\)"),
    (dict(hidden_sizes=()), "--hidden-sizes needs positive widths"),
]


@pytest.mark.parametrize(
    "overrides",
    [
        dict(seed=0),
        dict(seed=2**32 - 1),
        dict(tau=1.0),  # V̄ copied from V at each step
        dict(gamma=1.0),
        dict(alpha=0.0),  # no entropy term
        dict(min_pool=32, batch_size=32),  # learning starts as soon as one batch fits
        dict(min_pool=10_000, buffer_size=10_000),
    ],
    ids=lambda overrides: ", ".join(f"{k}={v}" for k, v in overrides.items()),
)
def test_flags_at_the_edge_of_their_range_are_accepted(overrides):
    validate_args(tiny_args(**overrides))


@pytest.mark.parametrize(("overrides", "message"), BAD_ARGS)
def test_bad_input_is_refused_before_anything_is_written(in_tmp_dir, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny_args(**overrides))
    assert not (in_tmp_dir / "runs").exists()


def test_capture_video_without_moviepy_is_refused_before_anything_is_written(in_tmp_dir, monkeypatch):
    find_spec = sac_v.importlib.util.find_spec
    monkeypatch.setattr(sac_v.importlib.util, "find_spec", lambda name: None if name == "moviepy" else find_spec(name))
    with pytest.raises(ConfigError, match=r'needs pip install -e "\.\[video\]"'):
        train(tiny_args(capture_video=True))
    assert list(in_tmp_dir.iterdir()) == []


def test_cuda_without_gpu_is_refused(in_tmp_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA"):
        train(tiny_args(device="cuda"))


def test_cli_reports_bad_input_in_one_line_without_traceback(in_tmp_dir):
    proc = run_cli("sac_v.py", "--env-id", "CartPole-v1", cwd=in_tmp_dir)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")
    assert not (in_tmp_dir / "runs").exists()


def test_help_lists_every_flag_with_its_docstring(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sac_v.tyro.cli(Args, args=["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--env-id",
        "--seed",
        "--total-timesteps",
        "--reward-scale",
        "--min-pool",
        "--buffer-size",
        "--batch-size",
        "--gamma",
        "--tau",
        "--alpha",
        "--policy-lr",
        "--critic-lr",
        "--hidden-sizes",
        "--eval-every",
        "--eval-episodes",
        "--device",
        "--paper",
        "--exp-name",
    ):
        assert flag in text, flag
    assert "inverse temperature" in text  # docstrings become the help text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_short_run_on_cuda_takes_gradient_steps_and_checkpoint_loads_on_cpu(in_tmp_dir):
    result = train(tiny_args(device="cuda"))
    checkpoint = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 400
    assert {float(s["step"]) for s in checkpoint["actor_optimizer"]["state"].values()} == {301}
    assert all(np.isfinite(e.mean) for e in result.evaluations)


def test_paper_takes_the_papers_settings_for_the_task_and_flags_given_beside_it_win():
    hopper, _ = parse_args(["--paper", "--env-id", "Hopper-v5"])
    assert (hopper.reward_scale, hopper.min_pool, hopper.batch_size, hopper.buffer_size) == (5.0, 1_000, 256, 10**6)
    assert (hopper.policy_lr, hopper.critic_lr, hopper.hidden_sizes, hopper.tau) == (3e-4, 3e-4, (256, 256), 0.005)
    assert parse_args(["--paper", "--env-id", "HalfCheetah-v5"])[0].min_pool == 10_000
    assert parse_args(["--paper", "--env-id", "Humanoid-v5"])[0].reward_scale == 20.0
    assert parse_args(["--paper", "--env-id", "Walker2d-v5", "--reward-scale", "3"])[0].reward_scale == 3.0
    assert parse_args([])[0] == Args()


@pytest.mark.parametrize(
    ("task", "reward_scale", "min_pool"),
    [
        ("HalfCheetah", 5.0, 10_000),
        ("Hopper", 5.0, 1_000),
        ("Walker2d", 5.0, 1_000),
        ("Ant", 5.0, 10_000),
        ("Humanoid", 20.0, 1_000),
    ],
)
def test_paper_gives_each_task_table_1_its_reward_scale_and_the_authors_random_steps(task, reward_scale, min_pool):
    table_1 = dict(buffer_size=10**6, batch_size=256, hidden_sizes=(256, 256), tau=0.005, gamma=0.99)
    table_1 |= dict(policy_lr=3e-4, critic_lr=3e-4, total_timesteps=10**6, eval_every=10_000)  # 1M steps, eval 10k
    task_args = dict(env_id=f"{task}-v5", paper=True, reward_scale=reward_scale, min_pool=min_pool)
    assert parse_args(["--paper", "--env-id", f"{task}-v5"])[0] == Args(**table_1, **task_args)


def test_help_beside_paper_shows_the_papers_settings_as_the_defaults(in_tmp_dir):
    result = run_cli("sac_v.py", "--paper", "--env-id", "Hopper-v5", "--help", cwd=in_tmp_dir)
    assert result.returncode == 0
    assert "(default: 0.0003)" in result.stdout and "(default: 0.003)" not in result.stdout


def test_paper_on_a_task_the_paper_did_not_run_is_refused_in_one_line(in_tmp_dir):
    result = run_cli("sac_v.py", "--paper", "--env-id", "Pendulum-v1", cwd=in_tmp_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--paper knows the paper's MuJoCo tasks" in result.stderr


def test_paper_run_on_a_mujoco_task_takes_gradient_steps_and_prints_its_settings(in_tmp_dir, capsys):
    pytest.importorskip("mujoco", reason="MuJoCo tasks need the mujoco extra")
    args, _ = parse_args(["--paper", "--env-id", "Hopper-v5", "--total-timesteps", "300", "--min-pool", "200"])
    small = dict(batch_size=32, buffer_size=1_000, hidden_sizes=(32, 32), eval_every=300, eval_episodes=1)
    result = train(dataclasses.replace(args, **small, device="cpu"))
    checkpoint = torch.load(result.checkpoint, weights_only=True)
    assert checkpoint["args"]["paper"] and checkpoint["args"]["reward_scale"] == 5.0
    assert checkpoint["actor_optimizer"]["state"][0]["step"] == 101  # one per env step from the one that fills the pool
    banner = capsys.readouterr().out
    assert "--paper: --reward-scale 5.0 --min-pool 200 --total-timesteps 300" in banner
    assert "--hidden-sizes 32 32 " in banner  # as typed, so the line can be pasted


def test_train_runs_in_a_thread_other_than_the_main_one(in_tmp_dir):
    """Only the main thread can take signals: elsewhere (a notebook's or a server's worker thread) train runs without
    them."""
    results, errors = [], []

    def run():
        try:
            results.append(train(tiny_args(total_timesteps=200, eval_every=200)))
        except Exception as e:
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == [] and [e.step for e in results[0].evaluations] == [200]
