import os
import shutil
from pathlib import Path

import pytest
import torch

import sac_v
from sac_v import train
from tests.helpers import tiny_args

# One thread per test process: the suite must stay fast on a 2-core machine and bit-identical across runs.
torch.set_num_threads(1)
sac_v.TORCH_THREADS = 1  # so --threads auto, the default, stays at one thread in in-process runs too
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run in an empty directory, so runs/ lands in tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The checkpoint of one 100-step Pendulum run, its buffer beside it, trained once for every test that only reads
    it; a test that changes the run takes tiny_run_copy."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("tiny_run"))
        return train(tiny_args(total_timesteps=100, eval_every=100)).checkpoint.resolve()


@pytest.fixture
def tiny_run_copy(tiny_run, in_tmp_dir) -> Path:
    """The checkpoint of a fresh copy of tiny_run's folder, under runs/ in the test's own directory."""
    run_dir = in_tmp_dir / "runs" / tiny_run.parent.name
    shutil.copytree(tiny_run.parent, run_dir)
    return run_dir / tiny_run.name
