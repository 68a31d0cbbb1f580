#!/usr/bin/env bash
# CLI contract of `netmoments tightness` and `linpoints`: the synthetic experiment writes the
# CSV with the issue's columns (one row per run and output), slopes.md and
# each figure as PNG and SVG; the LeNet experiment writes Table 1 with a row
# per logit; linpoints writes Table 3 for each k and point; bad options exit
# non-zero with one line on stderr.
set -u
source "$(dirname "$0")/cli_lib.sh" "$@"
need_mnist

"$nm" tightness --help | grep -q 'synthetic' && ok || bad "tightness --help"
"$nm" tightness synthetic --nets fc-a,conv-a --regimes medium --runs 5 --mc 2000 --out "$dir/s" >/dev/null && ok || bad "synthetic runs"
[ "$(head -1 "$dir/s/tightness-synthetic.csv")" = "net,regime,run,output,analytic_mean,mc_mean,analytic_var_paper,analytic_var_exact,mc_var,analytic_mean_propagate,analytic_var_propagate" ] && ok || bad "CSV header"
[ "$(wc -l < "$dir/s/tightness-synthetic.csv")" = 11 ] && ok || bad "CSV: 2 nets x 5 runs"
for f in fc-a conv-a; do
  head -c 8 "$dir/s/fig2-$f-medium.png" | grep -q PNG && ok || bad "fig2-$f-medium.png"
  grep -q '<svg' "$dir/s/fig2-$f-medium.svg" && ok || bad "fig2-$f-medium.svg"
done
grep -q '| conv-a | medium |' "$dir/s/slopes.md" && ok || bad "slopes.md"
# FC-A and Conv-A have no ReLU above their one ReLU: nothing there can change state
[ "$(grep -c -- '-a | medium |.*| 0.0 % |$' "$dir/s/slopes.md")" = 2 ] && ok || bad "slopes.md: no ReLU above the split of FC-A, Conv-A"
"$nm" tightness lenet --runs 3 --mc 1000 --out "$dir/l" >/dev/null && ok || bad "lenet runs"
[ "$(grep -c '^| [0-9] |' "$dir/l/table1.md")" = 10 ] && ok || bad "Table 1 has 10 logits"
"$nm" linpoints --k 2,5 --baseline --images 3 --mc 500 --out "$dir/p" >/dev/null 2>&1 && ok || bad "linpoints runs"
[ "$(grep -c '^| [0-9] |' "$dir/p/table3.md")" = 20 ] && ok || bad "Table 3 has 10 logits, and propagate's table 10"
[ "$(wc -l < "$dir/p/table3.csv")" = 41 ] && ok || bad "table3.csv: 2 k x 2 points x 10 logits"
head -1 "$dir/p/table3.csv" | grep -q ',E_Eratio_propagate,E_varratio_propagate$' && ok || bad "table3.csv: propagate's columns"
# propagate has no linearization point: the same on every (k, point) row, and tight on LeNet (3 digits x 500 samples: a
# variance ratio's standard error about 4 %)
[ "$(tail -n +2 "$dir/p/table3.csv" | cut -d, -f3,7,8 | sort -u | wc -l)" = 10 ] && ok || bad "propagate's ratios the same for every k"
awk -F, 'NR > 1 && !($8 > 0.8 && $8 < 1.2 && $7 > 0.8 && $7 < 1.25) { exit 1 }' "$dir/p/table3.csv" && ok || bad "propagate's ratios near 1"
"$nm" linpoints --k 2,100% --baseline --no-propagate --images 2 --mc 200 --out "$dir/q" >/dev/null 2>&1 && ok || bad "linpoints at k = 100%"
[ "$(cut -d, -f1,2 "$dir/q/table3.csv" | sort -u | grep -c baseline)" = 1 ] && ok || bad "no baseline at k = every digit"
[ "$(grep -c '^| [0-9] |' "$dir/q/table3.md")" = 10 ] && tail -1 "$dir/q/table3.csv" | grep -q ',,$' && ok || bad "--no-propagate: no propagate columns"
expect_error "bad --k" linpoints --k 0 --out "$dir/p"
expect_error "k above the digits" linpoints --k 5000 --out "$dir/p"
expect_error "reproduce without --out" reproduce --quick
expect_error "no --out" tightness synthetic --runs 5
expect_error "bad --nets" tightness synthetic --nets fc-z --out "$dir/x"
"$nm" tightness synthetic --nets fc-a --regimes low --runs 3 --mc 100 --out "$dir/n/e/s/t" >/dev/null && [ -s "$dir/n/e/s/t/slopes.md" ] && ok || bad "--out creates parent directories"
expect_error "--out under a file" tightness synthetic --nets fc-a --runs 3 --mc 100 --out /dev/null/x
expect_error "negative --bias-sd" tightness synthetic --bias-sd -1 --out "$dir/x"
expect_error "bad --regime" tightness lenet --regime extreme --out "$dir/x"
expect_error "no experiment" tightness

finish cli_tightness
