"""The experiments (fooling, sensitivity, attacks, tightness) as functions returning arrays and dicts, not files."""
import ctypes

import numpy as np

from . import _lib as L
from ._net import Net, _floats, _method, _take, methods

_REGIMES = {"low": 1e-4, "medium": 1.0, "high": 200.0}


def _images(net, X, what="X"):
    a = _floats(X, what)
    if a.size % net.input_size or a.size == 0:
        raise ValueError(f"{what} has shape {a.shape}; expected a batch of the model's inputs {net.input_shape}")
    return a.reshape(a.size // net.input_size, net.input_size)


def _ints(ptr, n):
    return _take(ptr, n, np.int64)


def fooling(net: Net, X, perturbation=None, sigma2=1e-4, method="exact", topk=5, mc=0, flip=False, seed=1, index=None):
    """The paper's fooling-rate prediction (Table 2) over the images X (N inputs of the model): for each, the clean
    label, the label at X + perturbation, the analytic mean's argmax under N(0, sigma2 I) there (and the Monte Carlo's
    with mc > 0), the top-k order matches, and with flip=True the flip probabilities; the rates over the images."""
    Xa = _images(net, X)
    count = Xa.shape[0]
    o = L.lib.nm_fooling_options_default()
    o.sigma2, o.method, o.topk, o.mc, o.flip, o.seed = float(sigma2), _method(method), int(topk), int(mc), int(bool(flip)), int(seed)
    N = None if perturbation is None else _floats(perturbation, "perturbation").reshape(-1)
    if N is not None and N.size != net.input_size:
        raise ValueError(f"perturbation has {N.size} values; the model has {net.input_size} inputs")
    idx = None if index is None else np.ascontiguousarray(index, dtype=np.int64)
    if idx is not None and idx.size != count:
        raise ValueError(f"index has {idx.size} entries for {count} images")
    f = L.Fooling()
    net._ctx.check(L.lib.nm_fooling_run(net._ctx.ptr, net._ptr, Xa.ctypes.data_as(L.F32P),
                                        idx.ctypes.data_as(L.I64P) if idx is not None else None, count,
                                        N.ctypes.data_as(L.F32P) if N is not None else None, ctypes.byref(o), ctypes.byref(f)), "fooling")
    try:
        k = f.topk
        out = {"clean": _ints(f.clean, count), "perturbed": _ints(f.perturbed, count), "predicted": _ints(f.predicted, count),
               "mc_predicted": _ints(f.mc_predicted, count), "rate_real": f.rate_real, "rate_predicted": f.rate_predicted,
               "rate_mc": f.rate_mc, "disagreements": f.disagreements, "disagreements_mc": f.disagreements_mc,
               "topk_accuracy": np.array(f.topk_accuracy[:k]), "topk_accuracy_mc": np.array(f.topk_accuracy_mc[:k]) if mc else None,
               "flip": _take(f.flip, count), "flip_se": _take(f.flip_se, count), "mc_flip": _take(f.mc_flip, count)}
        tm = _take(f.topk_match, count * k, np.uint8)
        out["topk_match"] = tm.reshape(count, k).astype(bool) if tm is not None else None
    finally:
        L.lib.nm_fooling_free(net._ctx.ptr, ctypes.byref(f))
    return out


def sensitivity(net: Net, X, labels=None, window=(7, 7), stride=1, sigma2=200.0, method="exact", flip=False, means=False):
    """The paper's Fig 3 maps over the images X: per image and window position, whether the analytic mean's label
    leaves the clean one under σ² I on the window (map, images × P × Q), the flip probabilities with flip=True, the
    mean logits with means=True, and the per-class averages (class_map, class_flip, class_count)."""
    Xa = _images(net, X)
    count = Xa.shape[0]
    o = L.lib.nm_sensitivity_options_default()
    o.h, o.w = (int(v) for v in window)
    o.stride, o.sigma2, o.method, o.flip, o.want_means = int(stride), float(sigma2), _method(method), int(bool(flip)), int(bool(means))
    lab = None if labels is None else np.ascontiguousarray(labels, dtype=np.uint8)
    if lab is not None and lab.size != count:
        raise ValueError(f"labels has {lab.size} entries for {count} images")
    s = L.Sensitivity()
    net._ctx.check(L.lib.nm_sensitivity_run(net._ctx.ptr, net._ptr, Xa.ctypes.data_as(L.F32P),
                                            lab.ctypes.data_as(L.U8P) if lab is not None else None, count, ctypes.byref(o),
                                            ctypes.byref(s)), "sensitivity")
    try:
        n, P, Q, d, c = s.images, s.P, s.Q, s.d, s.classes
        shape = (n, P, Q)
        grab = lambda p, m, sh: None if _take(p, m) is None else _take(p, m).reshape(sh)  # noqa: E731
        out = {"clean": _ints(s.clean, n), "label": _ints(s.label, n), "map": grab(s.map, n * P * Q, shape),
               "flip": grab(s.flip, n * P * Q, shape), "flip_se": grab(s.flip_se, n * P * Q, shape),
               "mean": grab(s.mean, n * P * Q * d, shape + (d,)), "class_map": grab(s.class_map, c * P * Q, (c, P, Q)),
               "class_flip": grab(s.class_flip, c * P * Q, (c, P, Q)), "class_count": _ints(s.class_count, c)}
    finally:
        L.lib.nm_sensitivity_free(net._ctx.ptr, ctypes.byref(s))
    return out


def attack(net: Net, M, target, beta=30.0, sigma2_max=2.0, relinearize=0, max_iter=300, margin=0.5, support=None, verify=0,
           seed=1):
    """The Gaussian targeted attack of the paper's Eq 3 on input M towards class target ("untargeted" for Eq 4's
    objective): μx within ±beta (only where support is set), 0 < σ² ≤ sigma2_max; with verify > 0 that many samples
    of the real net at M + μx + σ ε judge it (mc_mean, share classified as the target)."""
    Ma = _floats(M, "M").reshape(-1)
    if Ma.size != net.input_size:
        raise ValueError(f"M has {Ma.size} values; the model has {net.input_size} inputs")
    o = L.lib.nm_attack_options_default()
    o.target = -2 if target == "untargeted" else int(target)
    o.beta, o.sigma2_max, o.relinearize, o.max_iter, o.margin = float(beta), float(sigma2_max), int(relinearize), int(max_iter), float(margin)
    sup = None if support is None else np.ascontiguousarray(support, dtype=np.uint8).reshape(-1)
    if sup is not None:
        if sup.size != net.input_size:
            raise ValueError(f"support has {sup.size} flags; the model has {net.input_size} inputs")
        o.support = sup.ctypes.data_as(L.U8P)
    mu = np.zeros(net.input_size, dtype=np.float32)
    r = L.AttackResult()
    net._ctx.check(L.lib.nm_attack_run(net._ctx.ptr, net._ptr, Ma.ctypes.data_as(L.F32P), ctypes.byref(o), mu.ctypes.data_as(L.F32P),
                                       ctypes.byref(r)), "attack")
    out = {"mu_x": mu.reshape(net.input_shape[1:]), "label": r.label, "target": r.target, "sigma2": r.sigma2,
           "iterations": r.iterations, "support": r.support, "gap": r.gap, "fooled_analytic": bool(r.fooled_analytic),
           "analytic_mean": _take(r.analytic_mean, r.d)}
    L.lib.nm_attack_result_free(net._ctx.ptr, ctypes.byref(r))
    if verify:
        mc_mean, share = np.zeros(len(out["analytic_mean"])), ctypes.c_double()
        cls = out["target"] if o.target != -2 else out["label"]
        net._ctx.check(L.lib.nm_attack_verify(net._ctx.ptr, net._ptr, Ma.ctypes.data_as(L.F32P), mu.ctypes.data_as(L.F32P), out["sigma2"],
                                              int(verify), int(seed), cls, mc_mean.ctypes.data_as(L.F64P), ctypes.byref(share)), "verify")
        out["mc_mean"] = mc_mean
        out["share"] = share.value if o.target != -2 else 1.0 - share.value  # untargeted: the share not classified as the label
    return out


def robustness(net: Net, X, labels, sigmas, mc=10, seed=1):
    """Accuracy of the real net under Gaussian noise: for each σ in sigmas (ascending, the noise's standard deviation
    on the model's input scale), the share of mc noisy copies x + σ ε of each image X[i] classified as labels[i]
    (image i's noise from stream i of the seed, the same ε at every σ). Returns (accuracy array, area under the curve
    divided by the σ range)."""
    Xa = _images(net, X)
    lab = np.ascontiguousarray(labels, dtype=np.uint8).reshape(-1)
    if lab.size != Xa.shape[0]:
        raise ValueError(f"labels has {lab.size} entries for {Xa.shape[0]} images")
    sg = _floats(sigmas, "sigmas", np.float64).reshape(-1)
    o = L.lib.nm_robustness_options_default()
    o.mc, o.seed = int(mc), int(seed)
    acc = np.zeros(sg.size)
    net._ctx.check(L.lib.nm_robustness_run(net._ctx.ptr, net._ptr, Xa.ctypes.data_as(L.F32P), lab.ctypes.data_as(L.U8P), Xa.shape[0],
                                           sg.size, sg.ctypes.data_as(L.F64P), ctypes.byref(o), acc.ctypes.data_as(L.F64P)), "robustness")
    return acc, L.lib.nm_robustness_auc(sg.size, sg.ctypes.data_as(L.F64P), acc.ctypes.data_as(L.F64P))


def _tightness(ctx, netp, ds, scale, runs, mc, regime, seed, names, split_relu=0):
    o = L.lib.nm_tightness_options_default()
    o.runs, o.mc, o.max_var, o.seed, o.split_relu = int(runs), int(mc), _REGIMES.get(regime, regime), int(seed), int(split_relu)
    ms = [_method(m) for m in names]
    o.nmethods = len(ms)
    for i, m in enumerate(ms):
        o.methods[i] = m
    t = L.Tightness()
    ctx.check(L.lib.nm_tightness_run(ctx.ptr, netp, ds, scale, ctypes.byref(o), ctypes.byref(t)), "tightness")
    try:
        R, d = t.runs, t.d
        sh = lambda p: _take(p, R * d).reshape(R, d)  # noqa: E731
        out = {"mean": {n: sh(t.mean[m]) for n, m in zip(names, ms)}, "var": {n: sh(t.var[m]) for n, m in zip(names, ms)},
               "mc_mean": sh(t.mc_mean), "mc_var": sh(t.mc_var), "relu_changed_below": _take(t.relu_bottom, R),
               "relu_changed_above": _take(t.relu_top, R)}
        if t.mean_index:
            out["image"] = _take(t.mean_index, R, np.int64)
    finally:
        L.lib.nm_tightness_free(ctx.ptr, ctypes.byref(t))
    return out


def tightness_synthetic(net="fc-a", regime="medium", runs=200, mc=75000, seed=1, bias_sd=0.5, compare=("paper", "exact", "propagate")):
    """Fig 2's experiment on one synthetic net ("fc-a" … "conv-c"): per run, a random covariance of the regime
    ("low", "medium", "high" or its largest variance), input mean 0, the analytic means and variances of each method
    against mc samples of the real net (runs × 1 arrays), for the methods in compare."""
    names = [L.lib.nm_synthetic_str(i).decode() for i in range(6)]
    if net not in names:
        raise ValueError(f"net {net!r}: one of {', '.join(names)}")
    ctx, p = L.Context(), ctypes.c_void_p()
    ctx.check(L.lib.nm_synthetic_create(ctx.ptr, names.index(net), int(seed), float(bias_sd), ctypes.byref(p)), "synthetic net")
    try:
        return _tightness(ctx, p, None, L.Scale(1.0, 0.0), runs, mc, regime, seed, list(compare), split_relu=1)
    finally:
        L.lib.nm_net_free(ctx.ptr, p)


def tightness(net: Net, pixels, labels, runs=200, mc=75000, regime="medium", seed=1, compare=("paper", "exact", "propagate")):
    """Table 1's experiment on net: per run, a random digit of (pixels uint8 (N, H, W), labels) as the mean, a random
    covariance of the regime, the analytic moments of each method against mc samples of the real net (runs × d)."""
    pix = np.ascontiguousarray(pixels, dtype=np.uint8)
    lab = np.ascontiguousarray(labels, dtype=np.uint8)
    if pix.ndim != 3 or lab.shape != (pix.shape[0],):
        raise ValueError(f"pixels (N, H, W) and labels (N,), got {pix.shape} and {lab.shape}")
    ds = L.Dataset(pix.shape[0], pix.shape[1], pix.shape[2], int(lab.max()) + 1, pix.ctypes.data_as(L.U8P), lab.ctypes.data_as(L.U8P))
    a, b = net.input_scale
    return _tightness(net._ctx, net._ptr, ctypes.byref(ds), L.Scale(a, b), runs, mc, regime, seed, list(compare))


__all__ = ["fooling", "sensitivity", "attack", "robustness", "tightness", "tightness_synthetic", "methods"]
