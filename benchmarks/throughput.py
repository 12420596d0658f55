"""Throughput of SAC-V: env steps, gradient steps and the full training loop, per second; and runs side by side.

    python benchmarks/throughput.py                       # CPU; writes runs/benchmarks/throughput.md
    python benchmarks/throughput.py --record              # the committed table, docs/benchmarks/throughput.md
    python benchmarks/throughput.py --device cuda         # adds --cudagraphs variants; rewrites only the CUDA section
    python benchmarks/throughput.py --cleanrl-python ~/cleanrl-venv/bin/python \
        --cleanrl-script ~/cleanrl/cleanrl/sac_continuous_action.py   # adds CleanRL's SAC (its venv: below)

Measures, at 256×256/batch 256 (the paper's networks), 200×200/batch 200 (sac_v's defaults) and 64×64/batch 100:
  (a) env steps/s of LunarLanderContinuous-v3 alone, with random actions;
  (b) update steps/s of sac_v's gradient step on a fixed synthetic batch, eager, --bf16 and --compile (and on CUDA
      --cudagraphs with and without --compile and --bf16, and torch.compile(mode="reduce-overhead") of the eager step);
  (c) update steps/s of a plain reference update written the straightforward way below: sequential Q, V and policy
      steps, two separate critic modules, zero_grad/backward/step each, a per-parameter target update, default Adam;
  (d) full-training-loop steps/s on LunarLander: act, env step, store, sample, gradient step, as `sac_v.train` does
      once learning has begun (evaluation, checkpoints and logging excluded); at the first two sizes also
      Stable-Baselines3's SAC in its own loop (`model.learn`), where it is installed (the `peers` extra); at 256×256
      also CleanRL's sac_continuous_action.py at its defaults (256×256, batch 256, torch's default thread count) in
      a process and venv of its own, learning from step 1 000: its training steps only, timed by the wall times of
      its TensorBoard log's charts/SPS events (its printed SPS counts from the start, random steps included);
  (e) the matmul floor of sac_v's step: every matmul one step runs (step_gemms, checked against torch's profiler of
      the eager step), each shape timed alone in float32 and in bfloat16 at the run's thread count, summed. The table
      gives each update's step time as a multiple of its dtype's floor (×floor): --bf16 against bfloat16's.
The variants run interleaved, `--repeats` times, and the table gives medians; (b)/(c) comes from the same process.

    python benchmarks/throughput.py side-by-side                            # writes runs/benchmarks/threads.md
    python benchmarks/throughput.py side-by-side --record                   # the committed docs/benchmarks/threads.md
    python benchmarks/throughput.py side-by-side --hidden-sizes 256 256 --batch-size 256  # the paper's sizes

Side by side: threads that share the cores. Each run is its own process taking (d)'s training loop (Loop) with
sac_v's torch threads (Threads). The runs of a case warm up, then all count their steps over the same `--seconds`
window. Cases: one run at sac_v's default `--threads auto` (as many threads as the cores others leave idle, counted
each second), at 1 and at 2 torch threads, OpenMP's idle threads waiting as libgomp does by default (spinning a while,
then sleeping) or sleeping at once (OMP_WAIT_POLICY=passive); two runs side by side, each at auto, at 1 thread, and at
2 threads in either way; one run at auto and at 1 thread beside the test suite (`pytest -q`, started before the
window). Run it on a quiet machine: anything else on the cores skews every case.

CleanRL's venv: its script wants gymnasium 0.29 (which calls LunarLanderContinuous-v3 -v2: --cleanrl-env-id) and
imports cleanrl_utils from its repository (PyPI's cleanrl, 0.4.8, is a 2021 release without it). box2d 2.3.10 has
wheels where gymnasium[box2d]'s box2d-py builds from source; numpy < 2 as gymnasium 0.29 predates it:

    git clone https://github.com/vwxyzjn/cleanrl ~/cleanrl && git -C ~/cleanrl checkout fe8d8a0  # tested there
    python3 -m venv ~/cleanrl-venv
    ~/cleanrl-venv/bin/pip install torch==2.13.0 gymnasium==0.29.1 box2d==2.3.10 "pygame>=2.1.3" "numpy<2" tyro \
        tensorboard
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import importlib.metadata
import importlib.util
import itertools
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import tyro
from common import ROOT, check_writable, cpu_flags, cpu_name, results_path
from torch import nn

import sac_v
from buffer import ReplayBuffer, atomic_path
from sac_v import ConfigError

ENV_ID = "LunarLanderContinuous-v3"
CONFIGS = (((256, 256), 256), ((200, 200), 200), ((64, 64), 100))  # (hidden sizes, batch size)
REDUCE_OVERHEAD = "compile(reduce-overhead)"  # CUDA: torch.compile's CUDA graphs instead of sac_v's CudaGraphed
SB3 = "SB3 SAC"  # Stable-Baselines3's SAC, a (d) variant only: its loop, with sac_v's settings
SB3_OWN = "SB3 SAC, its defaults"  # the same loop at SB3's own defaults (its sizes are the paper's: 256×256 only)
SB3_CONFIGS = CONFIGS[:2]  # the paper's sizes and sac_v's defaults
CLEANRL = "CleanRL SAC"  # CleanRL's sac_continuous_action.py, a (d) variant only: its own process, at its defaults
CLEANRL_CONFIGS = CONFIGS[:1]  # its networks and batch are fixed: 256×256, 256
CLEANRL_LEARNING_STARTS = 1_000
PEERS = (SB3, SB3_OWN, CLEANRL)


@dataclasses.dataclass
class BenchArgs:
    device: Literal["cpu", "cuda"] = "cpu"
    """where the networks live"""
    repeats: int = 5
    """timed rounds of every variant; the table reports medians"""
    update_steps: int = 200
    """gradient steps per timed round on the synthetic batch"""
    loop_steps: int = 300
    """env steps (each with a gradient step) per timed round of the full loop"""
    env_steps: int = 5_000
    """env steps per timed round of the env alone"""
    warmup: int = 20
    """untimed calls before timing each variant (compilation happens here and is timed separately)"""
    pool: int = 2_000
    """random-action transitions in each loop's buffer before its timed rounds"""
    compile: bool = True
    """also measure --compile"""
    reduce_overhead: bool = False
    """on CUDA, also measure torch.compile(mode="reduce-overhead") of the eager step (with torch 2.11 this crashed the
    benchmark; docs/benchmarks/throughput.md gives its figure measured alone)"""
    cold_compile: bool = True
    """compile into a fresh, empty inductor cache, so that the warm-up column shows a first compile"""
    threads: int | None = None
    """torch threads (default: torch's own choice)"""
    output: Path | None = None
    """markdown file; a run rewrites only its own device's section (default runs/benchmarks/throughput.md)"""
    record: bool = False
    """write the committed table, docs/benchmarks/throughput.md"""
    cleanrl_python: Path | None = None
    """the python of a venv with CleanRL's dependencies (this module's docstring makes one): adds CleanRL's SAC"""
    cleanrl_script: Path | None = None
    """CleanRL's cleanrl/sac_continuous_action.py in a clone of its repository (its cleanrl_utils/ beside cleanrl/)"""
    cleanrl_env_id: str = "LunarLanderContinuous-v2"
    """the env's id in CleanRL's gymnasium: 0.29 calls LunarLanderContinuous-v3 v2"""


