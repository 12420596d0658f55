"""Soft Actor-Critic with a learned state value V (SAC-V; Haarnoja et al. 2018, arXiv 1801.01290).

The original SAC: a tanh-squashed Gaussian actor, twin soft Q critics, and a soft state-value network V whose
moving average V̄ supplies the Q target. Equation numbers below refer to the paper.
Run `python sac_v.py --help` for the flags; `tensorboard --logdir runs` to watch; `python sac_v_eval.py` to evaluate;
`python sac_v.py --resume runs/<run>/sac_v.pt` to continue a run (Ctrl-C saves one to continue).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import itertools
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
import tyro
from torch import nn
from torch.func import functional_call
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from buffer import ReplayBuffer

CHECKPOINT_VERSION = 3  # 2: all a resume needs (RNG states, the episode in progress); 3: qf1, qf2 stacked as qf
LOG_EVERY = 100  # env steps between training scalars: logging is a host sync, so not every step


@dataclasses.dataclass
class Args:
    env_id: str = "LunarLanderContinuous-v3"
    """the gymnasium environment id (needs a bounded Box action space)"""
    paper: bool = False
    """start from the paper's settings for the MuJoCo task of --env-id (flags given beside it still win)"""
    seed: int = 1
    """seeds Python, numpy, torch, the envs, the action space and the replay buffer"""
    total_timesteps: int = 100_000
    """number of environment steps to train for"""
    reward_scale: float = 5.0
    """c, the inverse temperature: multiplies the reward in the Q target (LunarLander benchmark; seed study: 40)"""
    min_pool: int = 20_000
    """random-action transitions collected before the first gradient step (seed study: 20 000 for LunarLander)"""
    buffer_size: int = 50_000
    """replay buffer capacity (seed study; the paper's is 1e6)"""
    batch_size: int = 200
    """minibatch size of each gradient step (seed study; the paper's is 256)"""
    gradient_steps: int = 1
    """gradient steps per environment step once the pool is full (paper Table 1: 1)"""
    gamma: float = 0.99
    """discount factor (paper Table 1)"""
    tau: float = 0.005
    """V̄ <- tau * V + (1 - tau) * V̄ after every gradient step (paper Table 1)"""
    alpha: float = 1.0
    """entropy temperature; kept at 1 as in the paper, tune --reward-scale instead"""
    policy_lr: float = 3e-3
    """Adam learning rate of the actor (seed study; the paper's 3e-4 left LunarLander hovering at 100k steps)"""
    critic_lr: float = 3e-3
    """Adam learning rate of the twin Q networks and of V (seed study; the paper's is 3e-4)"""
    anneal_lr: bool = False
    """decay both learning rates linearly from their values to 0 at --total-timesteps (the paper keeps them fixed)"""
    hidden_sizes: tuple[int, ...] = (200, 200)
    """widths of the ReLU hidden layers of every network (seed study; the paper's are 256, 256)"""
    eval_every: int = 5_000
    """env steps between deterministic evaluations and checkpoints (the seed study's epoch)"""
    eval_episodes: int = 10
    """episodes per deterministic evaluation"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """where the networks live; auto picks CUDA when available"""
    torch_deterministic: bool = True
    """ask torch for deterministic kernels (bit-identical runs on CPU)"""
    exp_name: str = "sac_v"
    """experiment name, part of the run folder runs/{env_id}__{exp_name}__{seed}__{time}"""
    resume: Path | None = None
    """continue the run of this checkpoint: same folder, steps continue; its flags are the defaults"""
    save_buffer: Literal["auto", "always", "never"] = "auto"
    """save the replay buffer beside each checkpoint, for an exact resume (auto: when it is under 1 GB)"""
    capture_video: bool = False
    """record the first episode of each evaluation to videos/<run>/ (needs the video extra)"""
    compile: bool = False
    """torch.compile the gradient step and the policy's action sampling (pays a compile time up front)"""
    cudagraphs: bool = False
    """CUDA only: record the whole gradient step as one CUDA graph and replay it each step"""
    bf16: bool = False
    """run the gradient step's matmuls in bfloat16 (weights, losses and Adam stay float32); needs a CPU or GPU with
    native bfloat16 to pay"""


