#!/usr/bin/env bash
# Sets up, builds, and runs the main job on the shipped default model
# (models/lenet-mnist.onnx, the paper's LeNet): the mean and variance of its
# 10 logits for a held-out digit under Gaussian noise of variance 1 per pixel
# (on the paper's [-127.5, 127.5] scale), by the methods paper, exact and
# delta, each next to a 75,000-sample Monte Carlo of the real network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/netmoments moments --image 0 --sigma2 1 --method all --mc 75000 --seed 1
