"""Shared helpers of the tests: a tiny training configuration, its command-line flags, a CLI runner, a wait for the
first checkpoint of a run started in the background, and the policy a checkpoint holds."""

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch

from sac_v import Actor, Args, make_env

ROOT = Path(__file__).resolve().parents[1]


def tiny_args(**overrides) -> Args:
    """A Pendulum run of a few seconds that still takes a few hundred gradient steps."""
    defaults = dict(
        env_id="Pendulum-v1",
        total_timesteps=400,
        min_pool=100,
        batch_size=32,
        buffer_size=10_000,
        hidden_sizes=(32, 32),
        reward_scale=5.0,
        eval_every=200,
        eval_episodes=1,
        device="cpu",
    )
    return Args(**{**defaults, **overrides})


def run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def flags(args: Args) -> list[str]:
    """The command-line flags that give `args`: one per field that differs from the defaults (no bools)."""
    defaults, out = Args(), []
    for field in dataclasses.fields(Args):
        value = getattr(args, field.name)
        if value != getattr(defaults, field.name):
            out += [f"--{field.name.replace('_', '-')}", *map(str, value if isinstance(value, tuple) else [value])]
    return out


def first_checkpoint(proc: subprocess.Popen, folder: Path) -> Path | None:
    """The first runs/*/sac_v.pt that `proc`, started in `folder`, writes; None if it ends first or within 300 s
    writes none (generous: on a loaded machine the imports alone can take a minute)."""
    deadline = time.monotonic() + 300
    while not list(folder.glob("runs/*/sac_v.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    found = sorted(folder.glob("runs/*/sac_v.pt"))
    return found[0] if found and proc.poll() is None else None


def saved_policy(checkpoint: Path) -> tuple[Actor, gym.Env]:
    """The actor a checkpoint holds, and a new env of the one it was trained on."""
    saved = torch.load(checkpoint, weights_only=True)
    env = make_env(saved["args"]["env_id"])
    actor = Actor(env.observation_space, env.action_space, saved["args"]["hidden_sizes"])
    actor.load_state_dict(saved["actor"])
    return actor, env
