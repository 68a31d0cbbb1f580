#!/usr/bin/env bash
# Under mpirun (issue 18): every dataset-level command run by 1, 2 and 3
# ranks (one OpenMP thread each) writes files byte-identical to a plain run
# of the same command (wall times written as 0: NETMOMENTS_TIMES=0), and
# prints the same; a rank that fails alone (its memory budget too small) or
# is killed mid-run fails the whole run and leaves no complete-looking
# output. Skipped when the CLI was built without MPI or mpirun is absent.
set -u
source "$(dirname "$0")/cli_lib.sh" "$@"
need_mnist
command -v mpirun >/dev/null || { echo "skip: no mpirun (scripts/setup.sh installs openmpi-bin)"; exit 77; }
ldd "$nm" | grep -q libmpi || { echo "skip: netmoments was built without MPI"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export TMPDIR="$dir" OMP_NUM_THREADS=1 NETMOMENTS_TIMES=0 NETMOMENTS_PROGRESS=0 NETMOMENTS_RANK_WAIT=3
mpi() { mpirun --oversubscribe -np "$@"; }

# same NAME OUTKIND ARGS...: the command plainly, then under -np 1, 2, 3; OUTKIND dir (--out DIR) or file (--out F)
same() {
  local name="$1" kind="$2"; shift 2
  local ref="$dir/$name-ref" np t0=$SECONDS
  "$nm" "$@" --out "$ref" > "$dir/$name-ref.txt" 2>"$dir/$name-ref.err" || { bad "$name runs plainly: $(tail -1 "$dir/$name-ref.err")"; return; }
  for np in 1 2 3; do
    local got="$dir/$name-$np"
    if ! mpi $np "$nm" "$@" --out "$got" > "$got.txt" 2>"$got.err"; then bad "$name under -np $np: $(tail -2 "$got.err")"; continue; fi
    if [ "$kind" = dir ]; then diff -r "$ref" "$got" >/dev/null && ok || bad "$name: -np $np wrote different files: $(diff -rq "$ref" "$got" | head -3)"
    else cmp -s "$ref" "$got" && ok || bad "$name: -np $np wrote a different $kind"; fi
    diff <(sed "s|$got|OUT|g" "$got.txt") <(sed "s|$ref|OUT|g" "$dir/$name-ref.txt") >/dev/null && ok || bad "$name: -np $np printed something else"
  done
  echo "$name: $((SECONDS - t0)) s"
}

# Caffe's smaller LeNet for one conv-and-pool model; else an MLP trained here in a second (the split is the same code for any model)
small="--model models/lenet-small-mnist.onnx"
"$nm" train --arch mlp --data mnist --epochs 1 --seed 3 --out "$dir/mlp.onnx" >/dev/null 2>&1 || bad "the MLP trains"
mlp="--model $dir/mlp.onnx"
same synthetic dir tightness synthetic --nets fc-a,conv-b --regimes medium --runs 4 --mc 1100
same table1 dir tightness lenet $small --runs 2 --mc 600
same linpoints dir linpoints $mlp --k 2 --no-propagate --images 3 --mc 500
same fooling dir fooling $mlp --images 5 --mc 100 --flip
same sensitivity dir sensitivity $mlp --images 3 --window 7 --stride 7 --flip --verify 2 --mc 100
same robustness dir robustness --images 8 --sigmas 0,60,120 --mc-per-image 3
same attacks dir attack targeted $mlp --images 1 --targets all --max-iter 10 --mc 100 --pgd-steps 10
same uap file uap $mlp --images 257 --passes 2 --xi 2000

# the Monte Carlo of moments, over its sample batches: the JSON on stdout
"$nm" moments $mlp --image 3 --sigma2 2 --mc 2300 --method exact --json > "$dir/m-ref.json" || bad "moments runs plainly"
for np in 2 3; do
  mpi $np "$nm" moments $mlp --image 3 --sigma2 2 --mc 2300 --method exact --json > "$dir/m-$np.json" 2>/dev/null && cmp -s "$dir/m-ref.json" "$dir/m-$np.json" && ok ||
    bad "moments --mc under -np $np prints different JSON"
done

# a rank that fails alone: rank 1's budget cannot hold the model
err=$(mpirun --oversubscribe -np 1 "$nm" fooling $mlp --images 5 --mc 50 --out "$dir/fail" : -np 1 -x NETMOMENTS_MEM=0.0001 "$nm" fooling $mlp --images 5 --mc 50 --out "$dir/fail" 2>&1 >/dev/null)
rc=$?
[ $rc -ne 0 ] && ok || bad "a failing rank fails the run (rc $rc)"
echo "$err" | grep -q "rank 1: netmoments: .*memory budget" && ok || bad "the failing rank's message is shown: $err"
[ -z "$(ls "$dir/fail" 2>/dev/null)" ] && ok || bad "a failed run leaves no output: $(ls "$dir/fail")"

# a rank killed mid-run
mpi 2 "$nm" tightness lenet --runs 40 --mc 20000 --out "$dir/killed" >/dev/null 2>&1 &
job=$!
for _ in $(seq 100); do [ "$(pgrep -f "tightness lenet --runs 40 --mc 20000 --out $dir/killed" | wc -l)" -ge 3 ] && break; sleep 0.1; done
sleep 1
victim=$(pgrep -f "^$nm tightness lenet --runs 40 --mc 20000 --out $dir/killed" | tail -1)
[ -n "$victim" ] && kill -9 "$victim"
wait $job; rc=$?
[ $rc -ne 0 ] && ok || bad "a killed rank fails the run (rc $rc)"
[ ! -e "$dir/killed/table1.csv" ] && [ ! -e "$dir/killed/table1.md" ] && ok || bad "a killed run leaves no complete-looking output: $(ls "$dir/killed")"

finish cli_mpi
