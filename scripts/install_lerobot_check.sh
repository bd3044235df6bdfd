#!/usr/bin/env bash
# LeRobot 0.4.4 beside the stack's venv, for benchmarks/lerobot_check.py and the LeRobot test in
# tests/data/test_lerobot_format.py (skipped without it). `make setup` runs this. LeRobot cannot be a dependency:
# 0.4.4 (the newest for Python 3.11) pins torch<2.11, torchvision<0.26, diffusers<0.36, packaging<26, opencv<4.13,
# rerun-sdk<0.27 and draccus 0.10, all below our pins; installed with --no-deps into its own folder it runs on ours
# (torch 2.14.1). torchvision 0.29 has no video reader, so LeRobot decodes with torchcodec, which loads the system's
# FFmpeg libraries: installed with apt when missing and we are root.
#
#   bash scripts/install_lerobot_check.sh [DIR]
#       DIR: the argument, else $LEROBOT_SITE, else .venv/lerobot-site (where the test looks by default: the
#       folder `lerobot-site` beside the interpreter's venv; the test also reads $LEROBOT_SITE).
#       PY: the interpreter LeRobot will run on (default .venv/bin/python).
#   PYTHONPATH=DIR .venv/bin/python benchmarks/lerobot_check.py --store outputs/demo/lift_demos.zarr
#   LEROBOT_SITE=DIR .venv/bin/python -m pytest -q tests/data/test_lerobot_format.py
#
# The folder appears only once LeRobot and torchcodec import from it (built in DIR.partial, then moved), so a
# failed install never leaves a half-working DIR. Exit status: 0 installed; 2 FFmpeg's libraries are missing and
# cannot be installed here (not root or no apt): nothing installed, the message says what to run, the test skips;
# anything else is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-${LEROBOT_SITE:-.venv/lerobot-site}}"
PY="${PY:-.venv/bin/python}"
FFMPEG=(avcodec avformat avutil swscale swresample avdevice avfilter)

ffmpeg_missing() {  # the FFmpeg libraries the dynamic loader cannot find
  local lib known
  known=$("$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null || true)
  for lib in "${FFMPEG[@]}"; do
    grep -q "lib$lib\.so\.[0-9]" <<<"$known" || echo "lib$lib"
  done
}

missing=$(ffmpeg_missing)
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    pkgs=()
    for lib in $missing; do  # the distribution's versioned package: libavcodec59 on Debian 12, 60 on Ubuntu 24.04
      pkg=$(apt-cache pkgnames "$lib" | grep -E "^$lib[0-9]+$" | sort -V | tail -n 1 || true)
      [ -n "$pkg" ] || { echo "error: apt has no package for $lib (FFmpeg), which torchcodec needs" >&2; exit 1; }
      pkgs+=("$pkg")
    done
    echo "installing FFmpeg's libraries for torchcodec: ${pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    echo "LeRobot not installed: torchcodec needs FFmpeg's libraries ($(echo $missing)), which only root can" \
         "install (Debian 12: sudo apt-get install libavcodec59 libavformat59 libavutil57 libswscale6" \
         "libswresample4 libavdevice59 libavfilter8); then run: bash scripts/install_lerobot_check.sh $DIR." \
         "Until then the LeRobot test in tests/data/test_lerobot_format.py skips." >&2
    exit 2
  fi
fi

rm -rf "$DIR.partial"
"$PY" -m pip install -q --target "$DIR.partial" --no-deps \
    lerobot==0.4.4 draccus==0.11.6 "datasets==4.8.5" mergedeep==1.3.4 typing_inspect==0.9.0 mypy_extensions==1.2.0 \
    multiprocess==0.70.19 pandas==3.1.1 dill==0.4.1 xxhash==4.1.0 accelerate==1.16.0 pyserial==3.5 future==1.0.0 \
    iso8601==2.1.0 deepdiff==9.1.0 orderly_set==5.5.0 cachebox==6.2.10 av==18.1.0 einops==0.8.2 \
    httpx==0.29.0 httpcore==1.0.9 h11==0.16.0 anyio==4.16.0 sniffio==1.3.1 torchcodec==0.17.0
# torchcodec imports without FFmpeg (it is optional there) and fails only at the first decode: decode a frame of
# the small AV1 video LeRobot itself wrote.
VIDEO=tests/data/lerobot_v3_reference/videos/observation.images.cam/chunk-000/file-000.mp4
if ! PYTHONPATH="$DIR.partial" "$PY" -c "import lerobot.datasets.lerobot_dataset
from torchcodec.decoders import VideoDecoder
assert VideoDecoder('$VIDEO')[0].shape == (3, 32, 32)" >/dev/null; then
  rm -rf "$DIR.partial"
  echo "error: LeRobot does not import or decode video beside $PY's packages (above); nothing left in $DIR" >&2
  exit 1
fi
rm -rf "$DIR"
mv "$DIR.partial" "$DIR"
echo "lerobot 0.4.4 ready in $DIR"