# The paper's settings (Table 1 and its reward scales, Appendix D), with the random-action steps of the authors' code;
# evaluation every 10 000 steps is this project's protocol. Per task: (reward scale, min pool).
PAPER_SETTINGS: dict[str, Any] = dict(
    total_timesteps=1_000_000,
    buffer_size=1_000_000,
    batch_size=256,
    gradient_steps=1,
    gamma=0.99,
    tau=0.005,
    alpha=1.0,
    policy_lr=3e-4,
    critic_lr=3e-4,
    hidden_sizes=(256, 256),
    eval_every=10_000,
)
PAPER_TASKS = {
    "HalfCheetah": (5.0, 10_000),
    "Hopper": (5.0, 1_000),
    "Walker2d": (5.0, 1_000),
    "Ant": (5.0, 10_000),
    "Humanoid": (20.0, 1_000),
}


def paper_args(env_id: str) -> Args:
    """The paper's settings for a MuJoCo task (any version: HalfCheetah-v5, Hopper-v4, ...)."""
    task = env_id.split("-v")[0]
    if task not in PAPER_TASKS:
        raise ConfigError(f"--paper knows the paper's MuJoCo tasks ({', '.join(PAPER_TASKS)}), not {env_id}")
    reward_scale, min_pool = PAPER_TASKS[task]
    return Args(env_id=env_id, paper=True, reward_scale=reward_scale, min_pool=min_pool, **PAPER_SETTINGS)


class ConfigError(ValueError):
    """Bad user input: reported as one sentence and a non-zero exit, never a traceback."""


class DivergenceError(RuntimeError):
    """A loss or parameter became NaN or infinite: training stops and the last good checkpoint stays."""


