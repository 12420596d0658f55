"""benchmarks/mutants.py: every mutant still applies to the code it breaks, and a run tells a mutant the tests catch
from one they cannot see."""

import mutants
import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda mutant: mutant.name)
def test_every_mutant_still_applies_to_the_code_it_breaks(mutant):
    assert mutants.check_applies(mutant) is None, "the code changed: update the mutant's strings"
    assert (mutants.ROOT / mutant.test_file).is_file()


def test_a_mutant_the_tests_catch_is_killed_one_they_cannot_see_survives_and_the_code_is_restored(tmp_path):
    root = mutants.copy_repository(tmp_path)
    only_update = (mutants.UPDATE,)
    broken = mutants.Mutant(
        "X1", "the twin maximum", "torch.min(qf1_pi, qf2_pi)", "torch.max(qf1_pi, qf2_pi)", *only_update
    )
    unseen = mutants.Mutant("X2", "a comment", "# Eq. 12, the loss", "# Eq. 12: the loss", *only_update)
    assert mutants.run_mutant(broken, root, every_file=only_update) == "killed"
    assert mutants.run_mutant(unseen, root, every_file=only_update) == "survived"
    assert (root / "sac_v.py").read_text() == (mutants.ROOT / "sac_v.py").read_text()
    assert mutants.run_mutant(broken._replace(old="no such code"), root).startswith("no longer applies")


def test_mutants_are_named_m01_to_the_count_of_them_once_each():
    assert sorted(int(mutant.name[1:]) for mutant in mutants.MUTANTS) == list(range(1, len(mutants.MUTANTS) + 1))


def test_cli_refuses_an_unknown_mutant_in_one_line(tmp_path):
    result = run_cli("benchmarks/mutants.py", "--only", "M01", "M999", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr == "error: no mutant named M999; they are M01 to M139\n"
