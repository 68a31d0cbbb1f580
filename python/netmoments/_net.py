"""A loaded network and what the library computes on it: forward passes, moments, the linearization."""
import ctypes
import os
import time

import numpy as np

from . import _lib as L


def methods():
    """The moment methods the library has, by name ("paper", "exact", "delta", "propagate", ...)."""
    return [L.lib.nm_method_str(m).decode() for m in range(L.lib.nm_method_count())]


def _method(name):
    m = L.lib.nm_method_from_str(str(name).encode())
    if m < 0:
        raise ValueError(f"unknown method {name!r}: one of {', '.join(methods())} or 'all'")
    return m


def _floats(x, what, dtype=np.float32):
    """x as a C-ordered array of dtype: numbers of any real dtype and order are converted, others refused."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise TypeError(f"{what}: expected real numbers, got an array of {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _view(a):
    """An nm_array borrowing a (C-ordered float32 or float64), kept alive by the caller."""
    arr = L.Array()
    arr.dtype = L.F64 if a.dtype == np.float64 else L.F32
    arr.ndim = a.ndim
    for i, s in enumerate(a.shape):
        arr.shape[i] = s
    arr.data = a.ctypes.data_as(ctypes.c_void_p)
    return arr


def _take(ptr, count, dtype=np.float64):
    """A copy of count elements the library returned (NULL: None)."""
    if not ptr:
        return None
    return np.ctypeslib.as_array(ptr, shape=(count,)).astype(dtype, copy=True)


def _owned(ctx, arr):
    """An nm_array the library filled, copied to NumPy and freed."""
    shape = tuple(arr.shape[i] for i in range(arr.ndim))
    n = int(np.prod(shape)) if shape else 1
    ctype = ctypes.c_double if arr.dtype == L.F64 else ctypes.c_float
    out = np.ctypeslib.as_array(ctypes.cast(arr.data, ctypes.POINTER(ctype)), shape=(n,)).copy().reshape(shape)
    L.lib.nm_array_free(ctx.ptr, ctypes.byref(arr))
    return out


class Moments:
    """Moments of the logits under one method: .mean, .var (d), .cov (d×d or None), the Monte Carlo beside them when
    asked for (.mc_mean, .mc_var, their standard errors .mc_mean_se, .mc_var_se, .mc_cov), and the wall times of the
    analytic call (.time_s) and of the Monte Carlo (.time_mc_s)."""

    def __init__(self, method, mean, var, cov, time_s, rank_moved=0.0):
        self.method, self.mean, self.var, self.cov, self.time_s = method, mean, var, cov, time_s
        self.rank_moved = rank_moved
        self.mc_mean = self.mc_var = self.mc_mean_se = self.mc_var_se = self.mc_cov = None
        self.mc_samples, self.time_mc_s = 0, None

    def __repr__(self):
        mc = f", mc_samples={self.mc_samples}" if self.mc_samples else ""
        return f"Moments(method={self.method!r}, d={len(self.mean)}{mc})"


class _Cov:
    """An nm_cov made from exactly one of the ways Σ may be given."""

    def __init__(self, ctx, shape, sigma2, var, cov, factor, window):
        self.ctx, self.ptr = ctx, ctypes.c_void_p()
        n = int(np.prod(shape[1:]))
        given = [g is not None for g in (sigma2, var, cov, factor)]
        if sum(given) != 1:
            raise ValueError("give exactly one of sigma2, var, cov and factor")
        if window is not None and sigma2 is None:
            raise ValueError("window goes with sigma2")
        p = ctypes.byref(self.ptr)
        if sigma2 is not None and window is not None:
            r, c, h, w = (int(v) for v in window)
            if len(shape) != 4:
                raise ValueError(f"window needs an image input (N, C, H, W); the model's is {tuple(shape)}")
            ctx.check(L.lib.nm_cov_window(ctx.ptr, shape[1], shape[2], shape[3], r, c, h, w, float(sigma2), p), "window")
        elif sigma2 is not None:
            ctx.check(L.lib.nm_cov_isotropic(ctx.ptr, n, float(sigma2), p), "sigma2")
        elif var is not None:
            self.keep = v = _floats(var, "var", np.float64).reshape(-1)
            if v.size != n:
                raise ValueError(f"var has {v.size} entries; the model has {n} inputs")
            ctx.check(L.lib.nm_cov_diagonal(ctx.ptr, n, v.ctypes.data_as(L.F64P), p), "var")
        elif cov is not None:
            self.keep = C = _floats(cov, "cov", np.float64)
            if C.shape != (n, n):
                raise ValueError(f"cov is {C.shape}; the model has {n} inputs, so it must be ({n}, {n})")
            ctx.check(L.lib.nm_cov_full(ctx.ptr, n, C.ctypes.data_as(L.F64P), p), "cov")
        else:
            self.keep = F = _floats(factor, "factor", np.float64)
            if F.ndim != 2 or F.shape[0] != n:
                raise ValueError(f"factor is {F.shape}; it must be ({n}, k) for Σ = F Fᵀ")
            ctx.check(L.lib.nm_cov_factor(ctx.ptr, n, F.shape[1], F.ctypes.data_as(L.F64P), p), "factor")

    def close(self):
        if self.ptr:
            L.lib.nm_cov_free(self.ctx.ptr, self.ptr)
            self.ptr = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _split(split_relu):
    if split_relu is None:
        return 0
    if split_relu in ("none", -1):
        return -1
    l = int(split_relu)
    if l < 1:
        raise ValueError(f"split_relu {split_relu!r}: a split point 1, 2, ... (net.info()['split_points']), None for the last, or 'none'")
    return l


class Net:
    """A network loaded by the library (netmoments.load). Not for use from two threads at once."""

    def __init__(self, ctx, ptr, source):
        self._ctx, self._ptr, self.source = ctx, ptr, source
        ndim, shape = ctypes.c_int(), (ctypes.c_int64 * L.MAX_DIMS)()
        L.lib.nm_net_input_shape(ptr, ctypes.byref(ndim), shape)
        self.input_shape = tuple(shape[i] for i in range(ndim.value))
        self.input_size = int(np.prod(self.input_shape[1:])) if len(self.input_shape) > 1 else int(self.input_shape[0])
        scale = L.lib.nm_net_get_input_scale(ptr)
        self.input_scale = (scale.a, scale.b)

    def close(self):
        if getattr(self, "_ptr", None):
            L.lib.nm_net_free(self._ctx.ptr, self._ptr)
            self._ptr = None

    def __del__(self):
        self.close()

    def __repr__(self):
        return f"<netmoments.Net {self.source!r}, input {self.input_shape}>"

    def _node(self, i):
        info = L.NodeInfo()
        self._ctx.check(L.lib.nm_net_node_info(self._ctx.ptr, self._ptr, i, ctypes.byref(info)))
        return {"name": info.name.decode(), "op": info.op.decode(), "output": info.output.decode(),
                "shape": tuple(info.shape[k] for k in range(info.ndim)), "params": info.params, "batched": bool(info.batched),
                "split_point": info.relu_index or None}

    def info(self):
        """The nodes (name, op, output, shape, params, batched, split_point), the split points (the l-th: its node index),
        the logits node, and whether the net is piecewise linear, batchable, its parameter count and input scale."""
        nodes = [self._node(i) for i in range(L.lib.nm_net_node_count(self._ptr))]
        return {"input_shape": self.input_shape, "nodes": nodes,
                "split_points": [L.lib.nm_net_relu_node(self._ptr, l) for l in range(1, L.lib.nm_net_relu_count(self._ptr) + 1)],
                "logits_node": L.lib.nm_net_logits_node(self._ptr), "piecewise_linear": bool(L.lib.nm_net_piecewise_linear(self._ptr)),
                "batchable": bool(L.lib.nm_net_batchable(self._ptr)), "params": L.lib.nm_net_param_count(self._ptr),
                "input_scale": self.input_scale}

    def meta(self, key):
        """The model's metadata_props value for key, or None."""
        v = L.lib.nm_net_get_meta(self._ptr, key.encode())
        return v.decode() if v is not None else None

    def _mean(self, x, what):
        """x as one input sample of the model's shape (batch 1), float32 or float64."""
        a = _floats(x, what, np.float64 if np.asarray(x).dtype == np.float64 else np.float32)
        if a.size != self.input_size:
            raise ValueError(f"{what} has shape {a.shape} ({a.size} values); the model's input is {self.input_shape}")
        return a.reshape((1,) + tuple(self.input_shape[1:]))

    def forward(self, x, logits=False):
        """The net's output for x: one sample (the input shape, with or without its batch axis) or a batch (N, ...).
        logits=True stops at the logits (before a final Softmax)."""
        a = _floats(x, "x")
        per = self.input_size
        if a.size == per:
            a = a.reshape((1,) + tuple(self.input_shape[1:]))
        elif a.size % per == 0 and a.ndim >= 2:
            a = a.reshape((a.size // per,) + tuple(self.input_shape[1:]))
        else:
            raise ValueError(f"x has shape {a.shape}; the model's input is {self.input_shape} (or a batch of them)")
        xa, ya = _view(a), L.Array()
        last = L.lib.nm_net_logits_node(self._ptr) if logits else -1
        self._ctx.check(L.lib.nm_net_forward(self._ctx.ptr, self._ptr, 0, last, ctypes.byref(xa), ctypes.byref(ya)), "forward")
        return _owned(self._ctx, ya)

    def _options(self, method, split_relu, covariance, dense_max=None, rank=None):
        o = L.lib.nm_net_moments_options_default()
        o.method, o.split_relu, o.want_cov = method, _split(split_relu), int(bool(covariance))
        if dense_max is not None:
            o.dense_max = int(dense_max)
        if rank is not None:
            o.rank = int(rank)
        return o

    def moments(self, mu, sigma2=None, var=None, cov=None, factor=None, window=None, method="exact", split_relu=None,
                covariance=False, mc=0, seed=1, dense_max=None, rank=None):
        """Mean and variance (and with covariance=True the covariance) of the logits for x ~ N(mu, Σ).

        Σ is exactly one of: sigma2 (σ² I, or with window=(r, c, h, w) σ² I on that rectangle of every channel), var
        (n variances), cov (n × n, checked PSD) or factor (n × k, Σ = F Fᵀ). method: a name from netmoments.methods(),
        or "all" for a dict of them. mc > 0 also samples the real network mc times (seed), beside each result.
        dense_max and rank are method propagate's (see `netmoments moments --help`)."""
        mu_a = self._mean(mu, "mu")
        names = methods() if method == "all" else [method]
        ms = [_method(m) for m in names]
        with _Cov(self._ctx, self.input_shape, sigma2, var, cov, factor, window) as S:
            opt = self._options(ms[0], split_relu, covariance, dense_max, rank)
            mv = _view(mu_a)
            out = (L.Moments * len(ms))()
            t0 = time.perf_counter()
            if len(ms) == 1:
                st = L.lib.nm_net_moments(self._ctx.ptr, self._ptr, ctypes.byref(mv), S.ptr, ctypes.byref(opt), out)
            else:
                st = L.lib.nm_net_moments_methods(self._ctx.ptr, self._ptr, ctypes.byref(mv), S.ptr, ctypes.byref(opt), len(ms),
                                                  (ctypes.c_int * len(ms))(*ms), out)
            elapsed = time.perf_counter() - t0
            self._ctx.check(st, "moments")
            res = {}
            for name, r in zip(names, out):
                d = r.d
                cv = _take(r.cov, d * d)
                res[name] = Moments(name, _take(r.mean, d), _take(r.var, d), cv.reshape(d, d) if cv is not None else None, elapsed,
                                    r.rank_moved)
                L.lib.nm_moments_free(self._ctx.ptr, ctypes.byref(r))
            if mc:
                self._montecarlo(mv, S, int(mc), int(seed), covariance, res.values())
        return res if method == "all" else res[method]

    def _montecarlo(self, mv, S, n, seed, covariance, results):
        r, rng = L.MCResult(), L.Rng(seed)
        t0 = time.perf_counter()
        self._ctx.check(L.lib.nm_net_montecarlo(self._ctx.ptr, self._ptr, ctypes.byref(mv), S.ptr, n, ctypes.byref(rng),
                                                int(bool(covariance)), L.PROGRESS(), None, ctypes.byref(r)), "Monte Carlo")
        elapsed, d = time.perf_counter() - t0, r.d
        got = {k: _take(getattr(r, k), d) for k in ("mean", "var", "mean_se", "var_se")}
        cv = _take(r.cov, d * d)
        L.lib.nm_mc_result_free(self._ctx.ptr, ctypes.byref(r))
        for m in results:
            m.mc_mean, m.mc_var, m.mc_mean_se, m.mc_var_se = got["mean"], got["var"], got["mean_se"], got["var_se"]
            m.mc_cov = cv.reshape(d, d) if cv is not None else None
            m.mc_samples, m.time_mc_s = n, elapsed

    def linearize(self, x0, split_relu=None):
        """The two-stage linearization g(x) = B relu(A x + c1) + c2 at x0 (DESIGN §1.6), split at split_relu (None: the
        last split point): A (p × n, float32), c1 (p), B (d × p), c2 (d) (float64)."""
        a = self._mean(x0, "x0")
        opt = self._options(L.lib.nm_method_from_str(b"exact"), split_relu, False)
        mv, A, c1, B, c2 = _view(a), L.Array(), L.Array(), L.Array(), L.Array()
        self._ctx.check(L.lib.nm_net_linearize(self._ctx.ptr, self._ptr, ctypes.byref(mv), ctypes.byref(opt), ctypes.byref(A),
                                               ctypes.byref(c1), ctypes.byref(B), ctypes.byref(c2)), "linearize")
        return tuple(_owned(self._ctx, x) for x in (A, c1, B, c2))

    def images(self, pixels):
        """8-bit images (N, H, W) (or one, (H, W)) as the model's inputs (N, 1, H, W), in its recorded input scale
        x = a·p/255 + b."""
        p = np.asarray(pixels)
        if p.dtype != np.uint8:
            raise TypeError(f"pixels: expected uint8 images, got {p.dtype}")
        p = p.reshape((1,) + p.shape) if p.ndim == 2 else p
        if p.ndim != 3:
            raise ValueError(f"pixels: expected (N, H, W) or (H, W), got {p.shape}")
        a, b = self.input_scale
        return ((p.astype(np.float64) / 255.0) * a + b).astype(np.float32).reshape(p.shape[0], 1, p.shape[1], p.shape[2])


def load(model):
    """A network from an ONNX file (a path) or a serialized ONNX model (bytes)."""
    ctx, ptr = L.Context(), ctypes.c_void_p()
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        ctx.check(L.lib.nm_net_read_onnx_memory(ctx.ptr, data, len(data), ctypes.byref(ptr)), "load")
        return Net(ctx, ptr, f"<{len(data)} bytes>")
    path = os.fspath(model)
    ctx.check(L.lib.nm_net_read_onnx(ctx.ptr, path.encode(), ctypes.byref(ptr)), "load")
    return Net(ctx, ptr, path)


def _source_tree():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_model():
    """The shipped LeNet: $NETMOMENTS_MODEL, else the first of ./models/lenet-mnist.onnx,
    <prefix>/share/netmoments/lenet-mnist.onnx and the source tree's models/lenet-mnist.onnx."""
    env = os.environ.get("NETMOMENTS_MODEL")
    if env:
        return env
    for p in ("models/lenet-mnist.onnx", os.path.join(os.sys.prefix, "share/netmoments/lenet-mnist.onnx"),
              "/usr/local/share/netmoments/lenet-mnist.onnx", os.path.join(_source_tree(), "models/lenet-mnist.onnx")):
        if os.path.isfile(p):
            return p
    raise FileNotFoundError("netmoments: no shipped model found; set NETMOMENTS_MODEL")


def digits(split="test", root=None):
    """MNIST digits as the CLI reads them: (pixels uint8 (N, 28, 28), labels uint8 (N,)), from root, else
    $NETMOMENTS_DATA, else ./data or the source tree's data (scripts/setup.sh fetches them)."""
    if split not in ("test", "train"):
        raise ValueError(f"split {split!r}: 'test' (the held-out digits) or 'train'")
    root = root or os.environ.get("NETMOMENTS_DATA") or ("data" if os.path.isdir("data/mnist") else os.path.join(_source_tree(), "data"))
    img, lbl = (os.path.join(root, "mnist", f"{split}-{k}-idx{n}-ubyte.gz") for k, n in (("images", 3), ("labels", 1)))
    ctx, ds = L.Context(), L.Dataset()
    ctx.check(L.lib.nm_dataset_read_idx(ctx.ptr, img.encode(), lbl.encode(), ctypes.byref(ds)), "digits")
    try:
        pix = np.ctypeslib.as_array(ds.pixels, shape=(ds.n * ds.rows * ds.cols,)).copy().reshape(ds.n, ds.rows, ds.cols)
        lab = np.ctypeslib.as_array(ds.labels, shape=(ds.n,)).copy()
    finally:
        L.lib.nm_dataset_free(ctx.ptr, ctypes.byref(ds))
    return pix, lab
