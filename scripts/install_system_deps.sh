#!/usr/bin/env bash
# System libraries the stack loads at run time: libusb (pyrealsense2, open3d), EGL/OSMesa (MuJoCo offscreen).
# Installs them with apt when missing and we are root; otherwise says what to install.
set -euo pipefail
# The Python environment takes ~7.5 GiB (PyTorch with its CUDA libraries is 5.5 GiB of it), plus pip's unpacking.
free_kib=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${free_kib:-0}" -lt $((9 * 1024 * 1024)) ]; then
  echo "warning: $((free_kib / 1024 / 1024)) GiB free on this disk; the environment needs about 9 GiB to install" >&2
fi
needed=(libusb-1.0-0 libegl1 libgl1 libosmesa6)
missing=()
for pkg in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
