"""What the twin randomisation of `manip-stack distill` draws: per quantity, the range seen over many scenes against
its configured bound, the time a draw takes, and (``--out``) a picture of one scene under several draws.

Run: ``python benchmarks/twin_randomisation.py --task peg_insert --scenes 200 --out docs/twin_randomisation.png``
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="peg_insert")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--out", default=None, help="PNG: the cameras of one scene, nominal then randomised")
    parser.add_argument("--pictures", type=int, default=4, help="randomised rows in the picture")
    args = parser.parse_args()

    from sim.gl_backend import select_gl_backend

    select_gl_backend()
    from sim.env import TwinEnv
    from sim.randomisation import RandomisationConfig, RandomisedTwin, TwinRandomiser

    config = RandomisationConfig()
    env = TwinEnv(task=args.task, image_size=(128, 128))
    randomiser = TwinRandomiser.for_env(env, config)
    seen: dict[str, list[float]] = {}
    start = time.perf_counter()
    for seed in range(args.scenes):
        drawn = randomiser.randomise(seed)
        for cam in drawn["camera"].values():
            seen.setdefault("camera offset [mm]", []).append(cam["offset_mm"])
            seen.setdefault("camera rotation [deg]", []).append(cam["rotation_deg"])
        seen.setdefault("light offset [m]", []).extend(np.abs(drawn["lighting"]["position_offset_m"]).ravel())
        seen.setdefault("light diffuse scale", []).extend(drawn["lighting"]["diffuse_scale"])
        seen.setdefault("headlight ambient", []).append(drawn["lighting"]["headlight_ambient"])
        for colour in drawn["appearance"].values():
            kind = "surface" if "brightness" in colour else "object"
            seen.setdefault(f"{kind} colour shift", []).extend(np.abs(colour["rgb_shift"]))
        dyn = drawn["dynamics"]
        seen.setdefault("mass scale", []).extend(v["mass_scale"] for k, v in dyn.items() if isinstance(v, dict)
                                                 and "mass_scale" in v)
        seen.setdefault("friction scale", []).extend(dyn["friction_scale"].values())
        seen.setdefault("object damping", []).extend(dyn["object_damping"])
    per_draw_ms = 1000 * (time.perf_counter() - start) / args.scenes
    randomiser.restore()
    c = config
    bounds = {"camera offset [mm]": f"<= {c.camera.translation_mm}",
              "camera rotation [deg]": f"<= {c.camera.rotation_deg}",
              "light offset [m]": f"<= {c.lighting.position_offset_m}",
              "light diffuse scale": f"{c.lighting.diffuse_scale.low}-{c.lighting.diffuse_scale.high}",
              "headlight ambient": f"{c.lighting.headlight_ambient.low}-{c.lighting.headlight_ambient.high}",
              "surface colour shift": f"<= {c.appearance.surface_rgb}",
              "object colour shift": f"<= {c.appearance.object_rgb}",
              "mass scale": f"{c.dynamics.mass_scale.low}-{c.dynamics.mass_scale.high}",
              "friction scale": f"{c.dynamics.friction_scale.low}-{c.dynamics.friction_scale.high}",
              "object damping": f"{c.dynamics.object_damping.low}-{c.dynamics.object_damping.high}"}
    print(f"{args.scenes} scenes of {args.task}; a draw takes {per_draw_ms:.2f} ms")
    print("| quantity | configured | seen min | seen max |\n|---|---|---|---|")
    for name, values in seen.items():
        print(f"| {name} | {bounds[name]} | {min(values):.4g} | {max(values):.4g} |")
    if args.out:
        import imageio.v2 as imageio

        rows = []
        nominal, _ = env.reset(seed=0)
        cams = [k for k in nominal if k.endswith("_rgb")]
        rows.append(np.concatenate([nominal[k] for k in cams], axis=1))
        for i in range(args.pictures):  # the same scene (seed 0) under draws from randomisation seeds 0, 1, ...
            twin = RandomisedTwin(env, config.model_copy(update={"seed": i}))
            obs, _ = twin.reset(seed=0)
            rows.append(np.concatenate([obs[k] for k in cams], axis=1))
        twin.randomiser.restore()
        imageio.imwrite(args.out, np.concatenate(rows, axis=0))
        print(f"picture: {args.out} (top row nominal; then {args.pictures} randomisations of the same scene; "
              f"columns {', '.join(cams)})")
    env.close()


if __name__ == "__main__":
    main()
