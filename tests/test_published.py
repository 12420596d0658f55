"""benchmarks/published.py: sac_v's records beside published multi-seed SAC, each source's gap in its own stds."""

import published
import pytest

pytestmark = pytest.mark.bench  # the tooling's tests: `pytest -m bench`, with the dev extras


def test_at_takes_each_seeds_nearest_logged_step_and_drops_seeds_logged_too_far_from_it():
    curves = {0: {95_000: 1.0, 305_000: 3.0}, 1: {100_000: 2.0, 90_000: 7.0}, 2: {50_000: 9.0, 150_000: 8.0}}
    assert list(published.at(curves, 100_000)) == [1.0, 2.0]


def test_beside_md_sets_sac_v_beside_each_source_at_its_steps_with_the_gap_in_the_sources_stds(tmp_path, monkeypatch):
    source = tmp_path / "published-sac" / "raw" / "some_source"
    source.mkdir(parents=True)
    # logged after 20 000 random steps, as Tianshou logs after its 10 000: 280 000 is env step 300 000
    source.joinpath("Hopper.csv").write_text(
        "env_step,seed_1,seed_2\n80000,500,700\n280000,1000,3000\n980000,4000,4000\n"
    )
    record = tmp_path / "docs" / "benchmarks" / "Hopper-v5"
    record.mkdir(parents=True)
    rows = [(1, 100_000, 600), (2, 100_000, 800), (1, 300_000, 2500), (2, 300_000, 3500)]
    record.joinpath("runs.csv").write_text(
        "seed,step,eval_mean,eval_std,wall_s\n" + "".join(f"{s},{step},{m},0.0,1.0\n" for s, step, m in rows)
    )
    monkeypatch.setattr(published, "PUBLISHED", tmp_path / "published-sac")
    monkeypatch.setattr(published, "ROOT", tmp_path)
    monkeypatch.setattr(published, "TASKS", ("Hopper",))
    monkeypatch.setattr(published, "SOURCES", {"some_source": ("[S] a source", 20_000)})
    published.main(record=True)
    lines = (tmp_path / "published-sac" / "beside.md").read_text().splitlines()
    assert "| **sac_v, `-v5`, det.** | 700 ± 100 (2) | 3 000 ± 500 (2) | – | |" in lines  # no 1 000 000-step run
    assert "| [S] a source | 600 ± 100 (2) | 2 000 ± 1 000 (2) | 4 000 ± 0 (2) | +1.0 |" in lines  # (3000-2000)/1000
    assert "![Hopper](Hopper.png)" in lines and (tmp_path / "published-sac" / "Hopper.png").stat().st_size > 0
