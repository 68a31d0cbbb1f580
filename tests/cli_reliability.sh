#!/usr/bin/env bash
# CLI contract of issue 12: every hostile input of tests/reliability gets a
# non-zero exit with one line on stderr, within 2 s and under 600 MB RSS
# (measured with /usr/bin/time when it is there); numbers that overflow
# float32 or double are refused, never printed as results; integers are
# range-checked; outputs are written whole: a symlink is replaced, not
# written through, a failed write leaves the old file, a second run into a
# locked directory is refused, a failed run leaves nothing behind.
set -u
source "$(dirname "$0")/cli_lib.sh" "$@"
need_mnist
R=tests/reliability
max_kb=$((600 * 1024))
# the 2 s limit, scaled under sanitizers (CMake sets NM_TIME_SCALE there: ASan makes the passes several times slower)
max_ms=$((2000 * ${NM_TIME_SCALE:-1}))

# refused ARGS...: non-zero exit, one line, within 2 s, under 600 MB
refused() {
  local what="$1"; shift
  local t0 t1 err kb=0
  t0=$(date +%s%N)
  if [ -x /usr/bin/time ]; then
    err=$(/usr/bin/time -f '%M' -o "$dir/rss" timeout $((5 * ${NM_TIME_SCALE:-1})) "$nm" "$@" 2>&1 >/dev/null); rc=$?
    kb=$(tail -1 "$dir/rss" | tr -dc 0-9)
  else
    err=$(timeout $((5 * ${NM_TIME_SCALE:-1})) "$nm" "$@" 2>&1 >/dev/null); rc=$?
  fi
  t1=$(date +%s%N)
  local ms=$(( (t1 - t0) / 1000000 ))
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && [ "${err#netmoments: }" != "$err" ] \
     && [ $ms -lt $max_ms ] && [ "${kb:-0}" -lt $max_kb ]; then ok; echo "  refused in $ms ms, ${kb:-?} KB: $what"
  else bad "$what: rc=$rc ${ms} ms ${kb} KB stderr='$err'"; fi
}

for f in conv_dil_huge conv_pads_int64 pool_pads_int64 pad_int64_2 pad_huge bcast_bomb; do
  refused "info $f.onnx" info --model $R/$f.onnx
done
refused "forward pad_huge.onnx on x8.npy" forward --model $R/pad_huge.onnx --input $R/x8.npy --output "$dir/y.npy"
refused "moments on x1e50.npy, operator path" moments --input $R/x1e50.npy --sigma2 0.01 --path operator
refused "forward on x1e50.npy" forward --input $R/x1e50.npy --output "$dir/y.npy"
mkdir -p "$dir/data/mnist"
cp $R/claim_img.idx "$dir/data/mnist/test-images-idx3-ubyte.gz"; cp $R/lab1.idx "$dir/data/mnist/test-labels-idx1-ubyte.gz"
NETMOMENTS_DATA="$dir/data" refused "eval on claim_img.idx (78 GB claimed)" eval
cp $R/idx_mul_overflow.idx "$dir/data/mnist/test-images-idx3-ubyte.gz"
NETMOMENTS_DATA="$dir/data" refused "eval on idx_mul_overflow.idx" eval
refused "Monte Carlo with sigma2 1e80" moments --image 0 --sigma2 1e80 --mc 200
refused "single precision with sigma2 1e46" moments --image 0 --sigma2 1e46 --precision single
refused "a window at 2^63-1" moments --image 0 --sigma2 1 --window 9223372036854775807,9223372036854775807,1,1
refused "--mem 1e30" moments --image 0 --sigma2 1 --mem 1e30
"$nm" moments --image 0 --sigma2 1e80 --mc 200 2>&1 | grep -q -- '--mc: ' && ok || bad "the Monte Carlo's refusal names --mc"
"$nm" moments --input $R/x1e50.npy --sigma2 0.01 2>&1 | grep -q -- '--input: .*float32' && ok || bad "x1e50: names --input"

# integers into their types
"$nm" moments --image 0 --sigma2 1 --mc 100 --seed 18446744073709551615 | grep -q 'seed 18446744073709551615' && ok || bad "a uint64 seed"
"$nm" moments --image 0 --sigma2 1 --split-relu 2147483648 2>&1 | grep -q "'2147483648'" && ok || bad "--split-relu 2147483648 echoed as given"
expect_error "--split-relu beyond int" moments --image 0 --sigma2 1 --split-relu 2147483648

