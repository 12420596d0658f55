"""Evaluate a SAC-V checkpoint: `python sac_v_eval.py runs/<run>/sac_v.pt`.

Rebuilds the actor from the checkpoint and runs it on the env it was trained on (or --env-id), with the
deterministic action tanh(μ) by default, and prints each episode's return and the mean ± std.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import tyro

from sac_v import Actor, ConfigError, evaluate, load_checkpoint, make_env


@dataclasses.dataclass
class EvalArgs:
    checkpoint: tyro.conf.Positional[Path]
    """a sac_v.pt checkpoint written by sac_v.py"""
    episodes: int = 10
    """number of evaluation episodes"""
    env_id: str | None = None
    """evaluate on this env instead of the one stored in the checkpoint"""
    seed: int = 0
    """episode i is reset with seed + i (and torch is seeded with it for --stochastic)"""
    stochastic: bool = False
    """sample actions from the policy instead of taking tanh of the mean"""


def evaluate_checkpoint(args: EvalArgs) -> np.ndarray:
    """Run the checkpoint's policy for args.episodes episodes, print the returns, and return them."""
    if args.episodes <= 0:
        raise ConfigError(f"--episodes must be positive, got {args.episodes}")
    checkpoint = load_checkpoint(args.checkpoint)
    env_id = args.env_id or checkpoint["args"]["env_id"]
    env = make_env(env_id)
    actor = Actor(env.observation_space, env.action_space, checkpoint["args"]["hidden_sizes"])
    try:
        actor.load_state_dict(checkpoint["actor"])
    except RuntimeError:
        raise ConfigError(
            f"the checkpoint's actor (trained on {checkpoint['args']['env_id']}) does not fit {env_id}'s "
            "observation and action shapes"
        ) from None
    torch.manual_seed(args.seed)
    returns = evaluate(actor, env, args.episodes, args.seed, deterministic=not args.stochastic)
    env.close()
    policy = "stochastic" if args.stochastic else "deterministic"
    print(f"{args.checkpoint} (step {checkpoint.get('global_step', '?')}) on {env_id}, {policy} policy:")
    for episode, episode_return in enumerate(returns, start=1):
        print(f"  episode {episode}: return {episode_return:.1f}")
    print(f"mean return over {args.episodes} episodes: {returns.mean():.1f} ± {returns.std():.1f}")
    return returns


def main() -> None:
    try:
        evaluate_checkpoint(tyro.cli(EvalArgs))
    except ConfigError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
