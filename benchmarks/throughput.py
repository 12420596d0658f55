"""Throughput of SAC-V: env steps, gradient steps and the full training loop, per second; and runs side by side.

    python benchmarks/throughput.py [--device cuda] [--record]  # its device's section of runs/benchmarks/throughput.md
    python benchmarks/throughput.py side-by-side [--record]     # runs/benchmarks/threads.md; --record: docs/benchmarks/

At each size of CONFIGS, in interleaved rounds, medians: (a) the env alone; (b) sac_v's update on a fixed batch, eager,
--bf16, --compile (on CUDA with --cudagraphs); (c) plain_update_step's; (d) the training loop, ours and the peers'
(SB3's SAC; CleanRL's script in its own venv, timed by its log once it learns); (e) the matmul floor of one step.
Side by side: each run a process of (d)'s loop with sac_v's Threads, all runs of a case timed over one window.

--cleanrl-python ~/cleanrl-venv/bin/python --cleanrl-script ~/cleanrl/cleanrl/sac_continuous_action.py add CleanRL's
SAC, run in a venv of its own (its script wants gymnasium 0.29, numpy < 2 and its repository's cleanrl_utils):

    git clone https://github.com/vwxyzjn/cleanrl ~/cleanrl && git -C ~/cleanrl checkout fe8d8a0  # tested there
    python3 -m venv ~/cleanrl-venv && ~/cleanrl-venv/bin/pip install torch==2.13.0 gymnasium==0.29.1 box2d==2.3.10 \
        "pygame>=2.1.3" "numpy<2" tyro tensorboard
"""

import collections
import dataclasses
import functools
import importlib.metadata
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import tyro
from common import ROOT, check_writable, cli, machine, results_path

import sac_v
from buffer import ReplayBuffer, atomic_path

ENV_ID = "LunarLanderContinuous-v3"
CONFIGS = (((256, 256), 256), ((200, 200), 200), ((64, 64), 100))  # (hidden sizes, batch size)
SB3, SB3_OWN, CLEANRL = "SB3 SAC", "SB3 SAC, its defaults", "CleanRL SAC"  # the peers, (d) only: their own loops
PEERS = {  # what a peer's ratio line says of it; {} is stable-baselines3's version
    SB3: "stable-baselines3 {}, sac_v's settings, ent_coef fixed",
    SB3_OWN: "stable-baselines3 {} at its defaults, ent_coef learned",
    CLEANRL: "sac_continuous_action.py at its defaults, torch's default thread count, training steps only",
}
SB3_CONFIGS = CONFIGS[:2]  # SB3 with sac_v's settings: the paper's sizes and sac_v's defaults
CLEANRL_CONFIGS = CONFIGS[:1]  # CleanRL's, and SB3's defaults, are the paper's sizes: 256×256, batch 256
CLEANRL_LEARNING_STARTS = 1_000
DTYPES = (torch.float32, torch.bfloat16)  # --bf16's step is held to the bfloat16 floor, every other to float32's
SB3_VERSION = next((d.version for d in importlib.metadata.distributions(name="stable-baselines3")), None)  # its extra
ONE, TWO = "one run, 1 thread", "one run, 2 threads"  # side by side: the runs alone that every case is held to
CASES = (  # (name, runs side by side, --threads of each run, extra environment; SUITE: beside the test suite)
    ("one run, --threads auto (the default)", 1, "auto", {}),
    (ONE, 1, "1", {}),
    (TWO, 1, "2", {}),  # libgomp's default wait: spin, then sleep
    ("one run, 2 threads sleeping (OMP_WAIT_POLICY=passive)", 1, "2", {"OMP_WAIT_POLICY": "passive"}),
    ("two runs, auto each", 2, "auto", {}),
    ("two runs, 1 thread each", 2, "1", {}),
    ("two runs, 2 threads each", 2, "2", {}),
    ("two runs, 2 threads each, sleeping", 2, "2", {"OMP_WAIT_POLICY": "passive"}),
    ("one run, auto, beside the test suite", 1, "auto", {"SUITE": "1"}),
    ("one run, 1 thread, beside the test suite", 1, "1", {"SUITE": "1"}),
)


