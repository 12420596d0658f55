"""The fast paths (--compile, --cudagraphs) take the same gradient step as the plain update; --bf16 a close one."""

import copy
import functools
import os
import shutil

import pytest
import torch

import sac_v
from sac_v import Args, ConfigError, CudaGraphed, fast_paths, make_optimizers, update, validate_args
from tests.helpers import tiny_args
from tests.test_update import make_batch, make_nets

STEPS = 5  # with --cudagraphs: 3 warm-up calls, one recorded and replayed, one replayed
# torch.compile on CPU builds C++ with the compiler inductor looks for (g++ on Linux, or $CXX)
CAN_COMPILE_ON_CPU = torch._dynamo.is_dynamo_supported() and shutil.which(os.environ.get("CXX", "g++")) is not None
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def take_steps(step, batch: tuple, seed: int = 7) -> list[dict[str, torch.Tensor]]:
    """STEPS gradient steps, each on a batch of its own (a CUDA graph must read each call's inputs); the losses of
    each, copied out of whatever tensors hold them."""
    torch.manual_seed(seed)
    obs, actions, rewards, next_obs, terminated = batch
    batches = [(obs * (1 + 0.1 * i), actions, rewards + i, next_obs, terminated) for i in range(STEPS)]
    return [{name: value.clone() for name, value in step(b).items()} for b in batches]


def assert_same_steps(nets: dict, other: dict, stats: list, other_stats: list) -> None:
    for step_stats, other_step_stats in zip(stats, other_stats, strict=True):
        for name in ("qf1_loss", "qf2_loss", "v_loss", "actor_loss"):
            torch.testing.assert_close(other_step_stats[name], step_stats[name], atol=1e-5, rtol=1e-4)
    for name, net in nets.items():
        for p, q in zip(net.parameters(), other[name].parameters(), strict=True):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-4)


def plain_and_copy(device: str) -> tuple[dict, dict, tuple]:
    nets = {name: net.to(device) for name, net in make_nets().items()}
    return nets, copy.deepcopy(nets), tuple(x.to(device) for x in make_batch())


def stepper(nets: dict, args: Args):
    """The gradient step that sac_v.train takes with these flags."""
    optimizers = tuple(make_optimizers(nets["actor"], nets["qf"], nets["vf"], args).values())
    step = functools.partial(update, **nets, optimizers=optimizers, args=args)
    return fast_paths(step, nets["actor"].get_action, args)[0]


@pytest.mark.skipif(not CAN_COMPILE_ON_CPU, reason="torch.compile is unsupported here, or no C++ compiler")
def test_compiled_update_gives_the_losses_and_parameters_of_eager():
    nets, compiled_nets, batch = plain_and_copy("cpu")
    torch._dynamo.reset()
    # the same noise as eager: compiled code otherwise draws ε from its own generator
    with torch._inductor.config.patch(fallback_random=True):
        compiled_stats = take_steps(stepper(compiled_nets, Args(reward_scale=2.0, device="cpu", compile=True)), batch)
    plain_stats = take_steps(stepper(nets, Args(reward_scale=2.0, device="cpu")), batch)
    assert_same_steps(nets, compiled_nets, plain_stats, compiled_stats)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_bf16_update_approximates_float32_and_keeps_float32_weights(device):
    nets, bf16_nets, batch = plain_and_copy(device)
    initial = {name: [p.clone() for p in net.parameters()] for name, net in nets.items()}
    plain_stats = take_steps(stepper(nets, Args(reward_scale=2.0, device=device)), batch)
    bf16_stats = take_steps(stepper(bf16_nets, Args(reward_scale=2.0, device=device, bf16=True)), batch)
    for name in ("qf1_loss", "qf2_loss", "v_loss", "actor_loss"):
        plain_loss, bf16_loss = plain_stats[0][name], bf16_stats[0][name]  # the first step: the same weights
        assert not torch.equal(bf16_loss, plain_loss), f"{name}: --bf16 changed nothing"
        torch.testing.assert_close(bf16_loss, plain_loss, atol=1e-2, rtol=2e-2)
    for name, net in bf16_nets.items():
        assert all(p.dtype == torch.float32 for p in net.parameters()), name
        # Adam moves each weight by about lr whatever its gradient, so compare directions: the bf16 steps
        # must point where the float32 steps point.
        bf16_delta = torch.cat([(p - p0).flatten() for p, p0 in zip(net.parameters(), initial[name], strict=True)])
        plain_delta = torch.cat(
            [(q - p0).flatten() for q, p0 in zip(nets[name].parameters(), initial[name], strict=True)]
        )
        assert bf16_delta.norm() > 0, f"{name} did not learn"
        assert torch.cosine_similarity(bf16_delta, plain_delta, dim=0) > 0.95, name