# npy FILE N: N images (N, 1, 28, 28) of float32 zeros, from the NPY format
npy() {
  perl -e 'my ($f, $n) = @ARGV; my $h = "{\x27descr\x27: \x27<f4\x27, \x27fortran_order\x27: False, \x27shape\x27: ($n, 1, 28, 28), }";
    $h .= " " x (63 - (10 + length($h)) % 64) . "\n"; open(my $o, ">:raw", $f) or die;
    print $o "\x93NUMPY\x01\x00", pack("v", length $h), $h, pack("f<", 0) x (784 * $n)' "$1" "$2"
}
npy "$dir/x1.npy" 1; npy "$dir/x100.npy" 100

# a symlink at --output is replaced, its target left alone
echo keep > "$dir/target"; ln -s "$dir/target" "$dir/link.npy"
"$nm" forward --input "$dir/x1.npy" --output "$dir/link.npy" 2>/dev/null && ok || bad "forward into a symlink's path"
[ "$(cat "$dir/target")" = keep ] && [ ! -L "$dir/link.npy" ] && [ -s "$dir/link.npy" ] && ok || bad "the symlink replaced, the target kept"

# a write cut short (a 1 KiB file-size limit) leaves the old file and no temporary
"$nm" forward --input "$dir/x1.npy" --output "$dir/y.npy" 2>/dev/null
sum=$(md5sum < "$dir/y.npy")
(trap '' XFSZ; ulimit -f 1; "$nm" forward --input "$dir/x100.npy" --output "$dir/y.npy") >/dev/null 2>&1 && bad "a cut-short write succeeded" || ok
[ "$(md5sum < "$dir/y.npy")" = "$sum" ] && ok || bad "the old y.npy kept"
ls -a "$dir" | grep -q 'tmp-' && bad "a temporary file left" || ok
(trap '' XFSZ; ulimit -f 1; "$nm" ara-example --out "$dir/ex2" --n 784 --p 256 --d 10) >/dev/null 2>&1 && bad "a cut-short ara-example succeeded" || ok
[ -z "$(ls -A "$dir/ex2" 2>/dev/null)" ] && ok || bad "a failed ara-example left files: $(ls -A "$dir/ex2")"

# a locked directory is refused; a stale lock is taken over; a failed run leaves nothing
mkdir -p "$dir/locked"; echo $$ > "$dir/locked/.netmoments.lock"
expect_error "a directory locked by a live run" tightness synthetic --nets fc-a --regimes low --runs 3 --mc 100 --out "$dir/locked"
"$nm" tightness synthetic --nets fc-a --regimes low --runs 3 --mc 100 --out "$dir/locked" 2>&1 | grep -q 'in use by another netmoments run' && ok || bad "says why"
pid=99999999; echo $pid > "$dir/locked/.netmoments.lock"
"$nm" tightness synthetic --nets fc-a --regimes low --runs 3 --mc 100 --out "$dir/locked" >/dev/null 2>&1 && ok || bad "a stale lock taken over"
[ -s "$dir/locked/slopes.md" ] && [ ! -e "$dir/locked/.netmoments.lock" ] && ok || bad "the run completed and released the lock"
expect_error "linpoints with an impossible k" linpoints --k 99999 --images 3 --mc 100 --out "$dir/failed"
[ -z "$(ls -A "$dir/failed")" ] && ok || bad "a failed run left: $(ls -A "$dir/failed")"

# long options are spelled out: getopt_long's abbreviations took --sigma for --sigma2
expect_error "--sigma, an abbreviation" moments --image 0 --sigma 1
"$nm" moments --image 0 --sigma 1 2>&1 | grep -q -- "--sigma" && ok || bad "the abbreviation is named"
expect_error "--m, an abbreviation" moments --image 0 --sigma2 1 --m 100

# a split whose covariance S cannot fit the budget is refused before the passes, saying what to do
expect_error "S beyond the budget" moments --image 0 --sigma2 1 --split-relu 1 --mem 0.2
"$nm" moments --image 0 --sigma2 1 --split-relu 1 --mem 0.2 2>&1 | grep -q 'choose a split point with fewer units, or none' && ok || bad "says what to do"

finish cli_reliability