def hardware(device: torch.device) -> str:
    text = f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


Gemm = tuple[int, int, int, int]  # (stack, m, k, n): `stack` independent (m×k)·(k×n) products in one call


def mlp_gemms(dims: list[int], rows: int, params_grad: bool, input_grad: bool, stack: int = 1) -> list[Gemm]:
    """The matmuls of one pass of an MLP with layer widths `dims` over `rows` inputs, forward and backward: dW of
    every layer where its parameters need a gradient, dX of every layer whose input needs one (the first layer's only
    when the MLP's own input does)."""
    layers = list(itertools.pairwise(dims))
    gemms = [(stack, rows, k, n) for k, n in layers]  # forward: x·W
    if params_grad:
        gemms += [(stack, k, rows, n) for k, n in layers]  # dW = xᵀ·g
    if params_grad or input_grad:
        gemms += [(stack, rows, n, k) for i, (k, n) in enumerate(layers) if i > 0 or input_grad]  # dX = g·Wᵀ
    return gemms


def step_gemms(obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...], batch_size: int) -> list[Gemm]:
    """Every matmul of one sac_v.update, as sac_v_losses and its one backward pass run them."""
    b, trunk, last = batch_size, [obs_dim, *hidden_sizes], hidden_sizes[-1]
    critics, value = [obs_dim + act_dim, *hidden_sizes, 1], [obs_dim, *hidden_sizes, 1]
    return [
        *mlp_gemms(trunk, b, params_grad=True, input_grad=False),  # the actor's trunk on s
        *2 * mlp_gemms([last, act_dim], b, params_grad=True, input_grad=True),  # its heads μ and log σ, into the trunk
        *mlp_gemms(critics, b, params_grad=False, input_grad=True, stack=2),  # Q(s, ã): θ detached, ∂/∂ã for π
        *mlp_gemms(critics, b, params_grad=True, input_grad=False, stack=2),  # Q(s, a) of the buffer's a
        *mlp_gemms(value, b, params_grad=True, input_grad=False),  # V(s)
        *mlp_gemms(value, b, params_grad=False, input_grad=False),  # V̄(s'), no gradient
    ]


DTYPES = (torch.float32, torch.bfloat16)  # --bf16's step is held to the bfloat16 floor, every other to float32's
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def profiled_gemms(step: Callable, batch: tuple[torch.Tensor, ...]) -> list[Gemm]:
    """The matmuls that one call of the step runs, from torch's profiler: the check on step_gemms."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        step(batch)
    gemms = []
    for event in prof.events():
        if event.name not in MATMULS or (event.cpu_parent and event.cpu_parent.name in MATMULS):
            continue  # autocast's matmul calls the matmul again, in bfloat16: one product
        a, b = [shape for shape in event.input_shapes if shape][-2:]  # addmm's and baddbmm's bias comes first
        gemms.append((a[0], a[1], a[2], b[2]) if len(a) == 3 else (1, a[0], a[1], b[1]))
    return gemms


def same_gemms(a: list[Gemm], b: list[Gemm]) -> bool:
    """Whether two lists hold the same products, in any order and either orientation ((AB)ᵀ = BᵀAᵀ costs the same)."""
    canonical = collections.Counter((stack, k, *sorted((m, n))) for stack, m, k, n in a)
    return canonical == collections.Counter((stack, k, *sorted((m, n))) for stack, m, k, n in b)


def gemm_seconds(gemm: Gemm, dtype: torch.dtype, device: torch.device, calls: int, rounds: int) -> float:
    """Seconds per call of one matmul shape alone, in its fastest of `rounds` rounds of `calls` calls."""
    stack, m, k, n = gemm
    a, b = torch.randn(stack, m, k, device=device, dtype=dtype), torch.randn(stack, k, n, device=device, dtype=dtype)
    matmul = torch.bmm if stack > 1 else lambda x, y: torch.mm(x[0], y[0])  # as the step calls it: bmm or mm
    for _ in range(3):
        matmul(a, b)
    best = math.inf
    for _ in range(rounds):
        sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            matmul(a, b)
        sync(device)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def matmul_floor(gemms: list[Gemm], dtype: torch.dtype, device: torch.device, calls: int, rounds: int) -> float:
    """Seconds of a step's matmuls and nothing else: each distinct shape timed alone, times how often the step runs
    it. The step can be no faster than this at this thread count; the rest of it is overhead."""
    counts = collections.Counter(gemms)
    return sum(count * gemm_seconds(gemm, dtype, device, calls, rounds) for gemm, count in counts.items())


class PlainQNetwork(nn.Module):
    """One critic Q(s, a), as a straightforward implementation has two of."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...]):
        super().__init__()
        self.net = sac_v.mlp(obs_dim + act_dim, hidden_sizes, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)


