import numpy as np
import pytest

from buffer import Batch, ReplayBuffer


def filled(capacity: int, n: int, seed: int | None = 0) -> ReplayBuffer:
    """A buffer with n transitions whose observation is its insertion index."""
    rb = ReplayBuffer(obs_dim=3, act_dim=2, capacity=capacity, seed=seed)
    for i in range(n):
        rb.add(np.full(3, i), np.full(2, -i), float(i), np.full(3, i + 1), i % 2 == 0)
    return rb


def test_ring_overwrite_keeps_exactly_the_newest_capacity_transitions():
    rb = filled(capacity=5, n=12)
    assert len(rb) == 5
    assert sorted(rb.obs[:, 0].tolist()) == [7, 8, 9, 10, 11]
    batch = rb.sample(1000)
    assert set(batch.obs[:, 0].tolist()) == {7, 8, 9, 10, 11}
    # every field of a transition stays together after wrap-around
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.obs[:, 0] + 1)
    np.testing.assert_array_equal(batch.actions[:, 0], -batch.obs[:, 0])
    np.testing.assert_array_equal(batch.rewards, batch.obs[:, 0])
    np.testing.assert_array_equal(batch.terminated, (batch.obs[:, 0] % 2 == 0).astype(np.float32))


def test_sample_shapes_and_dtypes():
    batch = filled(capacity=10, n=10).sample(4)
    assert isinstance(batch, Batch)
    assert batch.obs.shape == (4, 3) and batch.next_obs.shape == (4, 3)
    assert batch.actions.shape == (4, 2)
    assert batch.rewards.shape == (4,) and batch.terminated.shape == (4,)
    assert all(x.dtype == np.float32 for x in batch)


def test_samples_only_the_filled_part():
    batch = filled(capacity=100, n=7).sample(2000)
    assert set(batch.obs[:, 0].tolist()) == set(range(7))


def test_sampling_is_uniform_chi_square():
    n, draws = 20, 100_000
    rb = filled(capacity=n, n=n, seed=123)
    counts = np.bincount(rb.sample(draws).obs[:, 0].astype(int), minlength=n)
    expected = draws / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 43.8  # the 0.999 quantile of chi-square with 19 degrees of freedom


def test_two_consecutive_minibatches_differ():
    rb = filled(capacity=1000, n=1000)
    first, second = rb.sample(64), rb.sample(64)
    assert not np.array_equal(first.obs, second.obs)


def test_sampling_is_with_replacement():
    batch = filled(capacity=4, n=4).sample(50)  # more draws than transitions: only possible with replacement
    assert batch.obs.shape == (50, 3)
    assert set(batch.obs[:, 0].tolist()) == {0, 1, 2, 3}


def test_same_seed_gives_same_indices():
    a, b = filled(capacity=500, n=500, seed=7), filled(capacity=500, n=500, seed=7)
    for _ in range(3):
        np.testing.assert_array_equal(a.sample(32).obs, b.sample(32).obs)
    c = filled(capacity=500, n=500, seed=8)
    assert not np.array_equal(filled(capacity=500, n=500, seed=7).sample(32).obs, c.sample(32).obs)


def test_sample_from_empty_buffer_raises():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 2, 10).sample(1)


@pytest.mark.parametrize("batch_size", [0, -5])
def test_non_positive_batch_size_raises(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        filled(capacity=10, n=10).sample(batch_size)


@pytest.mark.parametrize(
    ("obs", "action", "next_obs", "field"),
    [
        (np.zeros(4), np.zeros(2), np.zeros(3), "obs"),
        (np.zeros(3), np.zeros(3), np.zeros(3), "action"),
        (np.zeros(3), np.zeros(2), np.zeros((1, 3)), "next_obs"),
    ],
)
def test_wrong_transition_shape_raises_and_stores_nothing(obs, action, next_obs, field):
    rb = ReplayBuffer(3, 2, 10)
    with pytest.raises(ValueError, match=field):
        rb.add(obs, action, 0.0, next_obs, False)
    assert len(rb) == 0


def test_non_positive_capacity_raises():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(3, 2, 0)


@pytest.mark.parametrize("n", [7, 23])  # partly filled, and wrapped around
def test_saved_buffer_loads_with_the_same_transitions_and_the_same_next_samples(tmp_path, n):
    rb = filled(capacity=10, n=n)
    rb.sample(5)  # move the sampler's RNG away from its seed
    rb.save(tmp_path / "rb.npz")
    loaded = ReplayBuffer.load(tmp_path / "rb.npz")
    assert (len(loaded), loaded.pos, loaded.added, loaded.capacity) == (len(rb), rb.pos, n, 10)
    for expected, actual in zip(rb.sample(64), loaded.sample(64), strict=True):
        np.testing.assert_array_equal(expected, actual)
    rb.add(np.full(3, 99), np.zeros(2), 0.0, np.zeros(3), False)
    loaded.add(np.full(3, 99), np.zeros(2), 0.0, np.zeros(3), False)  # overwrites the same slot
    np.testing.assert_array_equal(rb.obs, loaded.obs)


def test_buffer_archive_holds_only_the_filled_part_and_no_pickles(tmp_path):
    filled(capacity=1000, n=5).save(tmp_path / "rb.npz")
    with np.load(tmp_path / "rb.npz") as data:  # allow_pickle is off: reading an object array would raise
        assert data["obs"].shape == (5, 3)
        assert all(data[name].dtype != object for name in data.files)
        assert not (tmp_path / "rb.npz.tmp").exists()


def test_save_that_fails_mid_write_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path, monkeypatch):
    filled(capacity=10, n=3).save(tmp_path / "rb.npz")

    def disk_full(file, **arrays):
        file.write(b"part of an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", disk_full)
    with pytest.raises(OSError, match="No space left"):
        filled(capacity=10, n=7).save(tmp_path / "rb.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["rb.npz"]
    monkeypatch.undo()
    assert ReplayBuffer.load(tmp_path / "rb.npz").added == 3


def test_a_buffer_whose_counters_disagree_with_its_transitions_is_refused(tmp_path):
    rb = ReplayBuffer(3, 2, 10, seed=0)
    for i in range(3):
        rb.add(np.full(3, i), np.zeros(2), 0.0, np.zeros(3), False)
    rb.save(tmp_path / "rb.npz")
    with np.load(tmp_path / "rb.npz") as data:
        arrays = dict(data)
    np.savez_compressed(tmp_path / "rb.npz", **(arrays | {"added": np.array(5)}))  # 3 transitions, counted 5
    with pytest.raises(ValueError, match="holds 3 transitions, but its counters say 5"):
        ReplayBuffer.load(tmp_path / "rb.npz")
