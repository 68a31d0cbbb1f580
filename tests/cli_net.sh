#!/usr/bin/env bash
# CLI contract of `netmoments info` and `netmoments forward` on ONNX files of
# the conformance data: --help, the node table and JSON, outputs of the
# right shape for any batch size (and for an input without its batch axis),
# chunked runs equal to one pass, and bad input answered by a non-zero exit
# with one line on stderr. (The numbers themselves are checked against the
# conformance outputs by test_conformance.)
set -u
source "$(dirname "$0")/cli_lib.sh" "$@"
data=/usr/share/libonnx-testdata/data/pytorch-converted
conv="$data/test_Conv2d/model.onnx"   # input (2, 3, 7, 5) -> (2, 4, 5, 4)

# npy PATH SHAPE COUNT WORD: a float32 NPY of COUNT copies of the 4-byte WORD (octal escapes)
npy() {
  local hdr="{'descr': '<f4', 'fortran_order': False, 'shape': $2, }"
  while [ $(( (10 + ${#hdr} + 1) % 64 )) -ne 0 ]; do hdr="$hdr "; done
  { printf '\223NUMPY\001\000'; printf "\\$(printf '%03o' $(( (${#hdr} + 1) % 256 )))\\$(printf '%03o' $(( (${#hdr} + 1) / 256 )))";
    printf '%s\n' "$hdr"; for ((i = 0; i < $3; i++)); do printf "$4"; done; } > "$1"
}
one='\000\000\200\077'   # 1.0f
nan='\000\000\300\177'   # NaN
size() { stat -c %s "$1"; }

"$nm" info --help | grep -q -- '--model' && ok || bad "info --help"
"$nm" forward --help | grep -q -- '--output' && ok || bad "forward --help"

out=$("$nm" info --model "$conv") && ok || bad "info runs"
echo "$out" | grep -q 'Conv' && echo "$out" | grep -q '(2, 4, 5, 4)' && echo "$out" | grep -q '^76 parameters' && ok || bad "info table: $out"
js=$("$nm" info --model "$conv" --json) && [ "$(echo "$js" | wc -l)" = 1 ] && echo "$js" | grep -q '"nodes":' && ok || bad "info --json"

npy "$dir/x.npy" "(2, 3, 7, 5)" 210 "$one"
"$nm" forward --model "$conv" --input "$dir/x.npy" --output "$dir/y.npy" 2>/dev/null && ok || bad "forward runs"
[ "$(size "$dir/y.npy")" = $((128 + 160 * 4)) ] && ok || bad "forward output size $(size "$dir/y.npy")"
npy "$dir/x1.npy" "(3, 7, 5)" 105 "$one"
"$nm" forward --model "$conv" --input "$dir/x1.npy" --output "$dir/y1.npy" 2>/dev/null && ok || bad "forward without a batch axis"
[ "$(size "$dir/y1.npy")" = $((128 + 80 * 4)) ] && ok || bad "one input gives one output"
npy "$dir/x5.npy" "(5, 3, 7, 5)" 525 "$one"
"$nm" forward --model "$conv" --input "$dir/x5.npy" --output "$dir/y5.npy" 2>/dev/null && ok || bad "forward batch 5"
"$nm" forward --model "$conv" --input "$dir/x5.npy" --output "$dir/y5c.npy" --chunk 2 2>/dev/null && ok || bad "forward --chunk 2"
cmp -s "$dir/y5.npy" "$dir/y5c.npy" && ok || bad "chunked run equals one pass"

printf 'not a model' > "$dir/bad.onnx"
npy "$dir/xw.npy" "(2, 3, 7, 4)" 168 "$one"
npy "$dir/xn.npy" "(2, 3, 7, 5)" 210 "$nan"
expect_error "no --input" forward --model "$conv" --output "$dir/o.npy"
expect_error "missing model" forward --model "$dir/none.onnx" --input "$dir/x.npy" --output "$dir/o.npy"
expect_error "garbage model" info --model "$dir/bad.onnx"
expect_error "wrong input shape" forward --model "$conv" --input "$dir/xw.npy" --output "$dir/o.npy"
expect_error "NaN input" forward --model "$conv" --input "$dir/xn.npy" --output "$dir/o.npy"
expect_error "bad --chunk" forward --model "$conv" --input "$dir/x.npy" --output "$dir/o.npy" --chunk 0
expect_error "unknown option" info --frobnicate
expect_error "unwritable output" forward --model "$conv" --input "$dir/x.npy" --output "$dir/no/such/dir/y.npy"

# netmoments ops: the table names every op the PyTorch test models' loaded nodes use, and the roles
"$nm" ops --help | grep -q 'split point' && ok || bad "ops --help"
table=$("$nm" ops) && ok || bad "ops runs"
models=$(dirname "$0")/models
for m in "$models"/*.onnx; do
  for op in $("$nm" info --model "$m" --json | grep -o '"op":"[A-Za-z]*"' | cut -d'"' -f4 | sort -u); do
    echo "$table" | grep -q "^$op " || bad "ops lacks $op (used by $(basename "$m"))"
  done
done; ok
[ "$(echo "$table" | grep -c '^[A-Z]')" = "$("$nm" info --ops | wc -w | awk '{print $1 - 2}')" ] && ok || bad "ops and info --ops list the same ops"
echo "$table" | grep -q '^Relu .*piecewise linear, a split point' && echo "$table" | grep -q '^MaxPool .*argmax frozen' \
  && echo "$table" | grep -q '^Sigmoid .*smooth' && echo "$table" | grep -q '^Conv .*kernel_shape' && ok || bad "ops roles: $table"
js=$("$nm" ops --json) && [ "$(echo "$js" | wc -l)" = 1 ] && echo "$js" | grep -q '"op":"Gemm","min_inputs":2,"max_inputs":3' && ok || bad "ops --json"

# info and moments say when a net is not piecewise linear, name the split activation, and the input scale
"$nm" info --help | grep -q 'netmoments.input_scale' && "$nm" info --help | grep -q 'netmoments ops' && ok || bad "info --help: scale and ops"
"$nm" moments --help | grep -q 'netmoments.input_scale' && "$nm" moments --help | grep -q 'netmoments ops' && ok || bad "moments --help: scale and ops"
"$nm" info --model "$models/mobilenet_v3_small.onnx" | grep -q '^not piecewise linear' && ok || bad "info: mobilenet_v3_small not piecewise linear"
"$nm" info --model "$models/mobilenet_v3_small.onnx" --json | grep -q '"piecewise_linear":false' && ok || bad "info --json: piecewise_linear false"
"$nm" info --model "$models/leaky_avg.onnx" | grep -q '^not piecewise' && bad "info: leaky_avg is piecewise linear" || ok
"$nm" info | grep -q '^input scale: x = 255 p -127.5' && ok || bad "info: LeNet's input scale"
npy "$dir/x192.npy" "(1, 3, 8, 8)" 192 "$one"
"$nm" moments --model "$models/leaky_avg.onnx" --input "$dir/x192.npy" --sigma2 1e-4 | grep -q '^model .*split point 1 of 1 (LeakyRelu)' && ok || bad "moments names the split op"
"$nm" moments --model "$models/mlp.onnx" --input "$dir/x192.npy" --sigma2 1e-4 --json | grep -q '"piecewise_linear":true' && ok || bad "moments --json: piecewise_linear"
npy "$dir/x3072.npy" "(1, 3, 32, 32)" 3072 "$one"
"$nm" moments --model "$models/mobilenet_v3_small.onnx" --input "$dir/x3072.npy" --sigma2 1e-4 | grep -q '^not piecewise linear' && ok || bad "moments: not piecewise linear"

# a model exported without a batch axis: forward runs it whole (10 logits, not 784 values); moments refuse it clearly
ub="$models/unbatched"
"$nm" forward --model "$ub/linear_1d.onnx" --input "$ub/linear_1d.input.npy" --output "$dir/ub.npy" 2>/dev/null && ok || bad "forward on linear_1d"
head -c 128 "$dir/ub.npy" | grep -q "'shape': (10,)" && [ "$(size "$dir/ub.npy")" = 168 ] && ok || bad "linear_1d: 10 outputs ($(head -c 128 "$dir/ub.npy" | tr -d '\0'))"
"$nm" forward --model "$ub/conv_chw.onnx" --input "$ub/conv_chw.input.npy" --output "$dir/ub2.npy" 2>/dev/null && head -c 128 "$dir/ub2.npy" | grep -q "'shape': (10,)" && ok || bad "forward on conv_chw"
expect_error "forward on linear_1d with a batch" forward --model "$ub/linear_1d.onnx" --input "$dir/x192.npy" --output "$dir/ub3.npy"
expect_error "moments on linear_1d" moments --model "$ub/linear_1d.onnx" --input "$ub/linear_1d.input.npy" --sigma2 1
"$nm" moments --model "$ub/linear_1d.onnx" --input "$ub/linear_1d.input.npy" --sigma2 1 2>&1 | grep -q 'no batch axis' && ok || bad "says: no batch axis"
"$nm" info --model "$ub/conv_chw.onnx" | grep -q 'no batch axis' && ok || bad "info: no batch axis"

finish cli_net