def plain_update_step(env, args: sac_v.Args, device: torch.device) -> tuple[Callable, Callable]:
    """The reference: the textbook SAC-V update, written the straightforward way, one network at a time."""
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = sac_v.Actor(env.observation_space, env.action_space, args.hidden_sizes).to(device)
    qf1 = PlainQNetwork(obs_dim, act_dim, args.hidden_sizes).to(device)
    qf2 = PlainQNetwork(obs_dim, act_dim, args.hidden_sizes).to(device)
    vf = sac_v.SoftVNetwork(env.observation_space, args.hidden_sizes).to(device)
    vf_target = sac_v.SoftVNetwork(env.observation_space, args.hidden_sizes).to(device)
    vf_target.load_state_dict(vf.state_dict())
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.policy_lr)
    q_optimizer = torch.optim.Adam([*qf1.parameters(), *qf2.parameters()], lr=args.critic_lr)
    v_optimizer = torch.optim.Adam(vf.parameters(), lr=args.critic_lr)

    def step(batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        obs, actions, rewards, next_obs, terminated = batch
        with torch.no_grad():
            q_target = args.reward_scale * rewards + args.gamma * (1 - terminated) * vf_target(next_obs)
        qf_loss = 0.5 * F.mse_loss(qf1(obs, actions), q_target) + 0.5 * F.mse_loss(qf2(obs, actions), q_target)
        q_optimizer.zero_grad()
        qf_loss.backward()
        q_optimizer.step()

        with torch.no_grad():
            pi_actions, log_pi, _ = actor.get_action(obs)
            v_target = torch.min(qf1(obs, pi_actions), qf2(obs, pi_actions)) - args.alpha * log_pi
        v_loss = 0.5 * F.mse_loss(vf(obs), v_target)
        v_optimizer.zero_grad()
        v_loss.backward()
        v_optimizer.step()

        pi_actions, log_pi, _ = actor.get_action(obs)
        actor_loss = (args.alpha * log_pi - torch.min(qf1(obs, pi_actions), qf2(obs, pi_actions))).mean()
        actor_optimizer.zero_grad()
        actor_loss.backward()
        actor_optimizer.step()

        with torch.no_grad():
            for p_target, p in zip(vf_target.parameters(), vf.parameters(), strict=True):
                p_target.data.copy_(args.tau * p.data + (1 - args.tau) * p_target.data)
        return {"qf_loss": qf_loss, "v_loss": v_loss, "actor_loss": actor_loss}

    return step, actor.get_action


def project_update_step(
    env, args: sac_v.Args, device: torch.device, reduce_overhead: bool = False
) -> tuple[Callable, Callable]:
    """sac_v's gradient step and policy sampler, with the fast paths that args asks for; or, with reduce_overhead,
    the eager ones given to torch.compile(mode="reduce-overhead"), whose own CUDA graphs might replace --cudagraphs."""
    actor, qf, vf, vf_target = sac_v.make_networks(env, args.hidden_sizes, device)
    # a graphed optimizer step needs Adam's step counts on the GPU, as --cudagraphs has them
    optimizers = tuple(
        sac_v.make_optimizers(
            actor, qf, vf, dataclasses.replace(args, cudagraphs=args.cudagraphs or reduce_overhead)
        ).values()
    )
    step = functools.partial(
        sac_v.update, actor=actor, qf=qf, vf=vf, vf_target=vf_target, optimizers=optimizers, args=args
    )
    step, sample_action = sac_v.fast_paths(step, actor.get_action, args)
    if reduce_overhead:
        step, sample_action = (torch.compile(f, mode="reduce-overhead") for f in (step, sample_action))
    return step, sample_action


def obs_act_dims(env) -> tuple[int, int]:
    return env.observation_space.shape[0], env.action_space.shape[0]


def synthetic_batch(env, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    obs_dim, act_dim = obs_act_dims(env)
    batch = (
        torch.randn(batch_size, obs_dim, generator=g),
        torch.rand(batch_size, act_dim, generator=g) * 2 - 1,
        torch.randn(batch_size, generator=g),
        torch.randn(batch_size, obs_dim, generator=g),
        (torch.rand(batch_size, generator=g) < 0.05).float(),
    )
    return tuple(x.to(device) for x in batch)


class Loop:
    """The hot path of sac_v.train once learning has begun, on its own env and buffer."""

    def __init__(self, step: Callable, sample_action: Callable, args: sac_v.Args, device: torch.device, pool: int):
        self.step, self.sample_action, self.args, self.device = step, sample_action, args, device
        self.env = sac_v.make_env(ENV_ID)
        obs_dim, act_dim = self.env.observation_space.shape[0], self.env.action_space.shape[0]
        self.rb = ReplayBuffer(obs_dim, act_dim, 100_000, seed=0)
        self.env.action_space.seed(0)
        self.obs, _ = self.env.reset(seed=0)
        for _ in range(max(pool, args.batch_size)):  # a pool of random-action transitions to learn from
            self.env_step(self.env.action_space.sample())

    def env_step(self, action: np.ndarray) -> None:
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.rb.add(self.obs, action, float(reward), next_obs, terminated)
        self.obs = next_obs if not (terminated or truncated) else self.env.reset()[0]

    def run(self, steps: int) -> None:
        for _ in range(steps):
            with torch.no_grad():
                obs_t = torch.as_tensor(self.obs, dtype=torch.float32, device=self.device).unsqueeze(0)
                action = self.sample_action(obs_t)[0][0].cpu().numpy()
            self.env_step(action)
            data = self.rb.sample(self.args.batch_size)
            self.step(tuple(torch.as_tensor(x, device=self.device) for x in data))


class SB3Loop:
    """Stable-Baselines3's SAC in its own loop, model.learn, once learning has begun: per env step an action of the
    policy, the env step (through SB3's VecEnv and Monitor), the store and one gradient step, as Loop times for sac_v.
    Its settings are sac_v's (peers.py's sac-v-defaults: entropy coefficient fixed, no V network), or with
    `own_defaults` SB3's own (a learned entropy coefficient, Adam 3e-4, 256×256, batch 256)."""

    def __init__(self, args: sac_v.Args, device: torch.device, pool: int, own_defaults: bool = False):
        import sb3  # needs stable-baselines3

        pool = max(pool, args.batch_size)
        if own_defaults:
            settings = sb3.sb3_defaults(args.device) | {"learning_starts": pool, "buffer_size": 100_000}
        else:
            settings = sb3.sb3_settings("sac-v-defaults", dataclasses.replace(args, min_pool=pool, buffer_size=100_000))
        self.model = sb3.make_model({**settings, "device": device}, ENV_ID, seed=0)
        self.model.learn(pool)  # random actions until learning_starts = pool: the pool, and no gradient step yet

    def run(self, steps: int) -> None:
        updates = self.model._n_updates
        self.model.learn(steps, reset_num_timesteps=False)
        if self.model._n_updates - updates != steps:
            raise RuntimeError(f"SB3 took {self.model._n_updates - updates} gradient steps in {steps} env steps")


class CleanRLRun:
    """CleanRL's SAC script in a process of its own, its venv's python: its defaults (256×256, batch 256, torch's
    own thread count) but the env, the step count and learning from step 1 000. Each call of steps_per_s is one run,
    timed by its TensorBoard log: it writes charts/SPS every 100 steps, each event stamped with its wall time, so the
    training rate is the steps between two events over the time between them (the SPS values themselves count from
    the start, random-action steps included)."""

    def __init__(self, python: Path, script: Path, env_id: str, device: torch.device, warmup: int):
        self.python, self.script, self.env_id, self.device, self.warmup = python, script, env_id, device, warmup
        self.env = dict(os.environ)
        repository = script.resolve().parents[1]
        if (repository / "cleanrl_utils").is_dir():  # the script imports its replay buffer from there
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repository), os.environ.get("PYTHONPATH")]))

    def span(self, steps: int) -> tuple[int, int]:
        """The logged steps that bound the timed part: after `warmup` training steps, `steps` more, each rounded up
        to the log's 100."""
        first = CLEANRL_LEARNING_STARTS + 100 * math.ceil(max(self.warmup, 1) / 100)
        return first, first + 100 * math.ceil(steps / 100)

    def command(self, steps: int) -> list[str]:
        last = self.span(steps)[1]
        command = [str(self.python), str(self.script), "--env-id", self.env_id, "--total-timesteps", str(last + 1)]
        command += ["--learning-starts", str(CLEANRL_LEARNING_STARTS)]
        return command + (["--no-cuda"] if self.device.type == "cpu" else [])  # where sac_v runs, even beside a GPU

    def steps_per_s(self, steps: int) -> float:
        with tempfile.TemporaryDirectory(prefix="cleanrl-") as folder:  # it writes runs/<its run>/ where it starts
            result = subprocess.run(self.command(steps), cwd=folder, env=self.env, capture_output=True, text=True)
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
                raise RuntimeError(f"CleanRL's script failed: {lines[-1]}")
            return training_rate(sps_events(Path(folder) / "runs"), *self.span(steps))


