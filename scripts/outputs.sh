#!/usr/bin/env bash
# Writes the outputs a refactor must keep identical (issue 11: moments JSON
# for every covariance kind, method, precision and both ways of applying A;
# the linearization's NPY files; tightness synthetic / lenet and linpoints
# tables and figures at small sizes; the built-in and synthetic nets' ONNX
# bytes), all for fixed seeds, into OUT, and their md5 sums into OUT/md5.
# Timings are stripped from the JSON. Compare two trees with
#   bash scripts/outputs.sh build-old /tmp/a; bash scripts/outputs.sh build /tmp/b; diff /tmp/a/md5 /tmp/b/md5
#   bash scripts/outputs.sh BUILD_DIR OUT
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "$1" && pwd); out="$2"
nm="$build/netmoments"
rm -rf "$out"; mkdir -p "$out"
cc -O1 -fopenmp -Iinclude scripts/builtin_nets.c "$build/libnetmoments.a" $(pkg-config --libs libprotobuf-c openblas lapacke zlib cairo) -lm -o "$out/builtin_nets"
"$out/builtin_nets" "$out"
rm "$out/builtin_nets"
strip_times() { sed -E 's/,"time[a-z_]*":[-0-9.e+]+//g; s/"time[a-z_]*":[-0-9.e+]+,//g'; }
m() { local name="$1"; shift; "$nm" moments "$@" --json 2>/dev/null | strip_times > "$out/moments-$name.json"; }
m all        --image 0 --sigma2 1 --method all --mc 3000 --seed 2
m operator   --image 1 --sigma2 1 --method all --path operator
m window     --image 2 --sigma2 4 --window 5,6,7,7 --method all --mc 2000
m single     --image 3 --sigma2 1 --precision single --covariance
m split1     --image 4 --sigma2 0.5 --split-relu 1 --method all --covariance --mc 1000
m split2op   --image 4 --sigma2 0.5 --split-relu 2 --path operator
"$nm" moments --image 5 --sigma2 1 --save-lin "$out/lin" --json >/dev/null
# a variance file (784) and a full covariance 0.3 I + 0.2 v v^T, v_i = sin(i), as float64 NPY
npy() { # npy FILE SHAPE PERL-EXPR-OF-i COUNT
  perl -e 'my ($f, $shape, $n) = @ARGV; my $h = "{\x27descr\x27: \x27<f8\x27, \x27fortran_order\x27: False, \x27shape\x27: $shape, }";
    $h .= " " x (63 - (10 + length($h)) % 64) . "\n"; open(my $o, ">:raw", $f) or die;
    print $o "\x93NUMPY\x01\x00", pack("v", length $h), $h;
    for my $i (0 .. $n - 1) { print $o pack("d<", eval $ENV{NPY_EXPR}) }' "$1" "$2" "$3"; }
NPY_EXPR='0.5 + ($i % 7) / 10' npy "$out/var.npy" '(784,)' 784
NPY_EXPR='my ($r, $c) = (int($i / 784), $i % 784); ($r == $c ? 0.3 : 0) + 0.2 * sin($r) * sin($c)' npy "$out/cov.npy" '(784, 784)' 614656
m var        --image 6 --var "$out/var.npy" --method all --mc 1000
m cov        --image 7 --cov "$out/cov.npy" --method all --mc 1000
m covop      --image 7 --cov "$out/cov.npy" --path operator
rm "$out/cov.npy"
"$nm" ara-example --out "$out/ara" --seed 3 >/dev/null 2>&1 || true
if [ -f "$out/ara/A.npy" ]; then
  for meth in paper exact delta; do
    "$nm" ara --A "$out/ara/A.npy" --c1 "$out/ara/c1.npy" --B "$out/ara/B.npy" --c2 "$out/ara/c2.npy" --mu "$out/ara/mu.npy" \
      --sigma2 0.7 --method $meth --mc 2000 --json | strip_times > "$out/ara-$meth.json"
  done
fi
"$nm" tightness synthetic --runs 3 --mc 1500 --seed 5 --out "$out/syn" >/dev/null 2>&1
"$nm" tightness lenet --runs 3 --mc 1000 --seed 6 --out "$out/t1" >/dev/null 2>&1
sed -i -E 's/ Time [0-9.]+ s\.//' "$out/t1/table1.md"
"$nm" linpoints --k 5,100 --images 4 --mc 500 --baseline --seed 7 --out "$out/t3" >/dev/null 2>&1
(cd "$out" && find . -type f ! -name md5 | sort | xargs md5sum) > "$out/md5"
echo "wrote $(wc -l < "$out/md5") outputs into $out (md5 sums in $out/md5)"
