"""Soft Actor-Critic with a learned state value V (SAC-V; Haarnoja et al. 2018, arXiv 1801.01290): a tanh-squashed
Gaussian actor, twin soft Q critics, and a soft state-value network V whose moving average V̄ gives the Q target.
Equation numbers refer to the paper.

Part 1, the algorithm, defines all it uses but the one-line calls train makes to Part 2: Args, make_env, Actor,
StackedLinear, SoftQNetwork, SoftVNetwork, sac_v_losses (Eqs. 5, 8, 12), update, make_networks, make_optimizers,
evaluate, train (the paper's Algorithm 1), main. Part 2, after the divider: flag checks, the --paper preset,
checkpoints and exact resume, TensorBoard and console, signals, compile and CUDA graphs.

    python sac_v.py                              # LunarLanderContinuous-v3 with this project's defaults
    python sac_v.py --paper --env-id Hopper-v5   # the paper's settings for a MuJoCo task
    python sac_v.py --resume runs/<run>/sac_v.pt # continue a run (Ctrl-C saves one to continue)
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import importlib.util
import itertools
import math
import os
import random
import re
import reprlib
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, get_args, get_origin, get_type_hints

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
import tyro
from torch import nn
from torch.func import functional_call
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from buffer import ReplayBuffer, atomic_path


@dataclasses.dataclass
class Args:
    # SAC-V's hyperparameters
    env_id: str = "LunarLanderContinuous-v3"  # a gymnasium env: flat Box observations, bounded Box actions
    paper: bool = False  # start from the paper's settings for this MuJoCo task; flags given beside it win
    total_timesteps: int = 100_000  # number of environment steps to train for
    reward_scale: float = 5.0  # c, the inverse temperature: multiplies the reward in the Q target
    min_pool: int = 20_000  # random-action transitions collected before the first gradient step
    buffer_size: int = 50_000  # replay buffer capacity
    batch_size: int = 200  # minibatch size of each gradient step
    gradient_steps: int = 1  # gradient steps per environment step, once the pool holds --min-pool transitions
    gamma: float = 0.99  # discount factor
    tau: float = 0.005  # V̄ <- tau * V + (1 - tau) * V̄ after every gradient step
    alpha: float = 1.0  # entropy temperature; keep it at 1 and tune --reward-scale instead (only their ratio matters)
    policy_lr: float = 3e-3  # Adam learning rate of the actor
    critic_lr: float = 3e-3  # Adam learning rate of the twin Q networks and of V
    hidden_sizes: tuple[int, ...] = (200, 200)  # widths of the ReLU hidden layers of every network
    # The run and its logging
    seed: int = 1  # seeds Python, numpy, torch, the envs, the action space and the replay buffer
    eval_every: int = 5_000  # env steps between deterministic evaluations and checkpoints
    eval_episodes: int = 10  # episodes per deterministic evaluation
    exp_name: str = "sac_v"  # experiment name, part of the run folder runs/{env_id}__{exp_name}__{seed}__{time}
    capture_video: bool = False  # record each evaluation's first episode to videos/<run>/
    # Long runs and speed
    resume: Path | None = None  # continue a checkpoint's run (or a run folder's) in place; its flags are the defaults
    save_buffer: Literal["auto", "always", "never"] = "auto"  # save the buffer with each checkpoint; auto: under 1 GB
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where the networks live; auto picks CUDA when available
    threads: int | Literal["auto"] = "auto"  # torch CPU threads; auto: the cores other processes leave idle
    compile: bool = False  # torch.compile the gradient step and the action sampler
    cudagraphs: bool = False  # CUDA only: record the whole gradient step as one CUDA graph and replay it each step
    bf16: bool = False  # run the gradient step's matmuls in bfloat16 (weights, losses and Adam stay float32)


class ConfigError(ValueError):
    """Bad input, or a folder that cannot be written: one sentence and a non-zero exit, never a traceback."""


class DivergenceError(RuntimeError):
    """A loss or parameter became NaN or infinite: training stops and the last good checkpoint stays."""


def make_env(env_id: str, render_mode: str | None = None) -> gym.Env:
    """A gymnasium env with a flat Box observation and a bounded Box action space, or a ConfigError."""
    try:
        env = gym.make(env_id, **({"render_mode": render_mode} if render_mode else {}))  # not every env takes one
    except (gym.error.Error, ImportError) as e:  # unknown id, or a module or dependency that is not installed
        raise ConfigError(f"cannot make environment {env_id!r}: {str(e).splitlines()[0]}") from None
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        env.close()
        raise ConfigError(f"{env_id} has action space {space}; SAC needs continuous actions in a bounded Box")
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        env.close()
        raise ConfigError(f"{env_id} has observation space {env.observation_space}; sac_v needs a flat Box")
    return env


def mlp(in_dim: int, sizes: Sequence[int], out_dim: int | None = None, linear: Callable = nn.Linear) -> nn.Sequential:
    """Linear + ReLU layers of the given widths, then a linear output layer unless out_dim is None."""
    layers: list[nn.Module] = []
    for width in sizes:
        layers += [linear(in_dim, width), nn.ReLU(inplace=True)]  # in place: a linear layer's backward needs no output
        in_dim = width
    return nn.Sequential(*layers, *([linear(in_dim, out_dim)] if out_dim is not None else []))


class Actor(nn.Module):
    """π_φ(a|s): a Gaussian in u-space, squashed by tanh and rescaled to the env's action bounds."""

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Box, hidden_sizes: Sequence[int]):
        super().__init__()
        obs_dim, act_dim = observation_space.shape[0], action_space.shape[0]
        self.trunk = mlp(obs_dim, hidden_sizes)
        self.mean = nn.Linear(hidden_sizes[-1], act_dim)
        self.log_std = nn.Linear(hidden_sizes[-1], act_dim)
        low = torch.as_tensor(action_space.low, dtype=torch.float32)
        high = torch.as_tensor(action_space.high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clamped log standard deviation of u (float32, also when --bf16 runs the matmuls in bfloat16)."""
        h = self.trunk(obs)
        return self.mean(h).float(), self.log_std(h).float().clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        return torch.tanh(u) * self.action_scale + self.action_bias

    def get_action(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A reparameterized sample, its log-density (shape (B,)), and the deterministic action tanh(μ)."""
        mean, log_std = self(obs)
        eps = torch.randn_like(mean)
        u = mean + log_std.exp() * eps  # reparameterization: gradients reach μ and log σ through u
        # Appendix C, Eq. 21: log N(u; μ, σ) minus the log-Jacobians of tanh and of the affine rescale.
        # log(1 - tanh²u) = 2(log 2 - u - softplus(-2u)): exact, unlike log(1 - tanh²u + 1e-6).
        log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        log_prob = log_prob - self.action_scale.log().sum()
        return self.squash(u), log_prob, self.squash(mean)


class StackedLinear(nn.Module):
    """`n` independent nn.Linear layers applied at once: one batched matmul over weights of shape (n, in, out)."""

    def __init__(self, n: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default init, U(-1/sqrt(in), 1/sqrt(in)), for each layer
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, B, in) -> (n, B, out); a (B, in) input is shared by all n layers."""
        return torch.baddbmm(self.bias, x.expand(self.weight.shape[0], *x.shape[-2:]), self.weight)


class SoftQNetwork(nn.Module):
    """Q_θ1(s, a) and Q_θ2(s, a): the twin soft Q critics, whose minimum curbs overestimation. Two independent
    networks, stored stacked so that each layer of both is one batched matmul (StackedLinear)."""

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Box, hidden_sizes: Sequence[int]):
        super().__init__()
        in_dim = observation_space.shape[0] + action_space.shape[0]
        self.net = mlp(in_dim, hidden_sizes, 1, linear=functools.partial(StackedLinear, 2))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q1(s, a) and Q2(s, a) stacked: shape (2, B), float32."""
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1).float()


