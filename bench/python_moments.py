"""The overhead of a moments call through the Python binding over the C call it makes, on the shipped LeNet
(held-out digit 0, sigma2 = 1, method exact, and propagate): what a C program does for the request, timed bare
through ctypes (Σ = σ² I made, nm_net_moments, both freed), against net.moments (arrays checked and converted, Σ
made, results copied to NumPy and freed), interleaved with each going first in turn, median of 30 (propagate 10) each, in one process.

    PYTHONPATH=python /usr/bin/python3 bench/python_moments.py
"""
import ctypes
import statistics
import time

import netmoments as nm
from netmoments import _lib as L
from netmoments._net import _view


def bare(net, x, method):
    o = L.lib.nm_net_moments_options_default()
    o.method = L.lib.nm_method_from_str(method.encode())
    mv, out, S = _view(x), L.Moments(), ctypes.c_void_p()
    t0 = time.perf_counter()
    st = L.lib.nm_cov_isotropic(net._ctx.ptr, net.input_size, 1.0, ctypes.byref(S))
    st = st or L.lib.nm_net_moments(net._ctx.ptr, net._ptr, ctypes.byref(mv), S, ctypes.byref(o), ctypes.byref(out))
    L.lib.nm_moments_free(net._ctx.ptr, ctypes.byref(out))
    t = time.perf_counter() - t0
    net._ctx.check(st)
    return t


def main():
    net = nm.load(nm.default_model())
    x = net.images(nm.digits()[0][0])
    print("bench/python_moments: shipped LeNet, held-out digit 0, sigma^2 = 1")
    for method, reps in (("exact", 15), ("propagate", 5)):
        net.moments(x, sigma2=1.0, method=method)  # warm
        c, p = [], []
        for r in range(2 * reps):  # alternating which goes first
            if r % 2 == 0:
                c.append(bare(net, x, method))
            t0 = time.perf_counter()
            net.moments(x, sigma2=1.0, method=method)
            p.append(time.perf_counter() - t0)
            if r % 2 == 1:
                c.append(bare(net, x, method))
        mc, mp = statistics.median(c), statistics.median(p)
        print(f"  {method:9s}: C call {mc:.4f} s, through net.moments {mp:.4f} s (median of {2 * reps}): overhead {100 * (mp - mc) / mc:+.2f} %")


if __name__ == "__main__":
    main()
