"""Stable-Baselines3's SAC under sac_v's learning-benchmark protocol, with rl-zoo3's settings (zoo) or sac_v's and
ent_coef fixed at alpha / reward_scale (sac-v-defaults): a record beside sac_v's, in runs/benchmarks/<env>/peers/
sb3-<setting>/ (--record: docs/). A rerun resumes each unfinished seed from its checkpoint, in a new training episode.
SB3 takes its first gradient step after env step learning_starts + 1, sac_v after min_pool.

    python benchmarks/peers.py --setting zoo --env-id LunarLanderContinuous-v3 --seeds 5
    python benchmarks/peers.py --setting sac-v-defaults --env-id Pendulum-v1 --total-timesteps 10000 --min-pool 1000
"""

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

if importlib.util.find_spec("stable_baselines3") is None and __name__ == "__main__":
    sys.exit('error: benchmarks/peers.py runs Stable-Baselines3\'s SAC: pip install -e ".[peers]"')

import common
import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
import tyro
from sb3 import RL_ZOO3, ZOO, Setting, make_model, sb3_settings
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.save_util import recursive_getattr

from buffer import atomic_path
from sac_v import Args, ConfigError, Evaluation, make_env, path_name, rng_states, set_rng_states, validate_args

PROTOCOL = ("env_id", "total_timesteps", "eval_every", "eval_episodes")  # what both settings take from sac_v's flags
SAC_V_SETTINGS = ("reward_scale", "alpha", "min_pool", "buffer_size", "batch_size", "gradient_steps", "gamma", "tau")
SAC_V_SETTINGS += ("policy_lr", "critic_lr", "hidden_sizes")  # what sac-v-defaults takes besides
CHECKPOINT = "sb3_sac.pt"
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


@dataclasses.dataclass
class PeerArgs(common.RecordArgs):
    """benchmarks/learning.py's flags, and which settings SB3's SAC learns with."""

    setting: Setting = "zoo"  # zoo: rl-zoo3's settings for the env; sac-v-defaults: sac_v's, ent_coef alpha / scale


def evaluate(model: SAC, env: gym.Env, episodes: int, seed: int) -> np.ndarray:
    """sac_v.evaluate for an SB3 model: returns of episodes seeded seed, seed + 1, ..., with the action tanh(μ)."""
    returns = np.zeros(episodes)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        terminated = truncated = False
        while not (terminated or truncated):
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[episode] += float(reward)
    return returns


