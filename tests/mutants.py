"""Mutation check of the test suite: does a test fail when a piece of the algorithm is broken?

    python tests/mutants.py                  # every mutant: about 30 minutes on a 2-core CPU
    python tests/mutants.py --only M19 M20   # some of them

Each mutant, in tests/mutants.txt, is one small change to sac_v.py, buffer.py or sac_v_eval.py that breaks what the
code promises: the twin minimum turned into a maximum, Q2 trained on Q1's output, V̄ left in place, exploration with
tanh(μ), a random stream not restored on resume, a flag at the edge of its range refused, and so on. In a copy of the
repository, each mutant in turn is applied and the test file that should catch it runs (then, if it passes, the eight
files of EVERY_FILE); a mutant that every test passes is a gap in the suite. First the unmutated copy must pass them
all. Not part of `pytest`: it runs on demand.

Prints a table of the results. A mutant whose code has changed (its old string no longer occurs exactly once) is
reported as "no longer applies" and listed apart below the table: update its strings in tests/mutants.txt. Exit
status: 1 if a mutant survives, if the tests fail without any mutant, or if --only names an unknown mutant; otherwise
0, also when some mutants no longer apply or need CUDA.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path(__file__).with_name("mutants.txt")
EVERY_FILE = tuple(
    f"tests/test_{name}.py"
    for name in ("update", "actor", "buffer", "train", "long_runs", "fast_paths", "faults", "eval")
)
LITERAL = r"""('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""  # a Python string literal on one line
LINE = re.compile(rf"^(M\d+) (\S+\.py)( cuda)?: (.+?): {LITERAL} -> {LITERAL}$", re.MULTILINE)  # see mutants.txt


class Mutant(NamedTuple):
    name: str
    what: str  # what the change breaks
    path: str  # the file it changes
    old: str  # replaced once: it must occur exactly once in the file
    new: str
    test_file: str  # where the test that should catch it is
    cuda: bool = False  # only a CUDA test can catch it


def read_mutants(text: str) -> list[Mutant]:
    """The mutants of a table written as tests/mutants.txt is."""
    _, *sections = re.split(r"^\[(\S+)\].*$", text, flags=re.MULTILINE)  # file, its mutants, the next file, ...
    mutants = [
        Mutant(name, what, path, ast.literal_eval(old), ast.literal_eval(new), f"tests/{test_file}", bool(cuda))
        for path, lines in zip(sections[::2], sections[1::2], strict=True)
        for name, test_file, cuda, what, old, new in LINE.findall(lines)
    ]
    if len(mutants) != len(re.findall(r"^M\d", text, re.MULTILINE)):  # a line the pattern missed would vanish
        raise ValueError(f"{TABLE}: a mutant not written as its header says; see its first lines")
    return mutants


MUTANTS = read_mutants(TABLE.read_text())


@dataclasses.dataclass
class MutantArgs:
    only: tuple[str, ...] = ()
    """the names of the mutants to run (default: all)"""


def check_applies(mutant: Mutant, root: Path = ROOT) -> str | None:
    """None, or why the mutant no longer applies to the file under root."""
    count = (root / mutant.path).read_text().count(mutant.old)
    return None if count == 1 else f"its code occurs {count} times in {mutant.path}, not once"


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
    if (why := check_applies(mutant, root)) is not None:
        return f"no longer applies: {why}"
    if mutant.cuda and not torch.cuda.is_available():
        return "skipped (needs CUDA)"
    path = root / mutant.path
    original = path.read_text()
    path.write_text(original.replace(mutant.old, mutant.new))
    try:
        survived = all(run_pytest(root, files).returncode == 0 for files in ((mutant.test_file,), every_file))
    finally:
        path.write_text(original)
    return "survived" if survived else "killed"


def main(args: MutantArgs) -> int:
    if unknown := sorted(set(args.only) - {m.name for m in MUTANTS}):
        sys.exit(f"error: no mutant named {', '.join(unknown)}; they are M01 to M{len(MUTANTS):02}")
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
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
    counts = collections.Counter(result.split(":")[0] for result in results.values())
    print(f"{len(results)} mutants: " + ", ".join(f"{n} {result}" for result, n in counts.items()))
    if stale := [name for name, result in results.items() if result.startswith("no longer applies")]:
        print(f"no longer applies (the code changed; update their strings in {TABLE.name}): {', '.join(stale)}")
    return 1 if "survived" in results.values() else 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(MutantArgs)))
