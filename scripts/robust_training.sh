#!/usr/bin/env bash
# The table of docs/robust-training.md for one data set: the same architecture
# trained plainly, with Gaussian noise augmentation (1, 3 and 10 folds), with
# the AMR moment regulariser (a few noise levels and weights) and with the
# margin-variance regulariser, back to back on this machine; then every model's
# accuracy under Gaussian noise (`netmoments robustness`, one run for all, so
# the same images and noise) and a Markdown table of clean accuracy, area under
# the accuracy-sigma curve, accuracy at three sigma and training time per epoch.
#   bash scripts/robust_training.sh DATA ARCH EPOCHS SIGMAS OUT [IMAGES]
#   e.g. bash scripts/robust_training.sh mnist lenet 3 0:200:30 out/robust-mnist
# S (the training noise variance) is 3600 (sigma 60 on the 255 scale) unless
# NM_RT_S says otherwise. Writes OUT/models/*.onnx, OUT/train-*.log,
# OUT/robustness/ and OUT/table.md; a model whose file and log are already in
# OUT is not trained again (so a stopped run resumes).
set -euo pipefail
cd "$(dirname "$0")/.."
nm=build/netmoments
[ $# -ge 5 ] || { sed -n 2,13p "$0" | sed 's/^# \{0,1\}//'; exit 2; }
data=$1 arch=$2 epochs=$3 sigmas=$4 out=$5 images=${6:-1000}
S=${NM_RT_S:-3600}
mkdir -p "$out/models"
# name|options|description (the options follow `netmoments train --arch ARCH --data DATA --epochs E`)
models=(
  "plain||plain"
  "aug1|--augment-noise $S --folds 1|augmented, 1 fold (S $S)"
  "aug3|--augment-noise $S --folds 3|augmented, 3 folds (S $S)"
  "aug10|--augment-noise $S --folds 10|augmented, 10 folds (S $S)"
  "amr|--reg amr --reg-sigma2 $S --reg-lambda 1|AMR (S $S, lambda 1)"
  "amr-l3|--reg amr --reg-sigma2 $S --reg-lambda 3|AMR (S $S, lambda 3)"
  "amr-d1|--reg amr --reg-sigma2 $S --reg-lambda 1 --reg-depth 1|AMR as published: variance through the first ReLU (S $S, lambda 1)"
  "amr-d2|--reg amr --reg-sigma2 $S --reg-lambda 1 --reg-depth 2|AMR, variance through the first two ReLUs (S $S, lambda 1)"
  "amr-s4|--reg amr --reg-sigma2 $((4 * S)) --reg-lambda 1|AMR (S $((4 * S)), lambda 1)"
  "var|--reg var --reg-sigma2 $S --reg-lambda 1|margin variance (S $S, lambda 1)"
)
rob=()
for m in "${models[@]}"; do
  IFS='|' read -r name opts desc <<<"$m"
  log="$out/train-$name.log"
  rob+=(--model "models/$name.onnx")
  if [ -s "$out/models/$name.onnx" ] && grep -q '^trained' "$log" 2>/dev/null; then continue; fi
  # shellcheck disable=SC2086
  $nm train --arch "$arch" --data "$data" --epochs "$epochs" $opts --out "$out/models/$name.onnx" >"$log" 2>&1 ||
    { echo "train $name failed: $(tail -1 "$log")" >&2; exit 1; }
  echo "$name: $(grep '^trained' "$log")" >&2
done
# from OUT, so that the figure's legend names models/NAME.onnx
(cd "$out" && "$OLDPWD/$nm" robustness "${rob[@]}" --data "$data" --sigmas "$sigmas" --mc-per-image 2 --images "$images" --spread \
  --out robustness >robustness.log 2>&1) || { echo "robustness failed: $(tail -1 "$out/robustness.log")" >&2; exit 1; }
{
  head -1 "$out/robustness/robustness.md"
  echo
  awk -F'|' '/^\| model \|/ { printf "| model | options | held-out accuracy (all) |%s|%s|%s|%s| training s/epoch |\n", $3, $4, $5, $6 }' "$out/robustness/robustness.md"
  echo "|---|---|---|---|---|---|---|---|"
  for m in "${models[@]}"; do
    IFS='|' read -r name opts desc <<<"$m"
    acc=$(sed -n 's/.*held-out accuracy \([0-9.]*\).*/\1/p' "$out/train-$name.log")
    secs=$(sed -n 's/^trained .* in \([0-9.]*\) s .*/\1/p' "$out/train-$name.log")
    row=$(grep -F "| models/$name.onnx |" "$out/robustness/robustness.md")
    echo "$row" | awk -F'|' -v d="$desc" -v o="${opts:-(none)}" -v a="$acc" -v s="$secs" -v e="$epochs" \
      '{ printf "| %s | `%s` | %s |%s|%s|%s|%s| %.1f |\n", d, o, a, $3, $4, $5, $6, s / e }'
  done
} >"$out/table.md"
cat "$out/table.md"