class ProtocolEvaluation(BaseCallback):
    """sac_v's evaluations and checkpoints in SB3's model.learn: at _on_rollout_start, after the last gradient step."""

    def __init__(self, train: Args, seed: int, folder: Path | None = None):
        super().__init__()
        self.train, self.seed, self.folder = train, seed, folder
        # wall_s: the seconds of learning in earlier processes (a resumed seed), start: when this one's began
        self.evaluations, self.wall_s, self.start = [], 0.0, 0.0

    def _on_training_start(self) -> None:
        self.start = time.time()

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps > 0 and self.model.num_timesteps % self.train.eval_every == 0:
            self.record()

    def _on_training_end(self) -> None:
        self.record()
        if self.folder is not None:  # the seed is done: its evaluations stay, its buffer is not needed
            self.save(with_buffer=False)

    def _on_step(self) -> bool:
        return True

    def record(self) -> None:
        """Evaluate at this step, unless done already (at the last step's periodic evaluation, or before a resume)."""
        step = self.model.num_timesteps
        if self.evaluations and self.evaluations[-1].step == step:
            return
        with contextlib.closing(make_env(self.train.env_id)) as env:
            returns = evaluate(self.model, env, self.train.eval_episodes, seed=self.seed + 10_000)
        wall_s = self.wall_s + time.time() - self.start
        self.evaluations.append(Evaluation(step, float(returns.mean()), float(returns.std()), wall_s))
        print(f"seed {self.seed} step {step}: eval return {returns.mean():.1f} ± {returns.std():.1f}", flush=True)
        if self.folder is not None and step < self.train.total_timesteps:
            self.save()

    def save(self, with_buffer: bool = True) -> None:
        """What a resume needs, in one file written atomically: SB3's tensors, buffer, evaluations, random streams."""
        model, rb = self.model, self.model.replay_buffer
        contents = model.get_parameters()  # the networks' and optimizers' state dicts; then the entropy coefficient
        contents |= {name: recursive_getattr(model, name).detach() for name in model._get_torch_save_params()[1]}
        size = (rb.buffer_size if rb.full else rb.pos) if with_buffer else 0
        contents["buffer"] = {name: torch.from_numpy(getattr(rb, name)[:size]) for name in BUFFER_ARRAYS}
        contents |= dict(step=model.num_timesteps, n_updates=model._n_updates, pos=rb.pos, full=rb.full)
        contents |= dict(evaluations=[tuple(e) for e in self.evaluations], rng=rng_states(model.action_space))
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / CHECKPOINT) as tmp:
            torch.save(contents | {"wall_s": self.wall_s + time.time() - self.start}, tmp)

    def load(self, model: SAC) -> bool:
        """Bring a new model and this callback to the seed's checkpoint in the folder; False if there is none to use."""
        folder, rb = self.folder, model.replay_buffer
        if folder is None or not (folder / CHECKPOINT).is_file():
            return False
        try:  # weights_only: nothing is unpickled
            saved = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
            buffer = saved["buffer"]  # none in a checkpoint of an older format
        except Exception as e:  # truncated or corrupted: whatever torch or zipfile meets first
            print(f"note: seed {self.seed} starts again: its checkpoint in {folder} is unusable ({type(e).__name__})")
            return False
        state_dicts, tensors = model._get_torch_save_params()
        model.set_parameters({name: saved[name] for name in state_dicts})
        with torch.no_grad():  # in place: the entropy coefficient's optimizer holds this very tensor
            for name in tensors:
                recursive_getattr(model, name).copy_(saved[name])
        for name, array in buffer.items():
            getattr(rb, name)[: len(array)] = array.numpy()
        rb.pos, rb.full = (saved["pos"], saved["full"]) if len(buffer["rewards"]) else (0, False)
        model.num_timesteps, model._n_updates = saved["step"], saved["n_updates"]
        set_rng_states(saved["rng"], model.action_space)
        self.evaluations, self.wall_s = [Evaluation(*e) for e in saved["evaluations"]], saved["wall_s"]
        print(f"seed {self.seed}: resumed at step {saved['step']} from {folder}", flush=True)
        return True


def checkpoint_dir(config: dict[str, Any], seed: int) -> Path:
    """Where a seed of these settings (config.json's) keeps its checkpoint: other settings get another folder."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return Path("runs") / f"{path_name(config['env_id'])}__sb3-{config['setting']}__{seed}__{digest}"


def train_seed(train: Args, settings: dict[str, Any], seed: int, folder: Path | None = None) -> tuple[SAC, list]:
    """One seed of SB3's SAC, evaluated under sac_v's protocol; with a folder, checkpointed there and resumed."""
    model, callback = make_model(settings, train.env_id, seed), ProtocolEvaluation(train, seed, folder)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's own makes an empty tempdir/SB3-<time> per seed
    resumed = callback.load(model)
    if model.num_timesteps < train.total_timesteps:
        model.learn(train.total_timesteps - model.num_timesteps, callback=callback, reset_num_timesteps=not resumed)
    return model, callback.evaluations


def run_seed(train: Args, settings: dict[str, Any], seed: int, folder: Path) -> list[Evaluation]:
    torch.set_num_threads(1 if train.threads == "auto" else train.threads)  # SB3's loop cannot follow the load
    return train_seed(train, settings, seed, folder)[1]


def check_flags(train: Args, setting: Setting) -> tuple[str, ...]:
    """The sac_v flags SB3's SAC takes under this setting; refuse bad ones, and any other given (the seed is ours)."""
    validate_args(train)
    names = (*PROTOCOL, *SAC_V_SETTINGS) if setting == "sac-v-defaults" else PROTOCOL
    taken, defaults = {"seed", "device", "threads", *names}, Args()
    for field in dataclasses.fields(Args):
        if field.name not in taken and getattr(train, field.name) != getattr(defaults, field.name):
            flag = "--" + field.name.replace("_", "-")
            raise ConfigError(f"{flag} is a sac_v setting that SB3's SAC under --setting {setting} does not take")
    if setting == "sac-v-defaults" and train.policy_lr != train.critic_lr:
        print(f"note: SB3 has one learning rate; using --critic-lr {train.critic_lr:g}, not --policy-lr")
    return names


