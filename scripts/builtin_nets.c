/*
 * builtin_nets.c — writes the built-in architectures (nm_net_create) and the
 * synthetic nets of Fig 2 (nm_synthetic_create), seed 1, as ONNX files into
 * the directory given, for scripts/outputs.sh: a refactor must leave their
 * bytes unchanged. Public API only, so it builds against any version.
 */
#include "netmoments.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: builtin_nets DIR\n");
        return 2;
    }
    nm_ctx *ctx = nm_ctx_create();
    char path[4096];
    int rc = 0;
    for (int a = 0; a < NM_ARCH_COUNT; a++) {
        nm_net *net;
        snprintf(path, sizeof path, "%s/arch-%s.onnx", argv[1], nm_arch_str((nm_arch)a));
        if (nm_net_create(ctx, (nm_arch)a, 1, 1.0, &net) != NM_OK || nm_net_write_onnx(ctx, net, path) != NM_OK) {
            fprintf(stderr, "%s: %s\n", path, nm_ctx_message(ctx));
            rc = 1;
        }
        nm_net_free(ctx, net);
    }
    for (int s = 0; s < NM_SYN_COUNT; s++) {
        nm_net *net;
        snprintf(path, sizeof path, "%s/synthetic-%s.onnx", argv[1], nm_synthetic_str((nm_synthetic)s));
        if (nm_synthetic_create(ctx, (nm_synthetic)s, 1, NM_SYN_BIAS_SD, &net) != NM_OK || nm_net_write_onnx(ctx, net, path) != NM_OK) {
            fprintf(stderr, "%s: %s\n", path, nm_ctx_message(ctx));
            rc = 1;
        }
        nm_net_free(ctx, net);
    }
    nm_ctx_free(ctx);
    return rc;
}