class SoftVNetwork(nn.Module):
    """V_ψ(s): the soft state value; its moving average V̄ gives the Q target."""

    def __init__(self, observation_space: gym.spaces.Box, hidden_sizes: Sequence[int]):
        super().__init__()
        self.net = mlp(observation_space.shape[0], hidden_sizes, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1).float()


def sac_v_losses(
    batch: tuple[torch.Tensor, ...],
    actor: Actor,
    qf: SoftQNetwork,
    vf: SoftVNetwork,
    vf_target: SoftVNetwork,
    reward_scale: float,
    gamma: float,
    alpha: float,
) -> dict[str, torch.Tensor]:
    """The three SAC-V losses on one minibatch, all from the same (pre-update) parameters."""
    obs, actions, rewards, next_obs, terminated = batch
    # One fresh action ã ~ π(·|s) per state serves both the V target and the policy loss.
    pi_actions, log_pi, _ = actor.get_action(obs)
    # Q with its parameters cut from autograd: the policy loss reaches ã through Q, never θ1, θ2.
    qf1_pi, qf2_pi = functional_call(qf, {name: p.detach() for name, p in qf.named_parameters()}, (obs, pi_actions))
    min_q_pi = torch.min(qf1_pi, qf2_pi)

    # Eq. 5, the loss of V (ψ): V regresses on min Q(s, ã) - α log π(ã|s), ã from the current policy, not the buffer.
    v_target = (min_q_pi - alpha * log_pi).detach()
    v = vf(obs)
    v_loss = 0.5 * F.mse_loss(v, v_target)

    # Eq. 8, the loss of each Q (θ1, θ2): Q regresses on c·r + γ(1 - d)V̄(s'); d is a true end, never a time limit.
    with torch.no_grad():
        q_target = reward_scale * rewards + gamma * (1 - terminated) * vf_target(next_obs)
    qf1_values, qf2_values = qf(obs, actions)
    qf1_loss = 0.5 * F.mse_loss(qf1_values, q_target)
    qf2_loss = 0.5 * F.mse_loss(qf2_values, q_target)

    # Eq. 12, the loss of the policy (φ), reparameterized: minimise α log π(ã|s) - min Q(s, ã).
    actor_loss = (alpha * log_pi - min_q_pi).mean()
    losses = {"qf1_loss": qf1_loss, "qf2_loss": qf2_loss, "v_loss": v_loss, "actor_loss": actor_loss}
    values = {"qf1": qf1_values.mean(), "qf2": qf2_values.mean(), "v": v.mean(), "v_target": v_target.mean()}
    return losses | values | {"q_target": q_target.mean(), "entropy": -log_pi.mean()}


def update(
    batch: tuple[torch.Tensor, ...],
    actor: Actor,
    qf: SoftQNetwork,
    vf: SoftVNetwork,
    vf_target: SoftVNetwork,
    optimizers: Sequence[torch.optim.Optimizer],
    args: Args,
) -> dict[str, torch.Tensor]:
    """One gradient step on all networks, then V̄ moves toward V. Returns the detached losses and values."""
    # --bf16: autocast runs the matmuls in bfloat16; the networks return float32, so the rest stays float32.
    with torch.autocast(batch[0].device.type, torch.bfloat16, enabled=args.bf16):
        losses = sac_v_losses(batch, actor, qf, vf, vf_target, args.reward_scale, args.gamma, args.alpha)
    # Each loss depends on its own network's parameters only, so one backward pass of the sum
    # gives every network exactly the gradient of its own loss.
    total = losses["qf1_loss"] + losses["qf2_loss"] + losses["v_loss"] + losses["actor_loss"]
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    total.backward()
    for optimizer in optimizers:
        optimizer.step()
    with torch.no_grad():  # V̄ of Eq. 8 as a moving average, V̄ <- τV + (1 - τ)V̄, in one call for all tensors
        torch._foreach_lerp_(list(vf_target.parameters()), list(vf.parameters()), args.tau)
    return {name: value.detach() for name, value in losses.items()}


def make_networks(env: gym.Env, hidden_sizes: Sequence[int], device: torch.device) -> tuple[nn.Module, ...]:
    """π, the twin critics, V, and V̄: an exact copy of V at first, then moved by the moving average alone."""
    actor = Actor(env.observation_space, env.action_space, hidden_sizes).to(device)
    qf = SoftQNetwork(env.observation_space, env.action_space, hidden_sizes).to(device)
    vf = SoftVNetwork(env.observation_space, hidden_sizes).to(device)
    vf_target = SoftVNetwork(env.observation_space, hidden_sizes).to(device)
    vf_target.load_state_dict(vf.state_dict())
    return actor, qf, vf, vf_target.requires_grad_(False)


def make_optimizers(actor: Actor, qf: SoftQNetwork, vf: SoftVNetwork, args: Args) -> dict[str, torch.optim.Optimizer]:
    """Three Adams: the policy, both critics together, V. Fused: each step is one kernel over all its tensors; a
    CUDA graph needs the step counts kept on the GPU (capturable)."""
    flags = {"fused": True, "capturable": args.cudagraphs}
    return {
        "actor_optimizer": torch.optim.Adam(actor.parameters(), lr=args.policy_lr, **flags),
        "q_optimizer": torch.optim.Adam(qf.parameters(), lr=args.critic_lr, **flags),
        "v_optimizer": torch.optim.Adam(vf.parameters(), lr=args.critic_lr, **flags),
    }


def evaluate(actor: Actor, env: gym.Env, episodes: int, seed: int, deterministic: bool = True) -> np.ndarray:
    """Returns of `episodes` episodes (seeded seed, seed + 1, ...) with tanh(μ), or sampled actions."""
    device = next(actor.parameters()).device
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        episode_return, done = 0.0, False
        while not done:
            with torch.no_grad():
                obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)
                action = actor.squash(actor(obs_t)[0]) if deterministic else actor.get_action(obs_t)[0]
            obs, reward, terminated, truncated, _ = env.step(action[0].cpu().numpy())
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    return np.array(returns)


LOG_EVERY = 100  # env steps between training scalars: logging is a host sync, so not every step


class Evaluation(NamedTuple):
    step: int  # env steps taken
    mean: float  # mean return of the deterministic policy
    std: float
    wall_s: float  # seconds since training started


class TrainResult(NamedTuple):
    run_dir: Path
    checkpoint: Path
    evaluations: list[Evaluation]
    buffer: ReplayBuffer
    stopped_by: int | None = None  # the signal that stopped the run early, if one did


