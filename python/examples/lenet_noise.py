"""The shipped LeNet under Gaussian pixel noise: the logits' exact mean and variance for one held-out digit, the
Monte Carlo beside them, and a figure of the means with ±2σ bars (matplotlib if installed).

    PYTHONPATH=python python3 python/examples/lenet_noise.py [--image K] [--sigma2 S] [--mc N] [--out FILE.png]
"""
import argparse
import sys

import netmoments as nm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=int, default=0, help="held-out digit (default 0)")
    ap.add_argument("--sigma2", type=float, default=100.0, help="noise variance in the model's pixel units (default 100)")
    ap.add_argument("--mc", type=int, default=20000, help="Monte Carlo samples beside it (default 20000)")
    ap.add_argument("--out", default="lenet_noise.png", help="the figure (default lenet_noise.png)")
    a = ap.parse_args()

    net = nm.load(nm.default_model())
    pixels, labels = nm.digits()
    x = net.images(pixels[a.image])
    res = net.moments(x, sigma2=a.sigma2, method="all", mc=a.mc)
    ex, pr = res["exact"], res["propagate"]
    print(f"digit {a.image} (label {labels[a.image]}), sigma2 {a.sigma2:g}, {a.mc} Monte Carlo samples ({ex.time_mc_s:.2f} s)")
    print(f"{'logit':>5} {'MC mean':>10} {'exact':>10} {'propagate':>10} {'MC var':>10} {'exact':>10} {'propagate':>10}")
    for i in range(len(ex.mean)):
        print(f"{i:5d} {ex.mc_mean[i]:10.4f} {ex.mean[i]:10.4f} {pr.mean[i]:10.4f} {ex.mc_var[i]:10.4g} {ex.var[i]:10.4g} {pr.var[i]:10.4g}")
    print(f"analytic: the {len(res)} methods together in {ex.time_s:.2f} s", flush=True)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (Debian: apt install python3-matplotlib): no figure", file=sys.stderr)
        return
    import numpy as np
    k = np.arange(len(ex.mean))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.errorbar(k - 0.15, ex.mc_mean, 2 * np.sqrt(ex.mc_var), fmt="o", capsize=3, label=f"Monte Carlo ({a.mc})")
    ax.errorbar(k, ex.mean, 2 * np.sqrt(ex.var), fmt="s", capsize=3, label="exact (linearized)")
    ax.errorbar(k + 0.15, pr.mean, 2 * np.sqrt(pr.var), fmt="^", capsize=3, label="propagate")
    ax.set_xticks(k)
    ax.set_xlabel("logit")
    ax.set_ylabel("mean ± 2 sd")
    ax.set_title(f"LeNet, held-out digit {a.image}, pixel noise sigma2 = {a.sigma2:g}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