def sps_events(runs: Path) -> dict[int, float]:
    """Step -> wall time of each charts/SPS event in the TensorBoard logs under runs/."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events: dict[int, float] = {}
    if not runs.is_dir():  # a script that logged nothing
        return events
    for run in sorted(path for path in runs.iterdir() if path.is_dir()):
        log = EventAccumulator(str(run), size_guidance={"scalars": 0})  # 0: every event, none sampled away
        log.Reload()
        if "charts/SPS" in log.Tags()["scalars"]:
            events |= {event.step: event.wall_time for event in log.Scalars("charts/SPS")}
    return events


def training_rate(events: dict[int, float], first: int, last: int) -> float:
    """Steps per second between the logged steps first and last."""
    if first not in events or last not in events:
        raise RuntimeError(f"CleanRL's log has no charts/SPS at step {first if first not in events else last}")
    return (last - first) / (events[last] - events[first])


def sb3_installed() -> bool:
    return importlib.util.find_spec("stable_baselines3") is not None


def env_steps_per_s(steps: int) -> float:
    env = sac_v.make_env(ENV_ID)
    env.action_space.seed(0)
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def variants(
    device: torch.device, with_compile: bool, reduce_overhead: bool, all_cores: int = 1
) -> dict[str, dict[str, Any]]:
    """Name -> the sac_v flags of each variant of the project's step ('plain' is the reference); on CPU, where torch
    would take more threads than the run's (`all_cores`), eager and bf16 again at that many (--threads)."""
    names: dict[str, dict[str, Any]] = {"eager": {}, "bf16": {"bf16": True}}
    if device.type == "cpu" and all_cores > torch.get_num_threads():
        names[f"eager, --threads {all_cores}"] = {"threads": all_cores}
        names[f"bf16, --threads {all_cores}"] = {"bf16": True, "threads": all_cores}
    if with_compile:
        names["compile"] = {"compile": True}
    if device.type == "cuda":
        names["cudagraphs"] = {"cudagraphs": True}
        if with_compile:
            names["compile+cudagraphs"] = {"compile": True, "cudagraphs": True}
            names["compile+cudagraphs+bf16"] = {"compile": True, "cudagraphs": True, "bf16": True}
            if reduce_overhead:
                names[REDUCE_OVERHEAD] = {}
    return names


