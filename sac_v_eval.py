"""Evaluate a SAC-V checkpoint: `python sac_v_eval.py runs/<run>/sac_v.pt`, or a folder for its newest checkpoint.

Rebuilds the actor from the checkpoint and runs it on the env it was trained on (or --env-id), with the
deterministic action tanh(μ) by default, and prints each episode's return and the mean ± std.
`python sac_v_eval.py --list` lists the runs under runs/ with their env, step and last evaluation.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import tyro

from sac_v import (
    Actor,
    Args,
    ConfigError,
    check_spaces,
    evaluate,
    load_checkpoint,
    make_env,
    path_name,
    record_video,
    survive_closed_consoles,
    validate_args,
)


@dataclasses.dataclass
class EvalArgs:
    checkpoint: tyro.conf.Positional[Path] = Path("runs")
    """a sac_v.pt checkpoint written by sac_v.py, or a folder: the newest checkpoint in it"""
    episodes: int = 10
    """number of evaluation episodes"""
    env_id: str | None = None
    """evaluate on this env instead of the one stored in the checkpoint"""
    seed: int = 0
    """episode i is reset with seed + i (and torch is seeded with it for --stochastic)"""
    stochastic: bool = False
    """sample actions from the policy instead of taking tanh of the mean"""
    capture_video: bool = False
    """record every episode to videos/<run>/ (needs the video extra)"""
    list: bool = False
    """list the runs in the folder with their env, step, and last evaluation's step and return; evaluate nothing"""


def find_checkpoints(folder: Path) -> list[Path]:
    """The sac_v.pt checkpoints under folder, oldest first."""
    if not folder.is_dir():
        first_run = "; train one first with python sac_v.py" if folder == EvalArgs.checkpoint else ""
        raise ConfigError(f"no checkpoint file or folder at {folder}{first_run}")
    checkpoints = sorted(folder.rglob("sac_v.pt"), key=lambda path: path.stat().st_mtime)
    if not checkpoints:
        raise ConfigError(f"no sac_v.pt checkpoint under {folder}")
    return checkpoints


def list_runs(folder: Path) -> None:
    """Print one line per checkpoint under folder: its run, env and step, and its last evaluation's step and return."""
    paths = [folder] if folder.is_file() else find_checkpoints(folder)
    print(f"{'run':<60} {'env':<28} {'step':>9} {'eval at':>9} {'eval return':>11}")
    for path in paths:
        try:
            checkpoint = load_checkpoint(path)
        except ConfigError as e:
            if folder.is_file():  # the one asked for
                raise
            print(f"{path.parent!s:<60} {e}")
            continue
        eval_return = checkpoint.get("eval_return", float("nan"))
        evaluations = checkpoint.get("evaluations") or [("?",)]  # the step of the last one; older formats lack it
        eval_step = checkpoint.get("eval_step", evaluations[-1][0])
        last = f"{eval_step:>9} {eval_return:>11.1f}" if eval_step != -1 else f"{'-':>9} {'-':>11}"  # none yet
        print(f"{path.parent!s:<60} {checkpoint['args']['env_id']:<28} {checkpoint.get('global_step', '?'):>9} {last}")


def evaluate_checkpoint(args: EvalArgs) -> np.ndarray:
    """Run the checkpoint's policy for args.episodes episodes, print the returns, and return them."""
    if args.episodes <= 0:
        raise ConfigError(f"--episodes must be positive, got {args.episodes}")
    validate_args(Args(seed=args.seed, capture_video=args.capture_video))  # training's checks of the two flags
    path = args.checkpoint
    if not path.is_file():
        path = find_checkpoints(path)[-1]
        print(f"newest checkpoint under {args.checkpoint}: {path}")
    checkpoint = load_checkpoint(path)
    env_id = args.env_id or checkpoint["args"]["env_id"]
    env = make_env(env_id, render_mode="rgb_array" if args.capture_video else None)
    check_spaces(checkpoint, env, env_id)
    policy = "stochastic" if args.stochastic else "deterministic"
    if args.capture_video:  # named for all that sets the episodes, so that another evaluation writes other files
        name = f"{path.stem}-step-{checkpoint.get('global_step', '?')}-{path_name(env_id)}-{policy}-seed-{args.seed}"
        env = record_video(env, Path("videos") / path.parent.name, name)
    actor = Actor(env.observation_space, env.action_space, checkpoint["args"]["hidden_sizes"])
    try:
        actor.load_state_dict(checkpoint["actor"])
    except RuntimeError:
        raise ConfigError(f"{path}: its actor does not match the network sizes in its own args") from None
    torch.manual_seed(args.seed)
    returns = evaluate(actor, env, args.episodes, args.seed, deterministic=not args.stochastic)
    env.close()
    print(f"{path} (step {checkpoint.get('global_step', '?')}) on {env_id}, {policy} policy:")
    for episode, episode_return in enumerate(returns, start=1):
        print(f"  episode {episode}: return {episode_return:.1f}")
    print(f"mean return over {args.episodes} episodes: {returns.mean():.1f} ± {returns.std():.1f}")
    return returns


def main() -> None:
    args = tyro.cli(EvalArgs)
    try:
        list_runs(args.checkpoint) if args.list else evaluate_checkpoint(args)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:  # Ctrl-C: stop quietly, as a shell reports it
        sys.exit(130)


if __name__ == "__main__":
    survive_closed_consoles(stdout_then_stderr=False)  # `--list | head`: the rest of the list goes nowhere
    main()
