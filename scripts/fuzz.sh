#!/usr/bin/env bash
# Builds the libFuzzer target for the ONNX loader with clang (ASan + UBSan)
# and runs it for SECONDS (default 60) on a seed corpus of the ONNX
# conformance models. Exit status non-zero on any crash, leak or UB.
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNM_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_onnx
corpus=build-fuzz/corpus
mkdir -p "$corpus"
i=0
for m in /usr/share/libonnx-testdata/data/{node,pytorch-converted,pytorch-operator,simple}/*/model.onnx; do
  cp "$m" "$corpus/seed$i.onnx"; i=$((i + 1))
done
for m in tests/fuzz_regressions/*; do cp "$m" "$corpus/regression-$(basename "$m")"; i=$((i + 1)); done
echo "fuzz: $i seed models, ${secs} s"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
  build-fuzz/fuzz_onnx -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
  -print_final_stats=1 -artifact_prefix=build-fuzz/ "$corpus" 2>&1 | tail -n 25