def measure(bench: BenchArgs) -> str:
    device = torch.device(bench.device)
    all_cores = torch.get_num_threads()  # torch's own choice: what SB3's and CleanRL's defaults run at
    if bench.threads:
        torch.set_num_threads(bench.threads)
    for name in ("recompile_limit", "cache_size_limit"):  # one compiled step per variant and size: more than 8
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    env = sac_v.make_env(ENV_ID)
    rows, notes = [], []
    env_rates = [env_steps_per_s(bench.env_steps) for _ in range(bench.repeats)]
    print(f"(a) env steps/s: {statistics.median(env_rates):,.0f}", flush=True)
    for hidden_sizes, batch_size in CONFIGS:
        torch._dynamo.reset()
        batch = synthetic_batch(env, batch_size, device)
        setups, warmup_s, failed = {}, {}, {}
        names = variants(device, bench.compile, bench.reduce_overhead, all_cores)
        if (hidden_sizes, batch_size) in SB3_CONFIGS and sb3_installed():
            names[SB3] = {}
        if (hidden_sizes, batch_size) in CLEANRL_CONFIGS and sb3_installed():
            names[SB3_OWN] = {"threads": all_cores}  # at its defaults: torch's own thread count too
        if (hidden_sizes, batch_size) in CLEANRL_CONFIGS and bench.cleanrl_python:
            names[CLEANRL] = {}
        for name, flags in {"plain": {}, **names}.items():
            torch.manual_seed(0)
            args = sac_v.Args(hidden_sizes=hidden_sizes, batch_size=batch_size, device=bench.device, **flags)
            threads = flags.get("threads", torch.get_num_threads())
            try:
                if name == "plain":
                    step, sample_action = plain_update_step(env, args, device)
                elif name == SB3:  # its loop only: no update of ours to time on the synthetic batch
                    step, loop = None, SB3Loop(args, device, bench.pool)
                elif name == SB3_OWN:
                    step, loop = None, SB3Loop(args, device, bench.pool, own_defaults=True)
                elif name == CLEANRL:  # a process of its own each round, which warms up in it
                    script, env_id = bench.cleanrl_script, bench.cleanrl_env_id
                    step, loop = None, CleanRLRun(bench.cleanrl_python, script, env_id, device, bench.warmup)
                else:
                    reduce_overhead = name == REDUCE_OVERHEAD
                    step, sample_action = project_update_step(env, args, device, reduce_overhead)
                if step is not None:
                    loop = Loop(step, sample_action, args, device, bench.pool)
                start = time.perf_counter()  # the first calls compile and record: timed apart, as a one-off cost
                with torch_threads(threads):
                    if step is not None:
                        for _ in range(bench.warmup):
                            step(batch)
                    if name != CLEANRL:
                        loop.run(bench.warmup)
                sync(device)
            except Exception as e:
                record_failure(failed, f"{hidden_sizes} batch {batch_size}", name, e)
                continue
            warmup_s[name] = time.perf_counter() - start
            setups[name] = (step, loop, threads)
            print(f"  {hidden_sizes} batch {batch_size} {name}: warm-up {warmup_s[name]:.1f} s", flush=True)
        gemms = step_gemms(*obs_act_dims(env), hidden_sizes, batch_size)
        floors_at = {}  # at the run's threads, then at each --threads variant's: its step is held to its own floor
        for threads in dict.fromkeys(
            [torch.get_num_threads(), *(f["threads"] for f in names.values() if "threads" in f)]
        ):
            with torch_threads(threads):
                floors_at[threads] = {
                    d: matmul_floor(gemms, d, device, bench.update_steps, bench.repeats) for d in DTYPES
                }
                notes.append(floor_note(hidden_sizes, batch_size, gemms, floors_at[threads]))
        if "eager" in setups and not same_gemms(profiled := profiled_gemms(setups["eager"][0], batch), gemms):
            notes[-1] += f" But the eager step runs {len(profiled)} matmuls of other shapes: update step_gemms."
        print(notes[-1], flush=True)
        update_rates: dict[str, list[float]] = {name: [] for name in setups}
        loop_rates: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(bench.repeats):  # interleaved, so that drifting load hits every variant alike
            for name, (step, loop, threads) in list(setups.items()):
                try:
                    with torch_threads(threads):
                        update_rate = (
                            updates_per_s(step, batch, bench.update_steps, device) if step is not None else math.nan
                        )
                        loop_rate = loop_steps_per_s(loop, bench.loop_steps, device)
                except Exception as e:
                    record_failure(failed, f"{hidden_sizes} batch {batch_size}", name, e)
                    del setups[name], update_rates[name], loop_rates[name]
                    continue
                update_rates[name].append(update_rate)
                loop_rates[name].append(loop_rate)
        plain = statistics.median(update_rates["plain"])
        size = f"| {'×'.join(map(str, hidden_sizes))} | {batch_size} |"
        for name, flags in {"plain": {}, **names}.items():
            if name in failed:
                rows.append(f"{size} {name} | failed: {failed[name]} | – | – | – | – |")
            elif name in PEERS:
                loop_rate = statistics.median(loop_rates[name])
                warmup = "–" if name == CLEANRL else f"{warmup_s[name]:.1f}"  # CleanRL warms up inside each round
                rows.append(f"{size} {name} | – | – | – | {loop_rate:,.0f} | {warmup} |")
            else:
                update_rate, loop_rate = statistics.median(update_rates[name]), statistics.median(loop_rates[name])
                spread = f"{min(update_rates[name]):,.0f}–{max(update_rates[name]):,.0f}"
                floor = floors_at[setups[name][2]][torch.bfloat16 if flags.get("bf16") else torch.float32]
                rows.append(
                    f"{size} {name} | {update_rate:,.0f} ({spread}) | {update_rate / plain:.2f} | "
                    f"{1 / update_rate / floor:.1f} | {loop_rate:,.0f} | {warmup_s[name]:.1f} |"
                )
            print(rows[-1], flush=True)
        notes += compile_break_even(hidden_sizes, batch_size, loop_rates, warmup_s)
        notes += against_sb3(hidden_sizes, batch_size, loop_rates)
        notes += against_cleanrl(hidden_sizes, batch_size, loop_rates)
    if not sb3_installed():
        notes.append('- (d) SB3 SAC: not measured, stable-baselines3 is not installed (pip install -e ".[peers]").')
        print(notes[-1], flush=True)
    if not bench.cleanrl_python:
        notes.append(
            "- (d) CleanRL SAC: not measured; add it with --cleanrl-python and --cleanrl-script (this module's "
            "docstring makes its venv)."
        )
        print(notes[-1], flush=True)
    header = [
        f"Hardware: {hardware(device)}.",
        f"Median of {bench.repeats} interleaved rounds; (b) {bench.update_steps} gradient steps per round on a fixed "
        f"synthetic batch, (d) {bench.loop_steps} steps of the LunarLander training loop per round. "
        f"(a) LunarLanderContinuous-v3 alone, random actions: {statistics.median(env_rates):,.0f} env steps/s.",
        "",
        "| hidden | batch | update | (b) or (c) updates/s (min–max) | ×plain | ×floor | (d) loop steps/s | warm-up s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    return "\n".join(header + rows + [""] + notes)


def loop_steps_per_s(loop: Loop | SB3Loop | CleanRLRun, steps: int, device: torch.device) -> float:
    """Training-loop steps per second over `steps` steps; CleanRL's process times its own."""
    if isinstance(loop, CleanRLRun):
        return loop.steps_per_s(steps)
    sync(device)
    start = time.perf_counter()
    loop.run(steps)
    sync(device)
    return steps / (time.perf_counter() - start)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block at n torch threads, then go back to the run's."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def updates_per_s(step: Callable, batch: tuple[torch.Tensor, ...], steps: int, device: torch.device) -> float:
    """Gradient steps per second over `steps` calls on one batch, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    sync(device)
    return steps / (time.perf_counter() - start)


def record_failure(failed: dict[str, str], where: str, name: str, error: Exception) -> None:
    """A variant that this torch or device cannot run is reported, not fatal; the plain reference, which every ratio
    needs, is."""
    if name == "plain":
        raise error
    failed[name] = failure(error)
    print(f"  {where} {name}: failed, {failed[name]}", flush=True)


def failure(error: Exception) -> str:
    """One line for the table: the error's type and the first line of its message, without the table's pipes."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message[:120]}".replace("|", "/")


def compile_break_even(
    hidden_sizes: tuple[int, ...], batch_size: int, loop_rates: dict[str, list[float]], warmup_s: dict[str, float]
) -> list[str]:
    """When --compile's one-off warm-up is paid back by its faster loop steps, against eager (one line per variant)."""
    if "eager" not in loop_rates:
        return []
    eager = statistics.median(loop_rates["eager"])
    lines = []
    for name in loop_rates:
        if "compile" not in name:
            continue
        rate, extra_s = statistics.median(loop_rates[name]), warmup_s[name] - warmup_s["eager"]
        saved_per_step = 1 / eager - 1 / rate
        verdict = (
            f"pays back its extra {extra_s:.0f} s of warm-up after {extra_s / saved_per_step:,.0f} learning steps"
            if saved_per_step > 0
            else f"never pays back its extra {extra_s:.0f} s of warm-up: its loop is not faster than eager"
        )
        lines.append(f"- {'×'.join(map(str, hidden_sizes))}, batch {batch_size}: {name} {verdict}.")
    return lines


def against_peer(
    peer: str, about: str, hidden_sizes: tuple[int, ...], batch_size: int, loop_rates: dict[str, list[float]]
) -> list[str]:
    """(d) of each variant of ours as a multiple of a peer's loop, measured in the same rounds."""
    if not loop_rates.get(peer):
        return []
    theirs = statistics.median(loop_rates[peer])
    ours = {name: statistics.median(rates) for name, rates in loop_rates.items() if name not in PEERS}
    ratios = ", ".join(f"{name} {rate / theirs:.2f}×" for name, rate in ours.items())
    return [
        f"- {'×'.join(map(str, hidden_sizes))}, batch {batch_size}: (d) loop steps/s as a multiple of {peer}'s "
        f"{theirs:,.0f} ({about}): {ratios}."
    ]


def against_sb3(hidden_sizes: tuple[int, ...], batch_size: int, loop_rates: dict[str, list[float]]) -> list[str]:
    if not loop_rates.get(SB3) and not loop_rates.get(SB3_OWN):
        return []
    version = f"stable-baselines3 {importlib.metadata.version('stable-baselines3')}"
    own = against_peer(SB3_OWN, f"{version} at its defaults, ent_coef learned", hidden_sizes, batch_size, loop_rates)
    return against_peer(SB3, f"{version}, sac_v's settings, ent_coef fixed", hidden_sizes, batch_size, loop_rates) + own


def against_cleanrl(hidden_sizes: tuple[int, ...], batch_size: int, loop_rates: dict[str, list[float]]) -> list[str]:
    about = "sac_continuous_action.py at its defaults, torch's default thread count, training steps only"
    return against_peer(CLEANRL, about, hidden_sizes, batch_size, loop_rates)


def floor_note(
    hidden_sizes: tuple[int, ...], batch_size: int, gemms: list[Gemm], floors: dict[torch.dtype, float]
) -> str:
    return (
        f"- {'×'.join(map(str, hidden_sizes))}, batch {batch_size}: the matmul floor of one sac_v step, its "
        f"{len(gemms)} matmuls each timed alone at {torch.get_num_threads()} torch threads: "
        f"{floors[torch.float32] * 1e3:.2f} ms in float32, {floors[torch.bfloat16] * 1e3:.2f} ms in bfloat16 "
        "(×floor: a variant's step time over its dtype's floor)."
    )


def write_section(path: Path, device: str, table: str, command: str) -> None:
    """Put this device's results between its markers, keeping the other device's section as it was."""
    begin, end = f"<!-- {device} -->", f"<!-- /{device} -->"
    text = path.read_text() if path.exists() else "# Throughput benchmark\n\nWritten by `benchmarks/throughput.py`.\n"
    section = f"{begin}\n## {device.upper()}\n\n`{command}` on {time.strftime('%Y-%m-%d')}\n\n{table}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # the other device's section stays whole if this write fails
        tmp.write_text(text if text.endswith("\n") else text + "\n")


def check_args(bench: BenchArgs) -> None:
    """Refuse, before minutes of measuring, counts that leave nothing to time and an --output that cannot be
    written."""
    for flag in ("repeats", "update_steps", "loop_steps", "env_steps"):  # each rate divides by one, or is a median
        if getattr(bench, flag) < 1:
            sys.exit(f"error: --{flag.replace('_', '-')} must be at least 1, got {getattr(bench, flag)}")
    for flag in ("warmup", "pool"):
        if getattr(bench, flag) < 0:
            sys.exit(f"error: --{flag} must be 0 or more, got {getattr(bench, flag)}")
    if bench.threads is not None and bench.threads < 1:
        sys.exit(f"error: --threads must be at least 1, got {bench.threads}")
    if (bench.cleanrl_python is None) != (bench.cleanrl_script is None):
        sys.exit("error: --cleanrl-python and --cleanrl-script go together: give both or neither")
    if bench.cleanrl_python and not (bench.cleanrl_python.is_file() and os.access(bench.cleanrl_python, os.X_OK)):
        sys.exit(f"error: --cleanrl-python {bench.cleanrl_python} is not an executable file")
    if bench.cleanrl_script and not bench.cleanrl_script.is_file():
        sys.exit(f"error: --cleanrl-script {bench.cleanrl_script} is not a file")
    check_writable(bench.output, "--output", "markdown file")
    try:
        if bench.output.exists():  # its other device's section is kept, so it must read back
            bench.output.read_text()
    except (OSError, UnicodeDecodeError) as e:
        sys.exit(f"error: cannot write --output {bench.output}: {getattr(e, 'strerror', None) or e}")


def main() -> None:
    bench = tyro.cli(BenchArgs)
    try:
        bench.output = results_path(bench.output, bench.record, "benchmarks", "throughput.md", flag="--output")
    except ConfigError as e:
        sys.exit(f"error: {e}")
    check_args(bench)
    if bench.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda was asked for, but torch sees no CUDA GPU")
    if bench.cold_compile:  # read by inductor at each compile
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="throughput-inductor-")
    table = measure(bench)
    print(table)
    try:
        write_section(bench.output, bench.device, table, "python " + " ".join(sys.argv))
    except OSError as e:  # a full disk, say: the table above is the measurement
        sys.exit(f"error: cannot write --output {bench.output}: {e.strerror or e}; the table is printed above")
    print(f"wrote {bench.output}")


