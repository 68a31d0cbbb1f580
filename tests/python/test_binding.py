"""The Python binding (python/netmoments) against independent computations:
 - its structs against the library's documented defaults (a layout mistake shows there first);
 - an (Affine, ReLU, Affine) net written here as ONNX from NumPy weights: forward against NumPy, methods exact and
   propagate against §1.1–1.5 computed in NumPy (Φ₂ by Gauss–Legendre on Plackett's identity), method paper against
   §1.3–1.4, and a seeded NumPy Monte Carlo against the analytic moments within 5 standard errors;
 - every call against the CLI's output on the same inputs (moments JSON for each method, covariance, window, Monte
   Carlo and split; --save-lin's A.npy; tightness synthetic's CSV; attack.json; fooling.csv);
 - errors raised as netmoments.Error with the status name and the message; arrays of other dtypes and orders
   converted, of wrong shapes refused;
 - no leaks: RSS stable over 1,000 moments calls and 1,000 loads;
 - with PyTorch installed (optional): from_torch on a few modules, forward equal to torch's, moments within Monte
   Carlo standard errors of torch's own sampling.
Run by CTest with PYTHONPATH=python, NETMOMENTS_LIB and NETMOMENTS_CLI set.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_writer  # noqa: E402
import netmoments as nm  # noqa: E402
from netmoments import _lib  # noqa: E402

CLI = os.environ.get("NETMOMENTS_CLI", "netmoments")
NSE = 5.0

# ------------------------------------------------------------------ NumPy reference (DESIGN §1.1–1.5)

_erfc = np.vectorize(math.erfc)
_GL = np.polynomial.legendre.leggauss(64)


def Phi(x):
    return 0.5 * _erfc(-np.asarray(x, dtype=float) / math.sqrt(2))


def phi(x):
    return np.exp(-0.5 * np.asarray(x, dtype=float) ** 2) / math.sqrt(2 * math.pi)


def Phi2(h, k, rho):
    """P(X ≤ h, Y ≤ k), corr ρ: Φ(h)Φ(k) + ∫₀^ρ φ₂(h, k; r) dr (Plackett), 64-point Gauss–Legendre in r."""
    x, w = _GL
    r = rho * (x + 1) / 2
    dens = np.exp(-(h * h - 2 * r * h * k + k * k) / (2 * (1 - r * r))) / (2 * math.pi * np.sqrt(1 - r * r))
    return float(Phi(h) * Phi(k) + rho / 2 * np.dot(w, dens))


def ara_reference(W1, b1, W2, b2, mu, Sigma, method):
    m, S = W1 @ mu + b1, W1 @ Sigma @ W1.T
    s = np.sqrt(np.diag(S))
    a = m / s
    e1 = m * Phi(a) + s * phi(a)
    e2 = (m * m + s * s) * Phi(a) + m * s * phi(a)
    p = len(m)
    C = np.zeros((p, p))
    for u in range(p):
        for v in range(p):
            rho = S[u, v] / (s[u] * s[v])
            if method == "paper":
                rho = min(1.0, max(-1.0, rho))
                C[u, v] = s[u] * s[v] / (2 * math.pi) * (math.sqrt(1 - rho * rho) + rho * math.acos(-rho) - 1)
            elif u == v:
                C[u, v] = e2[u] - e1[u] ** 2
            else:
                q = math.sqrt(1 - rho * rho)
                au, av = a[u], a[v]
                E = ((m[u] * m[v] + rho * s[u] * s[v]) * Phi2(au, av, rho) + m[u] * s[v] * phi(av) * Phi((au - rho * av) / q)
                     + m[v] * s[u] * phi(au) * Phi((av - rho * au) / q) + s[u] * s[v] * q * phi(av) * phi((au - rho * av) / q))
                C[u, v] = E - e1[u] * e1[v]
    return W2 @ e1 + b2, W2 @ C @ W2.T


def small_net(seed=3, n=6, p=5, d=3):
    rng = np.random.default_rng(seed)
    W1 = rng.normal(size=(p, n)).astype(np.float32)
    b1 = (0.5 * rng.normal(size=p)).astype(np.float32)
    W2 = rng.normal(size=(d, p)).astype(np.float32)
    b2 = rng.normal(size=d).astype(np.float32)
    L = rng.normal(size=(n, n)) * 0.4
    Sigma = L @ L.T + 0.1 * np.eye(n)
    mu = (0.5 * rng.normal(size=n)).astype(np.float32)
    return [x.astype(np.float64) for x in (W1, b1, W2, b2)], onnx_writer.ara(W1, b1, W2, b2), mu, Sigma


def cli(*args):
    r = subprocess.run([CLI, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"netmoments {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class Structs(unittest.TestCase):
    """Each mirrored struct read back as the library fills it: its documented defaults."""

    def test_defaults(self):
        o = _lib.lib.nm_net_moments_options_default()
        self.assertEqual((o.split_relu, o.method, o.want_cov, o.mean_only, o.dense_max, o.rank), (0, 1, 0, 0, 1024, 0))
        self.assertEqual(o.mem_budget, 2 << 30)
        f = _lib.lib.nm_fooling_options_default()
        self.assertEqual((f.sigma2, f.topk, f.mc, f.flip, f.seed), (1e-4, 5, 0, 0, 1))
        self.assertEqual((f.mvn.abs_tol, f.mvn.min_points, f.mvn.max_points, f.mvn.shifts, f.mvn.seed), (1e-4, 64, 32768, 12, 1))
        s = _lib.lib.nm_sensitivity_options_default()
        self.assertEqual((s.h, s.w, s.stride, s.sigma2, s.flip, s.want_means), (7, 7, 1, 200.0, 0, 0))
        a = _lib.lib.nm_attack_options_default()
        self.assertEqual((a.beta, a.sigma2_max, a.relinearize, a.max_iter, a.margin, a.split_relu), (30.0, 2.0, 0, 300, 0.5, 0))
        t = _lib.lib.nm_tightness_options_default()
        self.assertEqual((t.runs, t.mc, t.max_var, t.seed, t.split_relu, t.nmethods, t.methods[0], t.methods[1]), (200, 75000, 1.0, 1, 0, 2, 0, 1))

    def test_methods(self):
        self.assertEqual(nm.methods()[:4], ["paper", "exact", "delta", "propagate"])


class SmallNet(unittest.TestCase):
    """An (Affine, ReLU, Affine) net whose arithmetic is known here."""

    @classmethod
    def setUpClass(cls):
        cls.w, cls.onnx, cls.mu, cls.Sigma = small_net()
        cls.net = nm.load(cls.onnx)

    def test_forward(self):
        W1, b1, W2, b2 = self.w
        X = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
        want = np.maximum(X @ W1.T + b1, 0) @ W2.T + b2
        np.testing.assert_allclose(self.net.forward(X), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(self.net.forward(X[0]), want[:1], rtol=1e-5, atol=1e-5)

    def test_exact_and_paper_against_numpy(self):
        for method in ("exact", "propagate", "paper"):
            r = self.net.moments(self.mu, cov=self.Sigma, method=method, covariance=True)
            mean, C = ara_reference(*self.w, self.mu.astype(np.float64), self.Sigma, "paper" if method == "paper" else "exact")
            # float32 rounding: the library reads c1 and c2 off float32 passes of the net
            np.testing.assert_allclose(r.mean, mean, rtol=1e-6, atol=1e-6, err_msg=method)
            np.testing.assert_allclose(r.cov, C, rtol=1e-6, atol=1e-8, err_msg=method)
            np.testing.assert_allclose(r.var, np.diag(C), rtol=1e-6, atol=1e-8, err_msg=method)

    def test_numpy_monte_carlo(self):
        W1, b1, W2, b2 = self.w
        rng = np.random.default_rng(7)
        N = 200000
        x = self.mu + rng.normal(size=(N, 6)) @ np.linalg.cholesky(self.Sigma).T
        y = np.maximum(x @ W1.T + b1, 0) @ W2.T + b2
        m, v = y.mean(0), y.var(0, ddof=1)
        se_m = np.sqrt(v / N)
        se_v = np.sqrt(((y - m) ** 4).mean(0) - v * v) / math.sqrt(N)
        r = self.net.moments(self.mu, cov=self.Sigma, mc=N, seed=5)
        self.assertTrue(np.all(np.abs(r.mean - m) <= NSE * se_m), (r.mean, m, se_m))
        self.assertTrue(np.all(np.abs(r.var - v) <= NSE * se_v), (r.var, v, se_v))
        # the library's own Monte Carlo against the NumPy one: two independent samples
        self.assertTrue(np.all(np.abs(r.mc_mean - m) <= NSE * math.sqrt(2) * se_m))
        self.assertTrue(np.all(np.abs(r.mc_var - v) <= NSE * math.sqrt(2) * se_v))
        self.assertEqual(r.mc_samples, N)

    def test_sigma_forms(self):
        """σ² I, diag(v), a full Σ and a factor F Fᵀ of the same Σ agree."""
        n = 6
        iso = self.net.moments(self.mu, sigma2=0.7)
        np.testing.assert_allclose(self.net.moments(self.mu, var=np.full(n, 0.7)).var, iso.var, rtol=1e-12)
        np.testing.assert_allclose(self.net.moments(self.mu, cov=0.7 * np.eye(n)).var, iso.var, rtol=1e-10)
        F = np.linalg.cholesky(self.Sigma)
        np.testing.assert_allclose(self.net.moments(self.mu, factor=F).var, self.net.moments(self.mu, cov=self.Sigma).var, rtol=1e-10)

    def test_linearize(self):
        A, c1, B, c2 = self.net.linearize(self.mu)
        W1, b1, W2, b2 = self.w
        np.testing.assert_allclose(A, W1, rtol=1e-6)
        np.testing.assert_allclose(c1, b1, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(B, W2, rtol=1e-6)
        np.testing.assert_allclose(c2, b2, rtol=1e-6, atol=1e-6)

    def test_conversions(self):
        """Other dtypes and orders are converted: the same result."""
        ref = self.net.moments(self.mu, cov=self.Sigma)
        for mu in (self.mu.astype(np.float64), list(map(float, self.mu)), self.mu.reshape(1, 6)):
            np.testing.assert_allclose(self.net.moments(mu, cov=self.Sigma).var, ref.var, rtol=1e-6)
        SigmaF = np.asfortranarray(self.Sigma)
        np.testing.assert_allclose(self.net.moments(self.mu, cov=SigmaF).var, ref.var, rtol=1e-12)
        np.testing.assert_allclose(self.net.moments(self.mu, cov=self.Sigma.astype(np.float32)).var, ref.var, rtol=1e-5)
        np.testing.assert_allclose(self.net.moments(np.arange(6), sigma2=1).mean, self.net.moments(np.arange(6.0), sigma2=1).mean)

    def test_refusals(self):
        with self.assertRaises(ValueError):
            self.net.moments(np.zeros(5), sigma2=1)
        with self.assertRaises(ValueError):
            self.net.moments(self.mu, cov=np.eye(5))
        with self.assertRaises(ValueError):
            self.net.moments(self.mu)
        with self.assertRaises(ValueError):
            self.net.moments(self.mu, sigma2=1, var=np.ones(6))
        with self.assertRaises(TypeError):
            self.net.moments(np.array(["a"] * 6), sigma2=1)
        with self.assertRaises(ValueError):
            self.net.moments(self.mu, sigma2=1, method="nope")
        with self.assertRaises(ValueError):
            self.net.forward(np.zeros(7))

    def test_errors_from_the_library(self):
        bad = self.mu.copy()
        bad[2] = np.nan
        with self.assertRaises(nm.Error) as e:
            self.net.moments(bad, sigma2=1)
        self.assertEqual(e.exception.status, -3)
        self.assertEqual(e.exception.status_name, "non-finite value")
        self.assertIn("flat index 2", e.exception.message)
        with self.assertRaises(nm.Error) as e:
            self.net.moments(self.mu, cov=-np.eye(6))
        self.assertEqual(e.exception.status, -4)
        self.assertTrue(e.exception.status_name and e.exception.message)
        with self.assertRaises(nm.Error) as e:
            self.net.moments(self.mu, sigma2=-1)
        with self.assertRaises(nm.Error) as e:
            nm.load(b"this is not an ONNX model")
        self.assertEqual(e.exception.status, -7)
        with self.assertRaises(nm.Error) as e:
            nm.load("/nonexistent/model.onnx")
        self.assertEqual(e.exception.status, -6)
        self.assertIn("/nonexistent/model.onnx", str(e.exception))

    def test_no_leaks(self):
        for _ in range(100):
            self.net.moments(self.mu, cov=self.Sigma, covariance=True)
            nm.load(self.onnx)
        before = rss_kib()
        for _ in range(1000):
            self.net.moments(self.mu, cov=self.Sigma, covariance=True, mc=10)
            nm.load(self.onnx).info()
        grown = rss_kib() - before
        print(f"RSS over 1,000 moments calls and loads: {grown} KiB", file=sys.stderr)
        self.assertLess(grown, 4096)


class AgainstCLI(unittest.TestCase):
    """The shipped LeNet: the binding and the CLI on the same inputs."""

    @classmethod
    def setUpClass(cls):
        cls.model = nm.default_model()
        cls.net = nm.load(cls.model)
        cls.pix, cls.lab = nm.digits()
        cls.x = cls.net.images(cls.pix[3])

    def _json(self, *args):
        return json.loads(cli("moments", "--model", self.model, "--image", "3", "--json", *args))

    def test_info(self):
        i = self.net.info()
        self.assertEqual(i["input_shape"], (1, 1, 28, 28))
        self.assertEqual(len(i["split_points"]), 3)
        self.assertEqual([i["nodes"][k]["split_point"] for k in i["split_points"]], [1, 2, 3])
        self.assertEqual(self.net.input_scale, (255.0, -127.5))
        self.assertEqual(self.net.forward(self.x).shape, (1, 10))

    def test_moments_every_method(self):
        j = self._json("--sigma2", "4", "--method", "all")
        res = self.net.moments(self.x, sigma2=4, method="all")
        for m in nm.methods():
            np.testing.assert_allclose(res[m].mean, j[m]["mean"], rtol=1e-12, err_msg=m)
            np.testing.assert_allclose(res[m].var, j[m]["var"], rtol=1e-12, err_msg=m)

    def test_moments_options(self):
        j = self._json("--sigma2", "50", "--window", "8,9,7,7", "--covariance", "--mc", "3000", "--seed", "4", "--split-relu", "2")
        r = self.net.moments(self.x, sigma2=50, window=(8, 9, 7, 7), covariance=True, mc=3000, seed=4, split_relu=2)
        for k, v in (("mean", r.mean), ("var", r.var), ("cov", r.cov.reshape(-1)), ("mc_mean", r.mc_mean), ("mc_var", r.mc_var),
                     ("mc_cov", r.mc_cov.reshape(-1))):
            np.testing.assert_allclose(v, j[k], rtol=1e-12, atol=1e-300, err_msg=k)

    def test_linearize(self):
        with tempfile.TemporaryDirectory() as d:
            cli("moments", "--model", self.model, "--image", "3", "--sigma2", "1", "--save-lin", d)
            A, c1, B, c2 = self.net.linearize(self.x)
            for name, got in (("A", A), ("c1", c1), ("B", B), ("c2", c2)):
                np.testing.assert_array_equal(got, np.load(os.path.join(d, name + ".npy")), err_msg=name)

    def test_tightness_synthetic(self):
        with tempfile.TemporaryDirectory() as d:
            cli("tightness", "synthetic", "--nets", "fc-b", "--regimes", "medium", "--runs", "3", "--mc", "2000", "--out", d)
            rows = np.genfromtxt(os.path.join(d, "tightness-synthetic.csv"), delimiter=",", names=True, dtype=None, encoding=None)
        t = nm.tightness_synthetic("fc-b", "medium", runs=3, mc=2000)
        for col, got in (("analytic_var_exact", t["var"]["exact"]), ("analytic_var_paper", t["var"]["paper"]), ("mc_var", t["mc_var"]),
                         ("analytic_mean", t["mean"]["exact"]), ("analytic_var_propagate", t["var"]["propagate"])):
            np.testing.assert_allclose(got[:, 0], rows[col], rtol=1e-5, err_msg=col)

    def test_attack(self):
        with tempfile.TemporaryDirectory() as d:
            cli("attack", "targeted", "--model", self.model, "--image", "3", "--target", "5", "--mc", "500", "--out", d)
            with open(os.path.join(d, "attack.json")) as f:
                j = json.load(f)
            mu_cli = np.load(os.path.join(d, "mu.npy")).reshape(-1)
        a = nm.attack(self.net, self.x, 5, verify=500)
        self.assertEqual((a["label"], a["target"], a["iterations"]), (j["label"], j["target"], j["iterations"]))
        self.assertAlmostEqual(a["sigma2"], j["sigma2"], places=10)
        np.testing.assert_array_equal(a["mu_x"].reshape(-1), mu_cli)

    def test_fooling(self):
        with tempfile.TemporaryDirectory() as d:
            cli("fooling", "--model", self.model, "--images", "6", "--out", d)
            rows = np.genfromtxt(os.path.join(d, "fooling.csv"), delimiter=",", names=True, dtype=None, encoding=None)
        X = self.net.images(self.pix[:6])
        f = nm.fooling(self.net, X, index=np.arange(6))
        names = rows.dtype.names
        for col in ("clean", "predicted"):
            c = next(n for n in names if n.startswith(col))
            np.testing.assert_array_equal(f[col], rows[c], err_msg=col)
        # without a perturbation the prediction is the argmax of the analytic mean at each image
        for i in range(6):
            self.assertEqual(f["predicted"][i], int(np.argmax(self.net.moments(X[i], sigma2=1e-4).mean)))

    def test_robustness(self):
        with tempfile.TemporaryDirectory() as d:
            cli("robustness", "--model", self.model, "--sigmas", "0,80,160", "--images", "8", "--mc-per-image", "4", "--out", d)
            rows = np.genfromtxt(os.path.join(d, "robustness.csv"), delimiter=",", names=True, dtype=None, encoding=None)
        acc, auc = nm.robustness(self.net, self.net.images(self.pix[:8]), self.lab[:8], [0, 80, 160], mc=4)
        np.testing.assert_allclose(acc, rows["accuracy"], rtol=1e-15)
        self.assertAlmostEqual(auc, (acc[0] + 2 * acc[1] + acc[2]) / 4, places=12)
        clean = np.argmax(self.net.forward(self.net.images(self.pix[:8]), logits=True), axis=1) == self.lab[:8]
        self.assertAlmostEqual(acc[0], clean.mean(), places=12)

    def test_sensitivity(self):
        s = nm.sensitivity(self.net, self.x, window=(7, 7), stride=7, sigma2=200, means=True)
        self.assertEqual(s["map"].shape, (1, 4, 4))  # (28 - 7) / 7 + 1 positions each way
        # the map is 1 where the mean logits' argmax leaves the clean label, and its means are the windowed moments'
        # (to 1e-4: sensitivity forms A with serial BLAS inside its threads, moments with threaded BLAS; the float32
        # Jacobians then differ in rounding, by up to 1e-4 of a logit at this noise; on one thread they are identical)
        for p in range(4):
            for q in range(4):
                m = self.net.moments(self.x, sigma2=200, window=(7 * p, 7 * q, 7, 7)).mean
                np.testing.assert_allclose(s["mean"][0, p, q], m, rtol=1e-4, atol=1e-4)
                self.assertEqual(s["map"][0, p, q], float(np.argmax(s["mean"][0, p, q]) != s["clean"][0]))
        self.assertEqual(s["clean"][0], int(np.argmax(self.net.forward(self.x))))


@unittest.skipUnless(importlib.util.find_spec("torch"), "PyTorch not installed (optional)")
class FromTorch(unittest.TestCase):
    def check_module(self, module, shape, sigma2):
        import torch
        torch.manual_seed(0)
        x = torch.randn(*shape)
        net = nm.from_torch(module, x)
        with torch.no_grad():
            np.testing.assert_allclose(net.forward(x.numpy()), module(x).numpy(), rtol=1e-4, atol=1e-5)
            N = 100000
            g = torch.Generator().manual_seed(1)
            ys = torch.cat([module(x + math.sqrt(sigma2) * torch.randn((10000,) + tuple(shape[1:]), generator=g)) for _ in range(N // 10000)])
        y = ys.double().numpy()
        m, v = y.mean(0), y.var(0, ddof=1)
        se_m, se_v = np.sqrt(v / N), np.sqrt(((y - m) ** 4).mean(0) - v * v) / math.sqrt(N)
        r = net.moments(x.numpy(), sigma2=sigma2, method="propagate")
        return r, m, v, se_m, se_v

    def test_mlp(self):
        import torch.nn as tn
        r, m, v, se_m, se_v = self.check_module(tn.Sequential(tn.Linear(8, 16), tn.ReLU(), tn.Linear(16, 3)), (1, 8), 0.5)
        # an (Affine, ReLU, Affine) net: propagate is exact
        self.assertTrue(np.all(np.abs(r.mean - m) <= NSE * se_m) and np.all(np.abs(r.var - v) <= NSE * se_v), (r.mean, m, r.var, v))

    def test_conv_pool(self):
        import torch.nn as tn
        r, m, v, se_m, se_v = self.check_module(tn.Sequential(tn.Conv2d(1, 3, 3), tn.MaxPool2d(2), tn.Flatten()), (1, 1, 8, 8), 0.3)
        # the max of four jointly Gaussian inputs is exact (Tallis, trivariate normal cdf)
        self.assertTrue(np.all(np.abs(r.mean - m) <= NSE * se_m) and np.all(np.abs(r.var - v) <= NSE * se_v), (r.mean, m, r.var, v))

    def test_conv_relu(self):
        import torch.nn as tn
        mod = tn.Sequential(tn.Conv2d(1, 2, 3), tn.ReLU(), tn.Flatten(), tn.Linear(2 * 6 * 6, 3))
        r, m, v, se_m, se_v = self.check_module(mod, (1, 1, 8, 8), 0.5)
        # (Affine, ReLU, Affine) with a conv below: exact pairs at the ReLU
        self.assertTrue(np.all(np.abs(r.mean - m) <= NSE * se_m) and np.all(np.abs(r.var - v) <= NSE * se_v), (r.mean, m, r.var, v))


if __name__ == "__main__":
    unittest.main(verbosity=2)
