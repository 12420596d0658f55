"""Stable-Baselines3's SAC as peers.py and throughput.py set it up: SB3's own defaults, rl-zoo3's tuned settings for a
task, or sac_v's settings without V; and the model they make. Needs the `peers` extra."""

import functools
import inspect
import operator
from typing import Any, Literal, NamedTuple

from stable_baselines3 import SAC

from sac_v import Args, ConfigError, make_env

Setting = Literal["zoo", "sac-v-defaults"]
RL_ZOO3 = "2.9.2"  # the rl-zoo3 release whose rl_zoo3/hyperparams/sac.yml ZOO copies


class ZooEntry(NamedTuple):
    n_timesteps: int  # the zoo's run length; this benchmark runs --total-timesteps instead
    hyperparameters: dict[str, Any]  # beside policy "MlpPolicy"; what it leaves out is SB3's default
    listed_as: str | None = None  # the env's name in the zoo where it differs


# lin_<x>: x times the share of the run still to go (the zoo's SimpleLinearSchedule), over this benchmark's run.
LUNAR = dict(learning_rate="lin_7.3e-4", buffer_size=1_000_000, batch_size=256, ent_coef="auto", gamma=0.99, tau=0.01)
LUNAR |= dict(train_freq=1, gradient_steps=1, learning_starts=10_000, net_arch=[400, 300])
ZOO = {"LunarLanderContinuous-v3": ZooEntry(500_000, LUNAR), "Pendulum-v1": ZooEntry(20_000, dict(learning_rate=1e-3))}
# The zoo tunes MuJoCo's -v4 envs only, all alike (SB3's defaults, learning_starts 10 000); -v5 are the same tasks.
for task in ("HalfCheetah", "Hopper", "Walker2d"):
    ZOO[f"{task}-v5"] = ZooEntry(1_000_000, dict(learning_starts=10_000), listed_as=f"{task}-v4")
SB3_HYPERPARAMETERS = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq")
SB3_HYPERPARAMETERS += ("gradient_steps", "ent_coef", "target_update_interval", "target_entropy")


def sb3_defaults(device: str) -> dict[str, Any]:
    """SB3's own SAC defaults for the hyperparameters this benchmark sets (the entropy coefficient stays learned)."""
    defaults = {name: inspect.signature(SAC).parameters[name].default for name in SB3_HYPERPARAMETERS}
    return defaults | {"net_arch": [256, 256], "device": device}  # 256×256: SB3's actor and critics (sac/policies.py)


def sb3_settings(setting: Setting, train: Args) -> dict[str, Any]:
    """Every hyperparameter given to SB3's SAC: SB3's defaults, overridden by the zoo's for the env or by sac_v's."""
    defaults = sb3_defaults(train.device)
    if setting == "zoo":
        if train.env_id not in ZOO:
            raise ConfigError(f"rl-zoo3 hyperparameters are copied here for {', '.join(ZOO)}, not {train.env_id}")
        return defaults | ZOO[train.env_id].hyperparameters
    same = {name: getattr(train, name) for name in ("buffer_size", "batch_size", "tau", "gamma", "gradient_steps")}
    ours = dict(learning_rate=train.critic_lr, learning_starts=train.min_pool, net_arch=list(train.hidden_sizes))
    # SB3 has one learning rate; sac_v's Q target of r * reward_scale with alpha is SB3's with ent_coef alpha / scale
    return defaults | same | ours | {"ent_coef": train.alpha / train.reward_scale}


def make_model(settings: dict[str, Any], env_id: str, seed: int) -> SAC:
    """SB3's SAC with these settings, learning on a new env; SB3 seeds Python, numpy, torch and the env with seed."""
    kwargs = {k: v for k, v in settings.items() if k != "net_arch"} | {"seed": seed}
    if isinstance(rate := settings["learning_rate"], str):  # the zoo's lin_<x>: x times SB3's progress_remaining
        kwargs["learning_rate"] = functools.partial(operator.mul, float(rate.removeprefix("lin_")))
    return SAC("MlpPolicy", make_env(env_id), policy_kwargs={"net_arch": list(settings["net_arch"])}, **kwargs)