@dataclasses.dataclass
class BenchArgs:
    device: Literal["cpu", "cuda"] = "cpu"  # where the networks live
    repeats: int = 5  # timed rounds of every variant; the table reports medians
    update_steps: int = 200  # gradient steps per timed round on the synthetic batch
    loop_steps: int = 300  # env steps (each with a gradient step) per timed round of the full loop
    env_steps: int = 5_000  # env steps per timed round of the env alone
    warmup: int = 20  # untimed calls before timing each variant (compilation happens here and is timed apart)
    pool: int = 2_000  # random-action transitions in each loop's buffer before its timed rounds
    compile: bool = True  # also measure --compile
    threads: int | None = None  # torch threads (default: torch's own choice)
    output: Path | None = None  # markdown file; a run rewrites only its device's section (default under runs/)
    record: bool = False  # write the committed table, docs/benchmarks/throughput.md
    cleanrl_python: Path | None = None  # the python of a venv with CleanRL's dependencies: adds CleanRL's SAC
    cleanrl_script: Path | None = None  # cleanrl/sac_continuous_action.py in a clone of CleanRL (cleanrl_utils/ beside)
    cleanrl_env_id: str = "LunarLanderContinuous-v2"  # the env's id in CleanRL's gymnasium 0.29


@dataclasses.dataclass
class SideBySideArgs:
    seconds: float = 20.0  # length of the timed window of each case
    warmup_s: float = 8.0  # time given to every run of a case to start and warm up before the window opens
    hidden_sizes: tuple[int, ...] = (200, 200)  # hidden layers of every network (sac_v's default)
    batch_size: int = 200  # minibatch of each gradient step (sac_v's default)
    output: Path | None = None  # markdown file the table is written to (default runs/benchmarks/threads.md)
    record: bool = False  # write the committed table, docs/benchmarks/threads.md


def seconds(device: torch.device, calls: int, fn: Callable, *args: Any) -> float:
    """Wall time of `calls` calls of fn(*args), the device synchronised before and after."""
    sync = functools.partial(torch.cuda.synchronize, device) if device.type == "cuda" else lambda: None
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    sync()
    return time.perf_counter() - start


def updates_per_s(step: Callable, batch: tuple[torch.Tensor, ...], steps: int, device: torch.device) -> float:
    return steps / seconds(device, steps, step, batch)


def profiled_gemms(step: Callable, batch: tuple[torch.Tensor, ...]) -> list[tuple]:
    """(e) The matmuls one call of the step runs, from torch's profiler: (stack, m, k, n) is `stack` (m×k)·(k×n)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        step(batch)
    # autocast's matmul calls the matmul again, in bfloat16: one product; addmm's and baddbmm's bias comes first
    matmuls = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
    events = [e for e in prof.events() if e.name in matmuls and not (e.cpu_parent and e.cpu_parent.name in matmuls)]
    shapes = [[shape for shape in event.input_shapes if shape][-2:] for event in events]
    return [(a[0], a[1], a[2], b[2]) if len(a) == 3 else (1, a[0], a[1], b[1]) for a, b in shapes]


def matmul_floor(gemms: list[tuple], dtype: torch.dtype, device: torch.device, calls: int, rounds: int) -> float:
    """Seconds of a step's matmuls alone, each shape timed as the step calls it (bmm or mm), in its fastest round."""
    total = 0.0
    for (stack, m, k, n), count in collections.Counter(gemms).items():
        a, b = (torch.randn(stack, *shape, device=device, dtype=dtype) for shape in ((m, k), (k, n)))
        matmul = torch.bmm if stack > 1 else lambda x, y: torch.mm(x[0], y[0])
        seconds(device, 3, matmul, a, b)  # warm-up
        total += count * min(seconds(device, calls, matmul, a, b) for _ in range(rounds)) / calls
    return total


