#!/usr/bin/env bash
# CLI contract of `netmoments ara`: --help, a JSON object with the issue's
# keys whose exact method agrees with its own Monte Carlo (|z| < 5 using the
# sample standard error), and bad input answered by a non-zero exit with one
# line on stderr.
set -u
source "$(dirname "$0")/cli_lib.sh" "$@"

"$nm" --help >/dev/null && ok || bad "--help"
"$nm" ara --help | grep -q -- '--sigma2' && ok || bad "ara --help"
"$nm" ara-example --out "$dir" --n 30 --p 20 --d 3 --seed 4 >/dev/null && ok || bad "ara-example"
args=(--A "$dir/A.npy" --c1 "$dir/c1.npy" --B "$dir/B.npy" --c2 "$dir/c2.npy" --mu "$dir/mu.npy")

out=$("$nm" ara "${args[@]}" --sigma2 0.5 --mc 400000 --seed 9 --json) || bad "ara --json"
for key in mean var time_analytic_s mc_mean mc_var mc_samples seed time_mc_s; do
  echo "$out" | grep -q "\"$key\":" && ok || bad "json key $key"
done
[ "$(echo "$out" | wc -l)" = 1 ] && ok || bad "one JSON line"
# analytic vs MC: mean within 5 SE (SE = sqrt(mc_var/N)); var within 5% (N = 4e5)
echo "$out" | awk -v RS=',"' '
  /^mean"/    { gsub(/.*\[|\].*/, ""); n = split($0, m, ",") }
  /^var"/     { gsub(/.*\[|\].*/, ""); split($0, v, ",") }
  /^mc_mean"/ { gsub(/.*\[|\].*/, ""); split($0, mm, ",") }
  /^mc_var"/  { gsub(/.*\[|\].*/, ""); split($0, mv, ",") }
  END { bad = 0
        for (i = 1; i <= n; i++) {
          se = sqrt(mv[i] / 400000); z = (m[i] - mm[i]) / se
          if (z > 5 || z < -5) bad = 1
          r = mv[i] / v[i]; if (r > 1.05 || r < 0.95) bad = 1 }
        exit bad }' && ok || bad "CLI exact vs MC"

expect_error "no covariance" ara "${args[@]}"
expect_error "two covariances" ara "${args[@]}" --sigma2 1 --var "$dir/mu.npy"
expect_error "negative sigma2" ara "${args[@]}" --sigma2 -1
expect_error "missing file" ara --A /nonexistent.npy --c1 "$dir/c1.npy" --B "$dir/B.npy" --c2 "$dir/c2.npy" --mu "$dir/mu.npy" --sigma2 1
expect_error "shape mismatch" ara --A "$dir/A.npy" --c1 "$dir/c2.npy" --B "$dir/B.npy" --c2 "$dir/c2.npy" --mu "$dir/mu.npy" --sigma2 1
expect_error "bad method" ara "${args[@]}" --sigma2 1 --method nope
expect_error "non-square cov" ara "${args[@]}" --cov "$dir/A.npy"
expect_error "unknown subcommand" frobnicate
head -c 100 "$dir/A.npy" > "$dir/trunc.npy"
expect_error "truncated npy" ara --A "$dir/trunc.npy" --c1 "$dir/c1.npy" --B "$dir/B.npy" --c2 "$dir/c2.npy" --mu "$dir/mu.npy" --sigma2 1

finish cli_ara
