"""The overhead of a moments call through the Python binding over the C call it makes, on the shipped LeNet
(held-out digit 0, sigma2 = 1, method exact, and propagate): the same nm_net_moments call timed bare through
ctypes (its arguments prepared beforehand) and through net.moments (arrays checked and converted, Σ made, results
copied to NumPy and freed), interleaved, median of 9 each, in one process.

    PYTHONPATH=python /usr/bin/python3 bench/python_moments.py
"""
import ctypes
import statistics
import time

import netmoments as nm
from netmoments import _lib as L
from netmoments._net import _view


def bare(net, x, method, S):
    o = L.lib.nm_net_moments_options_default()
    o.method = L.lib.nm_method_from_str(method.encode())
    mv, out = _view(x), L.Moments()
    t0 = time.perf_counter()
    st = L.lib.nm_net_moments(net._ctx.ptr, net._ptr, ctypes.byref(mv), S, ctypes.byref(o), ctypes.byref(out))
    t = time.perf_counter() - t0
    net._ctx.check(st)
    L.lib.nm_moments_free(net._ctx.ptr, ctypes.byref(out))
    return t


def main():
    net = nm.load(nm.default_model())
    x = net.images(nm.digits()[0][0])
    S = ctypes.c_void_p()
    net._ctx.check(L.lib.nm_cov_isotropic(net._ctx.ptr, net.input_size, 1.0, ctypes.byref(S)))
    print("bench/python_moments: shipped LeNet, held-out digit 0, sigma^2 = 1")
    for method, reps in (("exact", 9), ("propagate", 5)):
        net.moments(x, sigma2=1.0, method=method)  # warm
        c, p = [], []
        for _ in range(reps):
            c.append(bare(net, x, method, S))
            t0 = time.perf_counter()
            net.moments(x, sigma2=1.0, method=method)
            p.append(time.perf_counter() - t0)
        mc, mp = statistics.median(c), statistics.median(p)
        print(f"  {method:9s}: C call {mc:.4f} s, through net.moments {mp:.4f} s (median of {reps}): overhead {100 * (mp - mc) / mc:+.2f} %")
    L.lib.nm_cov_free(net._ctx.ptr, S)


if __name__ == "__main__":
    main()
