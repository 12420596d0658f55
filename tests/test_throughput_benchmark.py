import collections
import itertools
import json
import sys
from pathlib import Path

import pytest
import throughput
import torch

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras


def tiny_bench(tmp_path: Path, **flags) -> throughput.BenchArgs:
    """One round of a few steps per variant: enough to exercise every code path, not to time anything."""
    tiny = dict(repeats=1, update_steps=2, loop_steps=2, env_steps=10, warmup=1, pool=10, compile=False)
    return throughput.BenchArgs(**(tiny | {"output": tmp_path / "t.md"} | flags))


@pytest.fixture
def one_size(monkeypatch):
    """Measure one tiny size only, without SB3 unless a test puts it back."""
    monkeypatch.setattr(throughput, "CONFIGS", (((8, 8), 16),))
    monkeypatch.setattr(throughput, "SB3_VERSION", None)


def test_benchmark_measures_every_variant_and_size(tmp_path):
    table = throughput.measure(tiny_bench(tmp_path))
    for size, batch in (("256×256", 256), ("200×200", 200), ("64×64", 100)):
        for variant in ("plain", "eager", "bf16"):
            assert f"| {size} | {batch} | {variant} |" in table


def test_a_run_rewrites_only_its_own_device_section_and_keeps_the_text_around_it(tmp_path, monkeypatch):
    path = tmp_path / "throughput.md"
    monkeypatch.setattr(throughput.torch.cuda, "is_available", lambda: True)
    for device, table in (("cuda", "cuda table"), ("cpu", "old cpu table"), ("cpu", "new cpu table")):
        monkeypatch.setattr(throughput, "measure", lambda bench, table=table: table)
        monkeypatch.setattr(sys, "argv", ["throughput.py", "--device", device, "--output", str(path)])
        throughput.main()
        if table == "cuda table":
            path.write_text(path.read_text() + "\nA note after the tables.\n")
    text = path.read_text()
    assert "cuda table" in text and "new cpu table" in text and "old cpu table" not in text
    assert text.index("cuda table") < text.index("A note after the tables.") < text.index("new cpu table")


def test_a_variant_that_cannot_run_here_is_reported_as_failed_and_the_others_measured(tmp_path, monkeypatch, one_size):
    project_update_step = throughput.project_update_step

    def bf16_unsupported(env, args, device):
        step, sample_action = project_update_step(env, args, device)
        if not args.bf16:
            return step, sample_action

        def failing_step(batch):
            raise RuntimeError("no bfloat16 matmuls here\nsecond line")

        return failing_step, sample_action

    monkeypatch.setattr(throughput, "project_update_step", bf16_unsupported)
    table = throughput.measure(tiny_bench(tmp_path))
    assert "| 8×8 | 16 | bf16 | failed: RuntimeError: no bfloat16 matmuls here | – | – | – | – |" in table
    assert "| 8×8 | 16 | plain | " in table and "| 8×8 | 16 | eager | " in table


def test_sb3_sacs_loop_is_measured_beside_ours_with_its_ratio(tmp_path, monkeypatch, one_size):
    version = pytest.importorskip("stable_baselines3", reason="SB3 SAC is measured where the peers extra is installed")
    monkeypatch.setattr(throughput, "SB3_VERSION", version.__version__)
    monkeypatch.setattr(throughput, "SB3_CONFIGS", (((8, 8), 16),))
    table = throughput.measure(tiny_bench(tmp_path))
    assert "| 8×8 | 16 | SB3 SAC | – | – | – | " in table and "(d) loop steps/s as a multiple of SB3 SAC's" in table


def test_each_variants_update_rate_is_the_median_of_its_rounds_with_their_range(tmp_path, monkeypatch, one_size):
    calls = collections.Counter()

    def updates_per_s(step, batch, steps, device):  # each variant measures 100, 200 and 900 updates/s in turn
        calls[id(step)] += 1
        return [100.0, 200.0, 900.0][calls[id(step)] - 1]

    monkeypatch.setattr(throughput, "updates_per_s", updates_per_s)
    assert "| 8×8 | 16 | plain | 200 (100–900) | 1.00 | " in throughput.measure(tiny_bench(tmp_path, repeats=3))


