#!/usr/bin/python3
"""bench/torch_jacobian.py — the PyTorch side of bench/moments --onnx on
torchvision's resnet18 at 3x64x64: the Jacobian of its bottom part (up to
the last ReLU, layer4's output: 2,048 rows, what netmoments' exact moments
linearize) at a seeded input, by batched vjp (torch.func.vmap over vjp, or
functorch's on torch 1.x; 256 rows per call, as netmoments), and with
--autograd also by torch.autograd.functional.jacobian(vectorize=True). Same
thread count as bench/moments (OMP_NUM_THREADS, else all cores). Runs only
where Debian's python3-torch and python3-torchvision are installed:

    /usr/bin/python3 bench/torch_jacobian.py [--autograd]
"""
import argparse
import os
import sys
import time

try:
    import torch
    import torchvision
except ImportError:
    print("bench/torch_jacobian.py: python3-torch / python3-torchvision are not installed; nothing to compare")
    sys.exit(0)
try:
    from torch.func import vjp, vmap
except ImportError:
    from functorch import vjp, vmap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--autograd", action="store_true", help="also torch.autograd.functional.jacobian (slow)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    torch.manual_seed(0)
    m = torchvision.models.resnet18().eval()
    bottom = torch.nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)
    f = lambda z: bottom(z).reshape(-1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        p = f(x).numel()
    t = time.time()
    _, fn = vjp(f, x)
    rows = []
    for c0 in range(0, p, 256):
        c = min(256, p - c0)
        e = torch.zeros(c, p)
        e[torch.arange(c), c0 + torch.arange(c)] = 1
        rows.append(vmap(fn)(e)[0].reshape(c, -1))
    jac = torch.cat(rows)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: resnet18 3x64x64, the bottom part's Jacobian "
          f"({p} x {jac.shape[1]}) by batched vjp (vmap, 256 rows per call): {time.time() - t:.3f} s")
    if args.autograd:
        t = time.time()
        torch.autograd.functional.jacobian(f, x, vectorize=True)
        print(f"  torch.autograd.functional.jacobian(vectorize=True): {time.time() - t:.3f} s")


if __name__ == "__main__":
    main()