def differences(record: Path, train: Args, names: tuple[str, ...]) -> list[str] | None:
    """The flags among `names` whose value in train differs from sac_v's record, with both values; None: no record."""
    if not (record / "config.json").exists():
        return None
    config = json.loads((record / "config.json").read_text())
    given = json.loads(json.dumps({k: getattr(train, k) for k in names}))  # tuples as lists, as config holds them
    return [f"--{k.replace('_', '-')} {given[k]} (record {config.get(k)})" for k in names if config.get(k) != given[k]]


def describe(setting: Setting, settings: dict[str, Any], train: Args) -> tuple[str, str]:
    """The summary's title and its Settings line: SB3's hyperparameters as used, and where they came from."""
    title = f"# Learning benchmark: Stable-Baselines3's SAC, setting {setting}, on {train.env_id}"
    used = ", ".join(f"`{k}={v}`" for k, v in settings.items())
    line = f'Settings: stable-baselines3 {stable_baselines3.__version__} `SAC("MlpPolicy")` with {used}'
    if setting == "zoo":
        entry, total = ZOO[train.env_id], train.total_timesteps
        line += f"; from rl-zoo3 {RL_ZOO3}'s hyperparams/sac.yml for {entry.listed_as or train.env_id} (the rest SB3's "
        line += f"defaults), whose n_timesteps {entry.n_timesteps:,} this benchmark replaces by {total:,}"
        if isinstance(settings["learning_rate"], str):
            line += f" (so {settings['learning_rate']} falls to 0 over {total:,} steps)"
    else:
        line += f"; sac_v's settings: `learning_rate` its critic_lr (policy_lr {train.policy_lr:g}), `learning_starts` "
        line += f"its min_pool, `ent_coef` fixed at alpha / reward_scale = {train.alpha:g} / {train.reward_scale:g}; "
        line += "no V network, rewards unscaled"
    return title, line + "."


def peer_config(peer: PeerArgs, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a seed's results depend on, as config.json holds them."""
    config = {"setting": peer.setting, **{k: getattr(peer.train, k) for k in PROTOCOL}, "sb3": settings}
    rl_zoo3 = RL_ZOO3 if peer.setting == "zoo" else None
    return config | {"stable_baselines3": stable_baselines3.__version__, "rl_zoo3": rl_zoo3}


def main(peer: PeerArgs) -> None:
    """The seeds not yet in the record, each from its last checkpoint if it has one; then the summary and plot."""
    train, setting = peer.train, peer.setting
    threshold = common.check_record(peer, "SB3's runs keep no run folder", "the benchmark resumes its own seeds")
    names, sac_v_record = check_flags(train, setting), common.ROOT / "docs" / "benchmarks" / train.env_id
    settings = sb3_settings(setting, train)
    if differ := differences(sac_v_record, train, names):
        print(f"note: not sac_v's record for {train.env_id} (docs/benchmarks/{train.env_id}): {', '.join(differ)}")
    out_dir = common.results_path(peer.out_dir, peer.record, "benchmarks", train.env_id, "peers", f"sb3-{setting}")
    config, heading = peer_config(peer, settings), describe(setting, settings, train)
    same_protocol = differences(sac_v_record, train, PROTOCOL) == []  # then the plot draws sac_v's record beside
    beside = common.by_seed(common.read_rows(sac_v_record / "runs.csv")) if same_protocol else {}

    def report(rows: list[dict[str, Any]], ran: common.Provenance) -> None:
        (out_dir / "summary.md").write_text(common.summary(rows, ran, train, threshold, heading))
        per_seed = common.by_seed(rows)
        curves = [(per_seed, "tab:orange", f"SB3 SAC ({setting}), mean"), (beside, "tab:blue", "sac_v's record, mean")]
        title = f"SB3's SAC ({setting}) on {train.env_id}: {common.seeds_title(per_seed)}"
        common.plot_curves(out_dir / "curves.png", title, curves, threshold)

    def job(key: common.RunKey) -> tuple:
        return train, settings, key[1], checkpoint_dir(config, key[1])

    threads = 1 if train.threads == "auto" else train.threads  # sac_v's --threads, per worker, as run_seed takes it
    pool = common.seed_pool(run_seed, threads, f"stable-baselines3 {stable_baselines3.__version__}")
    common.run_record(common.Record(out_dir, config, report, job, *pool), peer)


if __name__ == "__main__":
    stopped = "the finished seeds are in runs.csv; the same command resumes the others from their last evaluation"
    common.cli(lambda: main(tyro.cli(PeerArgs)), stopped)
