#!/usr/bin/env bash
# The scaling table of docs/cluster.md: each dataset-level experiment at a
# moderate size, on 1 rank x 1 thread, 1 rank x T threads (the plain run),
# and R ranks x 1 thread under mpirun, back to back on this machine; the
# outputs of every configuration are compared byte for byte (wall times
# written as 0) and the speed-ups are against 1 x 1 in the same run.
#   bash scripts/scaling.sh [R]     (R = T = ranks and threads, default nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
nm=build/netmoments
P=${1:-$(nproc)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NETMOMENTS_TIMES=0 NETMOMENTS_PROGRESS=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
experiments=(
  "tightness synthetic|tightness synthetic --regimes medium --runs 20 --mc 5000"
  "tightness lenet (Table 1)|tightness lenet --runs 8 --mc 5000"
  "linpoints (Table 3)|linpoints --k 5% --no-propagate --images 12 --mc 5000"
  "fooling|fooling --images 200 --mc 200 --flip"
  "sensitivity|sensitivity --images 40 --flip"
  "robustness|robustness --images 400 --sigmas 0:150:30 --mc-per-image 5"
  "attack batch|attack targeted --images 2 --targets all"
  "moments, Monte Carlo|moments --image 0 --sigma2 1 --method paper --mc 75000"
  "uap|uap --images 2000 --passes 1 --xi 2000"
)
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >"$out/stdout" 2>"$out/stderr" || { echo "failed: $* : $(tail -1 "$out/stderr")" >&2; exit 1; }; t1=$(date +%s.%N); awk "BEGIN { print $t1 - $t0 }"; }
run() { # run KIND CMD...: KIND 11, 1T or R1; the output directory (or file) named by the kind
  local kind=$1; shift
  local dest="$out/$kind" args=("$@")
  [ "${args[0]}" = uap ] && dest="$out/$kind.npy"
  [ "${args[0]}" = moments ] && dest=""
  case $kind in
    11) OMP_NUM_THREADS=1 secs "$nm" "${args[@]}" ${dest:+--out "$dest"} ;;
    1T) OMP_NUM_THREADS=$P secs "$nm" "${args[@]}" ${dest:+--out "$dest"} ;;
    R1) OMP_NUM_THREADS=1 secs mpirun --oversubscribe -np "$P" "$nm" "${args[@]}" ${dest:+--out "$dest"} ;;
  esac
  [ -z "$dest" ] && cp "$out/stdout" "$out/$kind.stdout"
  return 0
}
echo "| experiment | command | 1 rank x 1 thread | 1 rank x $P threads | $P ranks x 1 thread | speed-up 1x$P | speed-up ${P}x1 | outputs, $P ranks | outputs, $P threads |"
echo "|---|---|---|---|---|---|---|---|---|"
for e in "${experiments[@]}"; do
  name=${e%%|*}; cmd=${e#*|}
  rm -rf "$out"/11* "$out"/1T* "$out"/R1*
  read -r -a args <<<"$cmd"
  t11=$(run 11 "${args[@]}"); t1t=$(run 1T "${args[@]}"); tr1=$(run R1 "${args[@]}")
  ranks="identical" threads="identical"
  if [ "${args[0]}" = moments ]; then cmp -s "$out/11.stdout" "$out/R1.stdout" || ranks="differ"; cmp -s "$out/11.stdout" "$out/1T.stdout" || threads="differ"
  elif [ "${args[0]}" = uap ]; then cmp -s "$out/11.npy" "$out/R1.npy" || ranks="differ"; cmp -s "$out/11.npy" "$out/1T.npy" || threads="differ"
  else diff -r "$out/11" "$out/R1" >/dev/null || ranks="differ"; diff -r "$out/11" "$out/1T" >/dev/null || threads="differ"; fi
  printf '| %s | `%s` | %.1f s | %.1f s | %.1f s | %.2f | %.2f | %s | %s |\n' "$name" "$cmd" "$t11" "$t1t" "$tr1" \
    "$(awk "BEGIN { print $t11 / $t1t }")" "$(awk "BEGIN { print $t11 / $tr1 }")" "$ranks" "$threads"
done
