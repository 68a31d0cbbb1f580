#!/usr/bin/env bash
# CLI contract of `netmoments uap`, `fooling` and `sensitivity` on the
# shipped LeNet and a few held-out digits: --help, the files each writes and
# their columns, a perturbation of the wrong shape, a window larger than the
# image, NaN and bad options refused with one line on stderr, nothing left
# behind by a failed run. (The numbers are checked by test_adversarial and
# test_experiments against independent computations.)
set -u
source "$(dirname "$0")/cli_lib.sh" "$@"
need_mnist

npy() { # npy PATH SHAPE COUNT WORD: a float32 NPY of COUNT copies of the 4-byte WORD
  local hdr="{'descr': '<f4', 'fortran_order': False, 'shape': $2, }"
  while [ $(( (10 + ${#hdr} + 1) % 64 )) -ne 0 ]; do hdr="$hdr "; done
  { printf '\223NUMPY\001\000'; printf "\\$(printf '%03o' $(( (${#hdr} + 1) % 256 )))\\$(printf '%03o' $(( (${#hdr} + 1) / 256 )))";
    printf '%s\n' "$hdr"; for ((i = 0; i < $3; i++)); do printf "$4"; done; } > "$1"
}

for c in uap fooling sensitivity; do "$nm" $c --help | grep -q -- '--model' && ok || bad "$c --help"; done

# uap on a few training digits
out=$("$nm" uap --images 20 --passes 2 --xi 500 --out "$dir/v.npy") && ok || bad "uap runs: $out"
echo "$out" | grep -q '^pass 1: fooling rate' && [ -s "$dir/v.npy" ] && ok || bad "uap prints the rate per pass and writes the NPY: $out"
head -c 128 "$dir/v.npy" | grep -q "'shape': (1, 1, 28, 28)" && ok || bad "uap's NPY has the model's input shape"

# fooling with it
out=$("$nm" fooling --perturbation "$dir/v.npy" --images 12 --spread --mc 200 --flip --out "$dir/f") && ok || bad "fooling runs: $out"
"$nm" fooling --images 2 --mc 50 --out "$dir/f2" >/dev/null && [ -s "$dir/f2/fooling.csv" ] && ok || bad "fooling --mc without --flip"
for f in fooling.csv fooling.json fooling.md flip-calibration.png flip-calibration.svg; do [ -s "$dir/f/$f" ] && ok || bad "fooling writes $f"; done
head -1 "$dir/f/fooling.csv" | grep -q '^image,label,clean,perturbed,predicted,fooled_real,fooled_predicted,topk_match_1,topk_match_2,topk_match_3,topk_match_4,topk_match_5,' && ok || bad "fooling.csv columns"
[ "$(wc -l < "$dir/f/fooling.csv")" = 13 ] && ok || bad "fooling.csv has a row per image"
grep -q '"fooling_rate_real"' "$dir/f/fooling.json" && grep -q '"topk_accuracy"' "$dir/f/fooling.json" && grep -q '"flip_mae_pp"' "$dir/f/fooling.json" && ok || bad "fooling.json keys"
grep -q '38.70' "$dir/f/fooling.md" && ok || bad "fooling.md gives the paper's figures beside ours"
npy "$dir/short.npy" '(1, 100)' 100 '\000\000\200\077'
expect_error "perturbation of the wrong shape" fooling --perturbation "$dir/short.npy" --images 2 --out "$dir/g"
[ ! -e "$dir/g/fooling.csv" ] && ok || bad "a refused run leaves no output"
npy "$dir/nan.npy" '(1, 1, 28, 28)' 784 '\000\000\300\177'
expect_error "NaN perturbation" fooling --perturbation "$dir/nan.npy" --images 2 --out "$dir/g"
expect_error "bad --images" fooling --images 0 --out "$dir/g"
expect_error "bad --topk" fooling --topk 11 --images 2 --out "$dir/g"

# sensitivity
out=$("$nm" sensitivity --images 4 --window 7 --stride 3 --flip --verify 3 --mc 200 --out "$dir/s") && ok || bad "sensitivity runs: $out"
for f in sensitivity.npy sensitivity-images.npy sensitivity.csv sensitivity.json flip.npy flip-images.npy verify.csv fig3.png fig3.svg; do
  [ -s "$dir/s/$f" ] && ok || bad "sensitivity writes $f"; done
head -c 128 "$dir/s/sensitivity-images.npy" | grep -q "'shape': (4, 8, 8)" && ok || bad "sensitivity-images.npy is (images, P, Q)"
head -c 128 "$dir/s/sensitivity.npy" | grep -q "'shape': (10, 8, 8)" && ok || bad "sensitivity.npy is (classes, P, Q)"
head -1 "$dir/s/sensitivity.csv" | grep -q '^class,row,col,rate,flip$' && ok || bad "sensitivity.csv columns"
echo "$out" | grep -q 'positions/s' && echo "$out" | grep -q '^verify: 3 pairs' && ok || bad "sensitivity prints its speed and the verification"
expect_error "window larger than the image" sensitivity --images 1 --window 29 --out "$dir/t"
expect_error "bad window" sensitivity --window 0x3 --out "$dir/t"
expect_error "missing --out" sensitivity --images 1
[ ! -e "$dir/t/sensitivity.npy" ] && ok || bad "a refused sensitivity run leaves no output"

# attack targeted (digit 3 is a 0 in the held-out order: its label is 0)
"$nm" attack --help | grep -q -- '--target' && ok || bad "attack --help"
out=$("$nm" attack targeted --image 3 --target 8 --max-iter 40 --mc 200 --out "$dir/a") && ok || bad "attack runs: $out"
[ -s "$dir/a/mu.npy" ] && head -c 128 "$dir/a/mu.npy" | grep -q "'shape': (1, 1, 28, 28)" && ok || bad "attack writes mu.npy in the input shape"
for k in '"label"' '"target"' '"sigma2"' '"beta"' '"support"' '"analytic_mean"' '"mc_mean"' '"mc_share_target"' '"success"' '"iterations"' '"time_s"'; do
  grep -q "$k" "$dir/a/attack.json" && ok || bad "attack.json has $k"; done
mu_linf=$(head -c 4000 "$dir/a/attack.json" | grep -o '"mu_linf":[^,]*' | tr -dc '0-9.e-')
awk -v m="$mu_linf" 'BEGIN { exit !(m <= 30) }' && ok || bad "|mu|_inf within beta: $mu_linf"
expect_error "target = label" attack targeted --image 3 --target 0 --out "$dir/b"
expect_error "target out of range" attack targeted --image 3 --target 10 --out "$dir/b"
expect_error "beta 0" attack targeted --image 3 --target 8 --beta 0 --out "$dir/b"
expect_error "no target" attack targeted --image 3 --out "$dir/b"
expect_error "attack without a mode" attack --image 3 --target 8 --out "$dir/b"
[ ! -e "$dir/b/attack.json" ] && ok || bad "a refused attack leaves no output"
out=$("$nm" attack sparse --image 3 --max-iter 20 --mc 100 --out "$dir/sp") && ok || bad "attack sparse runs: $out"
grep -q '"support":	31,' "$dir/sp/attack.json" && grep -q '"alpha":	4,' "$dir/sp/attack.json" && grep -q '"mc_share_not_label"' "$dir/sp/attack.json" && ok || bad "sparse: support is 4 % of 784 pixels"
nz=$(od -A n -t f4 -j 128 -v "$dir/sp/mu.npy" | tr -s ' ' '\n' | grep -v '^$' | grep -cv '^-\?0$')
[ "$nz" -le 31 ] && ok || bad "sparse: mu is non-zero on at most the support ($nz)"
expect_error "sparse with a target" attack sparse --image 3 --target 8 --out "$dir/b"
expect_error "alpha 0" attack sparse --image 3 --alpha 0 --out "$dir/b"
for f in attack.png attack.svg; do [ -s "$dir/a/$f" ] && ok || bad "attack writes $f"; done
head -c 8 "$dir/a/attack.png" | grep -q PNG && grep -q '<svg' "$dir/a/attack.svg" && ok || bad "attack's figure is a PNG and an SVG"
# batch mode: one image towards every other class, and two images sparse
out=$("$nm" attack targeted --image 3 --targets all --max-iter 15 --pgd-steps 5 --mc 50 --out "$dir/ab") && ok || bad "attack batch runs: $out"
echo "$out" | grep -q 'PGD baseline (5 steps)' && ok || bad "batch prints the baseline: $out"
for f in attacks.csv pgd.csv summary.json summary.md fig-attacks.png fig-attacks.svg; do [ -s "$dir/ab/$f" ] && ok || bad "batch writes $f"; done
head -1 "$dir/ab/attacks.csv" | grep -q '^image,label,target,sigma2,beta,support,mu_linf,mu_l2,gap,fooled_analytic,mc,mc_share_target,mc_argmax,success,iterations,relinearize,time_s$' && ok || bad "attacks.csv columns"
[ "$(wc -l < "$dir/ab/attacks.csv")" -eq 10 ] && [ "$(wc -l < "$dir/ab/pgd.csv")" -eq 10 ] && ok || bad "a row per other class (9)"
[ "$(cut -d, -f1 "$dir/ab/attacks.csv" | tail -n +2 | sort -u)" = 3 ] && [ "$(cut -d, -f3 "$dir/ab/attacks.csv" | tail -n +2 | sort | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 " ] && ok || bad "rows: image 3 towards 1..9"
awk -F, 'NR > 1 && ($7 > 30 || $4 <= 0 || $4 > 2) { bad = 1 } END { exit bad }' "$dir/ab/attacks.csv" && ok || bad "every mu within beta, every sigma2 in (0, 2]"
grep -q '"success_rate"' "$dir/ab/summary.json" && grep -q '"pgd"' "$dir/ab/summary.json" && ok || bad "summary.json has the rates"
OMP_NUM_THREADS=1 "$nm" attack targeted --image 3 --targets all --max-iter 15 --pgd-steps 5 --mc 50 --out "$dir/ab1" >/dev/null && ok || bad "batch on one thread"
for f in attacks.csv pgd.csv; do
  cmp -s <(cut -d, -f1-16 "$dir/ab/$f") <(cut -d, -f1-16 "$dir/ab1/$f") && ok || bad "$f identical on one thread and several"; done
out=$("$nm" attack sparse --images 2 --max-iter 10 --pgd-steps 5 --mc 50 --out "$dir/sb") && ok || bad "sparse batch runs: $out"
[ "$(wc -l < "$dir/sb/attacks.csv")" -eq 3 ] && head -1 "$dir/sb/attacks.csv" | grep -q ',reached,.*,alpha,support,.*mc_share_not_label' && ok || bad "sparse batch: a row per image, its columns"
awk -F, 'NR > 1 && $7 != 31 { bad = 1 } END { exit bad }' "$dir/sb/attacks.csv" && ok || bad "sparse batch: support 31 everywhere"
expect_error "--images without --targets all" attack targeted --images 2 --out "$dir/b"
expect_error "--targets other than all" attack targeted --image 3 --targets 5 --out "$dir/b"
expect_error "--targets and --target" attack targeted --image 3 --target 5 --targets all --out "$dir/b"
expect_error "--targets with sparse" attack sparse --images 2 --targets all --out "$dir/b"
expect_error "--input in batch mode" attack targeted --input "$dir/a/mu.npy" --targets all --out "$dir/b"
expect_error "--image and --images" attack targeted --image 3 --images 4 --targets all --out "$dir/b"
expect_error "pgd-steps -1" attack targeted --image 3 --targets all --pgd-steps -1 --out "$dir/b"

# robustness: accuracy under noise for two models; the CSV's rows, the figure, the table; refusals in one line
"$nm" robustness --model models/lenet-mnist.onnx --model models/lenet-small-mnist.onnx --sigmas 0:120:4 --images 20 --spread \
  --mc-per-image 3 --out "$dir/r" >/dev/null && ok || bad "robustness runs"
[ "$(wc -l < "$dir/r/robustness.csv")" = 9 ] && head -1 "$dir/r/robustness.csv" | grep -qx 'model,sigma,accuracy' && ok || bad "robustness.csv: 2 models x 4 levels"
awk -F, 'NR > 1 && !($3 >= 0 && $3 <= 1) { exit 1 }' "$dir/r/robustness.csv" && ok || bad "accuracies in [0, 1]"
head -c 8 "$dir/r/fig-robustness.png" | grep -q PNG && grep -q '<svg' "$dir/r/fig-robustness.svg" && ok || bad "fig-robustness"
[ "$(grep -c '^| models/' "$dir/r/robustness.md")" = 2 ] && ok || bad "robustness.md: a row per model"
"$nm" robustness --help | grep -q -- '--sigmas LIST' && ok || bad "robustness --help"
expect_error "robustness without --sigmas" robustness --out "$dir/r2"
expect_error "decreasing sigmas" robustness --sigmas 10,5 --out "$dir/r2"
expect_error "negative sigma" robustness --sigmas -1,5 --out "$dir/r2"
expect_error "bad range" robustness --sigmas 0:10 --out "$dir/r2"
expect_error "mc 0" robustness --sigmas 0,1 --mc-per-image 0 --out "$dir/r2"
finish cli_adversarial
