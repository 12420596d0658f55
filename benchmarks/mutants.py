"""Mutation check of the test suite: does a test fail when a piece of the algorithm is broken?

    python benchmarks/mutants.py                  # every mutant: about 40 minutes on a 2-core CPU
    python benchmarks/mutants.py --only M19 M20   # some of them

Each mutant is one small change that breaks what the code promises. Most change sac_v.py or buffer.py against the
spec: the twin minimum turned into a maximum, Q2 trained on Q1's output, V̄ left in place, exploration with tanh(μ), a
random stream not restored on resume, a flag at the edge of its range refused, a signal handler not restored, and so
on; the last ones change the numbers that the benchmarks and sac_v_eval.py report. In a copy of the repository, each
mutant in turn is applied and the test file that should catch it runs (then, if it passes, the eight files of
EVERY_FILE); a mutant that every test passes is a gap in the suite. First the unmutated copy must pass them all, and
the mutants' own test files. Prints a table; exits 1 if a mutant survives or no longer applies (the code it changes
has changed: update its strings here). tests/test_mutants.py checks that every mutant still applies.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
UPDATE, ACTOR, BUFFER, TRAIN = (
    "tests/test_update.py",
    "tests/test_actor.py",
    "tests/test_buffer.py",
    "tests/test_train.py",
)
LONG_RUNS, FAST_PATHS = "tests/test_long_runs.py", "tests/test_fast_paths.py"
FAULTS, EVAL = "tests/test_faults.py", "tests/test_eval.py"
EVERY_FILE = (UPDATE, ACTOR, BUFFER, TRAIN, LONG_RUNS, FAST_PATHS, FAULTS, EVAL)
BENCHMARK, LEARNING = "tests/test_learning_benchmark.py", "benchmarks/learning.py"
PEERS, SWEEP, RUNS_TO_CSV = "tests/test_peers.py", "tests/test_sweep.py", "tests/test_runs_to_csv.py"
COMPARE, THROUGHPUT = "tests/test_compare.py", "tests/test_throughput_benchmark.py"


class Mutant(NamedTuple):
    name: str
    what: str  # what the change breaks
    old: str  # replaced once: it must occur exactly once in the file
    new: str
    test_file: str  # where the test that should catch it is
    path: str = "sac_v.py"  # the file it changes
    cuda: bool = False  # only a CUDA test can catch it


MUTANTS = [
    # The actor: Appendix C, Eq. 21, and the spec's bounds of log σ.
    Mutant(
        "M01",
        "log π without tanh's log-Jacobian",
        "log_prob - (2 * (math.log(2)",
        "log_prob - 0 * (2 * (math.log(2)",
        ACTOR,
    ),
    Mutant(
        "M02", "log π without the rescale's log-Jacobian", "log_prob - self.action_scale.log().sum()", "log_prob", ACTOR
    ),
    Mutant(
        "M03", "log π without the Gaussian's constant", "- log_std - 0.5 * math.log(2 * math.pi)", "- log_std", ACTOR
    ),
    Mutant(
        "M04",
        "log π averaged over action dimensions",
        "math.log(2 * math.pi)).sum(-1)",
        "math.log(2 * math.pi)).mean(-1)",
        ACTOR,
    ),
    Mutant(
        "M05",
        "log σ clamped at -5, not -20",
        "LOG_STD_MIN, LOG_STD_MAX = -20.0,",
        "LOG_STD_MIN, LOG_STD_MAX = -5.0,",
        ACTOR,
    ),
    Mutant(
        "M06",
        "actions not shifted into the env's bounds",
        "self.action_scale + self.action_bias",
        "self.action_scale",
        ACTOR,
    ),
    Mutant("M07", "uniform noise, not Gaussian", "torch.randn_like(mean)", "torch.rand_like(mean)", ACTOR),
    Mutant("M08", "log σ taken for σ", "mean + log_std.exp() * eps", "mean + log_std * eps", ACTOR),
    Mutant(
        "M40",
        "critics initialised U(-1/in, 1/in)",
        "bound = 1 / math.sqrt(in_features)",
        "bound = 1 / in_features",
        UPDATE,
    ),
    # The losses: Eqs. 5, 8 and 12.
    Mutant("M09", "the twin maximum, not minimum", "torch.min(qf1_pi, qf2_pi)", "torch.max(qf1_pi, qf2_pi)", UPDATE),
    Mutant(
        "M10",
        "V's target from Q1 alone",
        "(min_q_pi - alpha * log_pi).detach()",
        "(qf1_pi - alpha * log_pi).detach()",
        UPDATE,
    ),
    Mutant(
        "M11",
        "the policy loss on Q1 alone",
        "(alpha * log_pi - min_q_pi).mean()",
        "(alpha * log_pi - qf1_pi).mean()",
        UPDATE,
    ),
    Mutant(
        "M12",
        "V's target not cut from autograd",
        "(min_q_pi - alpha * log_pi).detach()",
        "(min_q_pi - alpha * log_pi)",
        UPDATE,
    ),
    Mutant(
        "M13",
        "the policy's gradient reaching θ1, θ2",
        "{name: p.detach() for name, p in qf.named_parameters()}",
        "dict(qf.named_parameters())",
        UPDATE,
    ),
    Mutant("M14", "the Q target without the reward scale", "reward_scale * rewards + gamma", "rewards + gamma", UPDATE),
    Mutant("M15", "the Q target without γ", "rewards + gamma * (1 - terminated)", "rewards + (1 - terminated)", UPDATE),
    Mutant(
        "M16",
        "bootstrapping past a terminal state",
        "gamma * (1 - terminated) * vf_target",
        "gamma * vf_target",
        UPDATE,
    ),
    Mutant(
        "M17",
        "the Q target from V, not V̄",
        "(1 - terminated) * vf_target(next_obs)",
        "(1 - terminated) * vf(next_obs)",
        UPDATE,
    ),
    Mutant("M18", "V's loss without ½", "v_loss = 0.5 * F.mse_loss", "v_loss = F.mse_loss", UPDATE),
    Mutant(
        "M19",
        "Q2 trained on Q1's output",
        "F.mse_loss(qf2_values, q_target)",
        "F.mse_loss(qf1_values, q_target)",
        UPDATE,
    ),
    Mutant(
        "M20", "the policy loss without entropy", "(alpha * log_pi - min_q_pi).mean()", "(-min_q_pi).mean()", UPDATE
    ),
    # The update and the optimizers.
    Mutant(
        "M21", "V̄ moved by 1 - τ", "list(vf.parameters()), args.tau)", "list(vf.parameters()), 1 - args.tau)", UPDATE
    ),
    Mutant("M22", "V̄ never moved", "list(vf.parameters()), args.tau)", "list(vf.parameters()), 0.0)", UPDATE),
    Mutant("M23", "the actor's gradient dropped", "total.backward()", "total.backward(); actor.zero_grad()", UPDATE),
    Mutant(
        "M24", "V's Adam never stepping", "optimizer.step()", "optimizer is optimizers[-1] or optimizer.step()", UPDATE
    ),
    Mutant("M25", "the actor at the critics' learning rate", "lr=args.policy_lr", "lr=args.critic_lr", UPDATE),
    Mutant("M26", "V's Adam given the critics' parameters", "Adam(vf.parameters()", "Adam(qf.parameters()", UPDATE),
    # Evaluation and the training loop (Algorithm 1).
    Mutant(
        "M27",
        "evaluation sampling, not tanh(μ)",
        "action = actor.squash(actor(obs_t)[0]) if",
        "action = actor.get_action(obs_t)[0] if",
        TRAIN,
    ),
    Mutant(
        "M28", "every evaluation episode on one seed", "env.reset(seed=seed + episode)", "env.reset(seed=seed)", TRAIN
    ),
    Mutant("M49", "evaluation on the training seed", "seed=args.seed + 10_000)", "seed=args.seed)", TRAIN),
    Mutant(
        "M29",
        "one random step more than --min-pool",
        "if len(rb) < args.min_pool:",
        "if len(rb) <= args.min_pool:",
        TRAIN,
    ),
    Mutant(
        "M30",
        "the first gradient step a step late",
        "if len(rb) >= args.min_pool:",
        "if len(rb) > args.min_pool:",
        TRAIN,
    ),
    Mutant("M31", "--gradient-steps ignored", "range(args.gradient_steps)", "range(1)", TRAIN),
    Mutant(
        "M32", "a time limit stored as terminal", "next_obs, terminated)", "next_obs, terminated or truncated)", TRAIN
    ),
    Mutant("M33", "s stored for s'", "float(reward), next_obs,", "float(reward), obs,", TRAIN),
    Mutant(
        "M34",
        "exploration with tanh(μ), not a sample",
        "sample_action(obs_t)[0][0]",
        "sample_action(obs_t)[2][0]",
        TRAIN,
    ),
    Mutant("M47", "V̄ not starting as a copy of V", "vf_target.load_state_dict(vf.state_dict())", "None", TRAIN),
    # The replay buffer.
    Mutant(
        "M35",
        "the newest slot never sampled",
        "integers(0, self.size,",
        "integers(0, self.size - 1,",
        BUFFER,
        "buffer.py",
    ),
    Mutant("M36", "the ring one slot short", "% self.capacity", "% max(self.capacity - 1, 1)", BUFFER, "buffer.py"),
    Mutant("M37", "additions miscounted", "self.added += 1", "self.added = self.size", BUFFER, "buffer.py"),
    Mutant("M38", "a loaded buffer's sampler not restored", "rb.rng.bit_generator.state =", "_ =", BUFFER, "buffer.py"),
    Mutant(
        "M39",
        "a loaded full ring's write position wrong",
        "rb.pos = rb.added % rb.capacity",
        "rb.pos = rb.size % rb.capacity",
        BUFFER,
        "buffer.py",
    ),
    # Exact resume.
    Mutant("M41", "numpy's global stream not restored", 'np.random.set_state(states["numpy"])', "None", LONG_RUNS),
    Mutant("M42", "torch's stream not restored", 'torch.set_rng_state(states["torch"])', "None", LONG_RUNS),
    Mutant("M43", "the action space's stream not restored", '.state = states["action_space"]', "_ = None", LONG_RUNS),
    Mutant(
        "M44",
        "the episode in progress not replayed",
        "obs = replay_episode(env, run.rb, run.episode)",
        "obs = env.reset()[0]",
        LONG_RUNS,
    ),
    Mutant("M45", "Adam's moments not restored", '"state": checkpoint[name]["state"]', '"state": {}', LONG_RUNS),
    Mutant(
        "M46",
        "the episode's env stream not restored",
        'env.np_random.bit_generator.state = episode["rng"]',
        "None",
        LONG_RUNS,
    ),
    Mutant("M50", "Python's stream not restored", 'random.setstate(states["python"])', "None", LONG_RUNS),
    # The long-run machinery (the second audit's): flags at the edges of their ranges, what a resume restores, the
    # run folder, signals, a saved buffer's counters.
    Mutant("M51", "seed 0 refused", "0 <= args.seed < 2**32", "0 < args.seed < 2**32", TRAIN),
    Mutant("M52", "seed 2³² − 1 refused", "0 <= args.seed < 2**32", "0 <= args.seed < 2**32 - 1", TRAIN),
    Mutant("M53", "τ = 1 refused", "0 < args.tau <= 1", "0 < args.tau < 1", TRAIN),
    Mutant("M54", "γ = 1 refused", "0 <= args.gamma <= 1", "0 <= args.gamma < 1", TRAIN),
    Mutant("M55", "α = 0 refused", "args.alpha >= 0", "args.alpha > 0", TRAIN),
    Mutant(
        "M56",
        "a min pool of one batch refused",
        "args.min_pool >= args.batch_size",
        "args.min_pool > args.batch_size",
        TRAIN,
    ),
    Mutant(
        "M57",
        "a min pool filling the buffer refused",
        "args.min_pool <= args.buffer_size",
        "args.min_pool < args.buffer_size",
        TRAIN,
    ),
    Mutant("M58", "train refused off the main thread", " if main_thread else []", "", TRAIN),
    Mutant(
        "M59",
        "a policy for other upper action bounds accepted",
        "np.allclose(bias + scale, high)",
        "True",
        EVAL,
    ),
    Mutant(
        "M60",
        "divergence before any checkpoint sent to one",
        "if self.saved_step is None:\n            return DivergenceError",
        "if False:\n            return DivergenceError",
        LONG_RUNS,
    ),
    Mutant("M61", "the run folder kept locked after the run", "self.lock.close()  # releases", "None  #", LONG_RUNS),
    Mutant(
        "M62",
        "the last training return not restored",
        'run.train_return = checkpoint["train_return"]',
        'run.train_return = float("nan")',
        LONG_RUNS,
    ),
    Mutant("M63", "the training time not restored", 'checkpoint["wall_s"], run.step', "0.0, run.step", LONG_RUNS),
    Mutant(
        "M64",
        "an episode as long as the buffer not replayed",
        'if checkpoint["episode"]["length"] <= len(run.rb):',
        'if checkpoint["episode"]["length"] < len(run.rb):',
        LONG_RUNS,
    ),
    Mutant(
        "M65",
        "a stale buffer read beside a checkpoint saved without one",
        'if checkpoint["buffer_added"] is None or not path.is_file():',
        "if not path.is_file():",
        LONG_RUNS,
    ),
    Mutant(
        "M66",
        "a replay that differs not reported",
        "if not np.array_equal(np.asarray(obs, np.float32), rb.next_obs[i]):",
        "if False:",
        LONG_RUNS,
    ),
    Mutant("M67", "a second signal not passed on", "signal.signal(signum, previous[signum])", "None", LONG_RUNS),
    Mutant("M68", "the signal handlers not restored", "signal.signal(signum, handler)", "None", LONG_RUNS),
    Mutant(
        "M69",
        "a buffer whose counters disagree accepted",
        "if rb.size != min(rb.added, rb.capacity):",
        "if False:",
        BUFFER,
        path="buffer.py",
    ),
    # The numbers the benchmarks publish (the second audit's): benchmarks/learning.py's summary, its runs.csv and the
    # checkpoint it resumes, compare.py's table.
    Mutant(
        "M70",
        "every seed counted as solved",
        "np.isfinite(reach).sum()} / {len(seeds)}**",
        "len(seeds)} / {len(seeds)}**",
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M71",
        "a seed solved at the target step not counted within it",
        "within = (reach <= target.steps).sum()",
        "within = (reach < target.steps).sum()",
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M72",
        "the median and IQR interpolated between seeds",
        'method="inverted_cdf") if seeds',
        'method="linear") if seeds',
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M73",
        "the final evaluation taken from the first row",
        'finals = np.array([per_seed[s][-1]["eval_mean"]',
        'finals = np.array([per_seed[s][0]["eval_mean"]',
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M74",
        "a seed's best evaluation as its worst",
        'best = max(r["eval_mean"]',
        'best = min(r["eval_mean"]',
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M75",
        "an unfinished seed's rows counted as finished",
        'rows = [r for r in rows if r["seed"] in done]',
        "rows = list(rows)",
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M76",
        "a row cut within its last field kept",
        'if not text.endswith("\\n"):',
        "if False:",
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant("M77", "a row with more fields than the header kept", "and None not in row]", "]", BENCHMARK, path=LEARNING),
    Mutant(
        "M78",
        "results without their config taken for this config's",
        "if config_json.exists() else {}",
        "if config_json.exists() else config",
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M79",
        "the last checkpoint found resumed, not the most advanced",
        'best, best_step = path, saved["global_step"]',
        "best, best_step = path, 0",
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M80",
        "a finished run resumed for an unfinished seed",
        'best_step < saved["global_step"] < args.total_timesteps',
        'best_step < saved["global_step"] <= args.total_timesteps',
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M81",
        "the last seeds below 2³² refused",
        "if not 0 <= first_seed <= 2**32 - seeds:",
        "if not 0 <= first_seed < 2**32 - seeds:",
        BENCHMARK,
        path=LEARNING,
    ),
    Mutant(
        "M82",
        "compare.py's minutes per seed a mean, not a median",
        "wall = np.median(",
        "wall = np.mean(",
        COMPARE,
        path="benchmarks/compare.py",
    ),
    # The other tools' results (a third audit): peers.py's SB3 settings and records, sweep.py's summary, runs_to_csv.py,
    # sac_v_eval.py's seeds and printout.
    Mutant(
        "M83",
        "SB3 given the actor's learning rate, not the critics'",
        "learning_rate=train.critic_lr,",
        "learning_rate=train.policy_lr,",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M84",
        "--gamma refused under sac-v-defaults",
        '"batch_size", "gradient_steps", "gamma", "tau")',
        '"batch_size", "gradient_steps", "tau")',
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M85",
        "the zoo's Pendulum learning rate wrong",
        "ZooEntry(20_000, dict(learning_rate=1e-3))",
        "ZooEntry(20_000, dict(learning_rate=1e-4))",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M86",
        "a peer evaluation's std recorded as its mean",
        "float(returns.mean()), float(returns.std())",
        "float(returns.mean()), float(returns.mean())",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M87",
        "a sweep label not written as the grid reads it",
        'f"{field}={format_value(value)}"',
        'f"{field}={value}"',
        SWEEP,
        path="benchmarks/sweep.py",
    ),
    Mutant(
        "M88",
        "a sweep's median steps a mean",
        'fmt(np.percentile(reach, 50, method="inverted_cdf"))',
        "fmt(np.mean(reach))",
        SWEEP,
        path="benchmarks/sweep.py",
    ),
    Mutant(
        "M89",
        "a sweep's final evaluation from the first row",
        'finals = np.array([r[-1]["eval_mean"] for r in per_seed.values()])',
        'finals = np.array([r[0]["eval_mean"] for r in per_seed.values()])',
        SWEEP,
        path="benchmarks/sweep.py",
    ),
    Mutant(
        "M90",
        "a sweep's seed solved at the target step not counted within it",
        "(reach <= target).sum()",
        "(reach < target).sum()",
        SWEEP,
        path="benchmarks/sweep.py",
    ),
    Mutant(
        "M91",
        "a sweep over total_timesteps judging runs finished by one length",
        'if r["step"] == total_timesteps(cell_of(r)[0])}',
        'if r["step"] == sweep.train.total_timesteps}',
        SWEEP,
        path="benchmarks/sweep.py",
    ),
    Mutant(
        "M92",
        "a sweep setting's row mixing in runs that share one value",
        "all(r[k] == v for k, v in setting.items())",
        "any(r[k] == v for k, v in setting.items())",
        SWEEP,
        path="benchmarks/sweep.py",
    ),
    Mutant(
        "M93",
        "runs_to_csv rounding to one decimal",
        "round(event.value, 2)",
        "round(event.value, 1)",
        RUNS_TO_CSV,
        path="benchmarks/runs_to_csv.py",
    ),
    Mutant(
        "M94",
        "runs_to_csv writing an empty CSV for a folder of no runs",
        "if not run_dirs:",
        "if run_dirs is None:",
        RUNS_TO_CSV,
        path="benchmarks/runs_to_csv.py",
    ),
    Mutant(
        "M95",
        "runs_to_csv's header in the wrong order",
        '"seed", "step", "eval_mean"])',
        '"seed", "eval_mean", "step"])',
        RUNS_TO_CSV,
        path="benchmarks/runs_to_csv.py",
    ),
    Mutant(
        "M96",
        "runs_to_csv failing on a run without an evaluation",
        'if "eval/episodic_return" not in events.Tags()["scalars"]:',
        "if False:",
        RUNS_TO_CSV,
        path="benchmarks/runs_to_csv.py",
    ),
    Mutant(
        "M97",
        "runs_to_csv's rows in the folder's order",
        "run_dirs = sorted(p for p in",
        "run_dirs = list(p for p in",
        RUNS_TO_CSV,
        path="benchmarks/runs_to_csv.py",
    ),
    Mutant(
        "M98",
        "sac_v_eval's action noise the same for every --seed",
        "torch.manual_seed(args.seed)",
        "torch.manual_seed(0)",
        EVAL,
        path="sac_v_eval.py",
    ),
    Mutant(
        "M99",
        "sac_v_eval's --seed ignored by the episodes",
        "evaluate(actor, env, args.episodes, args.seed, deterministic",
        "evaluate(actor, env, args.episodes, 0, deterministic",
        EVAL,
        path="sac_v_eval.py",
    ),
    Mutant(
        "M100",
        "sac_v_eval printing a median as the mean",
        "{returns.mean():.1f} ± {returns.std():.1f}",
        "{np.median(returns):.1f} ± {returns.std():.1f}",
        EVAL,
        path="sac_v_eval.py",
    ),
    Mutant(
        "M101",
        "sac_v_eval --list showing an older checkpoint's first evaluation",
        'checkpoint.get("eval_step", evaluations[-1][0])',
        'checkpoint.get("eval_step", evaluations[0][0])',
        EVAL,
        path="sac_v_eval.py",
    ),
    # A fourth audit's: the --paper preset, flag bounds, TensorBoard scalars, the stop message; learning.py's targets,
    # thresholds and summary lines; compare.py's checks and final column; throughput.py's numbers.
    Mutant(
        "M102",
        "--paper trains 100 000 steps, not 1 000 000",
        "PAPER = dict(total_timesteps=10**6,",
        "PAPER = dict(total_timesteps=10**5,",
        TRAIN,
    ),
    Mutant(
        "M103",
        "--paper evaluates every 5 000 steps",
        "critic_lr=3e-4, eval_every=10_000)",
        "critic_lr=3e-4, eval_every=5_000)",
        TRAIN,
    ),
    Mutant("M104", "--paper's Walker2d min pool 10 000", '"Walker2d": (5.0, 10**3)', '"Walker2d": (5.0, 10**4)', TRAIN),
    Mutant("M105", "--paper's Ant reward scale 20", '"Ant": (5.0, 10**4)', '"Ant": (20.0, 10**4)', TRAIN),
    Mutant(
        "M106",
        "--paper's Humanoid min pool 10 000",
        'PAPER_TASKS["Humanoid"] = (20.0, 10**3)',
        'PAPER_TASKS["Humanoid"] = (20.0, 10**4)',
        TRAIN,
    ),
    Mutant(
        "M107",
        "--help beside --paper showing the project's defaults",
        'first = tyro.cli(Args, args=[a for a in argv if a not in ("-h", "--help")])',
        "first = tyro.cli(Args, args=argv)",
        TRAIN,
    ),
    Mutant(
        "M108",
        "--eval-episodes 0 accepted",
        '("critic_lr", "eval_every", "eval_episodes", "threads")',
        '("critic_lr", "eval_every", "threads")',
        TRAIN,
    ),
    Mutant(
        "M109",
        "--reward-scale 0 accepted",
        '"buffer_size", "reward_scale", "policy_lr")',
        '"buffer_size", "policy_lr")',
        TRAIN,
    ),
    Mutant(
        "M110", "--save-buffer auto's bound 1 MB, not 1 GB", "self.rb.nbytes < 2**30)", "self.rb.nbytes < 2**20)", TRAIN
    ),
    Mutant(
        "M111",
        "the episodic_length scalar showing the return",
        'self.writer.add_scalar("charts/episodic_length", self.episode["length"], step)',
        'self.writer.add_scalar("charts/episodic_length", self.episode["return"], step)',
        TRAIN,
    ),
    Mutant(
        "M112",
        "the log_std scalar showing the mean",
        'self.writer.add_scalar("policy/log_std", actor(obs)[1].mean().item(), step)',
        'self.writer.add_scalar("policy/log_std", actor(obs)[0].mean().item(), step)',
        TRAIN,
    ),
    Mutant(
        "M113",
        "an evaluation's std recorded as its variance",
        "float(returns.mean()), float(returns.std()), self.elapsed()",
        "float(returns.mean()), float(returns.var()), self.elapsed()",
        TRAIN,
    ),
    Mutant(
        "M114",
        "SPS counting every step since the start",
        '"charts/SPS", (step - self.last_log[0]) / (time.time()',
        '"charts/SPS", step / (time.time()',
        TRAIN,
    ),
    Mutant(
        "M115",
        "the stop message naming a buffer never saved",
        'buffer = " and its replay buffer" if buffer_path(self.checkpoint).exists() else ""',
        'buffer = " and its replay buffer"',
        LONG_RUNS,
    ),
    Mutant(
        "M116",
        "a policy for other lower action bounds accepted",
        "np.allclose(bias - scale, low) and",
        "True and",
        EVAL,
    ),
    Mutant(
        "M117",
        "LunarLander's target 8 of 10 seeds, not 9",
        '"LunarLanderContinuous-v3": Target(100_000, 50_000, 0.9, True, 240.0)',
        '"LunarLanderContinuous-v3": Target(100_000, 50_000, 0.8, True, 240.0)',
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M118",
        "a target's seed solved at its step not counted",
        "int((reach <= within).sum())",
        "int((reach < within).sum())",
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M119",
        "a final-mean shortfall rounded to a whole number",
        "shortfall = round(least_final - finals.mean(), 1)",
        "shortfall = round(least_final - finals.mean())",
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M120",
        "Walker2d's threshold 2 500, not 2 000",
        '"Walker2d-v5": 2000.0,',
        '"Walker2d-v5": 2500.0,',
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M121",
        "a seed an earlier line does not name given the whole line",
        'return {s: values.get(s, "not recorded") for s in seeds}',
        "return {s: values.get(s, line) for s in seeds}",
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M122",
        "more workers recorded than seeds ran",
        "workers = min(bench_workers(bench), len(seeds))",
        "workers = bench_workers(bench)",
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M123",
        "--seeds 0 accepted",
        "if seeds < 1 or workers < 0:",
        "if seeds < 0 or workers < 0:",
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M124",
        "a missing summary line written empty",
        'return found[0] if found else "not recorded"',
        'return found[0] if found else ""',
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M125",
        "curves.png without its curves",
        'plot_seeds(ax, per_seed, "tab:blue")',
        'plot_seeds(ax, {}, "tab:blue")',
        BENCHMARK,
        path="benchmarks/learning.py",
    ),
    Mutant(
        "M126",
        "a runs.csv without a column not refused",
        "if missing := [c for c in CSV_FIELDS if c not in columns]:",
        "if missing := []:",
        COMPARE,
        path="benchmarks/compare.py",
    ),
    Mutant(
        "M127",
        "a value that is not a number a traceback",
        "except (TypeError, ValueError):",
        "except TypeError:",
        COMPARE,
        path="benchmarks/compare.py",
    ),
    Mutant(
        "M128",
        "compare.py's final eval each seed's best",
        'finals = np.array([rows[-1]["eval_mean"] for rows in per_seed.values()])',
        'finals = np.array([max(r["eval_mean"] for r in rows) for rows in per_seed.values()])',
        COMPARE,
        path="benchmarks/compare.py",
    ),
    Mutant(
        "M129",
        "throughput's update rate a mean of its rounds",
        "update_rate, loop_rate = statistics.median(update_rates[name]), statistics.median(loop_rates[name])",
        "update_rate, loop_rate = statistics.mean(update_rates[name]), statistics.median(loop_rates[name])",
        THROUGHPUT,
        path="benchmarks/throughput.py",
    ),
    Mutant(
        "M130",
        "the loop's multiple of a peer's (SB3's, CleanRL's) inverted",
        'ratios = ", ".join(f"{name} {rate / theirs:.2f}×"',
        'ratios = ", ".join(f"{name} {theirs / rate:.2f}×"',
        THROUGHPUT,
        path="benchmarks/throughput.py",
    ),
    Mutant(
        "M131",
        "throughput's --env-steps 0 accepted",
        'for flag in ("repeats", "update_steps", "loop_steps", "env_steps"):',
        'for flag in ("repeats", "update_steps", "loop_steps"):',
        THROUGHPUT,
        path="benchmarks/throughput.py",
    ),
    # The peer benchmark's checkpoints (benchmarks/peers.py): what a resumed SB3 seed restores.
    Mutant(
        "M132",
        "a resumed SB3 seed without its replay buffer's position",
        'rb.pos, rb.full = int(buffer["pos"]), bool(buffer["full"])',
        "pass",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M133",
        "a resumed SB3 seed's gradient steps counted from 0",
        'model.num_timesteps, model._n_updates = saved["step"], saved["n_updates"]',
        'model.num_timesteps = saved["step"]',
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M134",
        "a resumed SB3 seed evaluating its checkpoint's step again",
        "if self.evaluations and self.evaluations[-1].step == step:",
        "if False:",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M135",
        "a resumed SB3 seed restarting its step count",
        "reset_num_timesteps=not resumed",
        "reset_num_timesteps=True",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M136",
        "a resumed SB3 seed's random streams not restored",
        'set_rng_states(saved["rng"], model.action_space)',
        "pass",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M137",
        "a resumed SB3 seed's wall time counted from the resume",
        'callback.wall_s = saved["wall_s"]',
        "pass",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M138",
        "a resumed SB3 seed's entropy coefficient not restored",
        "recursive_getattr(model, name).copy_(saved[name])",
        "pass",
        PEERS,
        path="benchmarks/peers.py",
    ),
    Mutant(
        "M139",
        "an SB3 seed never checkpointed",
        "if self.folder is not None and step < self.train.total_timesteps:",
        "if False:",
        PEERS,
        path="benchmarks/peers.py",
    ),
    # Speed paths.
    Mutant(
        "M48",
        "a CUDA graph replaying its first inputs",
        "static_input.copy_(x, non_blocking=True)",
        "None",
        FAST_PATHS,
        cuda=True,
    ),
]


@dataclasses.dataclass
class MutantArgs:
    only: tuple[str, ...] = ()
    """the names of the mutants to run (default: all)"""


def check_applies(mutant: Mutant, root: Path = ROOT) -> str | None:
    """None, or why the mutant no longer applies to the file under root."""
    count = (root / mutant.path).read_text().count(mutant.old)
    return None if count == 1 else f"its code occurs {count} times in {mutant.path}, not once"


def copy_repository(to: Path) -> Path:
    """The code and tests, without runs, videos, docs or git history."""
    for name in ("sac_v.py", "buffer.py", "sac_v_eval.py", "pyproject.toml"):
        shutil.copy2(ROOT / name, to / name)
    for folder in ("tests", "benchmarks"):
        shutil.copytree(ROOT / folder, to / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return to


def run_pytest(root: Path, test_files: tuple[str, ...]) -> subprocess.CompletedProcess:
    """pytest on these test files in root (one torch thread, stopping at the first failure)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "-m",
        "bench or not bench",
        *test_files,
    ]
    return subprocess.run(command, cwd=root, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)


