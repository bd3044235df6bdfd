"""Milliseconds per action chunk of the diffusion policy (observation history in, 8 actions out).

Prints a table over backbone (CPU default ``small_conv`` with its small U-Net, published ``resnet18`` with
U-Net 256-512-1024), camera count (1 and 3 at 96x96), device and runtime (``eager``: ``DiffusionModel.sample``;
``fast``: :class:`robot_learning.runtime.fast_inference.FastDiffusionSampler`, what policies run by default;
``fast bf16``: the same in bfloat16); 16 DDIM steps unless told otherwise. Weights are random: latency does not
depend on them. Run: ``python benchmarks/policy_latency.py``.

With ``--lerobot`` it also times LeRobot's DiffusionPolicy set to our published configuration (same U-Net,
encoders, crop, horizons and DDIM steps) if ``lerobot`` imports, in a second table where our runtimes and LeRobot's
take turns chunk by chunk (a busy shared machine slows them alike), with each runtime's ratio to LeRobot.
lerobot 0.4.4 pins torch<2.11 and diffusers<0.36; to time both on the same torch, install it beside our
environment without its pins and put it on the path only for this script::

    .venv/bin/pip install --target /tmp/lerobot_target --no-deps lerobot==0.4.4 draccus==0.11.6 mergedeep \\
        typing_inspect mypy_extensions datasets multiprocess pandas pyarrow dill xxhash accelerate pyserial \\
        future iso8601 deepdiff orderly_set cachebox av einops
    PYTHONPATH=/tmp/lerobot_target .venv/bin/python benchmarks/policy_latency.py --lerobot
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from robot_learning.runtime.threads import omp_wait_policy, prefer_passive_omp_wait

prefer_passive_omp_wait()  # as eval and policy_node do, before torch loads OpenMP (LeRobot's rows run under it too)

import torch  # noqa: E402

from robot_learning.policies.diffusion.configuration import DiffusionConfig, load_training_config  # noqa: E402
from robot_learning.policies.diffusion.modeling import DiffusionModel  # noqa: E402
from robot_learning.runtime.fast_inference import FastDiffusionSampler  # noqa: E402

Chunk = Callable[[], object]  # computes one action chunk


def observation(model: DiffusionModel, n_cameras: int, image_px: int, device: torch.device,
                dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    cfg = model.config
    obs = {f"cam{i}_rgb": torch.rand(1, cfg.n_obs_steps, 3, image_px, image_px, device=device, dtype=dtype)
           for i in range(n_cameras)}
    obs["low_dim"] = torch.rand(1, cfg.n_obs_steps, 10, device=device, dtype=dtype)
    return obs


def runtimes(model: DiffusionModel, obs: dict[str, torch.Tensor]) -> dict[str, Chunk]:
    """One chunk per call for each runtime, on the model's device (build after moving the model)."""
    fast, fast_bf16 = FastDiffusionSampler(model), FastDiffusionSampler(model, precision="bf16")
    return {"eager": lambda: model.sample(obs), "fast": lambda: fast.sample(obs),
            "fast bf16": lambda: fast_bf16.sample(obs)}