def train(args: Args, checkpoint: dict[str, Any] | None = None) -> TrainResult:
    """Algorithm 1 of the paper: act with the current policy, store the transition, take a gradient step on all
    networks, move V̄. `checkpoint` is the --resume checkpoint where the caller has read it already."""
    validate_args(args)
    device = resolve_device(args.device)
    env = make_env(args.env_id)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    actor, qf, vf, vf_target = make_networks(env, args.hidden_sizes, device)
    optimizers = make_optimizers(actor, qf, vf, args)
    rb = ReplayBuffer(env.observation_space.shape[0], env.action_space.shape[0], args.buffer_size, seed=args.seed)
    networks = {"actor": actor, "qf": qf, "vf": vf, "vf_target": vf_target}
    # A new run folder, or a resumed run as it stopped: weights, buffer, random streams, the episode in progress.
    run, obs = start_run(args, checkpoint, env, networks, optimizers, rb)
    rb = run.rb  # a resumed run's buffer, saved with its checkpoint
    gradient_step = functools.partial(update, **networks, optimizers=tuple(optimizers.values()), args=args)
    gradient_step, sample_action = fast_paths(gradient_step, actor.get_action, args)  # --compile, --cudagraphs
    with stop_signals(run.stop_now) as stop_requests, run:
        for global_step in range(run.step + 1, args.total_timesteps + 1):
            # Until the pool holds min_pool transitions: uniform random actions and no learning.
            if len(rb) < args.min_pool:
                action = env.action_space.sample()
            else:
                with torch.no_grad():
                    obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)
                    action = sample_action(obs_t)[0][0].cpu().numpy()  # a ~ π(·|s), sampled: SAC explores with it
            next_obs, reward, terminated, truncated, _ = env.step(action)
            # Store the true final observation and `terminated` only: a time limit is not a terminal state.
            rb.add(obs, action, float(reward), next_obs, terminated)
            obs = next_obs
            run.episode["return"] += float(reward)
            run.episode["length"] += 1
            if terminated or truncated:
                obs = run.next_episode(global_step)

            if len(rb) >= args.min_pool:
                for _ in range(args.gradient_steps):
                    batch = tuple(torch.as_tensor(x, device=device) for x in rb.sample(args.batch_size))
                    stats = gradient_step(batch)  # update: Eqs. 5, 8, 12, a step of each Adam, then V̄ moves
                if global_step % LOG_EVERY == 0:
                    run.log_training(global_step, stats, actor, batch[0])

            if global_step % args.eval_every == 0 or global_step == args.total_timesteps:
                with evaluation_env(args, run.checkpoint.parent, global_step) as eval_env:
                    returns = evaluate(actor, eval_env, args.eval_episodes, seed=args.seed + 10_000)
                run.record_evaluation(global_step, returns)  # logs it, checkpoints, prints a line
            run.advance(global_step)
            if stop_requests:  # Ctrl-C or SIGTERM: save this step and stop
                run.stop(stop_requests[0])
                break
    stopped_by = stop_requests[0] if stop_requests else None
    return TrainResult(run.checkpoint.parent, run.checkpoint, run.evaluations, rb, stopped_by)


def main() -> None:
    try:
        result = train(*parse_args())
    except (ConfigError, DivergenceError) as e:
        sys.exit(f"error: {e}")
    except (MemoryError, RuntimeError) as e:  # the replay buffer's arrays, torch's CPU allocator, or the GPU
        if not isinstance(e, (MemoryError, torch.OutOfMemoryError)) and "can't allocate memory" not in str(e):
            raise
        sys.exit("error: not enough memory for this run; lower --buffer-size (or --hidden-sizes, --batch-size)")
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; the last checkpoint is intact
        sys.exit(130)
    if result.stopped_by is not None:
        sys.exit(128 + result.stopped_by)  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them


# ---- Part 2: flag checks, presets, checkpoints and exact resume, signals, speed. A first reading can stop here.

CHECKPOINT_VERSION = 3  # 2: all a resume needs (RNG states, the episode in progress); 3: qf1, qf2 stacked as qf
# Weights start within ±1/sqrt(fan_in) <= 1, and Adam moves one by at most about 3 * lr a step (Kingma & Ba, §2.1): at
# the learning rates that learn, 1e6 is 10^8 steps away. A weight past it grows without bound (--policy-lr 1e9 takes
# the actor's to 1e10), finite in float32 but a diverged run, checked at each checkpoint.
PARAMETER_BOUND = 1e6
TORCH_THREADS = torch.get_num_threads()  # torch's own default here, before any --threads: auto takes at most this
RUN_IN_USE = "another process is training this run; stop it, then resume"
POSITIVE = ("total_timesteps", "batch_size", "gradient_steps", "min_pool", "buffer_size", "reward_scale", "policy_lr")
POSITIVE += ("critic_lr", "eval_every", "eval_episodes", "threads")
# The paper's Table 1 and reward scales, with the random-action steps of its authors' code; evaluating every 10 000
# steps is this project's protocol. PAPER_TASKS: each task's reward scale and min pool.
PAPER = dict(total_timesteps=10**6, buffer_size=10**6, batch_size=256, hidden_sizes=(256, 256), tau=0.005)
PAPER |= dict(policy_lr=3e-4, critic_lr=3e-4, eval_every=10_000)
PAPER_TASKS = {"HalfCheetah": (5.0, 10**4), "Hopper": (5.0, 10**3), "Walker2d": (5.0, 10**3), "Ant": (5.0, 10**4)}
PAPER_TASKS["Humanoid"] = (20.0, 10**3)


class WriteError(ConfigError):
    """A file of the run could not be written (a full, read-only or over-quota disk): what is kept is said."""


def parse_args(argv: Sequence[str] | None = None) -> tuple[Args, dict[str, Any] | None]:
    """The flags, and the --resume checkpoint read for them. With --resume, the checkpoint's flags are the defaults
    the command line overrides; with --paper, the paper's settings for the task are (and `--help` shows them)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = tyro.cli(Args, args=[a for a in argv if a not in ("-h", "--help")])
    if first.resume is not None and first.resume.is_dir():  # a run folder: its checkpoint
        first.resume = first.resume / "sac_v.pt"
    checkpoint, defaults = load_checkpoint(first.resume) if first.resume else None, None
    if checkpoint and first.paper and not checkpoint["args"].get("paper"):
        raise ConfigError("--paper sets the flags of a new run; a resumed run keeps its checkpoint's")
    if checkpoint:
        names = {field.name for field in dataclasses.fields(Args)} - {"resume"}
        defaults = Args(**{k: v for k, v in checkpoint["args"].items() if k in names}, resume=first.resume)
    elif first.paper:
        defaults = paper_args(first.env_id)
    return dataclasses.replace(tyro.cli(Args, args=argv, default=defaults), resume=first.resume), checkpoint


def paper_args(env_id: str) -> Args:
    """The paper's settings for a MuJoCo task (any version: HalfCheetah-v5, Hopper-v4, ...)."""
    task = env_id.split("-v")[0]
    if task not in PAPER_TASKS:
        raise ConfigError(f"--paper knows the paper's MuJoCo tasks ({', '.join(PAPER_TASKS)}), not {env_id}")
    reward_scale, min_pool = PAPER_TASKS[task]
    return Args(env_id=env_id, paper=True, reward_scale=reward_scale, min_pool=min_pool, **PAPER)


