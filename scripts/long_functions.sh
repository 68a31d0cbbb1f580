#!/usr/bin/env bash
# Lists functions longer than LIMIT lines (default 80) in the C files given
# (default: src/ and cli/), longest first: the body from the "{" that opens
# a definition at column 0 to the "}" that closes it at column 0.
#   bash scripts/long_functions.sh [LIMIT] [FILES...]
limit="${1:-80}"; shift || true
[ $# -gt 0 ] || set -- $(find src cli -name '*.c' | sort)
awk -v limit="$limit" '
  FNR == 1 { name = "" }
  /^[A-Za-z_][A-Za-z0-9_ \*]*\(/ && !/;[ \t]*$/ { sig = $0; sub(/\(.*/, "", sig); n = split(sig, w, /[ \*]+/); name = w[n] }
  /^\{/ && name != "" { start = FNR; fn = name }
  /^\}/ && start { len = FNR - start - 1; if (len > limit) printf "%5d %s:%d %s\n", len, FILENAME, start, fn; start = 0; name = "" }
' "$@" | sort -rn