def plain_update_step(env, args: sac_v.Args, device: torch.device) -> tuple[Callable, Callable]:
    """(c) SAC-V's update written plainly: two critic modules, default Adam, the Q, V and policy steps in turn."""
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = sac_v.Actor(env.observation_space, env.action_space, args.hidden_sizes).to(device)
    qf1, qf2 = (sac_v.mlp(obs_dim + act_dim, args.hidden_sizes, 1).to(device) for _ in range(2))
    vf, vf_target = (sac_v.SoftVNetwork(env.observation_space, args.hidden_sizes).to(device) for _ in range(2))
    vf_target.load_state_dict(vf.state_dict())
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.policy_lr)
    q_optimizer = torch.optim.Adam([*qf1.parameters(), *qf2.parameters()], lr=args.critic_lr)
    v_optimizer = torch.optim.Adam(vf.parameters(), lr=args.critic_lr)

    def critics(obs: torch.Tensor, actions: torch.Tensor) -> list[torch.Tensor]:
        return [qf(torch.cat([obs, actions], dim=-1)).squeeze(-1) for qf in (qf1, qf2)]

    def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def step(batch: tuple[torch.Tensor, ...]) -> None:
        obs, actions, rewards, next_obs, terminated = batch
        with torch.no_grad():
            q_target = args.reward_scale * rewards + args.gamma * (1 - terminated) * vf_target(next_obs)
        descend(q_optimizer, sum(0.5 * (q - q_target).pow(2).mean() for q in critics(obs, actions)))
        with torch.no_grad():
            pi_actions, log_pi, _ = actor.get_action(obs)
            v_target = torch.min(*critics(obs, pi_actions)) - args.alpha * log_pi
        descend(v_optimizer, 0.5 * (vf(obs) - v_target).pow(2).mean())
        pi_actions, log_pi, _ = actor.get_action(obs)
        descend(actor_optimizer, (args.alpha * log_pi - torch.min(*critics(obs, pi_actions))).mean())
        for p_target, p in zip(vf_target.parameters(), vf.parameters(), strict=True):  # .data: outside autograd
            p_target.data.copy_(args.tau * p.data + (1 - args.tau) * p_target.data)

    return step, actor.get_action


def project_update_step(env, args: sac_v.Args, device: torch.device) -> tuple:
    """(b) sac_v's gradient step and policy sampler, with the fast paths that args asks for."""
    actor, qf, vf, vf_target = sac_v.make_networks(env, args.hidden_sizes, device)
    optimizers = tuple(sac_v.make_optimizers(actor, qf, vf, args).values())
    networks = {"actor": actor, "qf": qf, "vf": vf, "vf_target": vf_target}
    step = functools.partial(sac_v.update, **networks, optimizers=optimizers, args=args)
    return sac_v.fast_paths(step, actor.get_action, args)


