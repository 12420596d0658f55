"""tests/mutants.py: a run tells a mutant the tests catch from one they cannot see, and reports one whose code has
changed without failing on it. Whether each mutant still applies is the tool's output, not a test here."""

import pytest

from tests import mutants
from tests.helpers import run_cli

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras

BUFFER = "tests/test_buffer.py"
MISCOUNTED = mutants.Mutant(
    "X1", "additions miscounted", "buffer.py", "self.added += 1", "self.added = self.size", BUFFER
)
UNSEEN = mutants.Mutant("X2", "a comment", "buffer.py", "# where the next transition goes", "# where it goes", BUFFER)


def test_a_mutant_the_tests_catch_is_killed_one_they_cannot_see_survives_and_the_code_is_restored(tmp_path):
    root = mutants.copy_repository(tmp_path)
    assert mutants.run_mutant(MISCOUNTED, root, every_file=(BUFFER,)) == "killed"
    assert mutants.run_mutant(UNSEEN, root, every_file=(BUFFER,)) == "survived"
    assert (root / "buffer.py").read_text() == (mutants.ROOT / "buffer.py").read_text()


@pytest.mark.parametrize(("other", "status"), [(MISCOUNTED, 0), (UNSEEN, 1)], ids=["killed", "survived"])
def test_a_mutant_whose_code_changed_is_listed_apart_and_only_a_survivor_fails_the_check(
    monkeypatch, capsys, other, status
):
    stale = MISCOUNTED._replace(name="X3", old="no such code")
    monkeypatch.setattr(mutants, "MUTANTS", [other, stale])
    monkeypatch.setattr(mutants, "EVERY_FILE", (BUFFER,))
    assert mutants.main() == status
    out = capsys.readouterr().out.splitlines()
    assert (
        "| X3 | additions miscounted | no longer applies: its code occurs 0 times in buffer.py, not once | 0 |" in out
    )
    assert out[-1] == "no longer applies (the code changed; update their strings in mutants.txt): X3"


def test_mutants_are_named_m01_to_the_count_of_them_once_each():
    assert sorted(int(mutant.name[1:]) for mutant in mutants.MUTANTS) == list(range(1, len(mutants.MUTANTS) + 1))


def test_every_mutant_changes_a_file_of_the_product_and_names_a_test_file_that_exists():
    for mutant in mutants.MUTANTS:
        assert mutant.path in ("sac_v.py", "buffer.py", "sac_v_eval.py") and (mutants.ROOT / mutant.test_file).is_file()


def test_cli_refuses_an_unknown_mutant_in_one_line(tmp_path):
    result = run_cli("tests/mutants.py", "--only", "M01", "M999", cwd=tmp_path)
    assert (
        result.returncode == 1
        and result.stderr == f"error: no mutant named M999; they are M01 to M{len(mutants.MUTANTS):02}\n"
    )