# Side by side: threads that share the cores


DEFAULT, PASSIVE = {}, {"OMP_WAIT_POLICY": "passive"}  # libgomp's default: spin a while, then sleep
SUITE = {"SUITE": "1"}  # not an environment variable: the case runs beside the test suite
ONE, TWO = "one run, 1 thread", "one run, 2 threads"
CASES = (  # (name, runs side by side, --threads of each run, extra environment)
    ("one run, --threads auto (the default)", 1, "auto", DEFAULT),
    (ONE, 1, "1", DEFAULT),
    (TWO, 1, "2", DEFAULT),
    ("one run, 2 threads sleeping (OMP_WAIT_POLICY=passive)", 1, "2", PASSIVE),
    ("two runs, auto each", 2, "auto", DEFAULT),
    ("two runs, 1 thread each", 2, "1", DEFAULT),
    ("two runs, 2 threads each", 2, "2", DEFAULT),
    ("two runs, 2 threads each, sleeping", 2, "2", PASSIVE),
    ("one run, auto, beside the test suite", 1, "auto", SUITE),
    ("one run, 1 thread, beside the test suite", 1, "1", SUITE),
)


@dataclasses.dataclass
class SideBySideArgs:
    """The flags of `throughput.py side-by-side`."""

    seconds: float = 20.0
    """length of the timed window of each case"""
    warmup_s: float = 8.0
    """time given to every run of a case to start and warm up before the window opens"""
    hidden_sizes: tuple[int, ...] = (200, 200)
    """hidden layers of every network (sac_v's default)"""
    batch_size: int = 200
    """minibatch of each gradient step (sac_v's default)"""
    output: Path | None = None
    """markdown file the table is written to (default runs/benchmarks/threads.md)"""
    record: bool = False
    """write the committed table, docs/benchmarks/threads.md"""


