"""Evaluation: the Wilson interval is the textbook one, and a rollout in the twin writes report, plot and videos."""

import json

import pytest

from robot_learning.sessions.evaluate import EvalReport, evaluate_policy, plot_eval_summary, wilson_interval
from sim.tasks import OUTCOMES


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [(45, 50, (0.7864, 0.9565)), (50, 50, (0.9287, 1.0)), (0, 10, (0.0, 0.2775)), (5, 10, (0.2366, 0.7634))],
)
def test_wilson_interval_matches_reference_values(k, n, expected):
    lo, hi = wilson_interval(k, n)
    assert (lo, hi) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("n", [24, 100, 7])
def test_wilson_interval_always_holds_the_observed_rate_even_at_all_or_none(n):
    assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0
    for k in range(n + 1):
        lo, hi = wilson_interval(k, n)
        assert lo <= k / n <= hi


def test_wilson_interval_of_nothing_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_evaluation_rolls_out_counts_and_writes_report_plot_and_videos(tiny_run, tmp_path):
    report = evaluate_policy(tiny_run.policy_path, n_episodes=2, n_envs=1, out=tmp_path, n_videos=1, device="cpu",
                             progress=False)
    assert report.task == "lift" and report.n_episodes == 2 and len(report.episodes) == 2
    assert report.successes == sum(e["success"] for e in report.episodes)
    assert report.ci95 == pytest.approx(wilson_interval(report.successes, 2))
    assert report.runner["chunks"] >= 2 and report.runner["failures"] == 0 and report.runner["holds"] == 0
    saved = json.loads((tmp_path / "eval_report.json").read_text())
    assert saved["successes"] == report.successes and saved["episodes"] == report.episodes
    assert all(e["outcome"] in OUTCOMES for e in report.episodes)  # every episode says how it ended
    assert sum(saved["failures_by_outcome"].values()) == report.n_episodes - report.successes
    assert report.videos and all((tmp_path / "videos").joinpath(v.split("/")[-1]).stat().st_size > 0
                                 for v in report.videos)
    assert plot_eval_summary(report, tmp_path / "summary.png").stat().st_size > 0


def test_the_summary_counts_failures_by_how_they_ended(tmp_path):
    episodes = [{"success": True, "steps": 60, "outcome": "success"},
                {"success": False, "steps": 120, "outcome": "on_rim"},
                {"success": False, "steps": 120, "outcome": "short_of_depth"},
                {"success": False, "steps": 120, "outcome": "on_rim"}]
    report = EvalReport("policy.pt", "franka_3cam", "peg_insert", 4, 1, 0.25, wilson_interval(1, 4), 105.0, 1.0,
                        episodes)
    assert report.failures_by_outcome == {"on_rim": 2, "short_of_depth": 1}
    assert str(report).endswith("failures: on_rim 2, short_of_depth 1")
    assert plot_eval_summary(report, tmp_path / "summary.png").stat().st_size > 0
