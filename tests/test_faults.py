"""Nothing breaks a run: bad flags and faults get one sentence and a non-zero exit, nothing written is damaged, and two
runs never share a folder."""

import copy
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sac_v
from buffer import ReplayBuffer
from sac_v import ConfigError, train
from sac_v_eval import EvalArgs, evaluate_checkpoint, list_runs
from tests.helpers import ROOT, run_cli, tiny_args

BAD_FLAGS = [
    (("--seed", "-1"), "--seed must be in"),
    (("--seed", "99999999999999999999"), "--seed must be in"),
    (("--exp-name", "a/b"), "--exp-name must be a plain name"),
    (("--exp-name", ""), "--exp-name must be a plain name"),
    (("--reward-scale", "inf"), "--reward-scale must be a finite number"),
    (("--tau", "nan"), "--tau must be a finite number"),
    (("--threads", "0"), "--threads must be positive"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=lambda x: " ".join(x) if isinstance(x, tuple) else "")
def test_bad_flag_is_one_line_on_stderr_and_writes_nothing(in_tmp_dir, flags, message):
    proc = run_cli("sac_v.py", *flags, cwd=in_tmp_dir)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert list(in_tmp_dir.iterdir()) == []


def test_bf16_on_a_cpu_without_fast_bfloat16_is_refused_saying_why(in_tmp_dir, monkeypatch):
    monkeypatch.setattr(sac_v, "cpu_has_fast_bf16", lambda: False)
    with pytest.raises(ConfigError, match=r"--bf16 needs a GPU or a CPU with AVX-512 or AMX.*drop --bf16"):
        train(tiny_args(bf16=True))
    assert list(in_tmp_dir.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_resume_with_a_damaged_buffer_is_refused_in_one_sentence_and_leaves_the_files(tiny_run_copy, damage):
    buffer = sac_v.buffer_path(tiny_run_copy)
    data = buffer.read_bytes()
    buffer.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a zip file" * 100)
    before = {p.name: p.read_bytes() for p in tiny_run_copy.parent.iterdir()}
    proc = run_cli("sac_v.py", "--resume", str(tiny_run_copy.resolve()), "--total-timesteps", "300", cwd=Path.cwd())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is not a readable replay buffer" in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert {p.name: p.read_bytes() for p in tiny_run_copy.parent.iterdir()} == before


def test_runs_as_a_link_to_a_missing_disk_is_one_sentence(in_tmp_dir):
    (in_tmp_dir / "runs").symlink_to(in_tmp_dir / "unmounted" / "runs")
    with pytest.raises(ConfigError, match=r"cannot create the run folder .*: runs is not a folder"):
        train(tiny_args())


def test_env_whose_module_is_missing_is_one_sentence(in_tmp_dir):
    result = run_cli("sac_v.py", "--env-id", "no_such_module:Env-v0", cwd=in_tmp_dir)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: cannot make environment 'no_such_module:Env-v0': No module named")


def test_buffer_too_large_for_memory_is_one_sentence(in_tmp_dir):
    result = run_cli("sac_v.py", "--buffer-size", str(10**13), "--device", "cpu", cwd=in_tmp_dir)
    assert result.returncode == 1 and result.stderr == (
        "error: not enough memory for this run; lower --buffer-size (or --hidden-sizes, --batch-size)\n"
    )


def test_networks_too_large_for_memory_are_one_sentence(in_tmp_dir):
    """torch's CPU allocator raises a RuntimeError, not a MemoryError, for a layer of 4e14 bytes."""
    result = run_cli("sac_v.py", "--env-id", "Pendulum-v1", "--hidden-sizes", "10000000", "10000000", cwd=in_tmp_dir)
    assert result.returncode == 1 and result.stderr == (
        "error: not enough memory for this run; lower --buffer-size (or --hidden-sizes, --batch-size)\n"
    )


def test_unwritable_runs_folder_is_one_sentence(in_tmp_dir, monkeypatch):
    """As root, chmod does not stop a write, so the refusal is mocked: mkdir raises as on a read-only folder."""

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ConfigError, match=r"cannot create the run folder .*: Permission denied"):
        train(tiny_args())


def test_run_folder_that_becomes_unwritable_mid_run_stops_in_one_sentence_keeping_the_last_checkpoint(
    in_tmp_dir, monkeypatch
):
    """Mocked as above: the buffer's second save (at step 200) raises as in a folder made read-only mid-run."""
    saves = []
    real_save = ReplayBuffer.save

    def save_once(self, path, **kwargs):
        saves.append(path)
        if len(saves) > 1:
            raise PermissionError(13, "Permission denied", str(path))
        real_save(self, path, **kwargs)

    monkeypatch.setattr(ReplayBuffer, "save", save_once)
    with pytest.raises(
        ConfigError,
        match=r"cannot write the checkpoint of step 200.*: Permission denied; the checkpoint of step 100 is kept",
    ):
        train(tiny_args(total_timesteps=300, eval_every=100))
    [checkpoint] = in_tmp_dir.glob("runs/*/sac_v.pt")
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 100


def test_disk_full_while_writing_the_checkpoint_keeps_a_resumable_checkpoint_and_buffer_pair(in_tmp_dir, monkeypatch):
    """The checkpoint of step 200 hits a full disk after half a file: the pair of step 100 stays together (a buffer
    of step 200 beside a checkpoint of step 100 would refuse the resume), and no partial file is left on the disk."""
    real_save = torch.save

    def full_at_step_200(obj, path):
        if obj.get("global_step") == 200:
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(28, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(torch, "save", full_at_step_200)
    with pytest.raises(ConfigError, match=r"step 200 .*: No space left on device; the checkpoint of step 100 is kept"):
        train(tiny_args(total_timesteps=300, eval_every=100))
    monkeypatch.setattr(torch, "save", real_save)
    [run_dir] = in_tmp_dir.glob("runs/*")
    assert sorted(p.name for p in run_dir.glob("sac_v*")) == ["sac_v.buffer.npz", "sac_v.pt"]
    checkpoint = sac_v.load_checkpoint(run_dir / "sac_v.pt")
    assert ReplayBuffer.load(run_dir / "sac_v.buffer.npz").added == checkpoint["buffer_added"] == 100
    result = train(*sac_v.parse_args(["--resume", str(run_dir), "--total-timesteps", "300"]))
    assert [e.step for e in result.evaluations] == [100, 200, 300]


TWIN = """
import sys, time
real_time, start = time.time, time.time()
time.time = lambda: 1_800_000_000.0 + (real_time() - start) * 1e-6  # both runs start, and stay, in the same second
import sac_v
sys.argv = ["sac_v.py", *sys.argv[1:]]
sac_v.main()
"""


def test_two_runs_started_in_the_same_second_get_two_folders_and_two_checkpoints(in_tmp_dir):
    flags = ["--env-id", "Pendulum-v1", "--total-timesteps", "150", "--min-pool", "100", "--batch-size", "32"]
    flags += ["--hidden-sizes", "16", "16", "--eval-every", "150", "--eval-episodes", "1", "--device", "cpu"]
    command, env = [sys.executable, "-c", TWIN, *flags], dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout's sac_v
    procs = [subprocess.Popen(command, cwd=in_tmp_dir, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0], [proc.stderr.read() for proc in procs]
    folders = sorted(p.name for p in (in_tmp_dir / "runs").iterdir())
    assert folders == ["Pendulum-v1__sac_v__1__1800000000", "Pendulum-v1__sac_v__1__1800000000-2"]
    for folder in folders:
        checkpoint = torch.load(in_tmp_dir / "runs" / folder / "sac_v.pt", weights_only=True)
        assert checkpoint["global_step"] == 150
        assert len(list((in_tmp_dir / "runs" / folder).glob("events.out.tfevents.*"))) == 1


def test_console_says_the_warm_up_takes_random_actions_and_evaluates_the_initial_policy(in_tmp_dir):
    proc = run_cli(
        *("sac_v.py", "--env-id", "Pendulum-v1", "--total-timesteps", "300", "--min-pool", "200"),
        *("--batch-size", "32", "--hidden-sizes", "16", "16", "--eval-every", "100", "--eval-episodes", "1"),
        cwd=in_tmp_dir,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert [line.endswith("of the initial policy (no gradient step yet)") for line in lines] == [True, False, False]
    assert lines[2].endswith("of the policy")


@pytest.fixture(scope="module")
def sound_checkpoint(tiny_run) -> dict:
    """What sac_v writes: the checkpoint of the shared 100-step run, as torch loads it."""
    return torch.load(tiny_run, weights_only=True)


def set_in(path: tuple, value: object):
    """A change to a checkpoint: the value at path (keys into nested dicts) replaced."""

    def change(checkpoint: dict) -> None:
        for key in path[:-1]:
            checkpoint = checkpoint[key]
        checkpoint[path[-1]] = value

    return change


# Files that torch loads with weights_only, with every key a reader looks for, but not what sac_v writes.
CRAFTED_FOR_EVERY_READER = {
    "format version a string": set_in(("format_version",), "3"),
    "args a string": set_in(("args",), "Pendulum-v1"),
    "env id a number": set_in(("args", "env_id"), 7),
    "hidden sizes a string": set_in(("args", "hidden_sizes"), "32 32"),
    "device not a choice": set_in(("args", "device"), "tpu"),
    "actor empty": set_in(("actor",), {}),
    "actor layer a string": set_in(("actor", "mean.weight"), "weights"),
    "actor of other sizes than its args": set_in(("args", "hidden_sizes"), [64, 64]),
    "global step a string": set_in(("global_step",), "100"),
    "eval return a string": set_in(("eval_return",), "high"),
    "evaluations of numbers": set_in(("evaluations",), [1, 2]),
}
CRAFTED_FOR_A_RESUME = {
    "qf empty": set_in(("qf",), {}),
    "optimizer moments of strings": set_in(("actor_optimizer", "state", 0), "moments"),
    "random states empty": set_in(("rng",), {}),
    "python random state out of range": set_in(("rng", "python"), (3, (0,) * 624 + (10**6,), None)),
    "episode none": set_in(("episode",), None),
    "training time a string": set_in(("wall_s",), "an hour"),
    "buffer count a string": set_in(("buffer_added",), "100"),
}


def crafted(sound: dict, change, folder: Path) -> Path:
    checkpoint = copy.deepcopy(sound)
    change(checkpoint)
    path = folder / "runs" / "crafted" / "sac_v.pt"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    return path


def resume(path: Path) -> None:
    train(*sac_v.parse_args(["--resume", str(path), "--total-timesteps", "200"]))


READERS = {
    "eval of the file": lambda path: evaluate_checkpoint(EvalArgs(path, episodes=1)),
    "eval of its folder": lambda path: evaluate_checkpoint(EvalArgs(path.parents[1], episodes=1)),
    "list of the file": list_runs,
    "resume": resume,
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("change", CRAFTED_FOR_EVERY_READER)
def test_a_file_that_loads_but_is_not_what_sac_v_writes_is_refused_by_every_reader(
    sound_checkpoint, in_tmp_dir, change, reader
):
    path = crafted(sound_checkpoint, CRAFTED_FOR_EVERY_READER[change], in_tmp_dir)
    with pytest.raises(ConfigError, match=r"is not a sac_v checkpoint: \w"):
        READERS[reader](path)


@pytest.mark.parametrize("change", CRAFTED_FOR_EVERY_READER)
def test_list_of_a_folder_names_a_file_that_is_not_what_sac_v_writes_and_goes_on(
    sound_checkpoint, in_tmp_dir, change, capsys
):
    crafted(sound_checkpoint, CRAFTED_FOR_EVERY_READER[change], in_tmp_dir)
    list_runs(in_tmp_dir / "runs")
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(r"\S*/runs/crafted +\S*/runs/crafted/sac_v.pt is not a sac_v checkpoint: .+", last), last


@pytest.mark.parametrize("change", CRAFTED_FOR_A_RESUME)
def test_a_resume_refuses_a_checkpoint_whose_training_state_is_not_what_sac_v_writes(
    sound_checkpoint, in_tmp_dir, change
):
    path = crafted(sound_checkpoint, CRAFTED_FOR_A_RESUME[change], in_tmp_dir)
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    with pytest.raises(ConfigError, match=r"is not a sac_v checkpoint: \w"):
        resume(path)
    assert {p.name: p.read_bytes() for p in path.parent.iterdir() if p.name != ".lock"} == before


@pytest.mark.parametrize(
    "command", [("sac_v_eval.py",), ("sac_v_eval.py", "--list"), ("sac_v.py", "--total-timesteps", "200", "--resume")]
)
def test_cli_refuses_a_crafted_checkpoint_in_one_line(sound_checkpoint, in_tmp_dir, command):
    path = crafted(sound_checkpoint, CRAFTED_FOR_EVERY_READER["actor layer a string"], in_tmp_dir)
    proc = run_cli(*command, str(path), cwd=in_tmp_dir)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {path} is not a sac_v checkpoint: its actor")


@pytest.fixture
def small_disk(tmp_path):
    """make(size): a folder on a tmpfs of that size, a small disk that fills for real; root only, unmounted after."""
    mounted = []

    def make(size: str) -> Path:
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)]
        if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
            pytest.skip("a small filesystem needs root and mount")
        mounted.append(disk)
        return disk

    yield make
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int = 0) -> None:
    """Take all of disk's free space but `leave` bytes."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(free - leave, 0))
    assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize <= leave


SMALL_RUN = ("--env-id", "Pendulum-v1", "--min-pool", "100", "--batch-size", "32", "--eval-every", "100")
SMALL_RUN += ("--eval-episodes", "1", "--device", "cpu")


def test_a_disk_full_at_start_is_one_sentence_and_leaves_no_run_folder(small_disk):
    disk = small_disk("64k")
    fill(disk)
    proc = run_cli("sac_v.py", *SMALL_RUN, "--total-timesteps", "300", "--hidden-sizes", "16", "16", cwd=disk)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: cannot write to runs/") and "No space left on device" in proc.stderr
    assert "no checkpoint was saved, so the run folder is removed" in proc.stderr
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_disk_that_fills_at_the_first_checkpoint_is_one_sentence_and_leaves_no_run_folder(small_disk):
    """torch.save meets the full disk: its C++ writer raises a RuntimeError ("unexpected pos"), not an OSError."""
    disk = small_disk("512k")
    proc = run_cli("sac_v.py", *SMALL_RUN, "--total-timesteps", "300", "--hidden-sizes", "128", "128", cwd=disk)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: cannot write the checkpoint of step 100 in runs/")
    assert "No space left on device; no checkpoint was saved, so the run folder is removed" in proc.stderr
    assert list(disk.iterdir()) == []


def test_a_disk_that_fills_mid_run_keeps_the_last_checkpoint_and_says_so(small_disk):
    disk = small_disk("1m")
    first = run_cli("sac_v.py", *SMALL_RUN, "--total-timesteps", "100", "--hidden-sizes", "32", "32", cwd=disk)
    assert first.returncode == 0, first.stderr
    [run_dir] = (disk / "runs").iterdir()
    saved = {p.name: p.read_bytes() for p in run_dir.glob("sac_v.*")}
    fill(disk, leave=8192)
    proc = run_cli("sac_v.py", "--resume", str(run_dir), "--total-timesteps", "300", cwd=disk)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.endswith("No space left on device; the checkpoint of step 100 is kept\n")
    assert {p.name: p.read_bytes() for p in run_dir.glob("sac_v.*")} == saved  # no .tmp left, nothing changed
    (disk / "filler").unlink()
    assert run_cli("sac_v.py", "--resume", str(run_dir), "--total-timesteps", "200", cwd=disk).returncode == 0


def test_torchs_runtime_error_for_a_short_write_is_one_sentence_keeping_the_last_checkpoint(in_tmp_dir, monkeypatch):
    """What torch.save raises where the disk fills (or a quota ends) mid-file, injected at the step-200 checkpoint."""
    real_save = torch.save

    def short_write_at_step_200(obj, path):
        if obj.get("global_step") == 200:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 518592 vs 518484")
        real_save(obj, path)

    monkeypatch.setattr(torch, "save", short_write_at_step_200)
    with pytest.raises(ConfigError, match=r"cannot write the checkpoint of step 200 .*; the checkpoint of step 100 is"):
        train(tiny_args(total_timesteps=300, eval_every=100))
    [run_dir] = in_tmp_dir.glob("runs/*")
    assert sorted(p.name for p in run_dir.glob("sac_v*")) == ["sac_v.buffer.npz", "sac_v.pt"]


def test_tensorboard_that_cannot_write_at_start_is_one_sentence_and_leaves_no_folder(in_tmp_dir, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sac_v, "SummaryWriter", full_disk)
    with pytest.raises(
        ConfigError, match=r"cannot write to runs/\S+ at step 0: No space left on device; no checkpoint"
    ):
        train(tiny_args())
    assert list(in_tmp_dir.iterdir()) == []


def test_a_run_that_takes_no_gradient_step_says_so_before_it_starts(in_tmp_dir, capsys):
    train(tiny_args(total_timesteps=50, min_pool=100, eval_every=50))
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("warning: this run takes no gradient step: it ends at step 50, before the pool")


def test_weights_growing_without_bound_stop_the_run_as_a_divergence(in_tmp_dir):
    """--policy-lr 1e9: Adam moves each weight by about 1e9 a step, finite in float32 but without bound."""
    with pytest.raises(sac_v.DivergenceError, match=r"parameter actor\.\S+ has grown to \S+e\+\d+ at step 200"):
        train(tiny_args(policy_lr=1e9, eval_every=200))


def test_output_into_a_closed_pipe_stops_the_run_with_a_checkpoint_and_no_traceback(in_tmp_dir):
    """As `python sac_v.py | head -1`: the reader goes after the first line; the next write stops the run as SIGPIPE
    stops any program, but with a checkpoint, and the stop's message goes to stderr."""
    command = [sys.executable, str(ROOT / "sac_v.py"), *SMALL_RUN, "--total-timesteps", "100000"]
    proc = subprocess.Popen(command, cwd=in_tmp_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("step 100: eval return")
    proc.stdout.close()
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGPIPE and "Traceback" not in err and "Exception ignored" not in err
    step = int(re.search(r"stopped by SIGPIPE at step (\d+): saved", err).group(1))
    [checkpoint] = in_tmp_dir.glob("runs/*/sac_v.pt")
    assert torch.load(checkpoint, weights_only=True)["global_step"] == step
