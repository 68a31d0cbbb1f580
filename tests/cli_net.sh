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

finish cli_net