def passes(root: Path, test_files: tuple[str, ...]) -> bool:
    return run_pytest(root, test_files).returncode == 0


def run_mutant(mutant: Mutant, root: Path, every_file: tuple[str, ...] = EVERY_FILE) -> str:
    """'killed', 'survived', 'no longer applies: ...' or 'skipped (needs CUDA)', restoring the file afterwards."""
    if (why := check_applies(mutant, root)) is not None:
        return f"no longer applies: {why}"
    if mutant.cuda and not torch.cuda.is_available():
        return "skipped (needs CUDA)"
    path = root / mutant.path
    original = path.read_text()
    path.write_text(original.replace(mutant.old, mutant.new))
    try:
        survived = passes(root, (mutant.test_file,)) and passes(root, every_file)
    finally:
        path.write_text(original)
    return "survived" if survived else "killed"


def main(args: MutantArgs) -> int:
    unknown = set(args.only) - {m.name for m in MUTANTS}
    if unknown:
        sys.exit(f"error: no mutant named {', '.join(sorted(unknown))}; they are M01 to M{len(MUTANTS):02}")
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_repository(Path(tmp))
        files = tuple(dict.fromkeys([*EVERY_FILE, *(m.test_file for m in mutants)]))  # the mutants' own files too
        print(f"the unmutated code against {len(files)} test files ...", flush=True)
        if (unmutated := run_pytest(root, files)).returncode != 0:  # its summary names the test that failed
            print("\n".join(unmutated.stdout.splitlines()[-15:]), file=sys.stderr)
            sys.exit("error: the tests fail without any mutant; fix them first (pytest " + " ".join(files) + ")")
        print("| mutant | what it breaks | result | seconds |\n| --- | --- | --- | ---: |", flush=True)
        results = []
        for mutant in mutants:
            start = time.time()
            results.append(run_mutant(mutant, root))
            print(f"| {mutant.name} | {mutant.what} | {results[-1]} | {time.time() - start:.0f} |", flush=True)
    print(f"{len(results)} mutants: " + ", ".join(f"{n} {r}" for r, n in collections.Counter(results).items()))
    return 0 if all(r == "killed" or r.startswith("skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(tyro.cli(MutantArgs)))
