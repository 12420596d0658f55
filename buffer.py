"""A replay buffer for SAC-V: a numpy ring of preallocated float32 arrays, sampled uniformly with replacement."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    obs: np.ndarray  # (batch_size, obs_dim)
    actions: np.ndarray  # (batch_size, act_dim)
    rewards: np.ndarray  # (batch_size,)
    next_obs: np.ndarray  # (batch_size, obs_dim)
    terminated: np.ndarray  # (batch_size,), 1.0 where the episode truly ended (never for a time limit)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name to write `path` under: it replaces `path` only when the block ends without an error, so that a
    crash or a full disk mid-write leaves the previous file whole, and an error leaves no partial file behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ReplayBuffer:
    """Holds the newest `capacity` transitions; once full, each new one overwrites the oldest."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, seed: int | None = None) -> None:
        if obs_dim <= 0 or act_dim <= 0:
            raise ValueError(f"obs_dim and act_dim must be positive, got {obs_dim} and {act_dim}")
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.rng = np.random.default_rng(seed)
        self.pos = 0  # where the next transition goes
        self.size = 0
        self.added = 0  # transitions added since creation: pairs a saved buffer with the checkpoint saved beside it
        self.tag = ""  # a string saved with the buffer and read back by load (sac_v's id of the checkpoint beside it)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        """Store one transition."""
        for name, value, target in (
            ("obs", obs, self.obs),
            ("action", action, self.actions),
            ("next_obs", next_obs, self.next_obs),
        ):
            if np.shape(value) != target.shape[1:]:
                raise ValueError(f"{name} has shape {np.shape(value)}, the buffer expects {target.shape[1:]}")
        self.obs[self.pos] = obs
        self.actions[self.pos] = action
        self.rewards[self.pos] = reward
        self.next_obs[self.pos] = next_obs
        self.terminated[self.pos] = terminated
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def sample(self, batch_size: int) -> Batch:
        """Draw `batch_size` transitions uniformly with replacement; every call draws fresh indices."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer: add transitions first")
        idx = self.rng.integers(0, self.size, size=batch_size)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.obs, self.actions, self.rewards, self.next_obs, self.terminated))

    def save(self, path: Path, tag: str = "") -> None:
        """Write the transitions, the sampler's state and `tag` to a compressed .npz, atomically (atomic_path)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                obs=self.obs[: self.size],
                actions=self.actions[: self.size],
                rewards=self.rewards[: self.size],
                next_obs=self.next_obs[: self.size],
                terminated=self.terminated[: self.size],
                capacity=self.capacity,
                added=self.added,
                rng=json.dumps(self.rng.bit_generator.state),  # PCG64's 128-bit integers survive JSON, not int64
                tag=tag,
            )

    @classmethod
    def load(cls, path: Path) -> ReplayBuffer:
        """The buffer `save` wrote, ready to continue: same transitions, same ring position, same next samples."""
        with np.load(path) as data:  # allow_pickle stays off: only plain arrays are read
            obs, actions = data["obs"], data["actions"]
            rb = cls(obs.shape[1], actions.shape[1], int(data["capacity"]))
            rb.size, rb.added = len(obs), int(data["added"])
            if rb.size != min(rb.added, rb.capacity):
                raise ValueError(
                    f"{path} holds {rb.size} transitions, but its counters say {min(rb.added, rb.capacity)}"
                )
            rb.pos = rb.added % rb.capacity
            for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
                getattr(rb, name)[: rb.size] = data[name]
            rb.rng.bit_generator.state = json.loads(str(data["rng"]))
            rb.tag = str(data["tag"]) if "tag" in data.files else ""  # a buffer saved before tags has none
        return rb