def synthetic_batch(env, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g, obs_dim, act_dim = torch.Generator().manual_seed(0), env.observation_space.shape[0], env.action_space.shape[0]
    obs, next_obs = (torch.randn(batch_size, obs_dim, generator=g) for _ in range(2))
    actions, rewards = torch.rand(batch_size, act_dim, generator=g) * 2 - 1, torch.randn(batch_size, generator=g)
    terminated = (torch.rand(batch_size, generator=g) < 0.05).float()
    return tuple(x.to(device) for x in (obs, actions, rewards, next_obs, terminated))


# (a) and (d): the env and the training loops, ours and the peers'
def env_steps_per_s(steps: int) -> float:
    env = sac_v.make_env(ENV_ID)
    env.action_space.seed(0)
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        if any(env.step(action)[2:4]):  # terminated or truncated
            env.reset()
    return steps / (time.perf_counter() - start)


class Loop:
    """The hot path of sac_v.train once learning has begun, on its own env and a buffer of `pool` random steps."""

    def __init__(self, step: Callable, sample_action: Callable, args: sac_v.Args, device: torch.device, pool: int):
        self.step, self.sample_action, self.args, self.device = step, sample_action, args, device
        self.env = sac_v.make_env(ENV_ID)
        self.rb = ReplayBuffer(self.env.observation_space.shape[0], self.env.action_space.shape[0], 100_000, seed=0)
        self.env.action_space.seed(0)
        self.obs, _ = self.env.reset(seed=0)
        self.run(max(pool, args.batch_size), learn=False)

    def run(self, steps: int, learn: bool = True) -> None:
        for _ in range(steps):
            action = self.env.action_space.sample()
            if learn:
                with torch.no_grad():
                    obs_t = torch.as_tensor(self.obs, dtype=torch.float32, device=self.device).unsqueeze(0)
                    action = self.sample_action(obs_t)[0][0].cpu().numpy()
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.rb.add(self.obs, action, float(reward), next_obs, terminated)
            self.obs = next_obs if not (terminated or truncated) else self.env.reset()[0]
            if learn:
                self.step(tuple(torch.as_tensor(x, device=self.device) for x in self.rb.sample(self.args.batch_size)))

    def steps_per_s(self, steps: int) -> float:
        return steps / seconds(self.device, 1, self.run, steps)


class SB3Loop(Loop):
    """SB3's SAC in model.learn once learning has begun: sac_v's settings (α fixed, no V), or SB3's `own_defaults`."""

    def __init__(self, args: sac_v.Args, device: torch.device, pool: int, own_defaults: bool = False):
        import sb3  # needs stable-baselines3

        self.device, pool = device, max(pool, args.batch_size)
        settings = sb3.sb3_defaults(args.device) if own_defaults else sb3.sb3_settings("sac-v-defaults", args)
        settings |= {"learning_starts": pool, "buffer_size": 100_000, "device": device}  # the pool, as Loop's
        self.model = sb3.make_model(settings, ENV_ID, seed=0).learn(pool)  # random actions to learning_starts: the pool

    def run(self, steps: int) -> None:
        self.model.learn(steps, reset_num_timesteps=False)  # one gradient step per env step


def cleanrl_steps_per_s(bench: BenchArgs, device: torch.device, steps: int) -> float:
    """CleanRL's SAC script at its defaults but the env and step counts, a process each round: steps/s by its log's
    charts/SPS wall times (its values count from step 0) over `steps` after --warmup training steps, both in 100s."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = CLEANRL_LEARNING_STARTS + 100 * math.ceil(max(bench.warmup, 1) / 100)
    last = first + 100 * math.ceil(steps / 100)
    repository = str(bench.cleanrl_script.resolve().parents[1])  # the script imports its buffer from cleanrl_utils
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [repository, os.environ.get("PYTHONPATH")]))}
    command = [str(bench.cleanrl_python), str(bench.cleanrl_script), "--env-id", bench.cleanrl_env_id]
    command += ["--total-timesteps", str(last + 1), "--learning-starts", str(CLEANRL_LEARNING_STARTS)]
    command += ["--no-cuda"] if device.type == "cpu" else []  # where sac_v runs, even beside a GPU
    with tempfile.TemporaryDirectory(prefix="cleanrl-") as folder:  # it writes runs/<its run>/ where it starts
        result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
            raise RuntimeError(f"CleanRL's script failed: {lines[-1]}")
        runs = [path for path in (Path(folder) / "runs").glob("*") if path.is_dir()]
        logs = [EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload() for run in runs]  # 0: every event
        logged = [log.Scalars("charts/SPS") for log in logs if "charts/SPS" in log.Tags()["scalars"]]
    events = {event.step: event.wall_time for scalars in logged for event in scalars}
    if first not in events or last not in events:
        raise RuntimeError(f"CleanRL's log has no charts/SPS at step {first if first not in events else last}")
    return (last - first) / (events[last] - events[first])


def variants(device: torch.device, bench: BenchArgs, all_cores: int, size: tuple) -> dict[str, dict[str, Any]]:
    """Name -> sac_v flags of each variant of ours (CPU: at torch's own thread count too), then the peers here."""
    names: dict[str, dict[str, Any]] = {"plain": {}, "eager": {}, "bf16": {"bf16": True}}
    if device.type == "cpu" and all_cores > torch.get_num_threads():
        names |= {f"{name}, --threads {all_cores}": {**names[name], "threads": all_cores} for name in ("eager", "bf16")}
    names |= {"compile": {"compile": True}} if bench.compile else {}
    names |= {"cudagraphs": {"cudagraphs": True}} if device.type == "cuda" else {}
    if device.type == "cuda" and bench.compile:
        names["compile+cudagraphs"] = {"compile": True, "cudagraphs": True}
        names["compile+cudagraphs+bf16"] = {"compile": True, "cudagraphs": True, "bf16": True}
    names |= {SB3: {}} if SB3_VERSION and size in SB3_CONFIGS else {}
    names |= {SB3_OWN: {"threads": all_cores}} if SB3_VERSION and size in CLEANRL_CONFIGS else {}  # torch's threads
    return names | ({CLEANRL: {}} if bench.cleanrl_python and size in CLEANRL_CONFIGS else {})


def set_up(name: str, flags: dict, env, size: tuple, batch: tuple, device: torch.device, bench: BenchArgs) -> tuple:
    """A variant's update step (None for a peer's), its loop's steps_per_s, and its warm-up's seconds (compiling)."""
    torch.manual_seed(0)
    args = sac_v.Args(hidden_sizes=size[0], batch_size=size[1], device=bench.device, **flags)
    if name == CLEANRL:
        return None, functools.partial(cleanrl_steps_per_s, bench, device), math.nan
    if name in (SB3, SB3_OWN):
        loop = SB3Loop(args, device, bench.pool, own_defaults=name == SB3_OWN)
        return None, loop.steps_per_s, seconds(device, 1, loop.run, bench.warmup)
    step, sample_action = (plain_update_step if name == "plain" else project_update_step)(env, args, device)
    loop = Loop(step, sample_action, args, device, bench.pool)
    warmup_s = seconds(device, bench.warmup, step, batch) + seconds(device, 1, loop.run, bench.warmup)
    return step, loop.steps_per_s, warmup_s


def measure_size(bench: BenchArgs, device: torch.device, size: tuple, all_cores: int, rows: list, notes: list) -> None:
    """One size's rows and notes: the matmul floors, then every variant set up, warmed up and timed in rounds."""
    torch._dynamo.reset()
    (hidden_sizes, batch_size), run_threads, env = size, torch.get_num_threads(), sac_v.make_env(ENV_ID)
    label, batch = f"{'×'.join(map(str, hidden_sizes))}, batch {batch_size}", synthetic_batch(env, batch_size, device)
    names = variants(device, bench, all_cores, size)
    threads = {name: flags.get("threads", run_threads) for name, flags in names.items()}
    eager_args = sac_v.Args(hidden_sizes=hidden_sizes, batch_size=batch_size, device=bench.device)
    gemms, floors = profiled_gemms(project_update_step(env, eager_args, device)[0], batch), {}
    for n in dict.fromkeys(threads.values()):  # a --threads variant's step is held to the floor at its own threads
        torch.set_num_threads(n)
        floors[n] = [matmul_floor(gemms, dtype, device, bench.update_steps, bench.repeats) for dtype in DTYPES]
        notes.append(
            f"- {label}: the matmul floor of one sac_v step, its {len(gemms)} matmuls each timed alone at {n} torch "
            f"threads: {floors[n][0] * 1e3:.2f} ms in float32, {floors[n][1] * 1e3:.2f} ms in bfloat16 (×floor's unit)."
        )
    setups, failed, updates, loops = {}, {}, collections.defaultdict(list), collections.defaultdict(list)
    for round_ in range(bench.repeats + 1):  # round 0 sets each variant up and warms it up; then interleaved rounds
        for name in [name for name in names if name not in failed]:
            torch.set_num_threads(threads[name])
            try:
                if round_ == 0:  # the first calls compile and record: timed apart, as a one-off cost
                    setups[name] = set_up(name, names[name], env, size, batch, device, bench)
                    continue
                step, loop_steps_per_s, _ = setups[name]
                if step is not None:  # a peer has its loop only
                    updates[name].append(updates_per_s(step, batch, bench.update_steps, device))
                loops[name].append(loop_steps_per_s(bench.loop_steps))
            except Exception as e:  # a variant this torch or device cannot run; the plain reference, which every
                if name == "plain":  # ratio needs, ends the run
                    raise
                failed[name] = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:120]}".replace("|", "/")
                print(f"  {label} {name}: failed, {failed[name]}", flush=True)
    torch.set_num_threads(run_threads)
    loop_rates = {name: statistics.median(loops[name]) for name in names if name not in failed}
    for name, flags in names.items():
        if name in failed:
            cells = [f"failed: {failed[name]}", "–", "–", "–", "–"]
        elif name in PEERS:
            cells = ["–", "–", "–", f"{loop_rates[name]:,.0f}", "–" if name == CLEANRL else f"{setups[name][2]:.1f}"]
        else:
            rates, floor = updates[name], floors[threads[name]][1 if flags.get("bf16") else 0]
            rate, plain = statistics.median(rates), statistics.median(updates["plain"])
            cells = [f"{rate:,.0f} ({min(rates):,.0f}–{max(rates):,.0f})", f"{rate / plain:.2f}"]
            cells += [f"{1 / rate / floor:.1f}", f"{loop_rates[name]:,.0f}", f"{setups[name][2]:.1f}"]
        rows.append(f"| {'×'.join(map(str, hidden_sizes))} | {batch_size} | {name} | {' | '.join(cells)} |")
        print(rows[-1], flush=True)
    ours = {name: rate for name, rate in loop_rates.items() if name not in PEERS}
    for peer in [peer for peer in PEERS if peer in loop_rates]:  # ours as multiples of each peer's, the same rounds
        ratios = ", ".join(f"{name} {rate / loop_rates[peer]:.2f}×" for name, rate in ours.items())
        about = f"{loop_rates[peer]:,.0f} ({PEERS[peer].format(SB3_VERSION)})"
        notes.append(f"- {label}: (d) loop steps/s as a multiple of {peer}'s {about}: {ratios}.")


