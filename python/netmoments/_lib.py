"""The shared library through ctypes: finding it, the C structs it takes, and its functions' signatures.

Every struct here mirrors one of include/netmoments.h field for field; tests/python/test_binding.py checks
them against the library's own defaults and against the CLI on the same inputs.
"""
import ctypes
import ctypes.util
import os
import sys

MAX_DIMS = 8
METHOD_MAX = 16
FOOLING_MAX_TOPK = 10

F32, F64 = 1, 2


class Error(Exception):
    """A failure the library reported: .status (the C status code), .status_name and the message."""

    def __init__(self, status, status_name, message):
        super().__init__(f"{status_name}: {message}" if message else status_name)
        self.status = status
        self.status_name = status_name
        self.message = message


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    env = os.environ.get("NETMOMENTS_LIB")
    if env:
        yield env  # a file, or a folder holding it
    yield os.path.join(here, "libnetmoments.so")  # next to the package (a wheel built with it)
    source = os.path.dirname(os.path.dirname(here))
    for build in ("build", "build-release"):  # the source tree's build, for PYTHONPATH=python
        yield os.path.join(source, build, "libnetmoments.so")
    for prefix in (sys.prefix, "/usr/local", "/usr"):  # where `cmake --install` puts it
        for lib in ("lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"):
            yield os.path.join(prefix, lib, "libnetmoments.so")
    found = ctypes.util.find_library("netmoments")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        if os.path.isdir(path):
            path = os.path.join(path, "libnetmoments.so")
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{path} ({e})")
    raise ImportError("netmoments: libnetmoments.so not found; build it (cmake --build build), install it "
                      "(cmake --install build) or set NETMOMENTS_LIB. Tried: " + ", ".join(tried))


lib, path = _load()

c_int, c_int64, c_uint64, c_double, c_size_t = ctypes.c_int, ctypes.c_int64, ctypes.c_uint64, ctypes.c_double, ctypes.c_size_t
c_char_p, c_void_p = ctypes.c_char_p, ctypes.c_void_p
P = ctypes.POINTER
PROGRESS = ctypes.CFUNCTYPE(None, c_void_p, c_int64, c_int64)


class Array(ctypes.Structure):
    _fields_ = [("dtype", c_int), ("ndim", c_int), ("shape", c_int64 * MAX_DIMS), ("data", c_void_p)]


class NetMomentsOptions(ctypes.Structure):
    _fields_ = [("split_relu", c_int), ("x0", P(Array)), ("y0", P(Array)), ("mem_budget", c_size_t), ("path", c_int),
                ("method", c_int), ("precision", c_int), ("want_cov", c_int), ("mean_only", c_int),
                ("dense_max", c_int64), ("rank", c_int64)]


class Moments(ctypes.Structure):
    _fields_ = [("d", c_int64), ("mean", P(c_double)), ("var", P(c_double)), ("cov", P(c_double)), ("rank_moved", c_double)]


class MCResult(ctypes.Structure):
    _fields_ = [("d", c_int64), ("samples", c_int64), ("mean", P(c_double)), ("var", P(c_double)),
                ("mean_se", P(c_double)), ("var_se", P(c_double)), ("cov", P(c_double))]


class Rng(ctypes.Structure):
    _fields_ = [("seed", c_uint64)]


class NodeInfo(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("op", c_char_p), ("output", c_char_p), ("ndim", c_int), ("shape", c_int64 * MAX_DIMS),
                ("params", c_int64), ("batched", c_int), ("relu_index", c_int)]


class Scale(ctypes.Structure):
    _fields_ = [("a", c_double), ("b", c_double)]


class Dataset(ctypes.Structure):
    _fields_ = [("n", c_int64), ("rows", c_int64), ("cols", c_int64), ("classes", c_int), ("pixels", P(ctypes.c_uint8)),
                ("labels", P(ctypes.c_uint8))]


class MvnOptions(ctypes.Structure):
    _fields_ = [("abs_tol", c_double), ("min_points", c_int64), ("max_points", c_int64), ("shifts", c_int), ("seed", c_uint64)]


class FoolingOptions(ctypes.Structure):
    _fields_ = [("sigma2", c_double), ("method", c_int), ("topk", c_int), ("mc", c_int64), ("flip", c_int), ("mvn", MvnOptions),
                ("seed", c_uint64), ("progress", PROGRESS), ("user", c_void_p)]


