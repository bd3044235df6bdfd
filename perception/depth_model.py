"""A RealSense D400-like model of depth errors, applied to a perfect depth image (the twin's) in pure numpy.

The twin renders depth exactly; a D435 does not. :class:`DepthModel` turns a perfect depth image into one with
the errors an active-stereo camera makes, so the twin is not kinder than the camera (issue #19):

- **Noise growing with distance squared**: stereo measures disparity ``d = f B / z`` to about ``subpixel_px``
  RMS, so depth has RMS ``sigma_z = z^2 * subpixel / (f * B)`` (Intel's D400 depth RMS error model; ``f`` the
  depth imager's focal length in pixels, ``B`` the baseline). Drawn independently per pixel.
- **Stereo shadow**: the depth origin is the left imager and the right imager sits ``B`` to its right (+x), so
  background just left of a foreground object is hidden from the right imager and has no depth. A pixel ``u``
  with disparity ``d(u)`` is shadowed when a pixel ``k`` columns to its right has ``d(u + k) - d(u) >= k``.
- **Edge holes**: pixels whose neighbourhood spans a depth jump larger than ``edge_jump_m`` have no depth (the
  matcher's window straddles two surfaces; the driver's filters drop them or they fly).
- **Dark (and glossy) surfaces**: pixels whose colour is darker than ``dark_luminance`` (0-1) lose their depth
  with probability ``dark_dropout_prob``; pixels a caller marks glossy (e.g. from the twin's segmentation) with
  ``glossy_dropout_prob``.
- **Range**: depth under ``min_range_m`` or over ``max_range_m`` reads 0.
- **Quantisation** to the depth unit ``depth_scale_m`` (the 16-bit counts the driver publishes).
- **Extrinsic error**: the camera is not exactly where calibration says. :meth:`DepthModel.extrinsic_error` gives
  each camera one fixed rigid perturbation ``T_believed_true`` (the true optical frame in the believed one) of
  ``extrinsic_rotation_deg`` about a random axis and ``extrinsic_translation_mm`` in a random direction; the
  twin renders from the perturbed pose while frames keep the cell file's extrinsics.

Defaults are the D435's: 50 mm baseline, subpixel 0.08 px (Intel's typical figure, "0.05-0.1" for a well
textured scene), a depth focal length of 424 px (the depth imagers at 848x480; the colour focal length a cell file
holds, ~615 px at 640x480, would make the noise 1.5x too kind), 0.2 m minimum and 10 m maximum range, 1 mm depth
unit. The extrinsic defaults, 0.1 deg and
1.0 mm, are the 1-sigma limits a calibration must meet to be accepted (``calibration.session.Thresholds``:
``max_uncertainty_deg``, ``max_uncertainty_mm``); the twin calibration's tests see 0.2 deg / 2 mm against truth
at most. A lab with a measured residual should put its own numbers here.

The model draws from the ``numpy.random.Generator`` it is given, so a run with one seed is reproducible; a
Generator is not thread-safe, so give each camera thread its own model.
"""

from __future__ import annotations

import zlib

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from geometry.transforms import axis_angle_to_matrix

__all__ = ["D435", "DepthModel", "DepthModelConfig", "depth_rms_m", "stereo_shadow_mask"]

_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 luminance of linear-ish RGB


class DepthModelConfig(BaseModel):
    """A D400-series depth camera's errors; the defaults are the D435's (data sheet, Intel's depth-quality note)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline_m: float = Field(0.050, gt=0, description="stereo baseline [m] (D435: 50 mm)")
    subpixel_px: float = Field(0.08, ge=0, description="disparity RMS error [px] (D435 typical 0.08)")
    focal_px: float | None = Field(424.0, gt=0, description="depth imager focal length [px] for the noise (D435 at "
                                   "848x480, its best-accuracy mode, ~87 deg HFOV: ~424 px); None: the sensor's "
                                   "focal given to apply(), else the depth image's fx")
    min_range_m: float = Field(0.2, ge=0, description="closer than this reads 0 (D435 min-Z ~0.2 m at 848x480)")
    max_range_m: float = Field(10.0, gt=0, description="farther than this reads 0 (D435 ~10 m)")
    depth_scale_m: float = Field(0.001, gt=0, description="depth unit [m per count] (the cell camera's 1 mm)")
    stereo_shadow: bool = Field(True, description="drop background the right imager cannot see")
    edge_jump_m: float | None = Field(0.05, gt=0, description="drop pixels whose neighbourhood spans a larger "
                                      "depth jump [m]; None: no edge holes")
    edge_radius_px: int = Field(1, ge=1, description="neighbourhood half-width for edge holes [px]")
    dark_luminance: float = Field(0.08, ge=0, le=1, description="colour luminance (0-1) below which a surface is "
                                  "dark")
    dark_dropout_prob: float = Field(0.5, ge=0, le=1, description="chance a dark pixel has no depth")
    glossy_dropout_prob: float = Field(0.5, ge=0, le=1, description="chance a pixel marked glossy has no depth")
    extrinsic_rotation_deg: float = Field(0.1, ge=0, description="per-camera pose error, rotation [deg]")
    extrinsic_translation_mm: float = Field(1.0, ge=0, description="per-camera pose error, translation [mm]")


D435 = DepthModelConfig()


def depth_rms_m(depth_m: np.ndarray | float, config: DepthModelConfig, focal_px: float) -> np.ndarray | float:
    """Intel's D400 depth RMS error [m] at ``depth_m``: ``z^2 * subpixel / (focal_px * baseline)``."""
    return np.square(depth_m) * config.subpixel_px / (focal_px * config.baseline_m)