def worker(threads: str, start_at: float, stop_at: float, batch_size: int, hidden_sizes: tuple[int, ...]) -> None:
    """One run: warm up, wait for the window, print the steps per second it took within it. Its threads are sac_v's
    (Threads): auto counts the idle cores again each second, as a training run does."""
    args = sac_v.Args(device="cpu", batch_size=batch_size, hidden_sizes=hidden_sizes)
    args.threads = threads if threads == "auto" else int(threads)
    env = sac_v.make_env(ENV_ID)
    torch_threads = sac_v.Threads(args, env)
    step, sample_action = project_update_step(env, args, torch.device("cpu"))
    loop = Loop(step, sample_action, args, torch.device("cpu"), pool=2_000)
    loop.run(20)
    while time.time() < start_at:
        loop.run(10)  # warm up until the window opens: auto settles on its count as it would in a run
        torch_threads.adapt()
    start, steps = time.time(), 0  # later than start_at where the warm-up overran: the window is then shorter
    while steps == 0 or time.time() < stop_at:
        loop.run(10)
        torch_threads.adapt()
        steps += 10
    print(steps / (time.time() - start))


def run_case(runs: int, threads: str, extra_env: dict[str, str], bench: SideBySideArgs) -> list[float]:
    """Steps per second of each of `runs` processes side by side."""
    start_at = time.time() + bench.warmup_s
    stop_at = start_at + bench.seconds
    inherited = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env = {**inherited, **({} if threads == "auto" else {"OMP_NUM_THREADS": threads}), **extra_env}
    sizes = [str(bench.batch_size), *map(str, bench.hidden_sizes)]
    command = [sys.executable, __file__, "--worker", threads, str(start_at), str(stop_at), *sizes]
    suite = None
    if env.pop("SUITE", None):  # the test suite, as a developer runs it beside a training run
        suite = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so that its test runs end with it
        )
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(runs)]
    speeds = [float(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    if suite is not None:
        if suite.poll() is not None:
            sys.exit("error: the test suite ended before the window closed; its case did not run beside it")
        os.killpg(suite.pid, signal.SIGKILL)
        suite.wait()
    return speeds


def side_by_side(bench: SideBySideArgs) -> None:
    """threads.md: each case of CASES, its runs side by side, in a section for these sizes."""
    try:
        output = results_path(bench.output, bench.record, "benchmarks", "threads.md", flag="--output")
    except ConfigError as e:
        sys.exit(f"error: {e}")
    speeds = {}
    for name, runs, threads, extra_env in CASES:
        speeds[name] = run_case(runs, threads, extra_env, bench)
        print(name, " / ".join(f"{s:.0f}" for s in speeds[name]), flush=True)
    one, two = speeds[ONE][0], speeds[TWO][0]  # one run alone: at 1 thread; at 2
    rows = [
        f"| {name} | {' / '.join(f'{s:.0f}' for s in each)} | {sum(each):.0f} | {min(each) / one:.2f} "
        f"| {min(each) / two:.2f} |"
        for name, each in speeds.items()
    ]
    sizes = f"{' × '.join(map(str, bench.hidden_sizes))}, batch {bench.batch_size}"
    section = [
        f"## {sizes}",
        "",
        "| case | env steps/s of each run | together | slowest / alone at 1 thread | slowest / alone at 2 threads |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"Hardware: {cpu_name()} ({', '.join(cpu_flags())}), {os.cpu_count()} CPU cores, torch {torch.__version__}.",
        f"Command: `python benchmarks/throughput.py side-by-side --hidden-sizes "
        f"{' '.join(map(str, bench.hidden_sizes))} --batch-size {bench.batch_size}`.",
        "",
    ]
    write_sizes_section(output, f"## {sizes}", section)
    print(f"wrote {output}")


def write_sizes_section(path: Path, heading: str, section: list[str]) -> None:
    """Replace the section under `heading` in `path` (or add it), keeping the other sizes' sections."""
    head = [
        "# Threads that share the cores",
        "",
        "Env steps per second of sac_v's training step (act, env step, store, sample, one gradient step) on",
        "LunarLanderContinuous-v3, each run its own process, all runs of a case timed over the same window.",
        "",
    ]
    sections = {}
    if path.exists():
        for part in path.read_text().split("\n## ")[1:]:
            sections["## " + part.splitlines()[0]] = [*("## " + part).rstrip("\n").splitlines(), ""]
    sections[heading] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + [line for lines in sections.values() for line in lines]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:  # one run of a side-by-side case, in a process of its own
        worker(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), tuple(map(int, sys.argv[6:])))
    elif sys.argv[1:2] == ["side-by-side"]:
        side_by_side(tyro.cli(SideBySideArgs, args=sys.argv[2:]))
    else:
        main()
