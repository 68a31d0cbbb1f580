#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# SECONDS (default 60) with a 2 GB RSS limit, seeded with the ONNX
# conformance models, the reproducers of tests/reliability and the inputs
# earlier runs crashed on (tests/fuzz_regressions): fuzz_onnx (the ONNX
# loader and a pass over what loads), fuzz_npy (read, convert, write and read
# back), fuzz_idx (images and labels, plain and gzipped), fuzz_moments (the
# moment calls and a short Monte Carlo on a small net, fuzzed means and
# covariances). Exit status non-zero on any crash, leak, UB or broken rule;
# the input that did it is in build-fuzz/<target>-crash-*.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(onnx npy idx moments)
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNM_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")
seed() { # seed TARGET: the corpus directory, filled
  local c=build-fuzz/corpus-$1 i=0
  mkdir -p "$c"
  case $1 in
    onnx)
      for m in /usr/share/libonnx-testdata/data/{node,pytorch-converted,pytorch-operator,simple}/*/model.onnx; do cp "$m" "$c/seed$i.onnx"; i=$((i + 1)); done
      cp tests/reliability/*.onnx "$c/" ;;
    npy) cp tests/reliability/*.npy "$c/" ;;
    idx) # the first byte splits images from labels (and sets gzip): a 2-image 4x4 set, and the lying headers
      { printf '\x2a\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x04'; head -c 32 /dev/zero;
        printf '\x00\x00\x08\x01\x00\x00\x00\x02\x03\x07'; } > "$c/tiny"
      { printf '\x60'; cat tests/reliability/claim_img.idx tests/reliability/lab1.idx; } > "$c/claim"
      { printf '\x50'; cat tests/reliability/idx_mul_overflow.idx tests/reliability/lab1.idx; } > "$c/mul" ;;
  esac
  [ -d tests/fuzz_regressions/$1 ] && cp tests/fuzz_regressions/$1/* "$c/" 2>/dev/null || true
  [ "$1" = onnx ] && cp tests/fuzz_regressions/*.onnx "$c/" 2>/dev/null || true
  echo "$c"
}
fail=0
for t in "${targets[@]}"; do
  corpus=$(seed "$t")
  echo "fuzz_$t: $(ls "$corpus" | wc -l) seeds, ${secs} s"
  # fuzz_moments reads models from the source tree: run from it
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
      build-fuzz/fuzz_"$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix=build-fuzz/"$t"- "$corpus" > build-fuzz/"$t".log 2>&1; then
    fail=1
    tail -n 40 build-fuzz/"$t".log
  else
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' build-fuzz/"$t".log || tail -n 5 build-fuzz/"$t".log
  fi
done
exit $fail