class Fooling(ctypes.Structure):
    _fields_ = [("images", c_int64), ("d", c_int64), ("topk", c_int), ("clean", P(c_int)), ("perturbed", P(c_int)),
                ("predicted", P(c_int)), ("mc_predicted", P(c_int)), ("topk_match", P(ctypes.c_uint8)),
                ("topk_match_mc", P(ctypes.c_uint8)), ("flip", P(c_double)), ("flip_se", P(c_double)), ("mc_flip", P(c_double)),
                ("rate_real", c_double), ("rate_predicted", c_double), ("rate_mc", c_double), ("disagreements", c_int64),
                ("disagreements_mc", c_int64), ("topk_accuracy", c_double * FOOLING_MAX_TOPK),
                ("topk_accuracy_mc", c_double * FOOLING_MAX_TOPK), ("ibuf", P(c_int)), ("dbuf", P(c_double))]


class SensitivityOptions(ctypes.Structure):
    _fields_ = [("h", c_int64), ("w", c_int64), ("stride", c_int64), ("sigma2", c_double), ("method", c_int), ("flip", c_int),
                ("want_means", c_int), ("mvn", MvnOptions), ("progress", PROGRESS), ("user", c_void_p)]


class Sensitivity(ctypes.Structure):
    _fields_ = [("images", c_int64), ("P", c_int64), ("Q", c_int64), ("d", c_int64), ("classes", c_int), ("clean", P(c_int)),
                ("label", P(c_int)), ("map", P(c_double)), ("flip", P(c_double)), ("flip_se", P(c_double)), ("mean", P(c_double)),
                ("class_map", P(c_double)), ("class_flip", P(c_double)), ("class_count", P(c_int64)), ("buf", P(c_double))]


class AttackOptions(ctypes.Structure):
    _fields_ = [("target", c_int), ("beta", c_double), ("sigma2_max", c_double), ("relinearize", c_int), ("max_iter", c_int),
                ("margin", c_double), ("split_relu", c_int), ("support", P(ctypes.c_uint8))]


class AttackResult(ctypes.Structure):
    _fields_ = [("label", c_int), ("target", c_int), ("sigma2", c_double), ("iterations", c_int), ("support", c_int64),
                ("gap", c_double), ("fooled_analytic", c_int), ("d", c_int64), ("analytic_mean", P(c_double))]


class RobustnessOptions(ctypes.Structure):
    _fields_ = [("mc", c_int64), ("seed", c_uint64), ("progress", PROGRESS), ("user", c_void_p)]


class TightnessOptions(ctypes.Structure):
    _fields_ = [("runs", c_int64), ("mc", c_int64), ("max_var", c_double), ("seed", c_uint64), ("progress", PROGRESS),
                ("user", c_void_p), ("image_index", P(c_int64)), ("x0", P(ctypes.c_float)), ("split_relu", c_int),
                ("nmethods", c_int), ("methods", c_int * METHOD_MAX)]


class Tightness(ctypes.Structure):
    _fields_ = [("runs", c_int64), ("d", c_int64), ("mean", P(c_double) * METHOD_MAX), ("var", P(c_double) * METHOD_MAX),
                ("mc_mean", P(c_double)), ("mc_var", P(c_double)), ("relu_bottom", P(c_double)), ("relu_top", P(c_double)),
                ("mean_index", P(c_int64)), ("buf", P(c_double))]


def _sig(name, res, *args):
    f = getattr(lib, name)
    f.restype, f.argtypes = res, list(args)