def validate_args(args: Args) -> None:
    """Refuse bad flags before anything is created or written."""
    checks = [
        (args.total_timesteps > 0, f"--total-timesteps must be positive, got {args.total_timesteps}"),
        (args.batch_size > 0, f"--batch-size must be positive, got {args.batch_size}"),
        (args.gradient_steps > 0, f"--gradient-steps must be positive, got {args.gradient_steps}"),
        (args.min_pool > 0, f"--min-pool must be positive, got {args.min_pool}"),
        (args.buffer_size > 0, f"--buffer-size must be positive, got {args.buffer_size}"),
        (
            args.min_pool <= args.buffer_size,
            f"--min-pool ({args.min_pool}) cannot exceed --buffer-size ({args.buffer_size})",
        ),
        (
            args.min_pool >= args.batch_size,
            f"--min-pool ({args.min_pool}) must be at least --batch-size ({args.batch_size})",
        ),
        (0 < args.tau <= 1, f"--tau must be in (0, 1], got {args.tau}"),
        (0 <= args.gamma <= 1, f"--gamma must be in [0, 1], got {args.gamma}"),
        (args.alpha >= 0, f"--alpha must be non-negative, got {args.alpha}"),
        (args.reward_scale > 0, f"--reward-scale must be positive, got {args.reward_scale}"),
        (args.policy_lr > 0 and args.critic_lr > 0, "--policy-lr and --critic-lr must be positive"),
        (
            len(args.hidden_sizes) > 0 and min(args.hidden_sizes) > 0,
            f"--hidden-sizes needs at least one positive width, got {args.hidden_sizes}",
        ),
        (args.eval_every > 0, f"--eval-every must be positive, got {args.eval_every}"),
        (args.eval_episodes > 0, f"--eval-episodes must be positive, got {args.eval_episodes}"),
        (
            not args.capture_video or importlib.util.find_spec("moviepy") is not None,
            '--capture-video needs moviepy: pip install -e ".[video]"',
        ),
        (
            not args.cudagraphs or resolve_device(args.device).type == "cuda",
            "--cudagraphs needs a CUDA device; drop it on CPU (use --compile there)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def make_env(env_id: str, render_mode: str | None = None) -> gym.Env:
    """A gymnasium env with a flat Box observation and a bounded Box action space, or a ConfigError."""
    try:
        env = gym.make(env_id, **({"render_mode": render_mode} if render_mode else {}))  # not every env takes one
    except gym.error.Error as e:
        raise ConfigError(f"cannot make environment {env_id!r}: {str(e).splitlines()[0]}") from None
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        env.close()
        raise ConfigError(
            f"{env_id} has action space {space}; SAC needs continuous actions in a bounded Box "
            "(try LunarLanderContinuous-v3 or Pendulum-v1)"
        )
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        env.close()
        raise ConfigError(f"{env_id} has observation space {env.observation_space}; sac_v needs a flat Box")
    return env


def record_video(env: gym.Env, folder: Path, name_prefix: str, every: int = 1) -> gym.Env:
    """Record every `every`-th episode of an rgb_array env to folder/{name_prefix}-episode-{i}.mp4."""
    return gym.wrappers.RecordVideo(env, str(folder), lambda episode: episode % every == 0, name_prefix=name_prefix)


def mlp(
    in_dim: int,
    hidden_sizes: Sequence[int],
    out_dim: int | None = None,
    linear: Callable[[int, int], nn.Module] = nn.Linear,
) -> nn.Sequential:
    """Linear + ReLU layers of the given widths, then a linear output layer unless out_dim is None."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [linear(in_dim, width), nn.ReLU()]
        in_dim = width
    if out_dim is not None:
        layers.append(linear(in_dim, out_dim))
    return nn.Sequential(*layers)


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


class SoftQNetwork(nn.Module):
    """Q_θ1(s, a) and Q_θ2(s, a): the twin soft Q critics, whose minimum curbs overestimation. Two independent
    networks, stored stacked so that each layer of both is one batched matmul."""

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


def detached(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's parameters cut from autograd: a call with them passes gradients to its inputs, not its weights."""
    return {name: p.detach() for name, p in module.named_parameters()}


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
    # The policy loss differentiates through Q into ã, never into θ1, θ2.
    qf1_pi, qf2_pi = functional_call(qf, detached(qf), (obs, pi_actions))
    min_q_pi = torch.min(qf1_pi, qf2_pi)

    # Eq. 5: V regresses on min Q(s, ã) - α log π(ã|s), with ã from the current policy, not the buffer.
    v_target = (min_q_pi - alpha * log_pi).detach()
    v = vf(obs)
    v_loss = 0.5 * F.mse_loss(v, v_target)

    # Eq. 8: Q regresses on c·r + γ(1 - d)V̄(s'); d marks a true termination, never a time limit.
    with torch.no_grad():
        q_target = reward_scale * rewards + gamma * (1 - terminated) * vf_target(next_obs)
    qf1_values, qf2_values = qf(obs, actions)
    qf1_loss = 0.5 * F.mse_loss(qf1_values, q_target)
    qf2_loss = 0.5 * F.mse_loss(qf2_values, q_target)

    # Eq. 12 with the reparameterization trick: minimise α log π(ã|s) - min Q(s, ã).
    actor_loss = (alpha * log_pi - min_q_pi).mean()
    return {
        "qf1_loss": qf1_loss,
        "qf2_loss": qf2_loss,
        "v_loss": v_loss,
        "actor_loss": actor_loss,
        "qf1": qf1_values.mean(),
        "qf2": qf2_values.mean(),
        "v": v.mean(),
        "v_target": v_target.mean(),
        "q_target": q_target,
        "entropy": -log_pi.mean(),
    }


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
    # Backward runs outside autocast, as torch advises.
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


def make_optimizers(actor: Actor, qf: SoftQNetwork, vf: SoftVNetwork, args: Args) -> dict[str, torch.optim.Optimizer]:
    """Three Adams: the policy, both critics together, V. Fused: each step is one kernel over all its tensors."""
    device = next(actor.parameters()).device
    flags = optimizer_flags(device, args)
    policy_lr, critic_lr = learning_rates(args, device)
    return {
        "actor_optimizer": torch.optim.Adam(actor.parameters(), lr=policy_lr, **flags),
        "q_optimizer": torch.optim.Adam(qf.parameters(), lr=critic_lr, **flags),
        "v_optimizer": torch.optim.Adam(vf.parameters(), lr=critic_lr, **flags),
    }


def learning_rates(args: Args, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's and the critics' learning rates as tensors on the device: --anneal-lr changes them in place, and
    compiled and CUDA-graphed steps read them at every call. float64 on CPU, where Adam then computes exactly as with
    a Python float; CUDA's fused Adam takes float32."""
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    return tuple(torch.tensor(lr, dtype=dtype, device=device) for lr in (args.policy_lr, args.critic_lr))


def anneal_learning_rates(optimizers: Sequence[torch.optim.Optimizer], args: Args, global_step: int) -> None:
    """--anneal-lr: at env step t of T, each rate is its flag's value times 1 - (t - 1) / T."""
    fraction = 1 - (global_step - 1) / args.total_timesteps
    for optimizer, lr in zip(optimizers, (args.policy_lr, args.critic_lr, args.critic_lr), strict=True):
        optimizer.param_groups[0]["lr"].fill_(lr * fraction)


def optimizer_flags(device: torch.device, args: Args) -> dict[str, bool]:
    """Adam's implementation flags for this device; a CUDA graph needs the step counts kept on the GPU."""
    return {"fused": device.type in ("cpu", "cuda"), "capturable": args.cudagraphs}


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


def fast_paths(
    actor: Actor,
    qf: SoftQNetwork,
    vf: SoftVNetwork,
    vf_target: SoftVNetwork,
    optimizers: Sequence[torch.optim.Optimizer],
    args: Args,
) -> tuple[Callable[..., dict[str, torch.Tensor]], Callable[..., tuple[torch.Tensor, ...]]]:
    """The gradient step as a function of the batch, and the policy's sampler: plain, compiled, and/or CUDA-graphed."""

    def gradient_step(batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        return update(batch, actor, qf, vf, vf_target, optimizers, args)

    step, sample_action = gradient_step, actor.get_action
    if args.compile:
        step, sample_action = torch.compile(gradient_step), torch.compile(actor.get_action)
    if args.cudagraphs:  # the sampler too: one env step's action is a dozen small kernels
        step, sample_action = CudaGraphed(step), CudaGraphed(sample_action)
    return step, sample_action


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


def save_checkpoint(path: Path, **contents: object) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format_version": CHECKPOINT_VERSION, **contents}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint as plain tensors, numbers and strings (weights_only: nothing is unpickled)."""
    if not path.is_file():
        raise ConfigError(f"no checkpoint file at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ConfigError(
            f"{path} is not a readable sac_v checkpoint (truncated, corrupted, or not a plain-tensor torch file)"
        ) from None
    if not isinstance(checkpoint, dict) or not {"format_version", "args", "actor"} <= checkpoint.keys():
        raise ConfigError(f"{path} is not a sac_v checkpoint: it lacks the format version, args or actor")
    if checkpoint["format_version"] > CHECKPOINT_VERSION:
        raise ConfigError(
            f"{path} has checkpoint format {checkpoint['format_version']}, newer than this sac_v reads "
            f"({CHECKPOINT_VERSION}); update sac_v"
        )
    return checkpoint


def check_spaces(checkpoint: dict[str, Any], env: gym.Env, env_id: str) -> None:
    """Refuse an env whose observation or action shape differs from those the checkpoint's policy was trained on."""
    trained = (checkpoint["actor"]["trunk.0.weight"].shape[1], checkpoint["actor"]["mean.weight"].shape[0])
    here = (env.observation_space.shape[0], env.action_space.shape[0])
    if trained != here:
        raise ConfigError(
            f"the checkpoint's policy, trained on {checkpoint['args']['env_id']} (observation size {trained[0]}, "
            f"action size {trained[1]}), does not fit {env_id} (observation size {here[0]}, action size {here[1]})"
        )


def check_resumable(checkpoint: dict[str, Any], args: Args) -> None:
    """A resumed run continues the same experiment: same env, same networks, more steps."""
    saved, step = checkpoint["args"], checkpoint["global_step"]
    if checkpoint["format_version"] < CHECKPOINT_VERSION:
        raise ConfigError(
            f"{args.resume} has checkpoint format {checkpoint['format_version']}, older than the {CHECKPOINT_VERSION} "
            "a resume needs (its RNG states and stacked critics); evaluate it instead"
        )
    if saved["env_id"] != args.env_id:
        raise ConfigError(
            f"{args.resume} was trained on {saved['env_id']}, not {args.env_id}; a resumed run keeps its env"
        )
    if tuple(saved["hidden_sizes"]) != tuple(args.hidden_sizes):
        raise ConfigError(
            f"{args.resume} has networks with --hidden-sizes {' '.join(map(str, saved['hidden_sizes']))}, "
            f"not {' '.join(map(str, args.hidden_sizes))}; a resumed run keeps its network sizes"
        )
    if step >= args.total_timesteps:
        raise ConfigError(f"{args.resume} is already at step {step}; pass a --total-timesteps above it to go on")


def buffer_path(checkpoint_path: Path) -> Path:
    return checkpoint_path.with_suffix(".buffer.npz")


def load_buffer(path: Path, checkpoint: dict[str, Any], args: Args) -> ReplayBuffer | None:
    """The replay buffer saved with the checkpoint; None, with a note, where there is none."""
    if checkpoint["buffer_added"] is None or not path.is_file():
        print(f"note: no replay buffer at {path}: the resumed run refills one, so it is not an exact continuation")
        return None
    try:
        rb = ReplayBuffer.load(path)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{path} is not a readable replay buffer ({e}); move it away to resume without it") from None
    if rb.added != checkpoint["buffer_added"]:
        raise ConfigError(
            f"{path} holds {rb.added} transitions, but {args.resume} was saved with {checkpoint['buffer_added']}: "
            "they were not saved together; move the buffer away to resume without it"
        )
    if rb.capacity != args.buffer_size:
        raise ConfigError(f"{path} holds a buffer of size {rb.capacity}; resume with --buffer-size {rb.capacity}")
    return rb


def new_run_dir(path: Path) -> Path:
    """Create the run folder `path`, or `path-2`, `path-3`, ... where a run started in the same second has it: the
    creation is atomic, so two runs never share a folder."""
    for i in itertools.count(1):
        run_dir = path if i == 1 else path.with_name(f"{path.name}-{i}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def rng_states(action_space: gym.Space) -> dict[str, Any]:
    """Every random stream the loop draws from, as plain values (numpy's as lists, PCG64's as big ints)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "action_space": action_space.np_random.bit_generator.state,
    }


def set_rng_states(states: dict[str, Any], action_space: gym.Space) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    action_space.np_random.bit_generator.state = states["action_space"]


def replay_episode(env: gym.Env, rb: ReplayBuffer, episode: dict[str, Any]) -> np.ndarray:
    """Bring env back to where a checkpoint left it mid-episode: a Box2D state cannot be saved, but the env is
    deterministic given how the episode was reset and the actions since, which the buffer holds."""
    env.np_random.bit_generator.state = episode["rng"]
    obs, _ = env.reset(seed=episode["seed"])
    for i in range(rb.pos - episode["length"], rb.pos):  # a negative index wraps around the ring
        obs, *_ = env.step(rb.actions[i])
        if not np.array_equal(np.asarray(obs, np.float32), rb.next_obs[i]):
            print("warning: the env did not replay its episode exactly; the resumed run is not bit-identical")
            break
    return obs


def catch_stop_signals() -> tuple[list[int], Callable[[], None]]:
    """From now on SIGINT and SIGTERM only append to the returned list, so the loop can stop between two steps and
    save; a second one gets the previous handler (Ctrl-C twice stops at once). Also returns the function that puts
    the previous handlers back. Handlers can only be installed in the main thread: elsewhere this does nothing."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return received, lambda: None
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, frame: object) -> None:
        received.append(signum)
        signal.signal(signum, previous[signum])

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    for signum in previous:
        signal.signal(signum, request_stop)
    return received, restore


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


def train(args: Args) -> TrainResult:
    validate_args(args)
    device = resolve_device(args.device)
    resumed = load_checkpoint(args.resume) if args.resume else None
    if resumed:
        check_resumable(resumed, args)
    env = make_env(args.env_id)
    eval_env = make_env(args.env_id, render_mode="rgb_array" if args.capture_video else None)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic

    actor = Actor(env.observation_space, env.action_space, args.hidden_sizes).to(device)
    qf = SoftQNetwork(env.observation_space, env.action_space, args.hidden_sizes).to(device)
    vf = SoftVNetwork(env.observation_space, args.hidden_sizes).to(device)
    vf_target = SoftVNetwork(env.observation_space, args.hidden_sizes).to(device)
    vf_target.load_state_dict(vf.state_dict())  # V̄ starts as an exact copy of V
    vf_target.requires_grad_(False)
    networks = {"actor": actor, "qf": qf, "vf": vf, "vf_target": vf_target}
    optimizers = make_optimizers(actor, qf, vf, args)

    rb = ReplayBuffer(env.observation_space.shape[0], env.action_space.shape[0], args.buffer_size, seed=args.seed)
    save_buffer = args.save_buffer == "always" or (args.save_buffer == "auto" and rb.nbytes < 2**30)
    env.action_space.seed(args.seed)
    # How the current episode began: a resumed run replays it from there (see replay_episode).
    episode = {"seed": args.seed, "rng": env.np_random.bit_generator.state, "length": 0, "return": 0.0}
    obs, _ = env.reset(seed=args.seed)
    last_train_return, last_eval_return = float("nan"), float("nan")
    evaluations: list[Evaluation] = []
    start_step, elapsed = 0, 0.0

    if resumed:
        run_dir, checkpoint_path = args.resume.parent, args.resume
        check_spaces(resumed, env, args.env_id)
        for name, module in {**networks, **optimizers}.items():
            module.load_state_dict(resumed[name])
        policy_lr, critic_lr = learning_rates(args, device)
        for optimizer, lr in zip(optimizers.values(), (policy_lr, critic_lr, critic_lr), strict=True):
            # a resumed run may change the learning rates, and the device: the implementation flags follow this run
            optimizer.param_groups[0].update(lr=lr, **optimizer_flags(device, args))
        saved_rb = load_buffer(buffer_path(checkpoint_path), resumed, args)
        rb = rb if saved_rb is None else saved_rb
        if resumed["episode"]["length"] <= len(rb):  # else start a fresh episode: the replay needs all its actions
            episode = resumed["episode"]
            obs = replay_episode(env, rb, episode)
        set_rng_states(resumed["rng"], env.action_space)
        start_step, elapsed = resumed["global_step"], resumed["wall_s"]
        last_train_return, last_eval_return = resumed["train_return"], resumed["eval_return"]
        evaluations = [Evaluation(*e) for e in resumed["evaluations"]]
    else:
        run_dir = new_run_dir(Path("runs") / f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}")
        checkpoint_path = run_dir / "sac_v.pt"
    if args.capture_video:  # the first episode of each evaluation; the prefix is set to the step before each one
        eval_env = record_video(eval_env, Path("videos") / run_dir.name, "eval", every=args.eval_episodes)
    # On resume, the same folder: scalars a crash logged after the checkpoint are hidden, new ones continue the curves.
    writer = SummaryWriter(str(run_dir), purge_step=start_step + 1 if resumed else None)
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(args).items()),
        start_step,
    )
    last_saved_step = start_step if resumed else None

    def diverged(what: str, global_step: int) -> DivergenceError:
        advice = "try a lower reward scale or learning rate"
        if last_saved_step is None:
            return DivergenceError(f"{what} at step {global_step}, before any checkpoint; {advice}")
        return DivergenceError(
            f"{what} at step {global_step}; the last good checkpoint (step {last_saved_step}) is kept; {advice}: "
            f"python sac_v.py --resume {checkpoint_path} --reward-scale <lower> (or --policy-lr, --critic-lr)"
        )

    def checkpoint(global_step: int) -> None:
        """Save all a resume needs, never over the last good checkpoint with non-finite weights."""
        nonlocal last_saved_step
        for net_name, net in networks.items():
            for name, param in net.named_parameters():
                if not torch.isfinite(param).all():
                    raise diverged(f"parameter {net_name}.{name} is not finite", global_step)
        if save_buffer:
            rb.save(buffer_path(checkpoint_path))
        save_checkpoint(
            checkpoint_path,
            global_step=global_step,
            args={**dataclasses.asdict(args), "resume": str(args.resume) if args.resume else None},
            eval_return=last_eval_return,
            train_return=last_train_return,
            evaluations=[tuple(e) for e in evaluations],
            wall_s=time.time() - start_time,
            episode=episode,
            rng=rng_states(env.action_space),
            buffer_added=rb.added if save_buffer else None,
            **{name: module.state_dict() for name, module in {**networks, **optimizers}.items()},
        )
        last_saved_step = global_step

    gradient_step, sample_action = fast_paths(actor, qf, vf, vf_target, tuple(optimizers.values()), args)
    start_time = time.time() - elapsed
    progress = tqdm(
        total=args.total_timesteps, initial=start_step, desc=args.env_id, unit="step", disable=None, dynamic_ncols=True
    )
    global_step = start_step
    stop_signals, restore_signal_handlers = catch_stop_signals()
    try:
        for global_step in range(start_step + 1, args.total_timesteps + 1):
            # Until the pool holds min_pool transitions: uniform random actions and no learning.
            if len(rb) < args.min_pool:
                action = env.action_space.sample()
            else:
                with torch.no_grad():
                    obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)
                    action = sample_action(obs_t)[0][0].cpu().numpy()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            # Store the true final observation and `terminated` only: a time limit is not a terminal state.
            rb.add(obs, action, float(reward), next_obs, terminated)
            episode["return"] += float(reward)
            episode["length"] += 1
            obs = next_obs
            if terminated or truncated:
                writer.add_scalar("charts/episodic_return", episode["return"], global_step)
                writer.add_scalar("charts/episodic_length", episode["length"], global_step)
                last_train_return = episode["return"]
                episode = {"seed": None, "rng": env.np_random.bit_generator.state, "length": 0, "return": 0.0}
                obs, _ = env.reset()

            if len(rb) >= args.min_pool:
                if args.anneal_lr:
                    anneal_learning_rates(tuple(optimizers.values()), args, global_step)
                for _ in range(args.gradient_steps):
                    batch = tuple(torch.as_tensor(x, device=device) for x in rb.sample(args.batch_size))
                    stats = gradient_step(batch)
                if global_step % LOG_EVERY == 0:
                    for name in ("qf1_loss", "qf2_loss", "v_loss", "actor_loss"):
                        value = stats[name].item()
                        if not math.isfinite(value):  # checked when logged only: .item() waits for the GPU
                            raise diverged(f"{name} is {value}", global_step)
                        writer.add_scalar(f"losses/{name}", value, global_step)
                    for name in ("qf1", "qf2", "v", "v_target"):
                        writer.add_scalar(f"values/{name}", stats[name].item(), global_step)
                    writer.add_scalar("policy/entropy", stats["entropy"].item(), global_step)
                    writer.add_scalar(
                        "charts/policy_lr", optimizers["actor_optimizer"].param_groups[0]["lr"].item(), global_step
                    )
                    with torch.no_grad():
                        writer.add_scalar("policy/log_std", actor(batch[0])[1].mean().item(), global_step)

            if global_step % args.eval_every == 0 or global_step == args.total_timesteps:
                if args.capture_video:
                    eval_env.name_prefix = f"eval-step-{global_step}"
                returns = evaluate(actor, eval_env, args.eval_episodes, seed=args.seed + 10_000)
                last_eval_return = float(returns.mean())
                wall_s = time.time() - start_time
                evaluations.append(Evaluation(global_step, last_eval_return, float(returns.std()), wall_s))
                writer.add_scalar("eval/episodic_return", last_eval_return, global_step)
                checkpoint(global_step)
                progress.write(
                    f"step {global_step}: eval return {last_eval_return:.1f} ± {returns.std():.1f} "
                    f"over {args.eval_episodes} episodes, {global_step / wall_s:.0f} steps/s"
                )

            if global_step % LOG_EVERY == 0:
                sps = global_step / (time.time() - start_time)
                writer.add_scalar("charts/SPS", sps, global_step)
                progress.set_postfix(
                    {"sps": f"{sps:.0f}", "return": f"{last_train_return:.1f}", "eval": f"{last_eval_return:.1f}"}
                )
            progress.update(1)
            if stop_signals:
                break
        if stop_signals:
            if last_saved_step != global_step:
                checkpoint(global_step)
            writer.flush()
            buffer_note = f" and replay buffer {buffer_path(checkpoint_path)}" if save_buffer else ""
            progress.write(
                f"stopped by {signal.Signals(stop_signals[0]).name} at step {global_step}: saved checkpoint "
                f"{checkpoint_path}{buffer_note}\nresume with: python sac_v.py --resume {checkpoint_path}"
            )
    finally:
        restore_signal_handlers()
        progress.close()
        writer.close()
        env.close()
        eval_env.close()
    return TrainResult(run_dir, checkpoint_path, evaluations, rb, stop_signals[0] if stop_signals else None)


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """The command line. With --resume, the checkpoint's flags are the defaults it overrides; with --paper, the
    paper's settings for the task are (and `--help` shows them)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = tyro.cli(Args, args=[a for a in argv if a not in ("-h", "--help")])
    return tyro.cli(Args, args=argv, default=preset_defaults(first))


def preset_defaults(args: Args) -> Args | None:
    """The defaults a command line overrides: a resumed checkpoint's flags, or the paper's settings with --paper."""
    if args.resume is not None:
        saved = load_checkpoint(args.resume)["args"]
        fields = {field.name for field in dataclasses.fields(Args)}
        return Args(**{k: v for k, v in saved.items() if k in fields and k != "resume"}, resume=args.resume)
    return paper_args(args.env_id) if args.paper else None


def main() -> None:
    try:
        result = train(parse_args())
    except (ConfigError, DivergenceError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; the last checkpoint is intact
        sys.exit(130)
    if result.stopped_by is not None:
        sys.exit(128 + result.stopped_by)  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them


if __name__ == "__main__":
    main()
