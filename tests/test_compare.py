import subprocess
import sys
from pathlib import Path

import compare
import pytest

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras


def table_row(record: Path, threshold: float, capsys) -> str:
    """The table's row of one record compared alone."""
    compare.main(compare.CompareArgs([record], threshold=threshold))
    return capsys.readouterr().out.splitlines()[2]


def test_compare_row_counts_solved_seeds_and_averages_the_last_five_evaluations(tmp_path, capsys):
    lines = ["seed,step,eval_mean,eval_std,wall_s"]
    lines += [f"1,{step},{value},0.0,{step / 10}" for step, value in zip(range(1, 7), [0, 1, 2, 3, 4, 10], strict=True)]
    lines += [f"2,{step},-5.0,0.0,{step / 20}" for step in range(1, 7)]
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    # seed 1 reaches 3 at step 4, seed 2 never (the median of {4, ∞} is 4, as learning.py takes it); finals 10 and -5;
    # last five 4 and -5
    assert table_row(tmp_path, 3.0, capsys) == f"| {tmp_path} | 2 | 1 / 2 | 4 | 2.5 ± 7.5 | -0.5 ± 4.5 | 0.0 |"


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


def write_record(folder: Path, seeds, header: str = "seed,step,eval_mean,eval_std,wall_s", prefix: str = "") -> Path:
    folder.mkdir()
    rows = [f"{prefix}{seed},{step},{seed * step},0.0,60.0" for seed in seeds for step in (1, 2)]
    (folder / "runs.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder


def test_the_table_heads_the_wall_time_column_minutes_per_seed(tmp_path, capsys):
    compare.main(compare.CompareArgs([write_record(tmp_path / "a", [1])], threshold=0.0))
    assert capsys.readouterr().out.splitlines()[0].endswith("| last five evals | minutes per seed |")


def test_no_folder_given_is_one_line_on_stderr(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"
    cmd = [sys.executable, str(script), "--threshold", "0"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "error: no record folders given\n")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: [write_record(tmp / "a", [1]), tmp / "missing"], "error: no runs.csv in {tmp}/missing"),
        (
            lambda tmp: [write_record(tmp / "a", [1, 2]), write_record(tmp / "b", [3])],
            "error: the records share no seed",
        ),
        (
            # a sweep's runs.csv: the same seed once per grid setting, which must not be merged into one curve
            lambda tmp: [write_record(tmp / "sweep", [1], "reward_scale,seed,step,eval_mean,eval_std,wall_s", "5.0,")],
            "error: {tmp}/sweep/runs.csv is not a learning record: its columns are reward_scale, seed, step,",
        ),
        (lambda tmp: [write_record(tmp / "a", [])], "error: {tmp}/a/runs.csv holds no evaluation"),
        (
            lambda tmp: [write_record(tmp / "a", [1], "seed,step,eval_mean,wall_s")],
            "error: {tmp}/a/runs.csv is not a learning record: its columns are seed, step, eval_mean, wall_s",
        ),
        (
            lambda tmp: [write_record(tmp / "a", [1], prefix="x")],  # seeds x1: not a number
            "error: {tmp}/a/runs.csv has a row that is not all numbers",
        ),
    ],
    ids=["missing folder", "no common seed", "sweep output", "no evaluation", "missing column", "not a number"],
)
def test_bad_records_are_refused_in_one_sentence_before_the_table(tmp_path, capsys, make, message):
    with pytest.raises(SystemExit) as exit_:
        compare.main(compare.CompareArgs(make(tmp_path), threshold=0.0))
    assert str(exit_.value.code).startswith(message.format(tmp=tmp_path)) and capsys.readouterr().out == ""


def test_compare_reports_the_median_over_seeds_of_each_seeds_final_wall_time(tmp_path, capsys):
    # final wall times 10, 20 and 60 minutes: the median is 20 (the mean would be 30, the first rows' 1)
    lines = ["seed,step,eval_mean,eval_std,wall_s"]
    for seed, last in ((1, 600), (2, 1200), (3, 3600)):
        lines += [f"{seed},1,0.0,0.0,60.0", f"{seed},2,0.0,0.0,{last}.0"]
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    assert table_row(tmp_path, 1.0, capsys).endswith("| 20.0 |")


def test_the_final_eval_column_is_each_seeds_last_evaluation(tmp_path, capsys):
    lines = [
        "seed,step,eval_mean,eval_std,wall_s",
        "1,1,5.0,0.0,60.0",
        "1,2,3.0,0.0,60.0",
        "2,1,9.0,0.0,60.0",
        "2,2,1.0,0.0,60.0",
    ]
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    assert "| 2.0 ± 1.0 |" in table_row(
        tmp_path, 100.0, capsys
    )  # the last evaluations 3 and 1; the best would be 5 and 9


def test_a_table_without_a_threshold_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        compare.main(compare.CompareArgs([write_record(tmp_path / "a", [1])]))
    assert exit_.value.code == "error: the table needs --threshold, the eval return that counts as solved"
