"""Video capture: training's periodic evaluations and sac_v_eval.py --capture-video write mp4 files."""

import pytest

from sac_v import train
from sac_v_eval import EvalArgs, evaluate_checkpoint
from tests.helpers import tiny_args

pytest.importorskip("moviepy", reason='video capture needs the video extra: pip install -e ".[video]"')


def test_training_records_the_first_episode_of_each_evaluation(in_tmp_dir):
    result = train(tiny_args(total_timesteps=200, eval_every=100, eval_episodes=2, capture_video=True))
    videos = in_tmp_dir / "videos" / result.run_dir.name
    # each evaluation has an env of its own, whose first episode is recorded
    assert sorted(p.name for p in videos.iterdir()) == ["eval-step-100-episode-0.mp4", "eval-step-200-episode-0.mp4"]
    assert all(p.stat().st_size > 1000 for p in videos.iterdir())


def test_evaluator_records_every_episode_to_the_runs_video_folder(in_tmp_dir):
    checkpoint = train(tiny_args(total_timesteps=100, eval_every=100)).checkpoint
    evaluate_checkpoint(EvalArgs(checkpoint, episodes=2, seed=5, capture_video=True))
    videos = in_tmp_dir / "videos" / checkpoint.parent.name
    assert sorted(p.name for p in videos.iterdir()) == [
        "sac_v-step-100-Pendulum-v1-deterministic-seed-5-episode-0.mp4",
        "sac_v-step-100-Pendulum-v1-deterministic-seed-5-episode-1.mp4",
    ]
    evaluate_checkpoint(EvalArgs(checkpoint, episodes=1, seed=5, capture_video=True, stochastic=True))
    assert len(list(videos.iterdir())) == 3  # another evaluation of the same checkpoint writes a file of its own
