"""`manip-stack reward <verb>`: model profiles, a connectivity check, reward previews, stage plans, the cache."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from robot_learning.cli.common import add_cell_task

DEFAULT_CACHE = "outputs/rewards/fm_cache.sqlite"


def _cache_mode(args: argparse.Namespace):
    from robot_learning.rewards.fm.client import CacheMode

    return CacheMode(args.cache_mode)


def cmd_profiles(args: argparse.Namespace) -> int:
    from robot_learning.rewards.fm.profiles import available_profiles, load_profile

    for name in available_profiles():
        p = load_profile(name)
        key = "no key needed" if p.api_key_env is None else (
            f"${p.api_key_env} {'set' if os.environ.get(p.api_key_env) else 'NOT set'}")
        print(f"{name:20s} {p.provider.value:9s} {p.model:32s} {p.base_url:32s} images={p.supports_images!s:5s} {key}")
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    """One tiny structured question: proves URL, key, JSON mode and accounting work end to end."""
    from pydantic import BaseModel

    from hardware_configs import load_task
    from robot_learning.rewards.fm.structured import ask_structured
    from robot_learning.rewards.session import model_client

    class Pong(BaseModel):
        ok: bool

    with model_client(args.profile, load_task("lift"), Path(args.cache), _cache_mode(args)) as client:
        result = ask_structured(client, [{"role": "user", "content": 'Reply with the JSON object {"ok": true}.'}], Pong)
        print(f"{client!r}: {'ok' if result.ok else 'FAILED: ' + result.errors[-1]}")
        print(json.dumps(client.usage.snapshot()))
    return 0 if result.ok else 1


def cmd_preview(args: argparse.Namespace) -> int:
    from robot_learning.rewards.session import preview_episode

    result = preview_episode(Path(args.out), args.task, args.profile, args.seed, Path(args.cache), _cache_mode(args))
    print(f"expert episode {'succeeded' if result.success else 'failed'}; returns "
          + ", ".join(f"{k} {v:.2f}" for k, v in result.returns.items()))
    print(f"stage plan: {result.plan_summary}")
    written = [result.explanation_png, result.reward_plot_png] + ([result.plan_json] if result.plan_json else [])
    print("wrote " + ", ".join(map(str, written)))
    print("model usage: " + json.dumps(result.usage))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from hardware_configs import load_task
    from robot_learning.rewards.session import model_client, plan_for_task

    task = load_task(args.task)
    with model_client(args.profile, task, Path(args.cache), _cache_mode(args)) as client:
        result = plan_for_task(client, task, n_demos=args.demos, n_random=args.random, seed=args.seed)
    print(f"{'ACCEPTED' if result.accepted else 'REJECTED'} after {result.rounds} round(s): "
          + (result.check.summary() if result.check else result.reason))
    if result.plan is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.plan.model_dump(mode="json"), indent=2))
        print(f"wrote {out}")
    return 0 if result.accepted else 1


def cmd_cache(args: argparse.Namespace) -> int:
    """List cached answers, or show one (request, answer) and export its images for inspection."""
    from robot_learning.rewards.fm.cache import ResponseCache

    cache = ResponseCache(args.cache)
    try:
        if args.key is None:
            print(f"{len(cache)} answers in {args.cache}")
            for e in cache.entries(args.limit):
                print(f"{e.key[:12]}  {e.profile:16s} {e.model:24s} tokens {e.prompt_tokens}+{e.completion_tokens}  "
                      f"{e.content[:60]!r}")
            return 0
        entry = next((e for e in cache.entries(10_000) if e.key.startswith(args.key)), None)
        if entry is None:
            raise KeyError(f"no cached answer whose key starts with {args.key!r}")
        print(json.dumps({"request": entry.request, "answer": entry.content, "finish_reason": entry.finish_reason},
                         indent=2))
        if args.export_images:
            out = Path(args.export_images)
            out.mkdir(parents=True, exist_ok=True)
            for digest in _image_digests(entry.request):
                mime, data = cache.image(digest) or ("", b"")
                path = out / f"{digest.removeprefix('sha256:')[:16]}.{mime.split('/')[-1] or 'bin'}"
                path.write_bytes(data)
                print(f"wrote {path}")
        return 0
    finally:
        cache.close()


def _image_digests(value: object) -> list[str]:
    if isinstance(value, dict):
        if value.get("type") == "image_url":
            return [value["image_url"]["url"]]
        return [d for v in value.values() for d in _image_digests(v)]
    if isinstance(value, list):
        return [d for v in value for d in _image_digests(v)]
    return []


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="oracle_local",
                   help="model profile in configs/fm (oracle_local: the built-in oracle)")
    p.add_argument("--cache", default=DEFAULT_CACHE, help="sqlite answer cache")
    p.add_argument("--cache-mode", default="read_write", choices=["read_write", "offline", "refresh", "off"],
                   help="offline replays cached answers only (identical rewards, no network)")


def register(verbs: argparse._SubParsersAction) -> None:
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one INFO line per HTTP request drowns the output
    reward = verbs.add_parser("reward", help="foundation-model rewards: profiles, ping, preview, plan, cache")
    sub = reward.add_subparsers(dest="reward_verb", required=True)

    p = sub.add_parser("profiles", help="list model profiles (never shows keys, only whether their variable is set)")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("ping", help="one tiny structured query to check a profile end to end")
    _add_model_args(p)
    p.set_defaults(func=cmd_ping)

    p = sub.add_parser("preview", help="score one expert episode with sparse, KAGI and RoboHorizon; write pictures")
    add_cell_task(p)
    _add_model_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/rewards/preview")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("plan", help="ask for a RoboHorizon stage plan and check it against twin demonstrations")
    add_cell_task(p)
    _add_model_args(p)
    p.add_argument("--demos", type=int, default=4, help="scripted-expert demonstrations to check against")
    p.add_argument("--random", type=int, default=3, help="random rollouts that must score lower")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/rewards/stage_plan.json")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("cache", help="inspect the answer cache: list, or show one request and answer")
    p.add_argument("--cache", default=DEFAULT_CACHE)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--key", default=None, help="prefix of the key of the entry to show")
    p.add_argument("--export-images", default=None, help="folder to write the entry's images to")
    p.set_defaults(func=cmd_cache)