def test_the_loop_against_sb3s_is_the_median_of_ours_over_the_median_of_sb3s(tmp_path, monkeypatch, one_size):
    pytest.importorskip("stable_baselines3", reason="SB3 SAC is measured where the peers extra is installed")
    monkeypatch.setattr(throughput, "SB3_VERSION", "9.9")
    monkeypatch.setattr(throughput, "SB3_CONFIGS", (((8, 8), 16),))
    sb3_rates, ours = iter([100.0, 90.0, 110.0]), 250.0
    monkeypatch.setattr(throughput.SB3Loop, "steps_per_s", lambda self, steps: next(sb3_rates))
    monkeypatch.setattr(throughput.Loop, "steps_per_s", lambda self, steps: ours)
    table = throughput.measure(tiny_bench(tmp_path, repeats=3))
    line = next(line for line in table.splitlines() if "multiple of SB3 SAC's" in line)
    assert line.endswith(
        "SB3 SAC's 100 (stable-baselines3 9.9, sac_v's settings, ent_coef fixed): plain 2.50×, eager 2.50×, bf16 2.50×."
    )


def test_sb3_sacs_timed_loop_takes_one_gradient_step_per_env_step():
    pytest.importorskip("stable_baselines3", reason="SB3 SAC is measured where the peers extra is installed")
    loop = throughput.SB3Loop(throughput.sac_v.Args(hidden_sizes=(8, 8), batch_size=16), torch.device("cpu"), pool=20)
    before = (loop.model.num_timesteps, loop.model._n_updates)
    loop.run(5)
    assert (loop.model.num_timesteps, loop.model._n_updates) == (before[0] + 5, before[1] + 5)


def test_where_torch_would_take_more_threads_eager_and_bf16_are_timed_there_too(tmp_path, monkeypatch, one_size):
    seen = []
    real = throughput.updates_per_s
    monkeypatch.setattr(throughput, "updates_per_s", lambda *a: seen.append(torch.get_num_threads()) or real(*a))
    torch.set_num_threads(2)  # torch's own choice here, as measure finds it before --threads 1
    try:
        table = throughput.measure(tiny_bench(tmp_path, threads=1))
    finally:
        torch.set_num_threads(1)
    assert "| 8×8 | 16 | eager, --threads 2 | " in table and "| 8×8 | 16 | bf16, --threads 2 | " in table
    assert sorted(set(seen)) == [1, 2]  # each variant at its own threads, the others at the run's


def test_sb3_at_its_own_defaults_learns_its_entropy_coefficient():
    pytest.importorskip("stable_baselines3", reason="SB3 SAC is measured where the peers extra is installed")
    args = throughput.sac_v.Args(hidden_sizes=(8, 8), batch_size=16)
    own = throughput.SB3Loop(args, torch.device("cpu"), pool=20, own_defaults=True)
    ours = throughput.SB3Loop(args, torch.device("cpu"), pool=20)
    assert own.model.ent_coef_optimizer is not None and ours.model.ent_coef_optimizer is None
    assert own.model.batch_size == 256 and ours.model.batch_size == 16


def mlp_gemms(dims: list[int], rows: int, params_grad: bool, input_grad: bool, stack: int = 1) -> list[tuple]:
    """An MLP's matmuls, forward and backward: dW if its parameters need a gradient, dX where the input needs one."""
    layers = list(itertools.pairwise(dims))
    gemms = [(stack, rows, k, n) for k, n in layers]  # forward: x·W
    if params_grad:
        gemms += [(stack, k, rows, n) for k, n in layers]  # dW = xᵀ·g
    if params_grad or input_grad:
        gemms += [(stack, rows, n, k) for i, (k, n) in enumerate(layers) if i > 0 or input_grad]  # dX = g·Wᵀ
    return gemms


def step_gemms(obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...], batch_size: int) -> list[tuple]:
    """Every matmul of one sac_v.update, as sac_v_losses and its one backward pass run them."""
    b, trunk, last = batch_size, [obs_dim, *hidden_sizes], hidden_sizes[-1]
    critics, value = [obs_dim + act_dim, *hidden_sizes, 1], [obs_dim, *hidden_sizes, 1]
    return [
        *mlp_gemms(trunk, b, params_grad=True, input_grad=False),  # the actor's trunk on s
        *2 * mlp_gemms([last, act_dim], b, params_grad=True, input_grad=True),  # its heads μ and log σ, into the trunk
        *mlp_gemms(critics, b, params_grad=False, input_grad=True, stack=2),  # Q(s, ã): θ detached, ∂/∂ã for π
        *mlp_gemms(critics, b, params_grad=True, input_grad=False, stack=2),  # Q(s, a) of the buffer's a
        *mlp_gemms(value, b, params_grad=True, input_grad=False),  # V(s)
        *mlp_gemms(value, b, params_grad=False, input_grad=False),  # V̄(s'), no gradient
    ]