@CUDA
@pytest.mark.parametrize("flags", [{}, {"compile": True}, {"bf16": True}], ids=["eager", "compiled", "bf16"])
def test_cuda_graphed_update_gives_the_losses_and_parameters_of_eager(flags):
    nets, graphed_nets, batch = plain_and_copy("cuda")
    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):
        args = Args(reward_scale=2.0, device="cuda", cudagraphs=True, **flags)
        graphed_stats = take_steps(stepper(graphed_nets, args), batch)
    plain_stats = take_steps(stepper(nets, Args(reward_scale=2.0, device="cuda", bf16=flags.get("bf16", False))), batch)
    assert_same_steps(nets, graphed_nets, plain_stats, graphed_stats)


@CUDA
def test_cuda_graphed_function_computes_on_each_calls_inputs():
    """After recording, each replay first copies the call's inputs, tensors and tuples of them, into the graph's."""
    graphed = CudaGraphed(lambda x, pair: x * 2 + pair[0] - pair[1], warmup=1)
    for value in (1.0, 2.0, 3.0, 4.0):  # a warm-up call, the recording, then replays
        x = torch.full((3,), value, device="cuda")
        assert graphed(x, (x + 1, x - 1))[0].item() == 2 * value + 2


def test_cudagraphs_on_cpu_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="--cudagraphs needs a CUDA device"):
        validate_args(Args(device="cpu", cudagraphs=True))


@pytest.mark.skipif(not CAN_COMPILE_ON_CPU, reason="torch.compile is unsupported here, or no C++ compiler")
def test_compiled_training_run_learns_and_checkpoints(in_tmp_dir):
    torch._dynamo.reset()
    result = sac_v.train(
        tiny_args(total_timesteps=150, min_pool=100, eval_every=150, hidden_sizes=(8, 8), compile=True)
    )
    checkpoint = torch.load(result.checkpoint, weights_only=True)
    assert {float(s["step"]) for s in checkpoint["q_optimizer"]["state"].values()} == {51}


@CUDA
def test_cuda_graphed_sampler_draws_the_actions_of_eager():
    actor, obs = make_nets()["actor"].cuda(), make_batch()[0][:1].cuda()
    graphed = CudaGraphed(actor.get_action, warmup=1)
    with torch.no_grad():
        torch.manual_seed(3)
        eager = [actor.get_action(obs)[0].clone() for _ in range(3)]
        torch.manual_seed(3)
        replayed = [graphed(obs)[0].clone() for _ in range(3)]
    for eager_action, replayed_action in zip(eager, replayed, strict=True):
        torch.testing.assert_close(replayed_action, eager_action)


@CUDA
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_cuda_graphed_training_run_learns_and_checkpoints(in_tmp_dir, compile):
    torch._dynamo.reset()
    args = tiny_args(total_timesteps=150, eval_every=150, device="cuda", cudagraphs=True, compile=compile)
    checkpoint = torch.load(sac_v.train(args).checkpoint, weights_only=True)
    assert {float(s["step"]) for s in checkpoint["q_optimizer"]["state"].values()} == {51}
    assert all(torch.isfinite(value).all() for value in checkpoint["qf"].values())