def time_one(chunk: Chunk, device: torch.device) -> float:
    """Milliseconds for one chunk (CUDA synchronised)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        chunk()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start)


def time_in_turns(chunks: dict[str, Chunk], device: torch.device, repeats: int, warmup: int = 1
                  ) -> dict[str, list[float]]:
    """Each runtime once per round, ``repeats`` rounds: load from other processes falls on all of them alike."""
    for chunk in chunks.values():
        for _ in range(warmup):
            time_one(chunk, device)
    times: dict[str, list[float]] = {name: [] for name in chunks}
    for _ in range(repeats):
        for name, chunk in chunks.items():
            times[name].append(time_one(chunk, device))
    return times


def summary(times: list[float]) -> str:
    return f"{statistics.median(times):>9.0f} ({min(times):.0f}-{max(times):.0f})"


def build(config: DiffusionConfig, n_cameras: int, image_px: int, ddim_steps: int) -> DiffusionModel:
    config = DiffusionConfig.model_validate({**config.model_dump(), "num_inference_steps": ddim_steps,
                                             "camera_keys": None, "low_dim_keys": None})
    images = {f"cam{i}_rgb": (3, image_px, image_px) for i in range(n_cameras)}
    return DiffusionModel(config, images, {"low_dim": 10}, action_dim=7).eval()


def lerobot_chunk(ours: DiffusionConfig, n_cameras: int, image_px: int, ddim_steps: int) -> Chunk | None:
    """LeRobot's DiffusionPolicy set to our published configuration (U-Net widths, kernel, step embedding,
    per-camera ResNet-18 with GroupNorm and spatial softmax, crop), so the rows time the same network; None when
    lerobot does not import."""
    try:
        from lerobot.configs.types import FeatureType, PolicyFeature
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig as LeRobotConfig
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy as LeRobotPolicy
    except ImportError:
        return None
    features = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, image_px, image_px))
                for i in range(n_cameras)}
    features["observation.state"] = PolicyFeature(FeatureType.STATE, (10,))
    cfg = LeRobotConfig(input_features=features, output_features={"action": PolicyFeature(FeatureType.ACTION, (7,))},
                        crop_shape=ours.crop_shape((image_px, image_px)), noise_scheduler_type="DDIM",
                        num_inference_steps=ddim_steps,
                        n_obs_steps=ours.n_obs_steps, horizon=ours.horizon, n_action_steps=ours.n_action_steps,
                        down_dims=tuple(ours.down_dims), kernel_size=ours.kernel_size, n_groups=ours.n_groups,
                        diffusion_step_embed_dim=ours.diffusion_step_embed_dim,
                        spatial_softmax_num_keypoints=ours.spatial_softmax_keypoints, use_group_norm=True,
                        use_separate_rgb_encoder_per_camera=True,
                        pretrained_backbone_weights=None)  # offline: no ImageNet download
    policy = LeRobotPolicy(cfg).eval()
    batch = {k: torch.rand(1, cfg.n_obs_steps, *f.shape) for k, f in features.items()}
    batch["observation.images"] = torch.stack([batch[k] for k in features if "images" in k], dim=-4)
    return lambda: policy.diffusion.generate_actions(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ddim-steps", type=int, default=16)
    parser.add_argument("--image-px", type=int, default=96)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts to try")
    parser.add_argument("--lerobot", action="store_true", help="also time LeRobot's diffusion policy if installed")
    parser.add_argument("--side-by-side-only", action="store_true",
                        help="with --lerobot: only the table of ours and LeRobot's taking turns")
    args = parser.parse_args()
    configs = {"small_conv (CPU default)": load_training_config("lift_cpu").policy,
               "resnet18 (published)": load_training_config("gpu_resnet18").policy}
    devices = [("cpu", t) for t in args.threads] + ([("cuda", None)] if torch.cuda.is_available() else [])
    published = configs["resnet18 (published)"]
    if args.side_by_side_only:
        configs = {}
    print(f"ms per action chunk: {args.ddim_steps} DDIM steps, {args.image_px}x{args.image_px}, batch 1, "
          f"median (min-max) of {args.repeats}, the runtimes of one model taking turns, "
          f"OMP_WAIT_POLICY={omp_wait_policy()}")
    print(f"{'model':<26} {'params':>8} {'cams':>4} {'device':<10} {'runtime':<10} {'ms/chunk':>22}")
    for name, config in configs.items():
        for n_cameras in (1, 3):
            torch.manual_seed(0)
            model = build(config, n_cameras, args.image_px, args.ddim_steps)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            for device_name, threads in devices:
                if threads:
                    torch.set_num_threads(threads)
                device = torch.device(device_name)
                model.to(device)
                chunks = runtimes(model, observation(model, n_cameras, args.image_px, device))
                for runtime, times in time_in_turns(chunks, device, args.repeats, warmup=2).items():
                    label = f"cpu x{threads}" if threads else device_name
                    print(f"{name:<26} {params:>7.1f}M {n_cameras:>4} {label:<10} {runtime:<10} {summary(times)}")
            model.to("cpu")
    if args.lerobot:
        for threads in args.threads:
            side_by_side(published, args, threads)


def side_by_side(config: DiffusionConfig, args: argparse.Namespace, threads: int) -> None:
    """The published network, ours (each runtime) and LeRobot's, timed in turns on the CPU."""
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    print(f"\nsame network side by side (resnet18, U-Net {config.down_dims}), cpu x{threads}, taking turns, "
          f"median (min-max) of {args.repeats}; / lerobot: ratio of medians; paired: median of per-round ratios")
    print(f"{'runtime':<26} {'cams':>4} {'ms/chunk':>22} {'/ lerobot':>10} {'paired':>7}")
    for n_cameras in (1, 3):
        lerobot = lerobot_chunk(config, n_cameras, args.image_px, args.ddim_steps)
        if lerobot is None:
            print("lerobot: not importable here (install it in a separate venv, see the module docstring)")
            return
        torch.manual_seed(0)
        model = build(config, n_cameras, args.image_px, args.ddim_steps)
        chunks = {**runtimes(model, observation(model, n_cameras, args.image_px, device)), "lerobot": lerobot}
        times = time_in_turns(chunks, device, args.repeats)
        reference = statistics.median(times["lerobot"])
        for name, ts in times.items():
            label = "lerobot 0.4.4" if name == "lerobot" else f"ours, {name}"
            # paired: the median over rounds of this runtime's time over LeRobot's in the same round
            paired = statistics.median(t / r for t, r in zip(ts, times["lerobot"], strict=True))
            print(f"{label:<26} {n_cameras:>4} {summary(ts)} {statistics.median(ts) / reference:>10.2f} "
                  f"{paired:>7.2f}")


if __name__ == "__main__":
    main()
