"""`manip-stack record-cameras --sim` writes one recording per camera, which plays back through the pipeline."""

from perception.cameras import recording_path
from perception.cameras.realsense import RealSensePlaybackCamera
from robot_learning.cli.main import main


def test_record_cameras_sim_writes_recordings_of_the_same_framesets(tmp_path, cell, capsys):
    code = main(["record-cameras", "--sim", "--cell", "franka_3cam", "--out", str(tmp_path), "--seconds", "0.5",
                 "--image-size", "160x120"])
    assert code == 0
    printed = capsys.readouterr().out
    assert [line.split(":")[0] for line in printed.splitlines()] == ["cam_front", "cam_side", "cam_wrist"]
    stamps = {}
    for name in ("cam_front", "cam_side", "cam_wrist"):
        camera = RealSensePlaybackCamera(recording_path(tmp_path, name), name=name, real_time=False, loop=False,
                                         buffer_frames=32)
        with camera:
            assert camera.wait_for_frame(0.0, 5.0)
            while camera.wait_for_frame(camera.last_frame_host_time_s(), 1.0):
                pass
            frames = camera.recent_frames()
            assert camera.serial == cell.camera(camera.name).serial
        assert frames[-1].color.shape == (120, 160, 3) and frames[-1].depth_m.shape == (120, 160)
        stamps[camera.name] = [round(f.device_time_ms, 3) for f in frames]
    # Every recording holds the same 30 fps clock (one frameset per time). Playback that starts in real time and
    # then rewinds can lose the first frames of a file on a loaded machine (seen in CI), so each camera must
    # deliver a contiguous tail of that clock, missing at most its first three frames.
    clock = [round(k * 1e3 / 30, 3) for k in range(15)]
    for name, delivered in stamps.items():
        assert len(delivered) >= len(clock) - 3, (name, delivered)
        assert delivered == clock[len(clock) - len(delivered):], (name, delivered)


def test_record_cameras_live_without_the_cameras_says_which_serials_are_missing(tmp_path, capsys):
    assert main(["record-cameras", "--cell", "franka_3cam", "--out", str(tmp_path), "--seconds", "1"]) == 2
    error = capsys.readouterr().err
    assert "serial 215122253001" in error and "found none" in error
    assert list(tmp_path.iterdir()) == []
