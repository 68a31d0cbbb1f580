#!/usr/bin/env bash
# bench/big_models.sh [DIR] — issue 13's big-model figures, in one run:
# torchvision's resnet18 at 3x64x64 (exact moments, and its bottom part's
# 2,048 vjp rows alone) and alexnet at 224 (exact moments on a 7x7 window,
# peak memory) through bench/moments --onnx, beside PyTorch's batched-vjp
# Jacobian of the same 2,048 rows (bench/torch_jacobian.py). The models are
# exported by tests/models/make.py --full DIR (random weights; needs Debian's
# python3-torch and python3-torchvision; kept in DIR, default
# build/torchvision, between runs). Run from the repository root after
# building.
set -eu
dir="${1:-build/torchvision}"
bench=build/bench/moments
[ -x "$bench" ] || { echo "bench/big_models.sh: build first ($bench is missing)"; exit 1; }
if [ ! -f "$dir/resnet18.onnx" ] || [ ! -f "$dir/alexnet.onnx" ]; then
  /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null \
    || { echo "bench/big_models.sh: python3-torch and python3-torchvision are needed to export the models"; exit 0; }
  /usr/bin/python3 tests/models/make.py --full "$dir" resnet18 alexnet 2>/dev/null | grep -E '^(resnet18|alexnet):' || true
fi
"$bench" --onnx "$dir/resnet18.onnx"
/usr/bin/python3 bench/torch_jacobian.py
"$bench" --onnx "$dir/alexnet.onnx" --window 100,100,7,7
