#!/usr/bin/env bash
# LeRobot 0.4.4 beside the stack's venv, for benchmarks/lerobot_check.py and the LeRobot test in
# tests/data/test_lerobot_format.py (skipped without it). LeRobot cannot be a dependency: 0.4.4 (the newest for
# Python 3.11) pins torch<2.11, torchvision<0.26, diffusers<0.36, packaging<26, opencv<4.13, rerun-sdk<0.27 and
# draccus 0.10, all below our pins; installed with --no-deps into its own folder it runs on ours (torch 2.14.1).
# torchvision 0.29 has no video reader, so LeRobot decodes with torchcodec, which loads the system's FFmpeg.
#
#   bash scripts/install_lerobot_check.sh [DIR]      (default DIR: .venv/lerobot-site)
#   PYTHONPATH=DIR .venv/bin/python benchmarks/lerobot_check.py --store outputs/demo/lift_demos.zarr
#   PYTHONPATH=DIR .venv/bin/python -m pytest -q tests/data/test_lerobot_format.py
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.venv/lerobot-site}"
PY="${PY:-.venv/bin/python}"
"$PY" -m pip install -q --target "$DIR" --no-deps \
    lerobot==0.4.4 draccus==0.11.6 "datasets==4.8.5" mergedeep==1.3.4 typing_inspect==0.9.0 mypy_extensions==1.2.0 \
    multiprocess==0.70.19 pandas==3.1.1 dill==0.4.1 xxhash==4.1.0 accelerate==1.16.0 pyserial==3.5 future==1.0.0 \
    iso8601==2.1.0 deepdiff==9.1.0 orderly_set==5.5.0 cachebox==6.2.10 av==18.1.0 einops==0.8.2 \
    httpx==0.29.0 httpcore==1.0.9 h11==0.16.0 anyio==4.16.0 sniffio==1.3.1 torchcodec==0.17.0
FFMPEG_LIBS="libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $FFMPEG_LIBS >/dev/null
else
    echo "torchcodec needs FFmpeg's libraries: apt-get install $FFMPEG_LIBS" >&2
fi
PYTHONPATH="$DIR" "$PY" -c "import lerobot.datasets.lerobot_dataset, torchcodec.decoders; print('lerobot ready in $DIR')"
