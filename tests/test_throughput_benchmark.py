import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import throughput


def tiny_bench(tmp_path: Path) -> throughput.BenchArgs:
    """One round of a few steps per variant: enough to exercise every code path, not to time anything."""
    return throughput.BenchArgs(
        repeats=1,
        update_steps=2,
        loop_steps=2,
        env_steps=10,
        warmup=1,
        pool=10,
        compile=False,
        output=tmp_path / "t.md",
    )


def test_benchmark_measures_every_variant_and_size(tmp_path):
    bench = tiny_bench(tmp_path)
    table = throughput.measure(bench)
    for size, batch in (("256×256", 256), ("200×200", 200), ("64×64", 100)):
        for variant in ("plain", "eager", "bf16"):
            assert f"| {size} | {batch} | {variant} |" in table


def test_a_run_rewrites_only_its_own_device_section(tmp_path):
    path = tmp_path / "throughput.md"
    throughput.write_section(path, "cuda", "cuda table", "cmd")
    throughput.write_section(path, "cpu", "old cpu table", "cmd")
    throughput.write_section(path, "cpu", "new cpu table", "cmd")
    text = path.read_text()
    assert "cuda table" in text and "new cpu table" in text and "old cpu table" not in text


def test_a_variant_that_cannot_run_here_is_reported_as_failed_and_the_others_measured(tmp_path, monkeypatch):
    project_update_step = throughput.project_update_step

    def bf16_unsupported(env, args, device, reduce_overhead=False):
        step, sample_action = project_update_step(env, args, device, reduce_overhead)
        if not args.bf16:
            return step, sample_action

        def failing_step(batch):
            raise RuntimeError("no bfloat16 matmuls here\nsecond line")

        return failing_step, sample_action

    monkeypatch.setattr(throughput, "project_update_step", bf16_unsupported)
    monkeypatch.setattr(throughput, "CONFIGS", (((8, 8), 16),))
    bench = tiny_bench(tmp_path)
    table = throughput.measure(bench)
    assert "| 8×8 | 16 | bf16 | failed: RuntimeError: no bfloat16 matmuls here | – | – | – |" in table
    assert "| 8×8 | 16 | plain | " in table and "| 8×8 | 16 | eager | " in table
