"""Build metadata for the `manip_stack` ROS 2 package (ament_python) and the pip distribution.

colcon reads this file (a pyproject [project] table alone builds nothing on ROS' setuptools), and
`pip install -e .[all,dev]` uses the same metadata for labs without ROS.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "manip_stack"
TOP_LEVEL = [
    "robot_learning", "perception", "controllers", "calibration", "sim", "hardware_configs", "configs", "ros_support",
    "teleop", "geometry",
]

EXTRAS = {
    # The Panda + Robotiq model comes from gym-hil's assets; install it with --no-deps (make setup does),
    # since its metadata pins an older mujoco than the one we use.
    "sim": ["mujoco==4.0.0", "gymnasium==1.4.0", "imageio==2.38.1", "imageio-ffmpeg==0.8.1"],
    # IK of the joint_trajectory controller type (controllers/kinematics.py): mink's QP on a MuJoCo arm model.
    "ik": ["mujoco==4.0.0", "mink==1.3.0"],
    "learning": [
        "torch==2.14.1",
        "torchvision==0.29.1",
        "robomimic==0.3.0",
        "six==1.17.0",
        "diffusers==0.42.1",
        "matplotlib==3.11.2",
    ],
    "camera": [
        "pyrealsense2==2.59.1.11053",
        "open3d-cpu==0.20.0",
        "numba==0.68.1",  # perception/pointcloud.py's voxel downsampler (3x open3d's on the fused cloud)
        "opencv-python-headless==4.14.0.94",
        "scipy==1.17.1",
        "ruamel.yaml==0.19.1",
    ],
    "fm": ["openai==3.57.0"],
    # Teleop devices: SpaceMouse over HID, gamepads through SDL, keyboards through evdev (Linux).
    "teleop": ["hidapi==0.15.0", "pygame==2.6.1", "evdev==2.0.0; sys_platform == 'linux'"],
    "ros": [
        "ros-jazzy-rclpy==7.1.6",
        "ros-jazzy-rmw-fastrtps-cpp==8.4.3",
        "ros-jazzy-sensor-msgs==5.3.6",
        "ros-jazzy-geometry-msgs==5.3.6",
        "ros-jazzy-std-msgs==5.3.6",
        "ros-jazzy-std-srvs==5.3.6",
        "ros-jazzy-trajectory-msgs==5.3.6",
        "ros-jazzy-diagnostic-msgs==5.3.6",
        "ros-jazzy-rosgraph-msgs==2.0.3",
        "colcon-common-extensions==0.3.0",
    ],
    # Reading and writing ROS 2 bags needs no ROS (manip-stack import-bag).
    "bags": ["rosbags==0.11.9"],
    # manip-stack view and --view on sessions: rerun's logging SDK (writes .rrd files; reads them back).
    "view": ["rerun-sdk==0.41.0"],
    # LeRobotDataset v3.0 both ways (manip-stack export-lerobot / import-lerobot): parquet, ffmpeg for the videos.
    "lerobot": ["pyarrow==26.0.1", "imageio-ffmpeg==0.8.1"],
    # Past one process (robot_learning/scale): train --processes N (DDP) and the twins as Ray actors (--backend ray).
    "scale": ["accelerate==1.15.0", "ray==2.60.0"],
    # GPU-batched twin physics for privileged-state rollouts (robot_learning/scale/warp_twin.py); ~400 MB, GPU use.
    "warp": ["mujoco==4.0.0", "mujoco-warp==4.0.0", "warp-lang==1.19.0"],
    "dev": [
        "pytest==9.2.0",
        "pytest-timeout==2.4.0",
        "pytest-rerunfailures==16.1",
        "hypothesis==6.170.17",
        "ruff==0.17.6",
        "catkin-pkg==1.1.1",
    ],
}
EXTRAS["all"] = sorted(
    {req for name in ("sim", "ik", "learning", "camera", "fm", "teleop", "bags", "view", "lerobot", "scale")
     for req in EXTRAS[name]})

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Real-robot manipulation stack: RealSense perception, diffusion-policy BC, residual RL, MuJoCo twin",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[f"{name}*" for name in TOP_LEVEL]),
    package_data={
        "hardware_configs": ["cells/*.yaml", "tasks/*.yaml"],
        "configs": ["fm/*.yaml", "policy/*.yaml", "rl/*.yaml", "ros/*.yaml"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
    ],
    install_requires=[
        "setuptools",
        "numpy>=1.26,<3",
        "pydantic==2.14.4",
        "pyyaml==6.0.4",
        "zarr==3.1.6",
        "numcodecs==0.16.6",
        "tqdm==4.70.1",
    ],
    extras_require=EXTRAS,
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "manip-stack = robot_learning.cli.main:main",
            "sim_node = sim.ros.sim_node:main",
            "controller_node = controllers.ros.controller_node:main",
            "session_node = robot_learning.ros.session_node:main",
            "camera_node = perception.ros.camera_node:main",
            "perception_node = perception.ros.perception_node:main",
            "object_state_node = perception.ros.object_state_node:main",
            "policy_node = robot_learning.ros.policy_node:main",
            "finetune_policy_node = robot_learning.ros.finetune_policy_node:main",
            "learner_node = robot_learning.ros.learner_node:main",
            "finetune_session_node = robot_learning.ros.finetune_session_node:main",
            "live_view_node = robot_learning.ros.live_view_node:main",
        ],
    },
)
