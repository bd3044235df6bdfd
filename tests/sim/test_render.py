"""The one twin renderer: what a frame carries, and what it refuses."""

import mujoco
import numpy as np
import pytest

from perception.cameras.base import Frame
from sim.render import TwinRenderer, twin_intrinsics
from sim.scene import ImageSize, build_model


@pytest.fixture(scope="module")
def twin(cell, lift_task):
    model = build_model(cell, lift_task, ImageSize(64, 48))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


def test_a_frame_carries_images_intrinsics_extrinsics_stamp_and_name(cell, twin):
    model, data = twin
    renderer = TwinRenderer(model, 64, 48, cell, max_depth_m=6.0)
    try:
        frame = renderer.render(data, "cam_front", segmentation=True, stamp_ms=1500.0, frame_number=3)
        assert isinstance(frame, Frame) and frame.camera == "cam_front" and frame.frame_number == 3
        assert frame.color.shape == (48, 64, 3) and frame.color.dtype == np.uint8
        assert frame.depth_m.shape == (48, 64) and frame.depth_m.dtype == np.float32
        assert frame.depth_m.max() <= 6.0 and (frame.depth_m > 0).any()
        assert frame.segmentation.shape == (48, 64, 2)
        assert frame.stamp_s == pytest.approx(1.5) and frame.rgb is frame.color
        assert frame.intrinsics == twin_intrinsics(model, "cam_front", 64, 48)
        assert frame.parent_frame == cell.camera("cam_front").extrinsics.parent
        np.testing.assert_allclose(frame.T_parent_optical, cell.camera("cam_front").extrinsics.matrix())
        colour_only = renderer.render(data, "cam_front", depth=False)
        assert colour_only.depth_m is None and colour_only.device_time_ms == pytest.approx(data.time * 1e3)
        np.testing.assert_array_equal(colour_only.color, frame.color)
    finally:
        renderer.close()


def test_supersampling_needs_a_large_enough_offscreen_buffer(twin):
    model, _ = twin
    with pytest.raises(ValueError, match="offscreen buffer"):
        TwinRenderer(model, model.vis.global_.offwidth, model.vis.global_.offheight, supersample=2)
    with pytest.raises(ValueError, match="supersample"):
        TwinRenderer(model, 64, 48, supersample=0)
