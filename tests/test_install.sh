#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds a tiny project
# outside the tree against it twice: with find_package(netmoments REQUIRED)
# and the imported target netmoments::netmoments, and with pkg-config; each
# program must run and print the library's name for a status and a method.
# CFLAGS are the build's own (the sanitizers, in CI's second build).
#   test_install.sh BUILD_DIR C_COMPILER [CFLAGS]
set -eu
build="$1"; cc="$2"; cflags="${3:-}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
mkdir -p "$tmp/app"
cat > "$tmp/app/main.c" <<'C'
#include <netmoments.h>
#include <stdio.h>
int main(void)
{
    nm_ctx *ctx = nm_ctx_create();
    printf("%s %s %d\n", nm_status_str(NM_ERR_NOT_PSD), nm_method_str(nm_method_from_str("exact")), nm_ctx_message(ctx)[0] == 0);
    nm_ctx_free(ctx);
    return 0;
}
C
cat > "$tmp/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(netmoments REQUIRED)
add_executable(app main.c)
target_link_libraries(app PRIVATE netmoments::netmoments)
CM
cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/app/build" >/dev/null
want="covariance not positive semi-definite exact 1"
got=$("$tmp/app/build/app")
[ "$got" = "$want" ] || { echo "find_package: got '$got'"; exit 1; }
echo "find_package(netmoments) + netmoments::netmoments: built and ran"
pc="$tmp/prefix/lib/pkgconfig"; [ -d "$pc" ] || pc=$(dirname "$(find "$tmp/prefix" -name netmoments.pc)")
"$cc" $cflags "$tmp/app/main.c" -o "$tmp/app/pc" $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs netmoments) -Wl,-rpath,"$tmp/prefix/lib"
got=$(LD_LIBRARY_PATH="$(dirname "$(find "$tmp/prefix" -name 'libnetmoments.so' | head -1)")" "$tmp/app/pc")
[ "$got" = "$want" ] || { echo "pkg-config: got '$got'"; exit 1; }
echo "pkg-config netmoments: built and ran"
# the installed command finds its default model from any directory, and $NETMOMENTS_MODEL replaces it
mkdir -p "$tmp/elsewhere" && cd "$tmp/elsewhere"
got=$("$tmp/prefix/bin/netmoments" info | head -1)
[ "$got" = "model $(cd "$tmp/prefix/share/netmoments" && pwd -P)/lenet-mnist.onnx" ] || { echo "installed default model: got '$got'"; exit 1; }
cp "$tmp/prefix/share/netmoments/lenet-mnist.onnx" "$tmp/mine.onnx"
got=$(NETMOMENTS_MODEL="$tmp/mine.onnx" "$tmp/prefix/bin/netmoments" info | head -1)
[ "$got" = "model $tmp/mine.onnx" ] || { echo "NETMOMENTS_MODEL: got '$got'"; exit 1; }
echo "installed netmoments: default model found from another directory; NETMOMENTS_MODEL honoured"
