"""compare.py --logs: the evaluations of loose sac_v runs, from their TensorBoard logs, into one CSV."""

import csv
import errno
from pathlib import Path

import compare
import pytest
from torch.utils.tensorboard import SummaryWriter

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs/ folder with one run that logged two evaluations, as sac_v.py names and writes it."""
    writer = SummaryWriter(str(tmp_path / "runs" / "Pendulum-v1__probe__1__1700000000"))
    for step in (100, 200):
        writer.add_scalar("eval/episodic_return", -step, step)
    writer.close()
    return tmp_path / "runs"


def logs_must_not_be_read(*args, **kwargs):
    raise AssertionError("the TensorBoard logs were read before the arguments were checked")


@pytest.mark.parametrize(
    "folder, out, message",
    [
        ("missing", "evals.csv", "error: no folder {tmp}/missing"),
        ("afile", "evals.csv", "error: {tmp}/afile is a file; give the folder of run folders (runs/)"),
        ("runs", "outdir", "error: --out {tmp}/outdir is a folder; give the CSV file to write"),
        ("runs", "afile/x.csv", "error: --out {tmp}/afile/x.csv lies under {tmp}/afile, which is a file, not a folder"),
    ],
    ids=["missing folder", "file as folder", "out is a folder", "out under a file"],
)
def test_bad_paths_are_refused_in_one_sentence_before_the_logs_are_read(
    tmp_path, runs, monkeypatch, folder, out, message
):
    (tmp_path / "afile").write_text("kept\n")
    (tmp_path / "outdir").mkdir()
    monkeypatch.setattr(compare, "EventAccumulator", logs_must_not_be_read)
    with pytest.raises(SystemExit) as exit_:
        compare.main(compare.CompareArgs(logs=tmp_path / folder, out=tmp_path / out))
    assert exit_.value.code == message.format(tmp=tmp_path)
    assert (tmp_path / "afile").read_text() == "kept\n" and list((tmp_path / "outdir").iterdir()) == []


def test_a_write_that_fails_leaves_the_earlier_csv_whole(tmp_path, runs, monkeypatch):
    out = tmp_path / "evals.csv"
    compare.main(compare.CompareArgs(logs=runs, out=out))
    before = out.read_text()
    assert before.splitlines()[1:] == [
        "Pendulum-v1__probe__1__1700000000,Pendulum-v1,probe,1,100,-100.0",
        "Pendulum-v1__probe__1__1700000000,Pendulum-v1,probe,1,200,-200.0",
    ]
    real_writer = csv.writer

    class FullDisk:
        """The header gets written, then the disk is full."""

        def __init__(self, f):
            self.writer = real_writer(f)
            self.writerow = self.writer.writerow

        def writerows(self, rows):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(compare.csv, "writer", FullDisk)
    with pytest.raises(SystemExit) as exit_:
        compare.main(compare.CompareArgs(logs=runs, out=out))
    assert exit_.value.code == f"error: cannot write --out {out}: No space left on device"
    assert out.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["evals.csv", "runs"]


def test_csv_holds_each_runs_evaluations_in_run_name_order_to_two_decimals_and_skips_a_run_without_one(
    tmp_path, monkeypatch
):
    runs = tmp_path / "runs"
    for name, value in (("Pendulum-v1__probe__1__1700000000", -3.0), ("Pendulum-v1__probe__2__1700000001", -100.456)):
        writer = SummaryWriter(str(runs / name))
        writer.add_scalar("eval/episodic_return", value, 100)
        writer.close()
    writer = SummaryWriter(str(runs / "Pendulum-v1__probe__3__1700000002"))  # stopped before its first evaluation
    writer.add_scalar("losses/v_loss", 1.0, 100)
    writer.close()
    real_iterdir = Path.iterdir  # the folder lists its runs in reverse name order
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(sorted(real_iterdir(self), reverse=True)))
    compare.main(compare.CompareArgs(logs=runs, out=tmp_path / "evals.csv"))
    assert (tmp_path / "evals.csv").read_text().splitlines() == [
        "run,env_id,exp_name,seed,step,eval_mean",
        "Pendulum-v1__probe__1__1700000000,Pendulum-v1,probe,1,100,-3.0",
        "Pendulum-v1__probe__2__1700000001,Pendulum-v1,probe,2,100,-100.46",
    ]


def test_a_folder_without_run_folders_is_refused_and_nothing_is_written(tmp_path):
    (tmp_path / "runs" / "notes").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        compare.main(compare.CompareArgs(logs=tmp_path / "runs", out=tmp_path / "evals.csv"))
    assert exit_.value.code == f"error: no run folders (env__exp__seed__time) in {tmp_path / 'runs'}"
    assert not (tmp_path / "evals.csv").exists()


def test_logs_beside_record_folders_is_refused_in_one_sentence(tmp_path, runs):
    with pytest.raises(SystemExit) as exit_:
        compare.main(compare.CompareArgs([tmp_path], logs=runs))
    assert exit_.value.code == "error: --logs collects the evaluations of run folders; give no record folders beside it"
