"""LeRobot's own code against our LeRobotDataset v3.0 export: it loads, every frame matches, a policy trains.

Needs ``lerobot`` importable, which it cannot be in the project's environment (lerobot 0.4.4, the newest for
Python 3.11, pins torch<2.11, torchvision<0.26, diffusers<0.36, packaging<26, opencv<4.13, rerun-sdk<0.27 and
draccus 0.10). What ran on a 2-core CPU beside the stack's pins (torch 2.14.1)::

    bash scripts/install_lerobot_check.sh          # lerobot 0.4.4 --no-deps into .venv/lerobot-site, FFmpeg libs
    PYTHONPATH=.venv/lerobot-site .venv/bin/python benchmarks/lerobot_check.py --store outputs/demo/lift_demos.zarr

(torchvision 0.29 has no video reader, so LeRobot decodes through torchcodec, which needs the system's FFmpeg
libraries.) It prints: the export's size and time, whether ``LeRobotDataset`` opened it, the largest difference
between any frame LeRobot decoded and the store's (0 for the lossless codec), and the loss of each training step
of LeRobot's diffusion policy (a small U-Net) on batches from LeRobot's own DataLoader. ``--reference DIR`` also
writes a small dataset with LeRobot's ``LeRobotDataset.create``/``add_frame``/``save_episode`` and compares its
layout with ours (info.json keys, parquet column types, episode columns, task table).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_learning.data.episode_store import EpisodeStore  # noqa: E402
from robot_learning.data.lerobot_format import export_lerobot  # noqa: E402


def frames_match(root: Path, store_path: Path, max_episodes: int) -> tuple[int, float, float]:
    """(frames checked, largest |pixel| difference, largest |state/action| difference) of LeRobot's reads."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/manip_stack_export", root=root)
    info = json.loads((root / "meta" / "info.json").read_text())
    store = EpisodeStore.open(store_path)
    worst_px, worst_vec, n = 0.0, 0.0, 0
    starts = np.concatenate([[0], np.cumsum([store.episode_info(i)["n_steps"] for i in range(store.n_episodes)])])
    for e in range(min(max_episodes, store.n_episodes)):
        data = store.get_episode(e)
        for t in range(len(data["action"])):
            item = ds[int(starts[e] + t)]
            for name, ft in info["features"].items():
                if ft["dtype"] == "video":
                    key = ft["manip_stack"]["arrays"][0]["key"]
                    got = (item[name].permute(1, 2, 0).numpy() * 255.0).round()
                    worst_px = max(worst_px, float(np.abs(got - data[key][t]).max()))
            state_keys = [p["key"] for p in info["features"]["observation.state"]["manip_stack"]["arrays"]]
            state = np.concatenate([data[k][t].reshape(-1) for k in state_keys])
            worst_vec = max(worst_vec, float(np.abs(item["observation.state"].numpy() - state).max()),
                            float(np.abs(item["action"].numpy() - data["action"][t]).max()))
            n += 1
    return n, worst_px, worst_vec


