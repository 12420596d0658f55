"""--threads auto: as many torch threads as the cores other processes leave idle, only where the thread count leaves
the gradient step's numbers unchanged."""

import dataclasses
import os

import pytest
import torch

import sac_v
from sac_v import Threads, make_env
from tests.helpers import tiny_args


@pytest.fixture
def two_idle_cores(monkeypatch):
    """Two usable cores that torch would take by default; torch's threads back at 1 afterwards."""
    monkeypatch.setattr(sac_v, "TORCH_THREADS", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    yield
    torch.set_num_threads(1)


def feed(threads: Threads, seconds: float, others: float, own: float) -> None:
    """One more count of the cores: over `seconds`, other processes held `others` cores and this one `own`."""
    t, busy, mine = threads.last
    nxt = (t + seconds, busy + (others + own) * seconds, mine + own * seconds)
    threads.sample = lambda: nxt
    threads.adapt()


def test_auto_takes_both_idle_cores_gives_one_up_while_another_process_holds_it_and_takes_it_back(two_idle_cores):
    env = make_env("Pendulum-v1")
    threads = Threads(tiny_args(threads="auto"), env)
    assert threads.counts == [1, 2] and torch.get_num_threads() == 2  # alone: both cores from the start
    feed(threads, 1.0, others=0.05, own=1.9)
    assert torch.get_num_threads() == 2
    feed(threads, 1.0, others=1.0, own=1.0)  # another run holds a core
    assert torch.get_num_threads() == 1
    feed(threads, 0.5, others=0.0, own=1.0)  # under a second since the last count: not counted yet
    assert torch.get_num_threads() == 1
    feed(threads, 1.0, others=0.5, own=1.0)  # half a core held elsewhere: not idle
    assert torch.get_num_threads() == 1
    feed(threads, 2.0, others=0.2, own=1.0)  # the other run has ended
    assert torch.get_num_threads() == 2


def test_auto_stays_at_one_thread_where_more_would_change_the_numbers(two_idle_cores, monkeypatch):
    monkeypatch.setattr(sac_v, "same_numbers", lambda args, env, n: False)
    threads = Threads(tiny_args(threads="auto"), make_env("Pendulum-v1"))
    assert threads.counts == [1] and torch.get_num_threads() == 1
    assert threads.last is None  # nothing to choose, so nothing is counted
    threads.adapt()
    assert torch.get_num_threads() == 1


def test_auto_stays_at_one_thread_without_proc_stat_or_on_a_gpu_or_compiled(two_idle_cores, monkeypatch):
    env = make_env("Pendulum-v1")
    for args in (tiny_args(threads="auto", device="cuda"), tiny_args(threads="auto", compile=True)):
        monkeypatch.setattr(sac_v, "resolve_device", lambda name: torch.device(name))
        assert Threads(args, env).counts == [1] and torch.get_num_threads() == 1
    monkeypatch.setattr(Threads, "busy", lambda self: None)
    assert Threads(tiny_args(threads="auto"), env).counts == [1] and torch.get_num_threads() == 1


def test_a_fixed_thread_count_is_kept_whatever_the_load(two_idle_cores):
    threads = Threads(tiny_args(threads=2), make_env("Pendulum-v1"))
    assert torch.get_num_threads() == 2 and threads.last is None
    threads.adapt()
    assert torch.get_num_threads() == 2


def test_same_numbers_tells_a_step_that_depends_on_the_thread_count(monkeypatch):
    args, env = tiny_args(), make_env("Pendulum-v1")
    assert sac_v.same_numbers(args, env, 2)
    update = sac_v.update

    def thread_dependent(batch, actor, *rest):
        stats = update(batch, actor, *rest)
        with torch.no_grad():
            actor.mean.bias.add_(1e-7 * (torch.get_num_threads() - 1))
        return stats

    monkeypatch.setattr(sac_v, "update", thread_dependent)
    before = torch.random.get_rng_state()
    assert not sac_v.same_numbers(args, env, 2)
    assert torch.equal(torch.random.get_rng_state(), before)  # the run's random stream is left as it was


def test_a_run_whose_thread_count_changes_every_check_learns_the_same_weights_as_at_one_thread(
    two_idle_cores, monkeypatch, tmp_path
):
    # The paper's layer sizes, where two threads split the matmuls' work.
    args = tiny_args(hidden_sizes=(256, 256), batch_size=256, min_pool=256, total_timesteps=500, eval_every=500)
    checks = []

    def switch(self):
        if self.counts == [1, 2]:
            torch.set_num_threads(3 - torch.get_num_threads())
        checks.append(torch.get_num_threads())

    monkeypatch.setattr(Threads, "adapt", switch)
    monkeypatch.chdir(tmp_path)
    auto = sac_v.train(dataclasses.replace(args, threads="auto", exp_name="auto"))
    if Threads(args, make_env("Pendulum-v1")).counts == [1, 2]:  # else auto stays at 1 here, as the test above
        assert set(checks) == {1, 2}  # the auto run did switch
    fixed = sac_v.train(dataclasses.replace(args, threads=1, exp_name="fixed"))
    for name in ("actor", "qf", "vf", "vf_target"):
        saved = [torch.load(r.checkpoint, weights_only=True)[name] for r in (auto, fixed)]
        assert all(torch.equal(saved[0][k], saved[1][k]) for k in saved[0])


def test_checkpoints_with_auto_or_a_count_of_threads_are_read_and_another_value_is_not():
    env = make_env("Pendulum-v1")
    actor = sac_v.Actor(env.observation_space, env.action_space, (32, 32))
    base = {"format_version": 3, "actor": actor.state_dict(), "global_step": 0, "evaluations": []}
    for threads, fits in (("auto", True), (1, True), (4, True), ("many", False), (1.5, False)):
        args = {**dataclasses.asdict(tiny_args()), "resume": None, "threads": threads}
        why = sac_v.unlike_a_checkpoint({**base, "args": args})
        assert (why is None) == fits, (threads, why)


def test_auto_takes_no_more_threads_than_a_containers_cpu_quota(two_idle_cores, monkeypatch, tmp_path):
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    v2.mkdir()
    (v1 / "cpu").mkdir(parents=True)
    (v2 / "cpu.max").write_text("150000 100000\n")  # --cpus 1.5: one whole core
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert sac_v.cpu_quota(v2) == 1 and sac_v.cpu_quota(v1) is None and sac_v.cpu_quota(tmp_path / "none") is None
    (v2 / "cpu.max").write_text("max 100000\n")
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    assert sac_v.cpu_quota(v2) is None and sac_v.cpu_quota(v1) == 2
    monkeypatch.setattr(sac_v, "cpu_quota", lambda: 1)
    threads = Threads(tiny_args(threads="auto"), make_env("Pendulum-v1"))
    assert threads.counts == [1] and torch.get_num_threads() == 1