def measure(bench: BenchArgs) -> str:
    """The table: (a), then each size of CONFIGS."""
    device, all_cores = torch.device(bench.device), torch.get_num_threads()  # torch's own choice: the peers' count
    torch.set_num_threads(bench.threads or all_cores)
    if bench.compile:  # a fresh inductor cache, read at each compile: the warm-up column shows a first compile
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="throughput-inductor-")
    for name in [name for name in ("recompile_limit", "cache_size_limit") if hasattr(torch._dynamo.config, name)]:
        setattr(torch._dynamo.config, name, 64)  # one compiled step per variant and size: more than the default 8
    env_rate = statistics.median(env_steps_per_s(bench.env_steps) for _ in range(bench.repeats))
    rows, notes = [], []
    for size in CONFIGS:
        measure_size(bench, device, size, all_cores, rows, notes)
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    header = f"Hardware: {machine()}, {torch.get_num_threads()} torch threads{gpu}.\nMedians of {bench.repeats} "
    header += f"interleaved rounds: (b) {bench.update_steps} gradient steps on a fixed synthetic batch, (d) "
    header += f"{bench.loop_steps} steps of the LunarLander training loop. (a) {ENV_ID} alone, random actions: "
    header += f"{env_rate:,.0f} env steps/s.\n\n| hidden | batch | update | (b) or (c) updates/s (min–max) | ×plain "
    header += "| ×floor | (d) loop steps/s | warm-up s |\n" + "| --- " * 8 + "|\n"
    return header + "\n".join([*rows, "", *notes])