def same_gemms(a: list[tuple], b: list[tuple]) -> bool:
    """Whether two lists hold the same products, in any order and either orientation ((AB)ᵀ = BᵀAᵀ costs the same)."""
    canonical = collections.Counter((stack, k, *sorted((m, n))) for stack, m, k, n in a)
    return canonical == collections.Counter((stack, k, *sorted((m, n))) for stack, m, k, n in b)


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_the_floors_matmuls_are_the_36_of_the_actor_critics_v_and_v_target_forward_and_backward(bf16):
    env = throughput.sac_v.make_env(throughput.ENV_ID)
    args = throughput.sac_v.Args(hidden_sizes=(8, 16), batch_size=32, bf16=bf16)  # every dimension tells apart
    step, _ = throughput.project_update_step(env, args, torch.device("cpu"))
    batch = throughput.synthetic_batch(env, 32, torch.device("cpu"))
    step(batch)
    gemms = step_gemms(env.observation_space.shape[0], env.action_space.shape[0], (8, 16), 32)
    profiled = throughput.profiled_gemms(step, batch)
    assert len(gemms) == len(profiled) == 36 and same_gemms(gemms, profiled)
    assert not same_gemms(gemms, profiled[1:]) and not same_gemms(gemms, [*gemms[1:], (1, 9, 9, 9)])


def test_the_floor_is_each_distinct_matmul_timed_alone_times_its_count(monkeypatch):
    timed = collections.Counter()

    def seconds(device, calls, matmul, a, b):  # a matmul of m rows takes m seconds a call
        timed[tuple(a.shape)] += 1
        return calls * a.shape[1]

    monkeypatch.setattr(throughput, "seconds", seconds)
    gemms = [(1, 2, 3, 4), (2, 5, 6, 7), (1, 2, 3, 4)]
    assert throughput.matmul_floor(gemms, torch.float32, torch.device("cpu"), calls=1, rounds=2) == 2 + 5 + 2
    assert timed == {(1, 2, 3): 3, (2, 5, 6): 3}  # a warm-up, then its rounds


def test_the_table_gives_each_update_as_a_multiple_of_its_floor(tmp_path, monkeypatch, one_size):
    monkeypatch.setattr(throughput, "updates_per_s", lambda step, batch, steps, device: 100.0)  # 10 ms a step
    floors = {torch.float32: 0.002, torch.bfloat16: 0.001}
    monkeypatch.setattr(throughput, "matmul_floor", lambda gemms, dtype, *args: floors[dtype])
    table = throughput.measure(tiny_bench(tmp_path))
    assert "| update | (b) or (c) updates/s (min–max) | ×plain | ×floor | (d) loop steps/s | warm-up s |" in table
    assert "| 8×8 | 16 | eager | 100 (100–100) | 1.00 | 5.0 | " in table
    assert "| 8×8 | 16 | bf16 | 100 (100–100) | 1.00 | 10.0 | " in table
    assert "- 8×8, batch 16: the matmul floor of one sac_v step, its 36 matmuls each timed alone at " in table
    assert "torch threads: 2.00 ms in float32, 1.00 ms in bfloat16" in table


FAKE_CLEANRL = """
import json, sys
from pathlib import Path
from torch.utils.tensorboard import SummaryWriter

argv = sys.argv[1:]
Path(__file__).with_name("argv.json").write_text(json.dumps(argv))
value = {flag: argv[argv.index(flag) + 1] for flag in ("--env-id", "--total-timesteps", "--learning-starts")}
writer = SummaryWriter(f"runs/{value['--env-id']}__fake")
for step in range(int(value["--total-timesteps"])):
    if step > int(value["--learning-starts"]) and step % 100 == 0:  # as CleanRL logs; its own SPS is from the start
        writer.add_scalar("charts/SPS", 7, step, walltime=1_000.0 + min(step, 1_200) / 10 + max(step - 1_200, 0) / 50)
writer.close()
"""


def fake_cleanrl(tmp_path: Path) -> Path:
    """A stand-in for CleanRL's script that logs charts/SPS as it does: 10 steps per second to step 1 200 (its random
    steps, then 200 training steps that warm up), then exactly 50."""
    script = tmp_path / "cleanrl" / "sac_continuous_action.py"
    script.parent.mkdir()
    script.write_text(FAKE_CLEANRL)
    return script