def validate_args(args: Args) -> None:
    """Refuse bad flags before anything is created or written."""
    for field in dataclasses.fields(Args):
        flag, value = "--" + field.name.replace("_", "-"), getattr(args, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag} must be a finite number, got {value}")
        if field.name in POSITIVE and value != "auto" and value <= 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    cuda = resolve_device(args.device).type == "cuda"
    video = not args.capture_video or importlib.util.find_spec("moviepy")
    slow_bf16 = "--bf16 needs a GPU or a CPU with AVX-512 or AMX (here bfloat16 runs about 10x slower); drop --bf16"
    checks = [
        (0 <= args.seed < 2**32, f"--seed must be in [0, 2**32), got {args.seed}"),
        (args.min_pool <= args.buffer_size, f"--min-pool ({args.min_pool}) cannot exceed --buffer-size"),
        (args.min_pool >= args.batch_size, f"--min-pool ({args.min_pool}) must be at least --batch-size"),
        (0 < args.tau <= 1, f"--tau must be in (0, 1], got {args.tau}"),
        (0 <= args.gamma <= 1, f"--gamma must be in [0, 1], got {args.gamma}"),
        (args.alpha >= 0, f"--alpha must be non-negative, got {args.alpha}"),
        (min(args.hidden_sizes, default=0) > 0, f"--hidden-sizes needs positive widths, got {args.hidden_sizes}"),
        (re.fullmatch(r"[\w.,=+-]+", args.exp_name, re.ASCII), f"--exp-name must be a plain name: {args.exp_name!r}"),
        (video, '--capture-video needs pip install -e ".[video]"'),
        (not args.cudagraphs or cuda, "--cudagraphs needs a CUDA device"),
        (not args.bf16 or cuda or cpu_has_fast_bf16(), slow_bf16),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bfloat16 matmuls at speed here (AVX-512 or AMX); with AVX2 alone they crawl."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def flag_value(value: object) -> str:
    """A flag's value as it is typed: (256, 256) as 256 256."""
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def path_name(env_id: str) -> str:
    """An env id as one file or folder name: a namespaced id, ns/Env-v0, as ns-Env-v0."""
    return env_id.replace("/", "-")


def resume_command(checkpoint: Path) -> str:
    """The command that resumes a run, ready to paste here: this script's path from here, paths quoted."""
    script = __file__
    with contextlib.suppress(ValueError):  # on Windows, a script on another drive has no relative path
        script = os.path.relpath(__file__)
    return f"python {shlex.quote(script)} --resume {shlex.quote(str(checkpoint))}"


def record_video(env: gym.Env, folder: Path, name_prefix: str, every: int = 1) -> gym.Env:
    """Record every `every`-th episode of an rgb_array env to folder/{name_prefix}-episode-{i}.mp4."""
    return gym.wrappers.RecordVideo(env, str(folder), lambda episode: episode % every == 0, name_prefix=name_prefix)


def evaluation_env(args: Args, run_dir: Path, step: int) -> gym.Env:
    """A fresh env for one evaluation (a context manager that closes it); with --capture-video it records the first
    episode."""
    env = make_env(args.env_id, render_mode="rgb_array" if args.capture_video else None)
    if args.capture_video:
        env = record_video(env, Path("videos") / run_dir.name, f"eval-step-{step}", every=args.eval_episodes)
    return env


class Logs:
    """What a person watches: TensorBoard's scalars in the run folder and the console's progress bar and lines."""

    def __init__(self, args: Args, run_dir: Path):
        self.args, self.run_dir = args, run_dir
        self.writer: Any = None
        self.console: Any = None
        self.excepthook: Any = None  # threading's, while TensorBoard's writer thread is silenced (quiet_writer_thread)
        self.last_log = (0, 0.0)  # env step and time of the last training speed

    def open(self, step: int, saved_step: int | None, phase: str) -> None:
        self.excepthook, threading.excepthook = threading.excepthook, quiet_writer_thread(threading.excepthook)
        # On resume, the same folder: scalars a crash logged after the checkpoint are hidden, new ones continue.
        self.writer = SummaryWriter(str(self.run_dir), purge_step=saved_step and saved_step + 1)
        table = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(self.args).items())
        self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table, step)
        self.console = tqdm(total=self.args.total_timesteps, initial=step, disable=None, dynamic_ncols=True)
        if self.args.paper:  # the effective settings, flags given beside --paper included
            flags = {k: getattr(self.args, k) for k in ("reward_scale", "min_pool", *PAPER)}
            self.console.write(
                "--paper: " + " ".join(f"--{k.replace('_', '-')} {flag_value(v)}" for k, v in flags.items())
            )
        self.console.set_description(phase)

    def close(self) -> None:
        """Close the console and the writer, whose last flush raises what its thread met (a full disk)."""
        try:
            if self.console is not None:
                self.console.close()
            if self.writer is not None:
                self.writer.close()
        finally:
            threading.excepthook = self.excepthook or threading.excepthook

    def last_words(self, text: str) -> None:
        """Close the bar, so it is not drawn again after `text`, then write `text` in one write: whole lines, which a
        second signal's message (Run.stop_now) never lands in the middle of."""
        self.console.close()
        sys.stdout.write(text)

    def episode(self, step: int, episode: dict[str, Any]) -> None:
        self.writer.add_scalar("charts/episodic_return", episode["return"], step)
        self.writer.add_scalar("charts/episodic_length", episode["length"], step)

    def training(self, step: int, stats: dict[str, float], log_std: float) -> None:
        for name, value in stats.items():
            group = "losses" if name.endswith("loss") else "policy" if name == "entropy" else "values"
            self.writer.add_scalar(f"{group}/{name}", value, step)
        self.writer.add_scalar("policy/log_std", log_std, step)

    def evaluation(self, step: int, returns: np.ndarray, policy: str) -> None:
        self.writer.add_scalar("eval/episodic_return", returns.mean(), step)
        self.console.write(f"step {step}: eval return {returns.mean():.1f} ± {returns.std():.1f} of {policy}")

    def progress(self, step: int, phase: str, train_return: float, eval_return: float) -> None:
        """The speed since the last call (warm-up or training) to TensorBoard; the bar's returns and phase."""
        if self.last_log[0]:
            self.writer.add_scalar("charts/SPS", (step - self.last_log[0]) / (time.time() - self.last_log[1]), step)
        self.last_log = (step, time.time())
        self.console.set_postfix({"return": f"{train_return:.1f}", "eval": f"{eval_return:.1f}"}, False)
        self.console.set_description(phase, refresh=False)

    def tick(self) -> None:
        self.console.update(1)  # one env step


