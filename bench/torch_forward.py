#!/usr/bin/python3
"""bench/torch_forward.py — the PyTorch side of bench/forward: forward
images/s at batch 1000 for the paper's LeNet (32/64/1024) and Caffe's LeNet
(20/50/500), in NCHW and channels-last, with as many threads as bench/forward
uses (OMP_NUM_THREADS, else all cores). Best (median) of several runs, the
same way bench/forward reports. Runs only where Debian's python3-torch is
installed:

    /usr/bin/python3 bench/torch_forward.py [--reps R]   (Debian's python3, where python3-torch lives)
"""
import argparse
import os
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    print("bench/torch_forward.py: python3-torch is not installed (apt install python3-torch); nothing to compare")
    sys.exit(0)


def paper_lenet():
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(32, 64, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Linear(1024, 10))


def caffe_lenet():
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


def bench(model, x, reps):
    times = []
    with torch.no_grad():
        for r in range(reps + 1):  # the first run warms up
            t0 = time.perf_counter()
            model(x)
            if r:
                times.append(time.perf_counter() - t0)
    times.sort()
    n = x.shape[0]
    return n / times[0], n / times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, best (median) of {args.reps} runs")
    for name, make in (("lenet", paper_lenet), ("lenet-small", caffe_lenet)):
        model = make().eval()
        x = torch.randn(1000, 1, 28, 28) * 60
        best, med = bench(model, x, args.reps)
        print(f"  forward {name:<12} batch 1000, NCHW:          {best:8.0f} images/s ({med:.0f})")
        model = model.to(memory_format=torch.channels_last)
        xc = x.to(memory_format=torch.channels_last)
        best, med = bench(model, xc, args.reps)
        print(f"  forward {name:<12} batch 1000, channels-last: {best:8.0f} images/s ({med:.0f})")


if __name__ == "__main__":
    main()