def train_steps(root: Path, steps: int, batch_size: int, same_batch: bool = False) -> dict[str, object]:
    """Train LeRobot's diffusion policy on the export for a few steps, as lerobot_train does.

    Returns the loss of each step, the shape of every array in the first batch LeRobot's DataLoader gave, and the
    type LeRobot's policy factory gave each input feature (so a caller can check LeRobot read the export's cameras
    as images and its state as state). ``same_batch`` trains on the first batch only with the same noise, crop and
    diffusion timesteps at every step, so the loss is a deterministic function of the weights and must fall: a
    check that gradients from the export's data reach the policy, which shuffled batches cannot give in a few
    steps (their losses jump with the sampled timesteps).
    """
    import torch
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    meta = LeRobotDatasetMetadata("local/manip_stack_export", root=root)
    h, w = next(ft["shape"][:2] for ft in meta.features.values() if ft["dtype"] == "video")
    cfg = DiffusionConfig(n_obs_steps=2, horizon=8, n_action_steps=4, down_dims=(32, 64), crop_shape=(h - 8, w - 8),
                          pretrained_backbone_weights=None, use_group_norm=True, num_train_timesteps=50,
                          device="cpu")
    dataset = LeRobotDataset("local/manip_stack_export", root=root,
                             delta_timestamps=resolve_delta_timestamps(cfg, meta))
    torch.manual_seed(0)
    policy = make_policy(cfg, ds_meta=meta)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3 if same_batch else 1e-4)
    batches = iter(loader)
    first = next(batches)
    report: dict[str, object] = {
        "batch_shapes": {k: list(v.shape) for k, v in first.items() if isinstance(v, torch.Tensor)},
        "policy_inputs": {k: f.type.name for k, f in cfg.input_features.items()},
        "policy_outputs": {k: f.type.name for k, f in cfg.output_features.items()},
    }
    losses: list[float] = []
    policy.train()
    batch = first
    while len(losses) < steps:
        if same_batch:
            torch.manual_seed(1)  # same crop, noise and timesteps every step
        loss, _ = policy.forward(pre(dict(batch)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if not same_batch:
            batch = next(batches, None)
            if batch is None:
                batches = iter(loader)
                batch = next(batches)
    report["losses"] = losses
    return report


def reference_episodes() -> list[dict[str, np.ndarray]]:
    """The frames of the reference dataset (smooth images, so a lossy video keeps them to a few grey levels)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    episodes = []
    for n in (5, 7):
        t = np.arange(n)[:, None, None]
        image = np.stack([(xx * 6 + t * 10) % 256 + 0 * yy, yy * 6 + 0 * t, 128 + 0 * t + 0 * xx], axis=-1)
        episodes.append({"observation.images.cam": image.astype(np.uint8),
                         "observation.state": rng.random((n, 4), dtype=np.float32),
                         "observation.depth.cam": rng.random((n, 8, 8), dtype=np.float32),
                         "action": rng.random((n, 2), dtype=np.float32)})
    return episodes


def write_reference(out: Path) -> Path:
    """A small dataset written by LeRobot itself (tests/data/lerobot_v3_reference is one). Scalar (1,) features
    are left out: LeRobot 0.4.4 cannot write them with numpy 2.4."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    shutil.rmtree(out, ignore_errors=True)
    features = {
        "observation.images.cam": {"dtype": "video", "shape": (32, 32, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (4,), "names": ["a", "b", "c", "d"]},
        "observation.depth.cam": {"dtype": "float32", "shape": (8, 8), "names": ["height", "width"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
    }
    ds = LeRobotDataset.create("local/reference", fps=10, features=features, root=out, robot_type="panda",
                               use_videos=True)
    for i, episode in enumerate(reference_episodes()):
        for t in range(len(episode["action"])):
            ds.add_frame({**{k: v[t] for k, v in episode.items()}, "task": f"reference task {i}"})
        ds.save_episode()
    ds.finalize()
    return out


def layout(root: Path) -> dict[str, object]:
    """What a reader depends on, comparable between two datasets (types by feature kind, not by name)."""
    import pyarrow.parquet as pq

    info = json.loads((root / "meta" / "info.json").read_text())
    kind = {n: ("video" if f["dtype"] == "video" else f"{len(f['shape'])}d") for n, f in info["features"].items()}
    data = pq.read_schema(next((root / "data").glob("*/*.parquet")))
    episodes = pq.read_schema(next((root / "meta" / "episodes").glob("*/*.parquet")))
    tasks = pq.read_schema(root / "meta" / "tasks.parquet")
    return {
        "info keys": sorted(k for k in info if k != "manip_stack"),
        "feature keys": sorted({k for f in info["features"].values() for k in f if k != "manip_stack"}),
        "video info keys": sorted({k for f in info["features"].values() if f["dtype"] == "video"
                                   for k in f["info"] if not k.startswith(("camera.", "video.lossless"))}),
        "data types": sorted({(kind[f.name], re.sub(r"\[\d+\]", "[n]", str(f.type)),
                               str(dict(f.metadata or {}).get(b"ARROW:extension:name")))
                              for f in data if f.name in kind}),
        "data schema metadata": sorted(data.metadata or {}),
        "episode columns": sorted({c.split("/")[0] if c.startswith("stats/") else c.replace(c.split("/")[1], "<key>")
                                   if c.startswith("videos/") else c for c in episodes.names
                                   if not c.startswith("manip_stack/")}),
        "task columns": [(f.name, str(f.type)) for f in tasks], "task metadata": sorted(tasks.metadata or {}),
    }


def metadata_summary(root: Path) -> dict[str, object]:
    """What LeRobot's own metadata reader makes of a dataset: counts, camera keys, state and action names."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata("local/manip_stack_export", root=root)
    return {"episodes": meta.total_episodes, "frames": meta.total_frames, "fps": meta.fps,
            "video_keys": list(meta.video_keys),
            "names": {k: meta.features[k]["names"] for k in ("observation.state", "action")}}


def check(root: Path, store: Path, *, check_episodes: int, steps: int, batch_size: int,
          same_batch: bool) -> dict[str, object]:
    """Everything this script measures on one export of ``store``, as one JSON-ready dict (timings in s)."""
    t = time.monotonic()
    result: dict[str, object] = {"metadata": metadata_summary(root)}
    n, px, vec = frames_match(root, store, check_episodes)
    result.update(frames_checked=n, largest_pixel_difference=px, largest_vector_difference=vec,
                  read_s=time.monotonic() - t)
    t = time.monotonic()
    result.update(train_steps(root, steps, batch_size, same_batch=same_batch), train_s=time.monotonic() - t)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=None, help="episode store to export (without it: only --reference)")
    p.add_argument("--dataset", default=None, help="an export of --store already made: check it, export nothing")
    p.add_argument("--codec", default="lossless", choices=["lossless", "h264", "av1"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--same-batch", action="store_true",
                   help="train on one batch with fixed noise: the loss must fall (see train_steps)")
    p.add_argument("--check-episodes", type=int, default=5, help="episodes whose every frame is compared")
    p.add_argument("--reference", default=None, help="also write LeRobot's own small dataset here and compare")
    p.add_argument("--json", action="store_true", help="print one JSON object (for tests) instead of the text")
    args = p.parse_args()
    if args.store is None:
        if not args.reference:
            p.error("give --store, --reference or both")
        print(f"LeRobot wrote {write_reference(Path(args.reference))}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.dataset) if args.dataset else Path(tmp) / "export"
        if not args.dataset:
            report = export_lerobot(args.store, out, codec=args.codec)
            if not args.json:
                print(report)
        result = check(out, Path(args.store), check_episodes=args.check_episodes, steps=args.steps,
                       batch_size=args.batch_size, same_batch=args.same_batch)
        if args.json:
            print(json.dumps(result))
            return
        print(f"LeRobotDataset opened it; {result['frames_checked']} frames read back in {result['read_s']:.1f} s: "
              f"largest pixel difference {result['largest_pixel_difference']:.0f} grey levels, largest "
              f"state/action difference {result['largest_vector_difference']:.3g}")
        losses = result["losses"]
        print(f"LeRobot DiffusionPolicy trained {len(losses)} steps in {result['train_s']:.1f} s, losses "  # type: ignore[arg-type]
              + " ".join(f"{x:.3f}" for x in losses))  # type: ignore[union-attr]
        if args.reference:
            ref = layout(write_reference(Path(args.reference)))
            ours = layout(out)
            for key in ref:
                extra = sorted(set(map(str, ours[key])) - set(map(str, ref[key])))  # type: ignore[call-overload]
                missing = sorted(set(map(str, ref[key])) - set(map(str, ours[key])))  # type: ignore[call-overload]
                status = "same" if not missing else f"MISSING {missing}"
                print(f"  {key:<22} {status}" + (f"; ours also has {extra}" if extra else ""))


if __name__ == "__main__":
    main()
