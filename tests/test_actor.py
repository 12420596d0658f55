import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import AffineTransform, Independent, Normal, TanhTransform, TransformedDistribution

from sac_v import Actor

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)


def make_actor(low: float, high: float, act_dim: int = 3) -> Actor:
    torch.manual_seed(0)
    return Actor(OBS_SPACE, gym.spaces.Box(low, high, (act_dim,), np.float32), hidden_sizes=(32, 32))


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (-2.0, 2.0), (0.0, 3.0)])
def test_log_prob_matches_torch_transformed_distribution(low, high):
    actor = make_actor(low, high)
    obs = torch.randn(64, 4)
    torch.manual_seed(1)
    action, log_prob, _ = actor.get_action(obs)
    mean, log_std = actor(obs)
    reference = Independent(
        TransformedDistribution(
            Normal(mean, log_std.exp()),
            [TanhTransform(), AffineTransform(loc=actor.action_bias, scale=actor.action_scale)],
        ),
        1,
    )
    assert log_prob.shape == (64,)
    torch.testing.assert_close(log_prob, reference.log_prob(action), atol=2e-4, rtol=1e-4)


def test_log_prob_stays_finite_when_tanh_saturates():
    actor = make_actor(-1.0, 1.0)
    with torch.no_grad():
        actor.mean.bias.fill_(30.0)  # tanh(30) == 1 in float32: log(1 - tanh²) would be -inf
    _, log_prob, _ = actor.get_action(torch.randn(8, 4))
    assert torch.isfinite(log_prob).all()


def test_deterministic_action_is_scaled_tanh_of_mean():
    actor = make_actor(-2.0, 2.0)
    obs = torch.randn(16, 4)
    _, _, deterministic = actor.get_action(obs)
    mean, _ = actor(obs)
    torch.testing.assert_close(deterministic, 2.0 * torch.tanh(mean))


def test_actions_lie_within_bounds():
    actor = make_actor(0.0, 3.0)
    action, _, deterministic = actor.get_action(10 * torch.randn(256, 4))
    assert (action >= 0).all() and (action <= 3).all()
    assert (deterministic >= 0).all() and (deterministic <= 3).all()


def test_log_std_is_clamped_to_the_specs_bounds_and_untouched_within_them():
    assert (Actor.LOG_STD_MIN, Actor.LOG_STD_MAX) == (-20.0, 2.0)
    actor = make_actor(-1.0, 1.0)
    with torch.no_grad():
        actor.log_std.bias.fill_(50.0)
    assert actor(torch.randn(4, 4))[1].max().item() == Actor.LOG_STD_MAX
    with torch.no_grad():
        actor.log_std.bias.fill_(-50.0)
    assert actor(torch.randn(4, 4))[1].min().item() == Actor.LOG_STD_MIN
    with torch.no_grad():
        actor.log_std.weight.zero_()
        actor.log_std.bias.fill_(-10.0)
    assert (actor(torch.randn(4, 4))[1] == -10.0).all()


def test_sampled_actions_are_a_squashed_gaussian_of_the_heads_mean_and_std():
    """u = μ + σε with ε ~ N(0, I): the log-density test alone would pass for any noise, as it is exact for any u."""
    actor = make_actor(-2.0, 2.0, act_dim=1)
    with torch.no_grad():
        for head, value in ((actor.mean, 0.3), (actor.log_std, math.log(0.5))):
            head.weight.zero_()
            head.bias.fill_(value)
        action, _, _ = actor.get_action(torch.zeros(20_000, 4))
    u = torch.atanh((action / 2).clamp(-1 + 1e-6, 1 - 1e-6))
    assert u.mean().item() == pytest.approx(0.3, abs=0.02)
    assert u.std().item() == pytest.approx(0.5, rel=0.03)
    assert abs(((u - 0.3) / 0.5).pow(3).mean().item()) < 0.1, "symmetric, as a Gaussian is"


def test_gradients_reach_mean_and_log_std_heads():
    actor = make_actor(-1.0, 1.0)
    action, log_prob, _ = actor.get_action(torch.randn(32, 4))
    (action.sum() + log_prob.sum()).backward()
    for head in (actor.mean, actor.log_std):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
