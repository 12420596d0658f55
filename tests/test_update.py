import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import sac_v
from sac_v import Actor, Args, SoftQNetwork, SoftVNetwork, StackedLinear, sac_v_losses, update

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT_SPACE = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
HIDDEN = (16, 16)


def make_nets(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    vf = SoftVNetwork(OBS_SPACE, HIDDEN)
    vf_target = SoftVNetwork(OBS_SPACE, HIDDEN)
    # a target different from V, so that its moves are visible
    vf_target.requires_grad_(False)
    return {
        "actor": Actor(OBS_SPACE, ACT_SPACE, HIDDEN),
        "qf": SoftQNetwork(OBS_SPACE, ACT_SPACE, HIDDEN),
        "vf": vf,
        "vf_target": vf_target,
    }


def critics(nets: dict) -> tuple:
    """Q1 and Q2 as two functions of (s, a), read from the stacked twin network."""
    return (lambda obs, a: nets["qf"](obs, a)[0]), (lambda obs, a: nets["qf"](obs, a)[1])


def make_batch(batch_size: int = 32, terminated: float | None = None) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(42)
    obs = torch.randn(batch_size, 3, generator=g)
    actions = torch.rand(batch_size, 2, generator=g) * 4 - 2
    rewards = torch.randn(batch_size, generator=g)
    next_obs = torch.randn(batch_size, 3, generator=g)
    done = (
        (torch.rand(batch_size, generator=g) < 0.5).float()
        if terminated is None
        else torch.full((batch_size,), terminated)
    )
    return obs, actions, rewards, next_obs, done


def losses(nets: dict, batch, reward_scale: float = 1.0, gamma: float = 0.99, alpha: float = 1.0, seed: int = 5):
    torch.manual_seed(seed)
    return sac_v_losses(batch, **nets, reward_scale=reward_scale, gamma=gamma, alpha=alpha)


def make_optimizers(nets: dict, lr: float = 1e-2) -> tuple[torch.optim.Optimizer, ...]:
    return (
        torch.optim.Adam(nets["actor"].parameters(), lr=lr),
        torch.optim.Adam(nets["qf"].parameters(), lr=lr),
        torch.optim.Adam(nets["vf"].parameters(), lr=lr),
    )


def test_v_target_uses_fresh_policy_actions_not_buffer_actions():
    nets, batch = make_nets(), make_batch()
    result = losses(nets, batch, seed=5)
    obs, buffer_actions = batch[0], batch[1]
    qf1, qf2 = critics(nets)
    with torch.no_grad():
        torch.manual_seed(5)  # the same noise the losses drew
        pi_actions, log_pi, _ = nets["actor"].get_action(obs)
        fresh = torch.min(qf1(obs, pi_actions), qf2(obs, pi_actions)) - log_pi
        buffered = torch.min(qf1(obs, buffer_actions), qf2(obs, buffer_actions)) - log_pi
    assert result["v_target"].item() == pytest.approx(fresh.mean().item(), abs=1e-6)
    assert abs(result["v_target"].item() - buffered.mean().item()) > 1e-3


def test_v_target_subtracts_alpha_times_log_pi():
    nets, batch = make_nets(), make_batch()
    at_zero = losses(nets, batch, alpha=0.0)
    at_two = losses(nets, batch, alpha=2.0)
    # same noise, so the difference is exactly -2 * mean(log pi) = 2 * entropy
    assert (at_two["v_target"] - at_zero["v_target"]).item() == pytest.approx(2 * at_two["entropy"].item(), rel=1e-4)


def test_reward_scale_multiplies_reward_in_q_target():
    nets, batch = make_nets(), make_batch()
    rewards = batch[2]
    base = losses(nets, batch, reward_scale=1.0)["q_target"]
    scaled = losses(nets, batch, reward_scale=40.0)["q_target"]
    torch.testing.assert_close(scaled - base, 39.0 * rewards.mean())


def test_q_target_bootstraps_from_v_target_network():
    nets, batch = make_nets(), make_batch(terminated=0.0)
    q_target = losses(nets, batch, reward_scale=3.0, gamma=0.9)["q_target"]
    with torch.no_grad():
        expected = 3.0 * batch[2] + 0.9 * nets["vf_target"](batch[3])
    torch.testing.assert_close(q_target, expected.mean())
    assert abs(q_target - (3.0 * batch[2] + 0.9 * nets["vf"](batch[3])).mean()) > 1e-3, "V̄ differs from V here"


def test_terminated_masks_the_bootstrap():
    nets = make_nets()
    batch = make_batch(terminated=1.0)
    q_target = losses(nets, batch, reward_scale=3.0)["q_target"]
    torch.testing.assert_close(q_target, 3.0 * batch[2].mean())


def reference_update(nets: dict, batch, lr: float = 1e-2, seed: int = 5) -> dict:
    """The textbook version: each loss backpropagated alone into its own network, from pre-update parameters."""
    nets = copy.deepcopy(nets)
    result = losses(nets, batch, reward_scale=2.0, seed=seed)
    actor_opt, q_opt, v_opt = make_optimizers(nets, lr)
    owners = [
        (result["qf1_loss"] + result["qf2_loss"], list(nets["qf"].parameters()), q_opt),
        (result["v_loss"], list(nets["vf"].parameters()), v_opt),
        (result["actor_loss"], list(nets["actor"].parameters()), actor_opt),
    ]
    grads = [torch.autograd.grad(loss, params, retain_graph=True) for loss, params, _ in owners]
    for (_, params, opt), gs in zip(owners, grads, strict=True):
        for p, g in zip(params, gs, strict=True):
            p.grad = g
        opt.step()
    return nets


def test_each_loss_changes_only_its_own_network():
    nets, batch = make_nets(), make_batch()
    expected = reference_update(nets, batch)
    args = Args(reward_scale=2.0, gamma=0.99, alpha=1.0, tau=0.005)
    torch.manual_seed(5)
    update(batch, **nets, optimizers=make_optimizers(nets), args=args)
    for name in ("actor", "qf", "vf"):
        for p, q in zip(nets[name].parameters(), expected[name].parameters(), strict=True):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_policy_loss_leaves_critic_parameters_untouched():
    nets, batch = make_nets(), make_batch()
    losses(nets, batch)["actor_loss"].backward()
    for name in ("qf", "vf"):
        assert all(p.grad is None for p in nets[name].parameters()), name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets["actor"].parameters())