def write_section(path: Path, head: str, pattern: str, section: str) -> None:
    """Put `section` in place of the one `pattern` matches, or after the others, keeping the rest of the file."""
    try:
        text = path.read_text() if path.exists() else head
        found = re.search(pattern, text, re.DOTALL | re.MULTILINE)
        text = text[: found.start()] + section + text[found.end() :] if found else f"{text.rstrip()}\n\n{section}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # the other sections stay whole if this write fails
            tmp.write_text(text.rstrip("\n") + "\n")
    except (OSError, UnicodeError) as e:  # a full disk, say: the table printed above is the measurement
        why = getattr(e, "strerror", None) or e
        sys.exit(f"error: cannot write --output {path}: {why}; the table is printed above")
    print(f"wrote {path}")


def main() -> None:
    bench = tyro.cli(BenchArgs)
    bench.output = results_path(bench.output, bench.record, "benchmarks", "throughput.md", flag="--output")
    # before minutes of measuring: counts that leave nothing to time, and an --output that cannot be written
    for flag, least in dict(repeats=1, update_steps=1, loop_steps=1, env_steps=1, warmup=0, pool=0, threads=1).items():
        if (value := getattr(bench, flag)) is not None and value < least:
            sys.exit(f"error: --{flag.replace('_', '-')} must be {'at least 1' if least else '0 or more'}, got {value}")
    if (bench.cleanrl_python is None) != (bench.cleanrl_script is None):
        sys.exit("error: --cleanrl-python and --cleanrl-script go together: give both or neither")
    if bench.cleanrl_python and not (bench.cleanrl_python.is_file() and os.access(bench.cleanrl_python, os.X_OK)):
        sys.exit(f"error: --cleanrl-python {bench.cleanrl_python} is not an executable file")
    if bench.cleanrl_script and not bench.cleanrl_script.is_file():
        sys.exit(f"error: --cleanrl-script {bench.cleanrl_script} is not a file")
    check_writable(bench.output, "--output", "markdown file")
    if bench.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda was asked for, but torch sees no CUDA GPU")
    table = measure(bench)
    print(table)
    begin, end, command = f"<!-- {bench.device} -->", f"<!-- /{bench.device} -->", "python " + " ".join(sys.argv)
    section = f"{begin}\n## {bench.device.upper()}\n\n`{command}` on {time.strftime('%Y-%m-%d')}\n\n{table}\n{end}"
    head = "# Throughput benchmark\n\nWritten by `benchmarks/throughput.py`.\n"
    write_section(bench.output, head, re.escape(begin) + ".*?" + re.escape(end), section)  # keeps the other device's


