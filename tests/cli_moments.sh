#!/usr/bin/env bash
# CLI contract of `netmoments moments` on the shipped LeNet and held-out
# digits: --help; the JSON keys of the issue for one method and for all,
# with exact within 5 standard errors of the CLI's own Monte Carlo of the
# real network at small noise; the table; --save-lin writing A (1024 x 784),
# c1, B, c2; a window; and bad input (split out of range, wrong input shape,
# negative sigma^2, both or neither of --input/--image) answered by a
# non-zero exit with one line on stderr.
set -u
source "$(dirname "$0")/cli_lib.sh" "$@"
need_mnist

"$nm" moments --help | grep -q -- '--split-relu' && ok || bad "moments --help"
out=$("$nm" moments --image 3 --sigma2 1e-4 --mc 20000 --seed 4 --json) && ok || bad "moments --json"
for key in mean var time_analytic_s mc_mean mc_var mc_samples seed time_mc_s relu_changed_below relu_changed_above; do
  echo "$out" | grep -q "\"$key\":" && ok || bad "json key $key"
done
# exact vs its own Monte Carlo: means and variances within 5 standard errors.
# At noise this small both sides carry float32 rounding of the forward pass,
# about 1e-5 of the largest logit, which the mean's tolerance adds to its SE.
echo "$out" | awk -v RS=',"' '
  /^mean"/      { gsub(/.*\[|\].*/, ""); n = split($0, m, ",") }
  /^var"/       { gsub(/.*\[|\].*/, ""); split($0, v, ",") }
  /^mc_mean"/   { gsub(/.*\[|\].*/, ""); split($0, mm, ",") }
  /^mc_var"/    { gsub(/.*\[|\].*/, ""); split($0, mv, ",") }
  /^mc_mean_se"/ { gsub(/.*\[|\].*/, ""); split($0, ms, ",") }
  /^mc_var_se"/ { gsub(/.*\[|\].*/, ""); split($0, vs, ",") }
  END { bad = 0; big = 0
        for (i = 1; i <= n; i++) { a = m[i] < 0 ? -m[i] : m[i]; if (a > big) big = a }
        for (i = 1; i <= n; i++) {
          z = (m[i] - mm[i]) / (ms[i] + 1e-5 * big); if (z > 5 || z < -5) bad = 1
          z = (v[i] - mv[i]) / vs[i]; if (z > 5 || z < -5) bad = 1 }
        exit bad || n != 10 }' && ok || bad "exact vs MC within 5 SE: $out"
# split at the last ReLU, only a Linear layer lies above it: no ReLU there can change state
echo "$out" | grep -q '"relu_changed_above":0[,}]' && ok || bad "no ReLU above the last split"
all=$("$nm" moments --image 0 --sigma2 1 --method all --json) && ok || bad "--method all"
for key in paper exact delta time_analytic_s; do echo "$all" | grep -q "\"$key\":" && ok || bad "all: key $key"; done
echo "$all" | grep -q "\"time_s\":" && bad "all: a time_s key (one name: time_analytic_s)" || ok
"$nm" moments --image 0 --sigma2 1 | grep -q 'analytic (exact' && ok || bad "table"
"$nm" moments --image 0 --sigma2 1 --window 10,10,7,7 >/dev/null && ok || bad "--window"
"$nm" moments --image 0 --sigma2 1 --save-lin "$dir/lin" >/dev/null && ok || bad "--save-lin"
for f in A c1 B c2; do [ -s "$dir/lin/$f.npy" ] && ok || bad "--save-lin wrote $f.npy"; done
head -c 128 "$dir/lin/A.npy" | grep -q "'shape': (1024, 784)" && ok || bad "A is 1024 x 784"
cv=$("$nm" moments --image 1 --sigma2 1 --covariance --mc 2000 --json) && echo "$cv" | grep -q '"cov":' && echo "$cv" | grep -q '"mc_cov":' && ok || bad "--covariance"
# the covariance's diagonal is the variance
echo "$cv" | awk -v RS=',"' '/^var"/ { gsub(/.*\[|\].*/, ""); split($0, v, ",") } /^cov"/ { gsub(/.*\[|\].*/, ""); split($0, c, ",") }
  END { for (i = 1; i <= 10; i++) { r = c[(i - 1) * 11 + 1] / v[i]; if (r < 0.999999 || r > 1.000001) exit 1 } }' && ok || bad "diag(cov) = var"

expect_error "split out of range" moments --image 0 --sigma2 1 --split-relu 4
expect_error "negative sigma2" moments --image 0 --sigma2 -1
expect_error "no input" moments --sigma2 1
expect_error "two inputs" moments --image 0 --input "$dir/lin/c1.npy" --sigma2 1
expect_error "wrong input shape" moments --input "$dir/lin/c1.npy" --sigma2 1
expect_error "image out of range" moments --image 5000 --sigma2 1
expect_error "window outside" moments --image 0 --sigma2 1 --window 25,25,7,7
expect_error "two covariances" moments --image 0 --sigma2 1 --var "$dir/lin/c1.npy"

# --split-relu none: the whole net linearized at mu, which is the delta method's linearization
none=$("$nm" moments --image 0 --sigma2 1 --split-relu none --json | grep -o '"var":\[[^]]*\]')
delta=$("$nm" moments --image 0 --sigma2 1 --method delta --json | grep -o '"var":\[[^]]*\]')
# (equal up to float32 rounding: the two take the Jacobian through different passes)
paste <(echo "$none" | tr -d '"var:[]' | tr , '\n') <(echo "$delta" | tr -d '"var:[]' | tr , '\n') \
  | awk 'NF == 2 { n++; r = ($1 - $2) / $2; if (r < 0) r = -r; if (r > 1e-6) bad = 1 } END { exit bad || n != 10 }' \
  && ok || bad "--split-relu none = delta within 1e-6: '$none' vs '$delta'"
expect_error "--split-relu nine" moments --image 0 --sigma2 1 --split-relu nine

# method propagate: in --method all; --rank reports how much variance it moved off the columns
echo "$all" | grep -q '"propagate":{' && ok || bad "all: propagate"
rk=$("$nm" moments --image 0 --sigma2 1 --method propagate --rank 200 --json) && ok || bad "--rank 200"
echo "$rk" | grep -Eq '"rank_moved":0\.[0-9]' && ok || bad "--rank: rank_moved in (0, 1): $rk"
expect_error "--rank 0" moments --image 0 --sigma2 1 --method propagate --rank 0
expect_error "--dense-max -1" moments --image 0 --sigma2 1 --method propagate --dense-max -1

finish cli_moments