@dataclasses.dataclass
class Run:
    """A training run beyond the math: its checkpoint (in the run folder) and the lock on that folder, the episode in
    progress, the returns so far, its Logs and its Threads. `save` writes what a resume needs to the checkpoint; a
    failed write or a diverged run ends in one sentence that says what is kept."""

    args: Args
    env: gym.Env
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    rb: ReplayBuffer
    checkpoint: Path
    episode: dict[str, Any]  # how the episode in progress began (reset seed, env RNG), its length and return
    step: int = 0  # env steps taken
    train_return: float = float("nan")  # of the last finished training episode
    evaluations: list[Evaluation] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0  # training seconds in earlier processes
    saved_step: int | None = None  # of the last checkpoint
    start: float = dataclasses.field(default_factory=time.time)
    lock: IO[str] | None = None  # held while this process trains the run (lock_folder)
    logs: Logs | None = None
    threads: Threads | None = None

    def __enter__(self) -> Run:
        self.threads = Threads(self.args, self.env)
        self.logs = Logs(self.args, self.checkpoint.parent)
        try:
            self.logs.open(self.step, self.saved_step, self.phase())
        except OSError as e:  # a full or read-only disk: the one sentence of __exit__
            self.__exit__(type(e), e, e.__traceback__)
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, traceback: object) -> None:
        """Close all. A failed write, here or in the loop (TensorBoard's, a video's), becomes one sentence; a new run
        that a failed write ends before its first checkpoint leaves no folder behind."""
        failed = exc if isinstance(exc, OSError) else None
        try:
            self.logs.close()
        except OSError as e:
            failed = failed or (e if exc is None else None)
        finally:
            self.env.close()
            if self.lock:
                self.lock.close()  # releases the run folder
        if (failed or isinstance(exc, WriteError)) and self.saved_step is None and self.args.resume is None:
            shutil.rmtree(self.checkpoint.parent, ignore_errors=True)
            with contextlib.suppress(OSError):  # runs/ too, where this run was all it held
                self.checkpoint.parent.parent.rmdir()
        if failed is not None:
            folder = Path(failed.filename).parent if failed.filename else self.checkpoint.parent
            raise self.write_failed(f"cannot write to {folder} at step {self.step}", failed) from None

    def write_failed(self, what: str, e: OSError) -> WriteError:
        """One sentence: what could not be written, why, and what is kept."""
        if self.saved_step is not None:
            kept = f"the checkpoint of step {self.saved_step} is kept"
        else:
            kept = "no checkpoint was saved" + (", so the run folder is removed" if self.args.resume is None else "")
        return WriteError(f"{what}: {e.strerror or e}; {kept}")

    def phase(self) -> str:
        if len(self.rb) < self.args.min_pool:
            return f"{self.args.env_id}: collecting {self.args.min_pool} random transitions"
        return f"{self.args.env_id}: training"

    def next_episode(self, step: int) -> np.ndarray:
        """Log the episode that ended, reset the env, and note how the next one begins (see replay_episode)."""
        self.logs.episode(step, self.episode)
        self.train_return = self.episode["return"]
        self.episode = {"seed": None, "rng": self.env.np_random.bit_generator.state, "length": 0, "return": 0.0}
        return self.env.reset()[0]

    def log_training(self, step: int, stats: dict[str, torch.Tensor], actor: Actor, obs: torch.Tensor) -> None:
        """Losses, values, entropy and the policy's mean log σ on the batch. A value is checked for NaN here only:
        .item() waits for the device."""
        values = {name: value.item() for name, value in stats.items()}
        for name, value in values.items():
            if not math.isfinite(value):
                raise self.diverged(f"{name} is {value}", step)
        with torch.no_grad():
            self.logs.training(step, values, actor(obs)[1].mean().item())

    def record_evaluation(self, step: int, returns: np.ndarray) -> None:
        self.evaluations.append(Evaluation(step, float(returns.mean()), float(returns.std()), self.elapsed()))
        self.save(step)
        trained = self.optimizers["actor_optimizer"].state  # Adam's moments exist from the first gradient step on
        self.logs.evaluation(step, returns, "the policy" if trained else "the initial policy (no gradient step yet)")

    def advance(self, step: int) -> None:
        self.step = step
        if step % LOG_EVERY == 0:
            self.threads.adapt()
            eval_return = self.evaluations[-1].mean if self.evaluations else float("nan")
            self.logs.progress(step, self.phase(), self.train_return, eval_return)
        self.logs.tick()

    def elapsed(self) -> float:
        return self.wall_s + time.time() - self.start

    def save(self, step: int) -> None:
        """Save all a resume needs, never over the last good checkpoint with non-finite weights."""
        for net_name, net in self.networks.items():
            for name, param in net.named_parameters():
                peak = param.abs().max().item()  # NaN where any weight is NaN: max propagates it
                if not math.isfinite(peak):
                    raise self.diverged(f"parameter {net_name}.{name} is not finite", step)
                if peak > PARAMETER_BOUND:
                    raise self.diverged(f"parameter {net_name}.{name} has grown to {peak:.1e}", step)
        save_buffer = self.args.save_buffer == "always" or (self.args.save_buffer == "auto" and self.rb.nbytes < 2**30)
        args = {**dataclasses.asdict(self.args), "resume": str(self.args.resume) if self.args.resume else None}
        last = self.evaluations[-1] if self.evaluations else Evaluation(-1, float("nan"), float("nan"), 0.0)
        contents = {name: module.state_dict() for name, module in {**self.networks, **self.optimizers}.items()}
        contents |= dict(global_step=step, args=args, wall_s=self.elapsed())
        contents |= dict(eval_return=last.mean, eval_step=last.step, evaluations=[tuple(e) for e in self.evaluations])
        contents |= dict(train_return=self.train_return, episode=self.episode, rng=rng_states(self.env.action_space))
        try:
            save_checkpoint(self.checkpoint, self.rb if save_buffer else None, **contents)
        except OSError as e:
            raise self.write_failed(
                f"cannot write the checkpoint of step {step} in {self.checkpoint.parent}", e
            ) from None
        self.saved_step = step

    def stop(self, signum: int) -> None:
        """Stopped by a signal: checkpoint this step (unless just done) and say how to resume."""
        if self.saved_step != self.step:
            self.save(self.step)
        buffer = " and its replay buffer" if buffer_path(self.checkpoint).exists() else ""
        stopped = f"stopped by {signal.Signals(signum).name} at step {self.step}: saved {self.checkpoint}{buffer}"
        self.logs.last_words(f"{stopped}\nresume with: {resume_command(self.checkpoint)}\n")

    def stop_now(self, signum: int) -> None:
        """A second signal (Ctrl-C twice): exit at once from the handler, saying what the last checkpoint holds. A save
        in progress is dropped with its temporary files, so the last checkpoint stays whole; the process ends here, with
        nothing left to run that a signal could break into (os._exit), as a shell reports a signal: 128 + signum."""
        for path in (self.checkpoint, buffer_path(self.checkpoint)):
            path.with_name(path.name + ".tmp").unlink(missing_ok=True)
        stopped = f"stopped at once by a second {signal.Signals(signum).name} at step {self.step}"
        if self.saved_step is None:
            if self.args.resume is None:  # nothing to resume: no folder left behind
                shutil.rmtree(self.checkpoint.parent, ignore_errors=True)
            message = f"{stopped}: no checkpoint was saved\n"
        else:
            saved = f"nothing since step {self.saved_step} was saved in" if self.saved_step != self.step else "saved"
            message = f"{stopped}: {saved} {self.checkpoint}\nresume with: {resume_command(self.checkpoint)}\n"
        with contextlib.suppress(OSError):  # straight to the file: a print could break into one in progress
            os.write(2, message.encode())
        os._exit(128 + signum)

    def diverged(self, what: str, step: int) -> DivergenceError:
        if self.saved_step is None:
            return DivergenceError(f"{what} at step {step}, before any checkpoint; try a lower --reward-scale or lr")
        resume = f"{resume_command(self.checkpoint)} --reward-scale <lower> (or --policy-lr, --critic-lr)"
        kept = f"the last good checkpoint (step {self.saved_step}) is kept"
        return DivergenceError(f"{what} at step {step}; {kept}; try {resume}")


