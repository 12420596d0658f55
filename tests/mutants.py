"""Mutation check: does a test fail when sac_v.py, buffer.py or sac_v_eval.py breaks as it must not? (docs/mutants.md)

python tests/mutants.py                  # every mutant of tests/mutants.txt: about 30 minutes on a 2-core CPU
python tests/mutants.py --only M19 M20   # some of them
"""

import ast
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path(__file__).with_name("mutants.txt")
TESTED = ("update", "actor", "buffer", "train", "long_runs", "fast_paths", "faults", "eval")
EVERY_FILE = tuple(f"tests/test_{name}.py" for name in TESTED)  # run after a mutant's own test file passes
LITERAL = r"""('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""  # a Python string literal on one line
LINE = re.compile(rf"^(M\d+) (\S+\.py)( cuda)?: (.+?): {LITERAL} -> {LITERAL}$", re.MULTILINE)  # see mutants.txt
Mutant = collections.namedtuple("Mutant", "name what path old new test_file cuda", defaults=[False])

_, *SECTIONS = re.split(r"^\[(\S+)\].*$", TABLE.read_text(), flags=re.MULTILINE)  # file, its mutants, the next, ...
MUTANTS = [
    Mutant(name, what, path, ast.literal_eval(old), ast.literal_eval(new), f"tests/{test_file}", bool(cuda))
    for path, lines in zip(SECTIONS[::2], SECTIONS[1::2], strict=True)
    for name, test_file, cuda, what, old, new in LINE.findall(lines)
]
if len(MUTANTS) != len(re.findall(r"^M\d", TABLE.read_text(), re.MULTILINE)):  # a line the pattern missed would vanish
    raise ValueError(f"{TABLE}: a mutant not written as its first lines say")


def copy_repository(to: Path) -> Path:
    """The code and its tests, without runs, videos, docs, benchmarks or git history."""
    for name in ("sac_v.py", "buffer.py", "sac_v_eval.py", "pyproject.toml"):
        shutil.copy2(ROOT / name, to / name)
    shutil.copytree(ROOT / "tests", to / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    return to


def run_pytest(root: Path, test_files: tuple[str, ...]) -> subprocess.CompletedProcess:
    """pytest on these test files in root (one torch thread, stopping at the first failure)."""
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *test_files]
    return subprocess.run(command, cwd=root, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)


def run_mutant(mutant: Mutant, root: Path, every_file: tuple[str, ...]) -> str:
    """'killed', 'survived', 'no longer applies: ...' or 'skipped (needs CUDA)', restoring the file afterwards."""
    original = (path := root / mutant.path).read_text()
    if (count := original.count(mutant.old)) != 1:
        return f"no longer applies: its code occurs {count} times in {mutant.path}, not once"
    if mutant.cuda and not torch.cuda.is_available():
        return "skipped (needs CUDA)"
    path.write_text(original.replace(mutant.old, mutant.new))
    try:
        survived = all(run_pytest(root, files).returncode == 0 for files in ((mutant.test_file,), every_file))
    finally:
        path.write_text(original)
    return "survived" if survived else "killed"


def main(only: tuple[str, ...] = ()) -> int:
    """Prints each mutant's result; exits 1 if one survives, if the tests fail unmutated, or on an unknown --only name.
    :param only: the names of the mutants to run (default: all)"""
    if unknown := sorted(set(only) - {m.name for m in MUTANTS}):
        sys.exit(f"error: no mutant named {', '.join(unknown)}; they are M01 to M{len(MUTANTS):02}")
    mutants = [m for m in MUTANTS if not only or m.name in only]
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_repository(Path(tmp))
        files = tuple(dict.fromkeys([*EVERY_FILE, *(m.test_file for m in mutants)]))  # the mutants' own files too
        print(f"the unmutated code against {len(files)} test files ...", flush=True)
        if (unmutated := run_pytest(root, files)).returncode != 0:  # its summary names the test that failed
            print("\n".join(unmutated.stdout.splitlines()[-15:]), file=sys.stderr)
            sys.exit("error: the tests fail without any mutant; fix them first (pytest " + " ".join(files) + ")")
        print("| mutant | what it breaks | result | seconds |\n| --- | --- | --- | ---: |", flush=True)
        results = {}
        for mutant in mutants:
            start = time.time()
            results[mutant.name] = run_mutant(mutant, root, EVERY_FILE)
            print(f"| {mutant.name} | {mutant.what} | {results[mutant.name]} | {time.time() - start:.0f} |", flush=True)
    kinds = [result.split(":")[0] for result in results.values()]
    print(f"{len(results)} mutants: " + ", ".join(f"{kinds.count(kind)} {kind}" for kind in dict.fromkeys(kinds)))
    if stale := [name for name, result in results.items() if result.startswith("no longer applies")]:
        print(f"no longer applies (the code changed; update their strings in {TABLE.name}): {', '.join(stale)}")
    return 1 if "survived" in results.values() else 0


if __name__ == "__main__":
    sys.exit(tyro.cli(main))