def stereo_shadow_mask(depth_m: np.ndarray, focal_px: float, baseline_m: float) -> np.ndarray:
    """True where the right imager (``baseline_m`` to the +x side) cannot see what the left one sees.

    Pixel ``u`` of a row is hidden when some pixel ``k`` columns to its right has a disparity larger by ``k`` or
    more (it lands on or left of ``u``'s match in the right image). Pixels without depth cast no shadow.
    """
    valid = depth_m > 0
    disparity = np.where(valid, focal_px * baseline_m / np.where(valid, depth_m, 1.0), 0.0).astype(np.float32)
    hidden = np.zeros(depth_m.shape, bool)
    if not valid.any():
        return hidden
    span = int(np.ceil(disparity[valid].max() - disparity[valid].min()))
    width = depth_m.shape[1]
    for k in range(1, min(span, width - 1) + 1):
        hidden[:, :-k] |= disparity[:, k:] - disparity[:, :-k] >= k
    return hidden & valid


def _depth_edges(depth_m: np.ndarray, jump_m: float, radius: int) -> np.ndarray:
    """True where the (2 radius + 1)^2 neighbourhood of valid depths spans more than ``jump_m``."""
    valid = depth_m > 0
    big = np.where(valid, depth_m, np.inf)
    small = np.where(valid, depth_m, -np.inf)
    pad_lo = np.pad(big, radius, mode="edge")
    pad_hi = np.pad(small, radius, mode="edge")
    h, w = depth_m.shape
    lo, hi = big.copy(), small.copy()
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            np.minimum(lo, pad_lo[dy:dy + h, dx:dx + w], out=lo)
            np.maximum(hi, pad_hi[dy:dy + h, dx:dx + w], out=hi)
    return valid & (hi - lo > jump_m)


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


class DepthModel:
    """Applies :class:`DepthModelConfig`'s errors to perfect depth images, drawing from ``rng``."""

    def __init__(self, config: DepthModelConfig = D435, rng: np.random.Generator | int | None = 0) -> None:
        self.config = config
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        # one draw fixes every camera's extrinsic error, whatever order cameras ask in
        self._extrinsic_seed = int(self.rng.integers(2**63))
        self._extrinsic: dict[str, np.ndarray] = {}

    def extrinsic_error(self, camera: str) -> np.ndarray:
        """``T_believed_true`` (4x4): where ``camera``'s optical frame truly is in the one its calibration gives.

        Fixed per camera and seed: rotation of exactly ``extrinsic_rotation_deg`` about a random axis, translation
        of exactly ``extrinsic_translation_mm`` in a random direction.
        """
        if camera not in self._extrinsic:
            rng = np.random.default_rng([self._extrinsic_seed, zlib.crc32(camera.encode())])
            T = np.eye(4)
            T[:3, :3] = axis_angle_to_matrix(_random_unit(rng) * np.radians(self.config.extrinsic_rotation_deg))
            T[:3, 3] = _random_unit(rng) * self.config.extrinsic_translation_mm * 1e-3
            self._extrinsic[camera] = T
        return self._extrinsic[camera].copy()

    def apply(self, depth_m: np.ndarray, focal_px: float, color: np.ndarray | None = None,
              glossy: np.ndarray | None = None, sensor_focal_px: float | None = None) -> np.ndarray:
        """The depth a D400 would report for the perfect ``depth_m`` (float32 metres, 0 = none), as float32.

        ``focal_px``: the depth image's fx (the stereo shadow's width is in its pixels). ``sensor_focal_px``: the
        camera's own fx at its streaming size, for the noise when the image is smaller than the sensor's (the twin
        renders 96x96 observations directly; a real one is resized from 640x480 and keeps its noise); the
        config's ``focal_px`` overrides both for the noise. ``color``: the aligned RGB uint8 image, for
        dark-surface dropout (skipped without it). ``glossy``: bool mask of glossy pixels.
        """
        cfg = self.config
        noise_focal = next(f for f in (cfg.focal_px, sensor_focal_px, focal_px) if f is not None)
        depth = np.asarray(depth_m, np.float32)
        valid = depth > 0
        drop = np.zeros(depth.shape, bool)
        if cfg.stereo_shadow:
            drop |= stereo_shadow_mask(depth, focal_px, cfg.baseline_m)
        if cfg.edge_jump_m is not None:
            drop |= _depth_edges(depth, cfg.edge_jump_m, cfg.edge_radius_px)
        if color is not None and cfg.dark_dropout_prob > 0:
            if color.shape[:2] != depth.shape:
                raise ValueError(f"colour {color.shape[:2]} and depth {depth.shape} differ in size")
            luminance = (np.asarray(color, np.float32)[..., :3] @ _LUMA) / 255.0
            drop |= (luminance < cfg.dark_luminance) & (self.rng.random(depth.shape) < cfg.dark_dropout_prob)
        if glossy is not None and cfg.glossy_dropout_prob > 0:
            drop |= np.asarray(glossy, bool) & (self.rng.random(depth.shape) < cfg.glossy_dropout_prob)
        sigma = depth_rms_m(depth, cfg, noise_focal)
        noisy = depth + (self.rng.standard_normal(depth.shape) * sigma).astype(np.float32)
        counts = np.rint(noisy / cfg.depth_scale_m)
        out = (counts * cfg.depth_scale_m).astype(np.float32)
        keep = valid & ~drop & (out >= cfg.min_range_m) & (out <= cfg.max_range_m)
        return np.where(keep, out, np.float32(0.0))