class Threads:
    """torch's CPU threads for --threads: a fixed count, or (auto) as many as the cores that other processes leave idle,
    counted again after each second of training. A run alone then takes every core torch would, and runs side by side
    keep one each: OpenMP threads spin while they wait, so two runs that each take both cores slow each other several
    fold (docs/speed.md). Auto moves between counts only where this machine's kernels give this run's gradient step
    the same numbers at each (MKL splits some small matmuls by thread count), else it stays at 1: a run's numbers, and
    its exact resume, never depend on the load."""

    def __init__(self, args: Args, env: gym.Env):
        self.auto = args.threads == "auto"
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.counts = [1]  # the counts auto may take
        cpu = resolve_device(args.device).type == "cpu" and not args.compile
        start = self.sample() if self.auto and cpu else None  # None also where /proc/stat is not there
        if start is not None:
            most = min(TORCH_THREADS, len(self.cpus), cpu_quota() or len(self.cpus))
            self.counts = [n for n in range(1, most + 1) if n == 1 or same_numbers(args, env, n)]
        torch.set_num_threads(self.counts[-1] if self.auto else args.threads)
        # (time, CPU seconds of all cores, of this process) at the last count: only where auto has a choice
        self.last = start if len(self.counts) > 1 else None

    def busy(self) -> float | None:
        """CPU seconds spent so far on this process's cores, by any process; None where /proc/stat is not there."""
        try:
            with open("/proc/stat") as f:
                rows = [line.split() for line in f if line.startswith("cpu") and line[3].isdigit()]
        except OSError:
            return None
        ticks = sum(
            sum(int(x) for i, x in enumerate(row[1:9]) if i not in (3, 4))
            for row in rows
            if int(row[0][3:]) in self.cpus
        )  # all but idle and iowait
        return ticks / os.sysconf("SC_CLK_TCK")

    def sample(self) -> tuple[float, float, float] | None:
        busy = self.busy()
        return None if busy is None else (time.monotonic(), busy, time.process_time())

    def adapt(self) -> None:
        """Auto: after a second or more, take as many threads as the cores others left idle since the last count."""
        if self.last is None or (now := self.sample()) is None or now[0] - self.last[0] < 1.0:
            return
        others = ((now[1] - self.last[1]) - (now[2] - self.last[2])) / (now[0] - self.last[0])  # cores held elsewhere
        self.last = now
        idle = int(len(self.cpus) - others + 0.3)  # a core counts as free while others hold under 30 % of it
        threads = max(n for n in self.counts if n <= max(idle, 1))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The whole cores a cgroup's CPU quota (a container's --cpus) lets this process use, where one is set."""
    with contextlib.suppress(OSError, ValueError):  # cgroup v2: "max 100000", or "200000 100000" for two cores
        quota, period = (cgroup / "cpu.max").read_text().split()
        return None if quota == "max" else max(1, int(quota) // int(period))
    with contextlib.suppress(OSError, ValueError):  # cgroup v1: a quota of -1 where none is set
        quota, period = (int((cgroup / "cpu" / name).read_text()) for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        return None if quota < 0 else max(1, quota // period)
    return None


def same_numbers(args: Args, env: gym.Env, threads: int) -> bool:
    """Whether two gradient steps of this run's networks and batch size give bit-identical weights at `threads` torch
    threads and at 1. Fresh networks and a random batch; the random streams are left as they were."""
    weights = []
    with torch.random.fork_rng():
        for n in (1, threads):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            actor, qf, vf, vf_target = make_networks(env, args.hidden_sizes, torch.device("cpu"))
            optimizers = make_optimizers(actor, qf, vf, args).values()
            obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
            b = args.batch_size
            batch = (
                torch.randn(b, obs_dim),
                torch.rand(b, act_dim),
                torch.randn(b),
                torch.randn(b, obs_dim),
                torch.zeros(b),
            )
            for _ in range(2):
                update(batch, actor, qf, vf, vf_target, tuple(optimizers), args)
            weights.append(torch.cat([p.flatten() for net in (actor, qf, vf, vf_target) for p in net.parameters()]))
    return torch.equal(*weights)


def start_run(
    args: Args,
    checkpoint: dict[str, Any] | None,
    env: gym.Env,
    networks: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    rb: ReplayBuffer,
) -> tuple[Run, np.ndarray]:
    """A new run in a new folder, or (--resume) the checkpoint's run exactly where it stopped, from the new networks,
    optimizers and empty replay buffer. Returns the run and the env's observation."""
    env.action_space.seed(args.seed)
    episode = {"seed": args.seed, "rng": env.np_random.bit_generator.state, "length": 0, "return": 0.0}
    obs, _ = env.reset(seed=args.seed)
    if args.resume is None:
        name = f"{path_name(args.env_id)}__{args.exp_name}__{args.seed}__{int(time.time())}"
        run_dir = new_run_dir(Path("runs") / name)
        lock = lock_folder(run_dir, RUN_IN_USE)
        warn_if_nothing_learned(args, 0, 0)
        return Run(args, env, networks, optimizers, rb, run_dir / "sac_v.pt", episode, lock=lock), obs
    checkpoint = checkpoint or load_checkpoint(args.resume)
    check_resumable(checkpoint, args)
    check_spaces(checkpoint, env, args.env_id)
    if (why := unlike_this_run(checkpoint, networks, optimizers, env)) is not None:
        raise ConfigError(f"{args.resume} is not a sac_v checkpoint: {why}")
    lock = lock_folder(args.resume.parent, RUN_IN_USE)  # before the buffer is read: a run still training rewrites it
    run = Run(args, env, networks, optimizers, rb, args.resume, episode, checkpoint["global_step"], lock=lock)
    run.train_return = checkpoint["train_return"]
    with restoring(args.resume):  # load_buffer's own ConfigErrors pass through as they are
        for name, module in run.networks.items():
            module.load_state_dict(checkpoint[name])
        for name, optimizer in run.optimizers.items():  # the saved moments; this run's learning rates and flags
            optimizer.load_state_dict({**optimizer.state_dict(), "state": checkpoint[name]["state"]})
        if (saved_rb := load_buffer(buffer_path(args.resume), checkpoint, args)) is not None:
            run.rb = saved_rb
        if checkpoint["episode"]["length"] <= len(run.rb):  # else a fresh episode: the replay needs all its actions
            run.episode = checkpoint["episode"]
            obs = replay_episode(env, run.rb, run.episode)
        elif saved_rb is not None:
            length = checkpoint["episode"]["length"]
            note = (
                f"the episode in progress ({length} steps) is longer than the buffer: the resumed run starts a new one"
            )
            print(f"note: {note}, so it is not an exact continuation")
        set_rng_states(checkpoint["rng"], env.action_space)
    run.evaluations = [Evaluation(*e) for e in checkpoint["evaluations"]]
    run.wall_s, run.saved_step = checkpoint["wall_s"], run.step
    warn_if_nothing_learned(args, len(run.rb), run.step)
    return run, obs


@contextlib.contextmanager
def restoring(path: Path) -> Iterator[None]:
    """A value that a checkpoint of the right make-up holds but the restore refuses (a random state out of range, a
    bad episode seed) is a file sac_v did not write: one sentence."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError) as e:
        raise ConfigError(f"{path} is not a sac_v checkpoint: it cannot be restored ({type(e).__name__})") from None


def warn_if_nothing_learned(args: Args, pool: int, step: int) -> None:
    """The first gradient step comes once the pool holds --min-pool transitions (--min-pool <= --buffer-size); a run
    that ends first only collects random transitions, so it says so before it starts."""
    if pool + args.total_timesteps - step < args.min_pool:
        print(
            f"warning: this run takes no gradient step: it ends at step {args.total_timesteps}, before the pool holds "
            f"--min-pool {args.min_pool} transitions; lower --min-pool or raise --total-timesteps"
        )


def new_run_dir(path: Path) -> Path:
    """Create `path`, or `path-2`, `path-3`, ... where a run started in the same second has it: mkdir is atomic, so
    two runs never share a folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for i in itertools.count(1):
            with contextlib.suppress(FileExistsError):  # taken: try the next name
                (run_dir := path.with_name(path.name + (f"-{i}" if i > 1 else ""))).mkdir()
                return run_dir
    except FileExistsError:  # of the parent: a file, or a link to a folder that is not there (an unmounted disk)
        raise ConfigError(f"cannot create the run folder {path}: {path.parent} is not a folder") from None
    except OSError as e:
        raise ConfigError(f"cannot create the run folder {path}: {e.strerror}") from None


