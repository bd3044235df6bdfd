"""Physical ceilings of the hardware a cell file describes, from the manufacturers' published specifications.

A cell file may make every limit stricter, never looser than the hardware allows: without a ceiling, a file
could switch the safety filter's speed limit or the watchdog off by writing a huge number. The values are the
published ones (Franka Emika Panda "Robot and interface specifications", FCI documentation; Robotiq 2F-85
and Franka Hand data sheets; Intel RealSense D400 series data sheet) and are checked when a cell is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JointCeiling:
    name: str
    lower_rad: float
    upper_rad: float
    max_velocity_rad_s: float


@dataclass(frozen=True)
class ArmCeilings:
    """What the arm can do at most; a cell's limits must lie within these."""

    joints: tuple[JointCeiling, ...]
    max_linear_speed_m_s: float  # Cartesian translation velocity of the end effector
    max_angular_speed_rad_s: float
    max_linear_accel_m_s2: float
    max_angular_accel_rad_s2: float
    max_control_hz: float  # the fastest command rate the arm's interface accepts
    reach_m: float  # from the shoulder (second joint's axis) to the flange, fully stretched
    shoulder_height_m: float  # the shoulder above the base frame's origin
    payload_kg: float


PANDA = ArmCeilings(
    joints=(
        JointCeiling("joint1", -2.8973, 2.8973, 2.1750),
        JointCeiling("joint2", -1.7628, 1.7628, 2.1750),
        JointCeiling("joint3", -2.8973, 2.8973, 2.1750),
        JointCeiling("joint4", -3.0718, -0.0698, 2.1750),
        JointCeiling("joint5", -2.8973, 2.8973, 2.6100),
        JointCeiling("joint6", -0.0175, 3.7525, 2.6100),
        JointCeiling("joint7", -2.8973, 2.8973, 2.6100),
    ),
    max_linear_speed_m_s=1.7,
    max_angular_speed_rad_s=2.5,
    max_linear_accel_m_s2=13.0,
    max_angular_accel_rad_s2=25.0,
    max_control_hz=1000.0,
    reach_m=0.855,
    shoulder_height_m=0.333,
    payload_kg=3.0,
)

ARMS: dict[str, ArmCeilings] = {"panda": PANDA}


@dataclass(frozen=True)
class GripperCeilings:
    max_width_m: float  # fully open, between the finger pads
    max_speed_m_s: float  # rate of change of the opening width


GRIPPERS: dict[str, GripperCeilings] = {
    "robotiq_2f85": GripperCeilings(max_width_m=0.085, max_speed_m_s=0.15),
    "franka_hand": GripperCeilings(max_width_m=0.08, max_speed_m_s=0.1),  # 50 mm/s per finger
}

# Watchdog: a command older than this is stale whatever the file says. At the Panda's top speed a second-old
# command has already let the arm travel 1.7 m; half a second is the shipped value.
MAX_COMMAND_TIMEOUT_S = 1.0

# RealSense D400 colour and depth streams: the largest image and the fastest frame rate any mode offers,
# and the depth unit range the SDK accepts (the D400 default is 1 mm).
MAX_IMAGE_WIDTH_PX = 1920
MAX_IMAGE_HEIGHT_PX = 1080
MAX_CAMERA_FPS = 90
MAX_DEPTH_SCALE_M = 0.01
MAX_FOCAL_PX = 10_000.0  # far beyond any RealSense lens at its largest resolution

# Where a camera may sit: static cameras somewhere in the room, wrist cameras on the hand.
MAX_STATIC_CAMERA_DISTANCE_M = 5.0
MAX_WRIST_CAMERA_OFFSET_M = 0.5
MAX_TCP_OFFSET_M = 0.5
