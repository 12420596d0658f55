"""What lets a long sac_v run stop and continue bit-identically: snapshots of every random stream, the replay of the
episode in progress, and SIGINT/SIGTERM turned into a request to stop between two steps.

Checkpoints must load with torch.load(weights_only=True), so every state here is made of tensors, numbers, strings,
lists, tuples and dicts.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from buffer import ReplayBuffer


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