@pytest.mark.parametrize("higher", [0, 1])
def test_policy_loss_is_alpha_log_pi_minus_the_minimum_of_both_critics(higher):
    """Eq. 12 with the twin minimum, whichever critic is the lower one, and the entropy term at α ≠ 0."""
    nets, batch = make_nets(), make_batch()
    with torch.no_grad():
        nets["qf"].net[-1].bias[higher].add_(100.0)  # one critic far above the other: the minimum is the other
    result = losses(nets, batch, alpha=0.5, seed=5)
    torch.manual_seed(5)
    pi_actions, log_pi, _ = nets["actor"].get_action(batch[0])
    with torch.no_grad():
        expected = (0.5 * log_pi - critics(nets)[1 - higher](batch[0], pi_actions)).mean()
    assert result["actor_loss"].item() == pytest.approx(expected.item(), abs=1e-5)


def test_each_critic_and_v_regress_on_their_targets_with_half_the_squared_error():
    """Eq. 8 for Q1 and for Q2, each on its own output at the buffer's (s, a); Eq. 5 for V on a fresh action."""
    nets, batch = make_nets(), make_batch()
    obs, actions, rewards, next_obs, terminated = batch
    result = losses(nets, batch, reward_scale=2.0, alpha=0.5, seed=5)
    qf1, qf2 = critics(nets)
    with torch.no_grad():
        q_target = 2.0 * rewards + 0.99 * (1 - terminated) * nets["vf_target"](next_obs)
        torch.manual_seed(5)  # the same noise the losses drew
        pi_actions, log_pi, _ = nets["actor"].get_action(obs)
        v_target = torch.min(qf1(obs, pi_actions), qf2(obs, pi_actions)) - 0.5 * log_pi
        assert not torch.allclose(qf1(obs, actions), qf2(obs, actions)), "two independent critics"
        for name, critic in (("qf1_loss", qf1), ("qf2_loss", qf2)):
            torch.testing.assert_close(result[name], 0.5 * ((critic(obs, actions) - q_target) ** 2).mean())
        torch.testing.assert_close(result["v_loss"], 0.5 * ((nets["vf"](obs) - v_target) ** 2).mean())


def test_the_actor_adam_takes_policy_lr_and_the_critics_and_v_adams_critic_lr():
    nets = make_nets()
    optimizers = sac_v.make_optimizers(nets["actor"], nets["qf"], nets["vf"], Args(policy_lr=1e-4, critic_lr=2e-4))
    owners = {"actor_optimizer": ("actor", 1e-4), "q_optimizer": ("qf", 2e-4), "v_optimizer": ("vf", 2e-4)}
    for name, (net, lr) in owners.items():
        (group,) = optimizers[name].param_groups
        assert group["lr"] == lr and [id(p) for p in group["params"]] == [id(p) for p in nets[net].parameters()]


def test_each_stacked_critic_layer_starts_as_an_independent_nn_linear():
    """nn.Linear's init, U(-1/sqrt(in), 1/sqrt(in)), for the weights and biases of each of the two critics."""
    torch.manual_seed(0)
    layer = StackedLinear(2, 400, 300)
    bound = 1 / math.sqrt(400)
    for tensor in (layer.weight, layer.bias):
        assert tensor.abs().max().item() <= bound
        assert tensor.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # the std of U(-b, b)
    assert not torch.equal(layer.weight[0], layer.weight[1])


def test_v_target_network_moves_exactly_tau_toward_v():
    nets, batch = make_nets(), make_batch()
    before = [p.clone() for p in nets["vf_target"].parameters()]
    update(batch, **nets, optimizers=make_optimizers(nets), args=Args(tau=0.1))
    for p_target, p_old, p in zip(nets["vf_target"].parameters(), before, nets["vf"].parameters(), strict=True):
        torch.testing.assert_close(p_target, p_old + 0.1 * (p - p_old))


def test_update_returns_statistics_cut_from_the_graph():
    """The loop keeps the last step's statistics for logging: holding the autograd graph would keep every
    activation of that step alive."""
    nets, batch = make_nets(), make_batch()
    stats = update(batch, **nets, optimizers=make_optimizers(nets), args=Args())
    assert stats.keys() >= {"qf1_loss", "qf2_loss", "v_loss", "actor_loss"}
    assert not any(value.requires_grad for value in stats.values())
    assert all(value.dim() == 0 for value in stats.values()), "statistics are means: no (B,) tensor travels"
