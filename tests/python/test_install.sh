#!/usr/bin/env bash
# The Python package installed the ecosystem's way, without network: `cmake --install` of the build into a venv
# (which puts libnetmoments.so in <venv>/lib, where the package looks: sys.prefix/lib) and `pip install
# --no-build-isolation ./python` into it; then, from another directory, with neither PYTHONPATH nor NETMOMENTS_LIB,
# the package imports, finds that library and the installed model, and computes moments.
#   test_install.sh PYTHON BUILD_DIR
set -eu
py="$1"; build="$2"; src=$(pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$py" -m venv --system-site-packages "$tmp/venv"
cmake --install "$build" --prefix "$tmp/venv" >/dev/null
cp -r "$src/python" "$tmp/pkg"  # pip builds in the source folder: keep the tree clean
"$tmp/venv/bin/python" -m pip install --no-build-isolation --no-deps --no-index -q "$tmp/pkg" 2>&1 | grep -v "^$" || true
cd "$tmp"
env -u PYTHONPATH -u NETMOMENTS_LIB -u NETMOMENTS_MODEL "$tmp/venv/bin/python" - "$tmp/venv" <<'PY'
import os, sys
import numpy as np
import netmoments as nm
venv = os.path.realpath(sys.argv[1])
assert os.path.realpath(nm.library_path).startswith(venv), nm.library_path
assert os.path.realpath(nm.__file__).startswith(venv), nm.__file__
net = nm.load(nm.default_model())
assert os.path.realpath(net.source).startswith(venv), net.source
r = net.moments(np.random.default_rng(1).normal(0, 60, net.input_shape), sigma2=1.0)
assert r.mean.shape == (10,) and np.all(np.isfinite(r.var)) and r.var.sum() > 0, r.var
print("pip-installed netmoments: library", nm.library_path, "model", net.source)
PY
