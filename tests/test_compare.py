import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compare


def test_compare_row_counts_solved_seeds_and_averages_the_last_five_evaluations(tmp_path):
    lines = ["seed,step,eval_mean,eval_std,wall_s"]
    lines += [f"1,{step},{value},0.0,{step / 10}" for step, value in zip(range(1, 7), [0, 1, 2, 3, 4, 10], strict=True)]
    lines += [f"2,{step},-5.0,0.0,{step / 20}" for step in range(1, 7)]
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    # seed 1 reaches 3 at step 4, seed 2 never (the median of {4, ∞} is 4, as learning.py takes it); finals 10 and -5;
    # last five 4 and -5
    assert compare.row(tmp_path, 3.0) == f"| {tmp_path} | 2 | 1 / 2 | 4 | 2.5 ± 7.5 | -0.5 ± 4.5 | 0.0 |"


def test_compare_takes_the_seeds_every_record_has(tmp_path, capsys):
    for name, seeds in (("ten", range(1, 11)), ("five", range(1, 6))):
        (tmp_path / name).mkdir()
        rows = [f"{seed},{step},{seed * step},0.0,60.0" for seed in seeds for step in (1, 2)]
        (tmp_path / name / "runs.csv").write_text("\n".join(["seed,step,eval_mean,eval_std,wall_s", *rows]) + "\n")
    compare.main(compare.CompareArgs([tmp_path / "ten", tmp_path / "five"], threshold=0.0))
    out = capsys.readouterr().out
    # seeds 1-5: finals 2, 4, ..., 10, mean 6 in both records
    assert (
        f"| {tmp_path / 'ten'} | 5 | 5 / 5 | 1 | 6.0 ± 2.8 |" in out
        and "seeds every record has: [1, 2, 3, 4, 5]" in out
    )
    compare.main(compare.CompareArgs([tmp_path / "ten", tmp_path / "five"], threshold=0.0, all_seeds=True))
    assert f"| {tmp_path / 'ten'} | 10 | 10 / 10 | 1 | 11.0 ± 5.7 |" in capsys.readouterr().out