def lock_folder(folder: Path, in_use: str) -> IO[str] | None:
    """Hold a folder for this process (an advisory lock on folder/.lock that ends with the file or the process): a
    second process that would write there is refused ("{folder} is in use: {in_use}"), so that a run resumed twice
    does not write the same checkpoints. POSIX only; where there is no fcntl (Windows) no lock is taken."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        lock = (folder / ".lock").open("a")
    except OSError as e:
        raise ConfigError(f"cannot write in {folder}: {e.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConfigError(f"{folder} is in use: {in_use}") from None
    return lock


def save_checkpoint(path: Path, rb: ReplayBuffer | None = None, **contents: object) -> None:
    """Write atomically, with the replay buffer beside it if one is given. The checkpoint goes in place last, so that a
    crash or a full disk at any point leaves a checkpoint and a buffer that were saved together."""
    buffer_added = rb.added if rb is not None else None  # pairs the checkpoint with its buffer (load_buffer)
    # A fresh random id in both files, so that no other buffer matches by chance; no seeded random stream is drawn.
    buffer_id = secrets.token_hex(16) if rb is not None else None
    pairing = {"buffer_added": buffer_added, "buffer_id": buffer_id}
    with atomic_path(path) as tmp:
        torch_save({"format_version": CHECKPOINT_VERSION, **contents, **pairing}, tmp)
        if rb is not None:
            rb.save(buffer_path(path), tag=buffer_id)
    if rb is None:  # a buffer left from an earlier checkpoint no longer belongs to any
        buffer_path(path).unlink(missing_ok=True)


def torch_save(obj: object, path: Path) -> None:
    """torch.save, with a failed write as an OSError: torch's C++ writer reports a short write (a full disk, a quota)
    as a RuntimeError ("unexpected pos", "iostream error")."""
    try:
        torch.save(obj, path)
    except RuntimeError as e:
        if shutil.disk_usage(path.parent).free < 2**20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from None
        raise OSError(errno.EIO, f"the write fell short ({str(e).splitlines()[0]})") from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint as plain tensors, numbers and strings (weights_only: nothing is unpickled)."""
    if not path.is_file():
        raise ConfigError(f"no checkpoint file at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ConfigError(f"{path} is not a readable sac_v checkpoint (truncated, corrupted, or not torch's)") from None
    if not isinstance(checkpoint, dict) or not {"format_version", "args", "actor"} <= checkpoint.keys():
        raise ConfigError(f"{path} is not a sac_v checkpoint: it lacks the format version, args or actor")
    version = checkpoint["format_version"]
    if type(version) is int and version > CHECKPOINT_VERSION:
        raise ConfigError(f"{path} has checkpoint format {version}, newer than sac_v reads")
    if (why := unlike_a_checkpoint(checkpoint)) is not None:
        raise ConfigError(f"{path} is not a sac_v checkpoint: {why}")
    return checkpoint


def kind(value: object) -> object:
    """A value's make-up, to compare with what sac_v writes: a tensor's dtype and shape, a dict's keys and their
    values' kinds, a list's (or tuple's) items' kinds, else its type."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.dtype, tuple(value.shape))
    if isinstance(value, dict):
        return {key: kind(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [kind(item) for item in value]
    return type(value)


def fits(value: object, hint: Any) -> bool:
    """Whether a saved flag's value has its Args type: str, bool, int, float (a whole float may be saved as an int),
    one of a Literal's values, or a member of a union of those."""
    if get_origin(hint) is Literal:
        return isinstance(value, str) and value in get_args(hint)
    if get_origin(hint) is not None:  # a union: int | Literal["auto"]
        return any(fits(value, member) for member in get_args(hint))
    return type(value) is hint or (hint is float and type(value) is int)


def unlike_a_checkpoint(checkpoint: dict[str, Any]) -> str | None:
    """What, in a file that torch loads, differs from what sac_v writes in the fields every reader uses (the format,
    args, the actor, the step and the evaluations); None if nothing does. A resume checks the rest (unlike_this_run)."""
    version, args, actor = checkpoint["format_version"], checkpoint["args"], checkpoint["actor"]
    if type(version) is not int or version < 1:
        return f"its format version is {reprlib.repr(version)}"
    if not isinstance(args, dict) or not {"env_id", "hidden_sizes", "seed"} <= args.keys():
        return "its args lack the env id, the hidden sizes or the seed"
    hints = get_type_hints(Args)
    for name, value in args.items():
        hint = hints.get(name)
        if name == "hidden_sizes":
            ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(type(w) is int and w > 0 for w in value)
        elif name == "resume":
            ok = value is None or isinstance(value, str)
        else:  # a flag of another version is not read
            ok = hint is None or fits(value, hint)
        if not ok:
            return f"its args have {name} = {reprlib.repr(value)}"
    first, mean = (actor.get("trunk.0.weight"), actor.get("mean.weight")) if isinstance(actor, dict) else (None, None)
    if not all(isinstance(w, torch.Tensor) and w.dim() == 2 for w in (first, mean)):
        return "its actor lacks its first or its output layer"
    with torch.device("meta"):  # the actor sac_v writes for these sizes, never allocated
        spaces = [gym.spaces.Box(-1, 1, (size,)) for size in (first.shape[1], mean.shape[0])]
        expected = Actor(*spaces, args["hidden_sizes"]).state_dict()
    if kind(actor) != kind(expected):
        return f"its actor does not fit its own --hidden-sizes {flag_value(args['hidden_sizes'])}"
    if type(checkpoint.get("global_step")) is not int or checkpoint["global_step"] < 0:
        return f"its global_step is {reprlib.repr(checkpoint.get('global_step'))}"
    for name, types in {"eval_step": (int,), "eval_return": (float, int)}.items():
        if name in checkpoint and type(checkpoint[name]) not in types:
            return f"its {name} is {reprlib.repr(checkpoint[name])}"
    evaluations = checkpoint.get("evaluations", [])
    if not isinstance(evaluations, list) or any(kind(e) != [int, float, float, float] for e in evaluations):
        return "its evaluations are not (step, mean, std, seconds) tuples"
    return None


def unlike_this_run(
    checkpoint: dict[str, Any],
    networks: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    env: gym.Env,
) -> str | None:
    """What, in a checkpoint of the current format, differs from what this run's networks, optimizers, env and random
    streams would write (keys, types, shapes); None if nothing does."""
    expected = {*networks, *optimizers, "wall_s", "evaluations", "train_return", "episode", "rng", "buffer_added"}
    if missing := sorted(expected - checkpoint.keys()):
        return f"it lacks {', '.join(missing)}"
    for name, module in networks.items():
        if kind(checkpoint[name]) != kind(module.state_dict()):
            return f"its {name} does not fit these networks"
    for name, optimizer in optimizers.items():  # Adam's step count and two moments for each parameter, or none yet
        params = [param for group in optimizer.param_groups for param in group["params"]]
        adam = [{"step": kind(torch.tensor(0.0))} | dict.fromkeys(("exp_avg", "exp_avg_sq"), kind(p)) for p in params]
        state = checkpoint[name].get("state") if isinstance(checkpoint[name], dict) else None
        if kind(state) not in ({}, dict(enumerate(adam))):
            return f"its {name} does not fit these networks"
    scalars = {"wall_s": (float,), "train_return": (float,), "buffer_added": (int, type(None))}
    scalars |= {"buffer_id": (str, type(None))}
    for name, types in scalars.items():
        if type(checkpoint.get(name)) not in types:
            return f"its {name} is {reprlib.repr(checkpoint[name])}"
    saved_rng = checkpoint["rng"]
    cuda = saved_rng.get("cuda") if isinstance(saved_rng, dict) else None  # a GPU machine's, whatever this one has
    if not isinstance(cuda, list) or not all(isinstance(state, torch.Tensor) for state in cuda):
        return "its random states are not those sac_v saves"
    if kind({**saved_rng, "cuda": []}) != kind({**rng_states(env.action_space), "cuda": []}):
        return "its random states are not those sac_v saves"
    episode = checkpoint["episode"]
    expected_episode = {"seed": int, "rng": kind(env.np_random.bit_generator.state), "length": int, "return": float}
    if not isinstance(episode, dict) or type(episode.get("seed")) not in (int, type(None)):
        return "its episode in progress is not what sac_v saves"
    if kind({**episode, "seed": 0}) != expected_episode or episode["length"] < 0:
        return "its episode in progress is not what sac_v saves"
    return None


def check_spaces(checkpoint: dict[str, Any], env: gym.Env, env_id: str) -> None:
    """Refuse an env whose observation or action shape, or action bounds, differ from those the checkpoint's policy
    was trained on."""
    trained = (checkpoint["actor"]["trunk.0.weight"].shape[1], checkpoint["actor"]["mean.weight"].shape[0])
    here = (env.observation_space.shape[0], env.action_space.shape[0])
    if trained != here:
        trained_on = f"{checkpoint['args']['env_id']} (observation size {trained[0]}, action size {trained[1]})"
        here_on = f"{env_id} (observation size {here[0]}, action size {here[1]})"
        raise ConfigError(f"the checkpoint's policy, trained on {trained_on}, does not fit {here_on}")
    scale, bias = checkpoint["actor"].get("action_scale"), checkpoint["actor"].get("action_bias")
    low, high = env.action_space.low, env.action_space.high
    if scale is not None and not (np.allclose(bias - scale, low) and np.allclose(bias + scale, high)):
        trained = f"low {(bias - scale).tolist()}, high {(bias + scale).tolist()}"
        raise ConfigError(f"the checkpoint's policy acts within {trained}; {env_id} within low {low}, high {high}")


def check_resumable(checkpoint: dict[str, Any], args: Args) -> None:
    """A resumed run continues the same experiment: same env, same networks, more steps."""
    saved, step, version = checkpoint["args"], checkpoint["global_step"], checkpoint["format_version"]
    sizes, env_id = flag_value(saved["hidden_sizes"]), saved["env_id"]
    checks = [
        (version == CHECKPOINT_VERSION, f"has checkpoint format {version}, older than a resume needs; evaluate it"),
        (env_id == args.env_id, f"was trained on {env_id}, not {args.env_id}; a resumed run keeps it"),
        (tuple(saved["hidden_sizes"]) == args.hidden_sizes, f"has --hidden-sizes {sizes}; a resumed run keeps them"),
        (saved["seed"] == args.seed, f"has --seed {saved['seed']}; a resumed run keeps it"),
        (step < args.total_timesteps, f"is already at step {step}; pass a --total-timesteps above it to go on"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{args.resume} {message}")


def buffer_path(checkpoint_path: Path) -> Path:
    return checkpoint_path.with_suffix(".buffer.npz")


def load_buffer(path: Path, checkpoint: dict[str, Any], args: Args) -> ReplayBuffer | None:
    """The replay buffer saved with the checkpoint; None, with a note, where there is none."""
    if checkpoint["buffer_added"] is None or not path.is_file():
        print(f"note: no replay buffer at {path}: the resumed run refills one, so it is not an exact continuation")
        return None
    try:
        rb = ReplayBuffer.load(path)
    except Exception as e:  # a truncated or corrupted file raises whatever zipfile or numpy meets first
        raise ConfigError(f"{path} is not a readable replay buffer ({type(e).__name__}); move it away") from None
    # A checkpoint written before buffer ids (buffer_id absent) is paired by the transition count alone, as it was.
    buffer_id = checkpoint.get("buffer_id")
    if rb.added != checkpoint["buffer_added"] or (buffer_id is not None and rb.tag != buffer_id):
        raise ConfigError(f"{path} and {args.resume} were not saved together; move the buffer away to resume")
    if buffer_id is None:
        print(f"note: {args.resume} predates buffer ids: its buffer is paired by its transition count only")
    if rb.capacity != args.buffer_size:
        raise ConfigError(f"{path} holds a buffer of size {rb.capacity}; resume with --buffer-size {rb.capacity}")
    return rb


def rng_states(action_space: gym.Space) -> dict[str, Any]:
    """Every random stream the loop draws from, as plain values (numpy's as lists, PCG64's as big ints)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state(), "cuda": cuda}
    return states | {"action_space": action_space.np_random.bit_generator.state}


def set_rng_states(states: dict[str, Any], action_space: gym.Space) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    action_space.np_random.bit_generator.state = states["action_space"]


def replay_episode(env: gym.Env, rb: ReplayBuffer, episode: dict[str, Any]) -> np.ndarray:
    """Bring env back to where a checkpoint left it mid-episode: a Box2D or MuJoCo state is not saved, but the env
    is deterministic given how the episode was reset and the actions since, which the buffer holds."""
    env.np_random.bit_generator.state = episode["rng"]
    obs, _ = env.reset(seed=episode["seed"])
    for i in range(rb.pos - episode["length"], rb.pos):  # a negative index wraps around the ring
        obs, *_ = env.step(rb.actions[i])
        if not np.array_equal(np.asarray(obs, np.float32), rb.next_obs[i]):
            print("warning: the env did not replay its episode exactly; the resumed run is not bit-identical")
            break
    return obs


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE")  # the last two, a closed terminal or pipe: POSIX only


@contextlib.contextmanager
def stop_signals(stop_now: Callable[[int], None] | None = None) -> Iterator[list[int]]:
    """Within it, SIGINT, SIGTERM, SIGHUP (the terminal closed) and SIGPIPE (a write to a closed pipe) are only
    appended to the list it gives, so that the loop stops between two steps and saves; a second one calls stop_now, or
    gets the previous handler (Ctrl-C twice stops at once). SIGPIPE comes with every write to the closed pipe, so it is
    never a second one. Only the main thread can."""
    received: list[int] = []
    main_thread = threading.current_thread() is threading.main_thread()
    signums = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)] if main_thread else []
    previous = {signum: signal.getsignal(signum) for signum in signums}

    def request_stop(signum: int, frame: object) -> None:
        if signum == getattr(signal, "SIGPIPE", None) and received:
            return
        if received and stop_now is not None:
            stop_now(signum)
        received.append(signum)
        if stop_now is None:
            signal.signal(signum, previous[signum])

    for signum in previous:
        signal.signal(signum, request_stop)
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def quiet_writer_thread(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """threading.excepthook without the traceback of TensorBoard's writer thread: the write it failed is raised again
    in the main thread, which says it in one sentence."""

    def excepthook(args: Any) -> None:
        if type(args.thread).__name__ != "_AsyncWriterThread":
            hook(args)

    return excepthook


class Survivor:
    """A console stream (stdout, stderr) that writes each line through, so that a log file or pipe is current, and
    never raises: once its reader is gone (a closed pipe, a closed terminal) the rest goes to `fallback`, else nowhere.
    The kernel's SIGPIPE meanwhile asks a training run to stop (stop_signals)."""

    def __init__(self, stream: IO[str], fallback: Survivor | None = None):
        self.stream, self.fallback, self.lost = stream, fallback, False

    def write(self, text: str) -> int:
        if self.lost:
            return self.fallback.write(text) if self.fallback else len(text)
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:  # EPIPE, EIO
            self.lose()
            return self.write(text)
        return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            self.lose()

    def lose(self) -> None:
        """The reader is gone: the file descriptor now leads nowhere, so the interpreter's last flush cannot fail."""
        self.lost = True
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def survive_closed_consoles(stdout_then_stderr: bool = True) -> None:
    """Make the CLI's stdout and stderr Survivors: output to a closed pipe or terminal never ends in a traceback; what
    stdout could not take goes to stderr (the stop's last lines), or nowhere. A stream closed before the start (`>&-`),
    which Python gives as None, writes nowhere."""
    nowhere = open(os.devnull, "w")  # noqa: SIM115 (held for the process's life, as the streams it stands for)
    sys.stderr = Survivor(sys.stderr or nowhere)
    sys.stdout = Survivor(sys.stdout or nowhere, fallback=sys.stderr if stdout_then_stderr else None)


def flat_tensors(inputs: Sequence[torch.Tensor | Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    return [t for x in inputs for t in ((x,) if isinstance(x, torch.Tensor) else x)]


class CudaGraphed:
    """A function of fixed-shape tensors (or tuples of them), recorded once as a CUDA graph and then replayed: a whole
    gradient step becomes one launch instead of hundreds. Its first `warmup` calls run normally (on a side stream, as
    capture needs); the outputs of a replay live in fixed tensors that the next replay overwrites."""

    def __init__(self, fn: Callable[..., Any], warmup: int = 3):
        self.fn, self.warmup, self.calls = fn, warmup, 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: list[torch.Tensor] = []
        self.static_out: Any = None

    def __call__(self, *inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> Any:
        self.calls += 1
        if self.calls <= self.warmup:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                out = self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(stream)
            return out
        if self.graph is None:
            static = [x.clone() if isinstance(x, torch.Tensor) else tuple(t.clone() for t in x) for x in inputs]
            self.static_inputs = flat_tensors(static)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_out = self.fn(*static)
        else:
            for static_input, x in zip(self.static_inputs, flat_tensors(inputs), strict=True):
                static_input.copy_(x, non_blocking=True)
        self.graph.replay()  # recording ran nothing: the first replay is this call's work
        return self.static_out


def fast_paths(step: Callable, sample_action: Callable, args: Args) -> tuple[Callable, Callable]:
    """The gradient step and the policy's sampler as the flags ask: plain, compiled, and/or CUDA-graphed (the
    sampler too: one env step's action is a dozen small kernels)."""
    if args.compile and resolve_device(args.device).type == "cpu":
        print(
            "note: on CPU, --compile makes the step slower than eager at these sizes (docs/speed.md); it pays on CUDA"
        )
    if args.compile:
        step, sample_action = torch.compile(step), torch.compile(sample_action)
    if args.cudagraphs:
        step, sample_action = CudaGraphed(step), CudaGraphed(sample_action)
    return step, sample_action


def exit_at_once(signum: int, frame: object) -> None:
    """The CLI's Ctrl-C outside a training run (while it starts, or after a stop has saved): exit quietly, as a shell
    tool does, where a KeyboardInterrupt could land in a finalizer and print a traceback."""
    os._exit(128 + signum)


if __name__ == "__main__":
    survive_closed_consoles()
    signal.signal(signal.SIGINT, exit_at_once)
    main()