def test_cleanrls_training_rate_is_read_from_its_log_between_two_logged_steps(tmp_path):
    script = fake_cleanrl(tmp_path)
    flags = {"cleanrl_python": Path(sys.executable), "cleanrl_script": script, "cleanrl_env_id": "Env-v2"}
    bench = tiny_bench(tmp_path, **flags, warmup=150)  # 1 000 random steps, 150 rounded up to 200 to warm up
    assert throughput.cleanrl_steps_per_s(bench, torch.device("cpu"), 250) == pytest.approx(50.0)  # 300 timed
    assert json.loads(script.with_name("argv.json").read_text()) == [
        *("--env-id", "Env-v2", "--total-timesteps", "1501", "--learning-starts", "1000", "--no-cuda"),
    ]


LOGGED_STEPS = """
from torch.utils.tensorboard import SummaryWriter

writer = SummaryWriter("runs/run")
for step in {steps}:
    writer.add_scalar("charts/SPS", 7, step, walltime=1_000.0 + step)
writer.close()
"""


@pytest.mark.parametrize("steps, missing", [([1_200, 1_400], 1_500), ([], 1_200)], ids=["no end", "no start"])
def test_cleanrls_rate_needs_both_ends_of_the_span_in_its_log(tmp_path, steps, missing):
    script = tmp_path / "logs_some_steps.py"
    script.write_text(LOGGED_STEPS.format(steps=steps))
    bench = tiny_bench(tmp_path, cleanrl_python=Path(sys.executable), cleanrl_script=script, warmup=150)
    with pytest.raises(RuntimeError, match=f"CleanRL's log has no charts/SPS at step {missing}"):
        throughput.cleanrl_steps_per_s(bench, torch.device("cpu"), 250)  # the span 1 200 to 1 500


def test_a_cleanrl_script_that_fails_says_why_in_one_line(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import sys\nsys.exit('ModuleNotFoundError: no module named tyro')\n")
    bench = tiny_bench(tmp_path, cleanrl_python=Path(sys.executable), cleanrl_script=script)
    with pytest.raises(RuntimeError, match=r"^CleanRL's script failed: ModuleNotFoundError: no module named tyro$"):
        throughput.cleanrl_steps_per_s(bench, torch.device("cpu"), 100)


def test_cleanrls_loop_is_measured_beside_ours_with_its_ratio(tmp_path, monkeypatch, one_size):
    monkeypatch.setattr(throughput, "CLEANRL_CONFIGS", (((8, 8), 16),))
    script = fake_cleanrl(tmp_path)
    bench = tiny_bench(tmp_path, cleanrl_python=Path(sys.executable), cleanrl_script=script, warmup=150)
    table = throughput.measure(bench)
    assert "| 8×8 | 16 | CleanRL SAC | – | – | – | 50 | – |" in table
    assert "(d) loop steps/s as a multiple of CleanRL SAC's 50 (sac_continuous_action.py at its defaults" in table


def test_without_sb3_installed_or_cleanrl_given_the_table_has_only_our_rows(tmp_path, monkeypatch, one_size):
    monkeypatch.setattr(throughput, "SB3_CONFIGS", (((8, 8), 16),))
    monkeypatch.setattr(throughput, "CLEANRL_CONFIGS", (((8, 8), 16),))
    rows = [line for line in throughput.measure(tiny_bench(tmp_path)).splitlines() if line.startswith("| 8×8 |")]
    assert [row.split(" | ")[2] for row in rows] == ["plain", "eager", "bf16"]


def measuring_must_not_start(bench):
    raise AssertionError("measuring began before the arguments were checked")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--output", "{tmp}/outdir"], "error: --output {tmp}/outdir is a folder; give the markdown file to write"),
        (
            ["--output", "{tmp}/afile/t.md"],
            "error: --output {tmp}/afile/t.md lies under {tmp}/afile, which is a file, not a folder",
        ),
        (["--repeats", "0"], "error: --repeats must be at least 1, got 0"),
        (["--update-steps", "0"], "error: --update-steps must be at least 1, got 0"),
        (["--loop-steps", "-3"], "error: --loop-steps must be at least 1, got -3"),
        (["--env-steps", "0"], "error: --env-steps must be at least 1, got 0"),
        (["--pool", "-1"], "error: --pool must be 0 or more, got -1"),
        (
            ["--cleanrl-python", sys.executable],
            "error: --cleanrl-python and --cleanrl-script go together: give both or neither",
        ),
        (
            ["--cleanrl-python", "{tmp}/afile", "--cleanrl-script", "{tmp}/afile"],
            "error: --cleanrl-python {tmp}/afile is not an executable file",
        ),
        (
            ["--cleanrl-python", sys.executable, "--cleanrl-script", "{tmp}/outdir"],
            "error: --cleanrl-script {tmp}/outdir is not a file",
        ),
    ],
    ids=[
        "output is a folder",
        "output under a file",
        "no repeats",
        "no update steps",
        "negative loop steps",
        "no env steps",
        "negative pool",
        "cleanrl python without its script",
        "cleanrl python not executable",
        "cleanrl script a folder",
    ],
)
def test_bad_arguments_are_refused_in_one_sentence_before_measuring(tmp_path, monkeypatch, flags, message):
    (tmp_path / "afile").write_text("kept\n")
    (tmp_path / "outdir").mkdir()
    argv = ["--output", str(tmp_path / "t.md"), *(f.format(tmp=tmp_path) for f in flags)]
    monkeypatch.setattr(sys, "argv", ["throughput.py", *argv])
    monkeypatch.setattr(throughput, "measure", measuring_must_not_start)
    with pytest.raises(SystemExit) as exit_:
        throughput.main()
    assert exit_.value.code == message.format(tmp=tmp_path)
    assert (tmp_path / "afile").read_text() == "kept\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "afile",
        "outdir",
    ]