# Side by side: threads that share the cores
def worker(threads: str, start_at: float, stop_at: float, batch_size: int, hidden_sizes: tuple[int, ...]) -> None:
    """One run: warm up, then print its steps/s in the window; sac_v's Threads recounts auto's idle cores."""
    args = sac_v.Args(device="cpu", batch_size=batch_size, hidden_sizes=hidden_sizes)
    args.threads, env, cpu = threads if threads == "auto" else int(threads), sac_v.make_env(ENV_ID), torch.device("cpu")
    torch_threads, loop = sac_v.Threads(args, env), Loop(*project_update_step(env, args, cpu), args, cpu, pool=2_000)
    steps, start = 0, time.time()
    while steps == 0 or time.time() < stop_at:
        loop.run(10)
        torch_threads.adapt()
        steps += 10
        if time.time() < start_at:  # warming up: auto settles on its count as it would in a run
            steps, start = 0, time.time()
    print(steps / (time.time() - start))


def run_case(runs: int, threads: str, extra_env: dict[str, str], bench: SideBySideArgs) -> list[float]:
    """Steps per second of each of `runs` processes side by side."""
    start_at = time.time() + bench.warmup_s
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")} | extra_env
    env |= {} if threads == "auto" else {"OMP_NUM_THREADS": threads}
    sizes = [str(bench.batch_size), *map(str, bench.hidden_sizes)]
    command = [sys.executable, __file__, "--worker", threads, str(start_at), str(start_at + bench.seconds), *sizes]
    suite = None
    if env.pop("SUITE", None):  # the test suite as a developer runs it beside a training run, in a process group
        pytest = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        suite = subprocess.Popen(pytest, cwd=ROOT, env=env, start_new_session=True, **quiet)
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(runs)]
    speeds = [float(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    if suite is not None:
        if suite.poll() is not None:
            sys.exit("error: the test suite ended before the window closed; its case did not run beside it")
        os.killpg(suite.pid, signal.SIGKILL)  # its test runs end with it
        suite.wait()
    return speeds


def side_by_side(bench: SideBySideArgs) -> None:
    """threads.md: each case of CASES, its runs side by side, in a section for these sizes (the others' are kept)."""
    output, speeds = results_path(bench.output, bench.record, "benchmarks", "threads.md", flag="--output"), {}
    for name, runs, threads, extra_env in CASES:
        speeds[name] = run_case(runs, threads, extra_env, bench)
        print(name, " / ".join(f"{s:.0f}" for s in speeds[name]), flush=True)
    one, two = speeds[ONE][0], speeds[TWO][0]  # one run alone: at 1 thread; at 2
    heading = f"## {' × '.join(map(str, bench.hidden_sizes))}, batch {bench.batch_size}"
    section = f"{heading}\n\n| case | env steps/s of each run | together | slowest / alone at 1 thread | slowest / "
    section += "alone at 2 threads |\n| --- | ---: | ---: | ---: | ---: |\n"
    for name, each in speeds.items():
        runs = " / ".join(f"{s:.0f}" for s in each)
        section += f"| {name} | {runs} | {sum(each):.0f} | {min(each) / one:.2f} | {min(each) / two:.2f} |\n"
    section += f"\nHardware: {machine()}.\nCommand: `python benchmarks/throughput.py side-by-side --hidden-sizes "
    section += f"{' '.join(map(str, bench.hidden_sizes))} --batch-size {bench.batch_size}`.\n\n"
    head = "# Threads that share the cores\n\nEnv steps/s of sac_v's training loop on LunarLanderContinuous-v3, "
    head += "each run its own process, all runs of a case timed over the same window.\n"
    print(section)
    write_section(output, head, "^" + re.escape(heading) + r"\n.*?(?=^## |\Z)", section)  # to the next heading


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:  # one run of a side-by-side case, in a process of its own
        worker(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), tuple(map(int, sys.argv[6:])))
    elif sys.argv[1:2] == ["side-by-side"]:
        cli(lambda: side_by_side(tyro.cli(SideBySideArgs, args=sys.argv[2:])), "nothing was written")
    else:
        cli(main, "nothing was written")
