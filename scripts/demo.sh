#!/usr/bin/env bash
# Sets up, builds, and runs the main job on the shipped default model
# (models/lenet-mnist.onnx): its layout, its accuracy on the 1,996 held-out
# digits, and, until the network-moments job lands, the Affine-ReLU-Affine
# moments (exact and paper) next to a 200,000-sample Monte Carlo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/netmoments info
./build/netmoments eval
./build/netmoments ara-example --out build/example --n 784 --p 256 --d 10 --seed 1
args=(--A build/example/A.npy --c1 build/example/c1.npy --B build/example/B.npy
      --c2 build/example/c2.npy --mu build/example/mu.npy --sigma2 0.5)
./build/netmoments ara "${args[@]}" --method exact --mc 200000 --seed 1
./build/netmoments ara "${args[@]}" --method paper --mc 200000 --seed 1