F32P, F64P, U8P, I64P = P(ctypes.c_float), P(c_double), P(ctypes.c_uint8), P(c_int64)
_sig("nm_ctx_create", c_void_p)
_sig("nm_ctx_free", None, c_void_p)
_sig("nm_ctx_message", c_char_p, c_void_p)
_sig("nm_ctx_set_mem_limit", c_int, c_void_p, c_size_t)
_sig("nm_status_str", c_char_p, c_int)
_sig("nm_free", None, c_void_p, c_void_p)
_sig("nm_array_free", None, c_void_p, P(Array))
_sig("nm_net_read_onnx", c_int, c_void_p, c_char_p, P(c_void_p))
_sig("nm_net_read_onnx_memory", c_int, c_void_p, c_char_p, c_size_t, P(c_void_p))
_sig("nm_net_free", None, c_void_p, c_void_p)
_sig("nm_net_input_shape", None, c_void_p, P(c_int), I64P)
_sig("nm_net_node_count", c_int, c_void_p)
_sig("nm_net_node_info", c_int, c_void_p, c_void_p, c_int, P(NodeInfo))
_sig("nm_net_relu_count", c_int, c_void_p)
_sig("nm_net_relu_node", c_int, c_void_p, c_int)
_sig("nm_net_logits_node", c_int, c_void_p)
_sig("nm_net_piecewise_linear", c_int, c_void_p)
_sig("nm_net_batchable", c_int, c_void_p)
_sig("nm_net_param_count", c_int64, c_void_p)
_sig("nm_net_get_meta", c_char_p, c_void_p, c_char_p)
_sig("nm_net_get_input_scale", Scale, c_void_p)
_sig("nm_net_forward", c_int, c_void_p, c_void_p, c_int, c_int, P(Array), P(Array))
_sig("nm_cov_isotropic", c_int, c_void_p, c_int64, c_double, P(c_void_p))
_sig("nm_cov_diagonal", c_int, c_void_p, c_int64, F64P, P(c_void_p))
_sig("nm_cov_full", c_int, c_void_p, c_int64, F64P, P(c_void_p))
_sig("nm_cov_factor", c_int, c_void_p, c_int64, c_int64, F64P, P(c_void_p))
_sig("nm_cov_window", c_int, c_void_p, c_int64, c_int64, c_int64, c_int64, c_int64, c_int64, c_int64, c_double, P(c_void_p))
_sig("nm_cov_free", None, c_void_p, c_void_p)
_sig("nm_method_count", c_int)
_sig("nm_method_str", c_char_p, c_int)
_sig("nm_method_from_str", c_int, c_char_p)
_sig("nm_net_moments_options_default", NetMomentsOptions)
_sig("nm_net_moments", c_int, c_void_p, c_void_p, P(Array), c_void_p, P(NetMomentsOptions), P(Moments))
_sig("nm_net_moments_methods", c_int, c_void_p, c_void_p, P(Array), c_void_p, P(NetMomentsOptions), c_int, P(c_int), P(Moments))
_sig("nm_moments_free", None, c_void_p, P(Moments))
_sig("nm_net_montecarlo", c_int, c_void_p, c_void_p, P(Array), c_void_p, c_int64, P(Rng), c_int, PROGRESS, c_void_p, P(MCResult))
_sig("nm_mc_result_free", None, c_void_p, P(MCResult))
_sig("nm_net_linearize", c_int, c_void_p, c_void_p, P(Array), P(NetMomentsOptions), P(Array), P(Array), P(Array), P(Array))
_sig("nm_dataset_read_idx", c_int, c_void_p, c_char_p, c_char_p, P(Dataset))
_sig("nm_dataset_free", None, c_void_p, P(Dataset))
_sig("nm_dataset_images", c_int, c_void_p, P(Dataset), I64P, c_int64, Scale, F32P)
_sig("nm_fooling_options_default", FoolingOptions)
_sig("nm_fooling_run", c_int, c_void_p, c_void_p, F32P, I64P, c_int64, F32P, P(FoolingOptions), P(Fooling))
_sig("nm_fooling_free", None, c_void_p, P(Fooling))
_sig("nm_sensitivity_options_default", SensitivityOptions)
_sig("nm_sensitivity_run", c_int, c_void_p, c_void_p, F32P, U8P, c_int64, P(SensitivityOptions), P(Sensitivity))
_sig("nm_sensitivity_free", None, c_void_p, P(Sensitivity))
_sig("nm_attack_options_default", AttackOptions)
_sig("nm_attack_run", c_int, c_void_p, c_void_p, F32P, P(AttackOptions), F32P, P(AttackResult))
_sig("nm_attack_result_free", None, c_void_p, P(AttackResult))
_sig("nm_attack_verify", c_int, c_void_p, c_void_p, F32P, F32P, c_double, c_int64, c_uint64, c_int, F64P, F64P)
_sig("nm_robustness_options_default", RobustnessOptions)
_sig("nm_robustness_run", c_int, c_void_p, c_void_p, F32P, U8P, c_int64, c_int, F64P, P(RobustnessOptions), F64P)
_sig("nm_robustness_auc", c_double, c_int, F64P, F64P)
_sig("nm_tightness_options_default", TightnessOptions)
_sig("nm_tightness_run", c_int, c_void_p, c_void_p, P(Dataset), Scale, P(TightnessOptions), P(Tightness))
_sig("nm_tightness_free", None, c_void_p, P(Tightness))
_sig("nm_synthetic_create", c_int, c_void_p, c_int, c_uint64, c_double, P(c_void_p))
_sig("nm_synthetic_str", c_char_p, c_int)


class Context:
    """An nm_ctx: the library's messages and memory budget, one per object that needs it."""

    def __init__(self):
        self.ptr = lib.nm_ctx_create()
        if not self.ptr:
            raise MemoryError("netmoments: cannot allocate a context")

    def check(self, status, what=None):
        if status != 0:
            msg = (lib.nm_ctx_message(self.ptr) or b"").decode("utf-8", "replace")
            name = lib.nm_status_str(status).decode()
            raise Error(status, name, f"{what}: {msg}" if what else msg)

    def close(self):
        if self.ptr:
            lib.nm_ctx_free(self.ptr)
            self.ptr = None

    def __del__(self):
        self.close()
