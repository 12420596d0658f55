import os

import pytest
import torch

# One thread per test process: the suite must stay fast on a 2-core machine and bit-identical across runs.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run in an empty directory, so runs/ lands in tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
