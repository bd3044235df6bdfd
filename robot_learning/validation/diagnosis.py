"""Thresholds from clean-vs-clean variation, and findings that name what differs between robot and twin.

Thresholds. A recording of a correctly modelled cell still differs from its replay (sensor noise, the error
of the measured initial object poses, contact chaos), so each metric gets ``margin`` times the worst value
seen over clean recordings (default 3x), never below a floor that keeps a noise-free calibration from asking
for impossible agreement (the floors are the resolution of the measurement: 1 mm TCP, 2 control periods of
lag, 0.3 px of image shift ...). Calibrate on a reference set: the twin's own clean recordings with the
sensor model, or real episodes recorded right after a verified calibration.

Findings, in order; once a cause is confirmed the rest are judged against a twin that includes it:
1. ``command_latency``: the recorded TCP trajectory lags the twin's by more than the lag threshold, and a
   replay with that delay explains most of the error (the delayed replay becomes the reference).
2. ``object_dynamics``: success differs, or the gripper width or object trajectory does (friction, object
   mass or size, grasp).
3. ``arm_tracking``: TCP position or orientation error beyond threshold (controller, payload, kinematic
   calibration); when the object already behaves differently, only the free-space part (before the gripper
   first closes) is judged, since a different contact also pushes the arm. Joint errors are reported but not
   judged alone: a redundant arm may take another null-space posture for the same TCP pose.
4. ``camera_extrinsics:<camera>``: the first frames, where both scenes are in the same state, are shifted
   beyond that camera's threshold (extrinsics or intrinsics off). ``camera_image:<camera>``: the view
   differs without a shift and nothing above explains it (exposure, occlusion, a rolled camera).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from robot_learning.validation.metrics import EpisodeMetrics

DEFAULT_MARGIN = 3.0
FLOORS = {"tcp_rmse_m": 1e-3, "rot_rmse_deg": 0.2, "joint_rmse_rad": 2e-3, "gripper_rmse_m": 1e-3,
          "object_rmse_m": 2e-3, "lag_s": 0.02, "ncc_drop": 0.005, "shift_px": 0.3}
EXPLAINED_FRACTION = 0.5  # a delayed replay must remove at least this fraction of the TCP error


@dataclass
class Thresholds:
    tcp_rmse_m: float = FLOORS["tcp_rmse_m"]
    rot_rmse_deg: float = FLOORS["rot_rmse_deg"]
    joint_rmse_rad: float = FLOORS["joint_rmse_rad"]
    gripper_rmse_m: float = FLOORS["gripper_rmse_m"]
    object_rmse_m: float = FLOORS["object_rmse_m"]
    lag_s: float = FLOORS["lag_s"]
    ncc_drop: dict[str, float] = field(default_factory=dict)
    shift_px: dict[str, float] = field(default_factory=dict)
    margin: float = DEFAULT_MARGIN
    n_clean_episodes: int = 0
    source: str = "floors only (uncalibrated)"

    def camera_ncc_drop(self, camera: str) -> float:
        return self.ncc_drop.get(camera, FLOORS["ncc_drop"])

    def camera_shift_px(self, camera: str) -> float:
        return self.shift_px.get(camera, FLOORS["shift_px"])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Thresholds:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a thresholds file written by manip-stack validate ({exc})") from None


def calibrate(clean: list[EpisodeMetrics], margin: float = DEFAULT_MARGIN, source: str = "") -> Thresholds:
    """Thresholds = max(floor, margin x worst clean value) per metric (per camera for images)."""
    if not clean:
        raise ValueError("calibration needs at least one clean episode")

    def bound(values: list[float], floor: float) -> float:
        return max(floor, margin * max(values))

    cameras = sorted({c for m in clean for c in m.cameras})
    objects = [m.object_rmse_m for m in clean if m.object_rmse_m is not None]
    return Thresholds(
        tcp_rmse_m=bound([m.tcp_rmse_m for m in clean], FLOORS["tcp_rmse_m"]),
        rot_rmse_deg=bound([m.rot_rmse_deg for m in clean], FLOORS["rot_rmse_deg"]),
        joint_rmse_rad=bound([m.joint_rmse_rad for m in clean], FLOORS["joint_rmse_rad"]),
        gripper_rmse_m=bound([m.gripper_rmse_m for m in clean], FLOORS["gripper_rmse_m"]),
        object_rmse_m=bound(objects or [0.0], FLOORS["object_rmse_m"]),
        lag_s=bound([abs(m.lag_s) for m in clean], FLOORS["lag_s"]),
        ncc_drop={c: bound([m.cameras[c].ncc_drop for m in clean if c in m.cameras], FLOORS["ncc_drop"])
                  for c in cameras},
        shift_px={c: bound([m.cameras[c].initial_shift_norm_px for m in clean if c in m.cameras], FLOORS["shift_px"])
                  for c in cameras},
        margin=margin, n_clean_episodes=len(clean), source=source or f"{len(clean)} clean episodes",
    )


@dataclass(frozen=True)
class Finding:
    kind: str  # command_latency, arm_tracking, object_dynamics, camera_extrinsics:<cam>, camera_image:<cam>
    message: str


def latency_candidate(m: EpisodeMetrics, thresholds: Thresholds, policy_hz: float) -> int:
    """Policy steps of command delay worth a what-if replay (0: the lag is within clean variation)."""
    if not m.lag_defined or abs(m.lag_s) <= thresholds.lag_s or m.lag_s <= 0:
        return 0
    return max(1, round(m.lag_s * policy_hz))


def diagnose(m: EpisodeMetrics, t: Thresholds) -> list[Finding]:
    """What differs between the recording and the twin, most fundamental cause first ([] means clean)."""
    findings: list[Finding] = []
    ref = m
    if m.lag_defined and abs(m.lag_s) > t.lag_s:
        confirmed = m.delayed is not None and m.delayed.tcp_rmse_m <= (1 - EXPLAINED_FRACTION) * m.tcp_rmse_m
        if confirmed:
            findings.append(Finding("command_latency", (
                f"the robot executes commands ~{m.lag_s * 1e3:.0f} ms later than the twin (threshold "
                f"{t.lag_s * 1e3:.0f} ms): replaying with {m.delay_steps} step(s) of delay brings the TCP RMSE "
                f"from {m.tcp_rmse_m * 1e3:.1f} mm to {m.delayed.tcp_rmse_m * 1e3:.1f} mm")))
            ref = m.delayed
        elif m.tcp_rmse_at_lag_m <= (1 - EXPLAINED_FRACTION) * m.tcp_rmse_m:
            findings.append(Finding("command_latency", (
                f"the recorded TCP lags the twin by ~{m.lag_s * 1e3:.0f} ms (threshold {t.lag_s * 1e3:.0f} ms; "
                f"TCP RMSE {m.tcp_rmse_m * 1e3:.1f} mm, {m.tcp_rmse_at_lag_m * 1e3:.1f} mm when shifted)")))
    reasons = []
    if ref.recorded_success != ref.simulated_success:
        reasons.append(f"success recorded {ref.recorded_success}, twin {ref.simulated_success}")
    if ref.gripper_rmse_m > t.gripper_rmse_m:
        reasons.append(f"gripper width RMSE {ref.gripper_rmse_m * 1e3:.1f} mm (threshold {t.gripper_rmse_m * 1e3:.1f})")
    if ref.object_rmse_m is not None and ref.object_rmse_m > t.object_rmse_m:
        reasons.append(f"object position RMSE {ref.object_rmse_m * 1e3:.1f} mm (threshold {t.object_rmse_m * 1e3:.1f})")
    if reasons:
        findings.append(Finding("object_dynamics", "the object behaves differently (friction, mass, size or grasp): "
                                + "; ".join(reasons)))
    contact_differs = any(f.kind == "object_dynamics" for f in findings)
    tcp_m, rot_deg = ((ref.tcp_rmse_free_m, ref.rot_rmse_free_deg) if contact_differs
                      else (ref.tcp_rmse_m, ref.rot_rmse_deg))
    where = f" in free space (first {ref.free_space_steps} steps)" if contact_differs else ""
    if tcp_m > t.tcp_rmse_m or rot_deg > t.rot_rmse_deg:
        findings.append(Finding("arm_tracking", (
            f"the arm moves differently from the twin{where}: TCP RMSE {tcp_m * 1e3:.2f} mm (threshold "
            f"{t.tcp_rmse_m * 1e3:.2f}), orientation RMSE {rot_deg:.2f} deg (threshold {t.rot_rmse_deg:.2f}), "
            f"joint RMSE {ref.joint_rmse_rad:.4f} rad; check controller gains, payload and the kinematic calibration")))
    explained = bool(findings)
    for name, cam in ref.cameras.items():
        if cam.initial_shift_norm_px > t.camera_shift_px(name):
            dx, dy = cam.initial_shift_px
            findings.append(Finding(f"camera_extrinsics:{name}", (
                f"{name}: the recorded view is shifted by ({dx:+.1f}, {dy:+.1f}) px against the twin from the first "
                f"frame (threshold {t.camera_shift_px(name):.2f} px), NCC {cam.ncc_mean:.3f}: its extrinsics (or "
                "intrinsics) in the cell file do not match the camera; recalibrate it")))
        elif cam.ncc_drop > t.camera_ncc_drop(name) and not explained:
            findings.append(Finding(f"camera_image:{name}", (
                f"{name}: the view differs from the twin without a shift (NCC {cam.ncc_mean:.3f}, drop "
                f"{cam.ncc_drop:.4f} > {t.camera_ncc_drop(name):.4f}): exposure, occlusion, or a rolled camera")))
    return findings
