"""netmoments: the exact mean and (co)variance of a network's logits under Gaussian input noise, from Python.

    import netmoments
    net = netmoments.load(netmoments.default_model())
    pixels, labels = netmoments.digits()
    r = net.moments(net.images(pixels[0]), sigma2=1.0, mc=10000)
    r.mean, r.var, r.mc_mean, r.mc_var

A thin layer over libnetmoments (ctypes; NumPy arrays in and out). Errors the library reports are raised as
netmoments.Error with its status name and message. See python/examples/lenet_noise.py.
"""
from ._lib import Error, path as library_path
from ._net import Moments, Net, default_model, digits, load, methods
from ._experiments import attack, fooling, robustness, sensitivity, tightness, tightness_synthetic
from ._torch import from_torch

__version__ = "0.1.0"
__all__ = ["Error", "Moments", "Net", "load", "from_torch", "default_model", "digits", "methods", "fooling", "sensitivity",
           "attack", "robustness", "tightness", "tightness_synthetic", "library_path"]
