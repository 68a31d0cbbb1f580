#!/usr/bin/env bash
# The shared library exports exactly the functions the public header
# declares with NM_API: no generated onnx__* code, no internal nm_*, no
# compiler-made globals (issue 11). Lists both differences on failure.
#   test_symbols.sh HEADER LIBRARY.so
set -u
header="$1"; lib="$2"
want=$(grep -oE '^NM_API [^(]*\bnm_[a-z0-9_]+\(' "$header" | grep -oE 'nm_[a-z0-9_]+\($' | tr -d '(' | sort -u)
have=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)
extra=$(comm -13 <(echo "$want") <(echo "$have"))
missing=$(comm -23 <(echo "$want") <(echo "$have"))
echo "symbols: $(echo "$have" | wc -l) exported, $(echo "$want" | wc -l) declared"
[ -z "$extra" ] || { echo "exported but not declared:"; echo "$extra" | sed 's/^/  /'; }
[ -z "$missing" ] || { echo "declared but not exported:"; echo "$missing" | sed 's/^/  /'; }
[ -z "$extra" ] && [ -z "$missing" ]
