"""Sim-to-real validation must find and name each perturbation of a "real" robot, and call a clean one clean.

The real robot is played by a perturbed twin (robot_learning.validation.perturbed_twin): every recording has
sensor noise (pixels, joints, gripper, and a measured initial object pose), and one of: friction x0.005 (the
grasp slips), cam_side moved 2.5 cm and turned 2 degrees, or 100 ms of command latency. Thresholds come from
three other clean recordings (clean-vs-clean variation), never from the perturbed ones.
"""

from pathlib import Path

import pytest

from robot_learning.cli.main import main
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.sessions.validate import calibrate_from_store, run_validation
from robot_learning.validation.diagnosis import FLOORS, Thresholds
from robot_learning.validation.perturbed_twin import (
    EXPECTED_FINDINGS,
    STANDARD_PERTURBATIONS,
    STANDARD_SEEDS,
    record_perturbed_episodes,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("validation")


@pytest.fixture(scope="module")
def thresholds(workdir: Path) -> Thresholds:
    reference = record_perturbed_episodes(workdir / "reference.zarr", STANDARD_PERTURBATIONS["clean"], 3, seed=1000)
    return calibrate_from_store(reference)


def test_thresholds_come_from_clean_variation_with_floors(thresholds: Thresholds):
    assert thresholds.n_clean_episodes == 3 and thresholds.margin == 3.0
    # sensor noise makes clean replays differ by a fraction of a millimetre: thresholds sit above the floors there
    assert thresholds.tcp_rmse_m > FLOORS["tcp_rmse_m"] and thresholds.object_rmse_m > FLOORS["object_rmse_m"]
    assert set(thresholds.shift_px) == {"cam_front", "cam_side", "cam_wrist"}
    assert all(v >= FLOORS["shift_px"] for v in thresholds.shift_px.values())
    assert thresholds.lag_s == FLOORS["lag_s"]  # clean lags are exactly zero: the floor (two control periods) holds


@pytest.mark.parametrize("perturbation", ["clean", "friction", "camera", "latency"])
def test_validation_names_the_perturbation(perturbation: str, thresholds: Thresholds, workdir: Path):
    store = record_perturbed_episodes(workdir / f"{perturbation}.zarr", STANDARD_PERTURBATIONS[perturbation], 1,
                                      seed=STANDARD_SEEDS[perturbation])
    report = run_validation(store, workdir / f"{perturbation}_report", thresholds=thresholds)
    (episode,) = report.episodes
    assert set(episode.kinds) == EXPECTED_FINDINGS[perturbation], [f.message for f in episode.findings]
    markdown = (workdir / f"{perturbation}_report" / "report.md").read_text()
    for kind in EXPECTED_FINDINGS[perturbation] or {"clean"}:
        assert kind in markdown
    assert (workdir / f"{perturbation}_report" / "episode_0000.png").stat().st_size > 10_000
    m = episode.metrics
    if perturbation == "latency":
        assert 0.08 <= m.lag_s <= 0.12 and m.delayed.tcp_rmse_m < 0.2 * m.tcp_rmse_m
    if perturbation == "camera":  # only the moved camera is off, by pixels, from the first frame
        assert m.cameras["cam_side"].initial_shift_norm_px > 2.0
        assert max(m.cameras[c].initial_shift_norm_px for c in ("cam_front", "cam_wrist")) < 0.5
    if perturbation == "friction":
        assert m.recorded_success is False and m.simulated_success is True


def test_cli_validates_a_store_with_saved_thresholds(thresholds: Thresholds, workdir: Path, capsys):
    store = record_perturbed_episodes(workdir / "cli.zarr", STANDARD_PERTURBATIONS["clean"], 1, seed=2005)
    saved = thresholds.save(workdir / "thresholds.json")
    out = workdir / "cli_report"
    assert main(["validate", str(store), "--thresholds", str(saved), "--out", str(out)]) == 0
    assert "episode 0: lag 0 ms" in capsys.readouterr().out
    assert (out / "report.md").is_file() and (out / "summary.png").is_file()
    assert Thresholds.load(out / "thresholds.json") == thresholds
    with EpisodeStore.open(store) as s:
        assert s.attrs["source"] == "perturbed_twin:clean"
