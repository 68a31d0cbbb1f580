#!/usr/bin/env bash
# Issue 16's LeNet check of method propagate against method exact: a LeNet
# trained without augmentation (Adam, learning rate 1e-4, 6 epochs; not the
# shipped model), 10 held-out digits (0..9 of the test split), sigma^2 = 1,
# 25 and 200, a 40,000-sample Monte Carlo of the real network per digit and
# noise. Writes OUT/lenet-noaug.onnx (unless --model is given), one
# moments JSON per digit and noise, and OUT/propagate-lenet.md: per noise,
# the range over digits and logits of the MC / analytic variance and mean
# ratios of both methods, and the times.
#   bash scripts/propagate_lenet.sh [--model M.onnx] [--mc N] OUT
set -euo pipefail
cd "$(dirname "$0")/.."
nm=build/netmoments model= mc=40000
while [ $# -gt 1 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --mc) mc=$2; shift 2 ;;
    *) echo "usage: bash scripts/propagate_lenet.sh [--model M.onnx] [--mc N] OUT" >&2; exit 2 ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: bash scripts/propagate_lenet.sh [--model M.onnx] [--mc N] OUT" >&2; exit 2; }
out=$1
mkdir -p "$out"
if [ -z "$model" ]; then
  model=$out/lenet-noaug.onnx
  "$nm" train --arch lenet --augment 0 --epochs 6 --lr 1e-4 --seed 1 --out "$model" | tail -1
fi
for s2 in 1 25 200; do
  for k in 0 1 2 3 4 5 6 7 8 9; do
    f=$out/moments-s$s2-d$k.json
    [ -s "$f" ] || { "$nm" moments --model "$model" --image "$k" --sigma2 "$s2" --method all --mc "$mc" --json > "$f.tmp" && mv "$f.tmp" "$f"; }
    echo "sigma2 $s2 digit $k done" >&2
  done
done
perl -MJSON::PP -e '
  my ($out, $mc) = @ARGV;
  print "LeNet without augmentation, held-out digits 0..9, $mc Monte Carlo samples per digit and noise; ratio = MC / analytic\n\n";
  print "| sigma^2 | varratio exact (min..max) | varratio propagate (min..max) | Eratio exact, |logit| > 1 | Eratio propagate, |logit| > 1 | time exact | time propagate | time MC |\n";
  print "|---|---|---|---|---|---|---|---|\n";
  for my $s2 (1, 25, 200) {
    my (%lo, %hi, %t, $tmc);
    for my $k (0 .. 9) {
      local $/; open my $fh, "<", "$out/moments-s$s2-d$k.json" or die; my $j = decode_json(<$fh>);
      for my $m ("exact", "propagate") {
        for my $i (0 .. $#{$j->{mc_var}}) {
          my $v = $j->{mc_var}[$i] / $j->{$m}{var}[$i];
          $lo{"v$m"} = $v if !defined $lo{"v$m"} || $v < $lo{"v$m"}; $hi{"v$m"} = $v if !defined $hi{"v$m"} || $v > $hi{"v$m"};
          next unless abs($j->{mc_mean}[$i]) > 1;
          my $e = $j->{mc_mean}[$i] / $j->{$m}{mean}[$i];
          $lo{"e$m"} = $e if !defined $lo{"e$m"} || $e < $lo{"e$m"}; $hi{"e$m"} = $e if !defined $hi{"e$m"} || $e > $hi{"e$m"};
        }
        $t{$m} += $j->{$m}{time_analytic_s} / 10;
      }
      $tmc += $j->{time_mc_s} / 10;
    }
    printf "| %s | %.3f..%.3f | %.3f..%.3f | %.3f..%.3f | %.3f..%.3f | %.2f s | %.2f s | %.1f s |\n", $s2, $lo{vexact}, $hi{vexact},
      $lo{vpropagate}, $hi{vpropagate}, $lo{eexact}, $hi{eexact}, $lo{epropagate}, $hi{epropagate}, $t{exact}, $t{propagate}, $tmc;
  }' "$out" "$mc" | tee "$out/propagate-lenet.md"
