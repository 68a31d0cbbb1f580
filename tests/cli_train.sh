#!/usr/bin/env bash
# CLI contract of `netmoments train` and `netmoments eval`: --help, a short
# MLP training run that writes a model with its input scale and reports a
# held-out accuracy far above chance, eval's table and JSON (per-class
# accuracy, a confusion matrix summing to the 1,996 held-out digits), and
# the moment regularisers (--reg amr, var) training an MLP far above chance,
# and bad input answered by a non-zero exit with one line on stderr.
set -u
source "$(dirname "$0")/cli_lib.sh" "$@"
need_mnist

"$nm" train --help | grep -q -- '--augment' && ok || bad "train --help"
"$nm" eval --help | grep -q -- '--split' && ok || bad "eval --help"
out=$("$nm" train --arch mlp --epochs 1 --seed 2 --out "$dir/m.onnx" 2>/dev/null) && ok || bad "train runs"
acc=$(echo "$out" | sed -n 's/.*held-out accuracy \([0-9.]*\).*/\1/p')
awk -v a="$acc" 'BEGIN { exit !(a > 0.8) }' && ok || bad "held-out accuracy $acc after one epoch"
"$nm" info --model "$dir/m.onnx" | grep -q 'input scale: x = 255 p -127.5' && ok || bad "input scale recorded"
txt=$("$nm" eval --model "$dir/m.onnx") && echo "$txt" | grep -q "accuracy $acc" && ok || bad "eval agrees with train: $txt"
js=$("$nm" eval --model "$dir/m.onnx" --json) && ok || bad "eval --json"
for key in accuracy per_class_accuracy confusion n; do echo "$js" | grep -q "\"$key\":" && ok || bad "json key $key"; done
echo "$js" | tr -d '[]' | sed 's/.*"confusion"://; s/}//' | tr ',' '\n' | awk '{ s += $1 } END { exit !(s == 1996) }' && ok || bad "confusion sums to 1996"

expect_error "no --out" train --arch mlp
expect_error "bad --arch" train --arch resnet --out "$dir/x.onnx"
expect_error "bad --data" train --data cifar --out "$dir/x.onnx"
expect_error "zero epochs" train --epochs 0 --out "$dir/x.onnx"
expect_error "bad --lr" train --lr -1 --out "$dir/x.onnx"
expect_error "bad --split" eval --model "$dir/m.onnx" --split validation
expect_error "missing model" eval --model "$dir/none.onnx"
NETMOMENTS_DATA="$dir/empty" expect_error "missing data" eval --model "$dir/m.onnx"
expect_error "0 folds" train --folds 0 --out "$dir/x.onnx"
expect_error "negative noise" train --augment-noise -1 --out "$dir/x.onnx"
"$nm" train --help | grep -q -- '--augment-noise S' && ok || bad "train --help: --augment-noise"
"$nm" train --help | grep -q -- '--reg amr' && ok || bad "train --help: --reg"
expect_error "bad --reg" train --reg l2 --out "$dir/x.onnx"
expect_error "--reg without its noise" train --reg amr --out "$dir/x.onnx"
expect_error "--reg-sigma2 0" train --reg amr --reg-sigma2 0 --out "$dir/x.onnx"
expect_error "--reg-depth with --reg var" train --reg var --reg-sigma2 100 --reg-depth 1 --out "$dir/x.onnx"
expect_error "negative --reg-lambda" train --reg var --reg-sigma2 100 --reg-lambda -1 --out "$dir/x.onnx"
for r in amr var; do
  out=$("$nm" train --arch mlp --epochs 1 --seed 2 --reg $r --reg-sigma2 3600 --out "$dir/$r.onnx" 2>"$dir/$r.log") && ok || bad "train --reg $r runs"
  acc=$(echo "$out" | sed -n 's/.*held-out accuracy \([0-9.]*\).*/\1/p')
  awk -v a="$acc" 'BEGIN { exit !(a > 0.8) }' && ok || bad "--reg $r: held-out accuracy $acc after one epoch"
  grep -q "regulariser $r (sigma2 3600, lambda 1, depth 0)" "$dir/$r.log" && grep -q "regulariser [0-9]" "$dir/$r.log" && ok || bad "--reg $r: the log names it and its loss"
done

finish cli_train