def test_a_write_that_fails_keeps_the_measured_table_and_the_other_devices_section(tmp_path, monkeypatch, capsys):
    path = tmp_path / "throughput.md"
    path.write_text("# Throughput benchmark\n\n<!-- cuda -->\ncuda table\n<!-- /cuda -->\n")
    before = path.read_text()
    write_text = Path.write_text

    def disk_full_halfway(self, data, *args, **kwargs):
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full_halfway)
    monkeypatch.setattr(sys, "argv", ["throughput.py", "--output", str(path)])
    monkeypatch.setattr(throughput, "measure", lambda bench: "the measured table")
    with pytest.raises(SystemExit) as exit_:
        throughput.main()
    monkeypatch.undo()
    assert (
        exit_.value.code == f"error: cannot write --output {path}: No space left on device; the table is printed above"
    )
    assert "the measured table" in capsys.readouterr().out
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["throughput.md"]


def test_side_by_side_gives_each_case_against_one_run_alone_and_keeps_the_other_sizes_sections(tmp_path, monkeypatch):
    speed = {"1": 100.0, "2": 200.0, "auto": 300.0}  # steps/s of each run, by its --threads
    monkeypatch.setattr(throughput, "run_case", lambda runs, threads, env, bench: [speed[threads]] * runs)
    out = tmp_path / "threads.md"
    for hidden_sizes, batch_size in (((8, 8), 16), ((4,), 8), ((8, 8), 16)):  # the first size rewritten in place
        throughput.side_by_side(throughput.SideBySideArgs(hidden_sizes=hidden_sizes, batch_size=batch_size, output=out))
    text = out.read_text()
    assert "| two runs, 1 thread each | 100 / 100 | 200 | 1.00 | 0.50 |" in text  # the slowest over 100, over 200
    assert text.count("## 8 × 8, batch 16\n") == 1 and text.index("## 8 × 8, batch 16") < text.index("## 4, batch 8")
    assert text.startswith("# Threads that share the cores\n") and text.count("| two runs, 1 thread each |") == 2
    assert "Command: `python benchmarks/throughput.py side-by-side --hidden-sizes 8 8 --batch-size 16`." in text


def test_a_side_by_side_run_is_a_process_of_its_own_that_counts_its_steps_in_the_window():
    bench = throughput.SideBySideArgs(seconds=0.2, warmup_s=0.1, hidden_sizes=(8, 8), batch_size=16)
    [speed] = throughput.run_case(1, "1", {}, bench)
    assert speed > 0


def test_on_cuda_the_cuda_graphed_variants_are_measured_too(tmp_path):
    bench = tiny_bench(tmp_path, device="cuda", compile=True)
    names = throughput.variants(torch.device("cuda"), bench, all_cores=1, size=((8, 8), 16))
    graphed = ("cudagraphs", "compile+cudagraphs", "compile+cudagraphs+bf16")
    assert list(names) == ["plain", "eager", "bf16", "compile", *graphed]
    assert names["compile+cudagraphs+bf16"] == {"compile": True, "cudagraphs": True, "bf16": True}
