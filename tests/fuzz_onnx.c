/*
 * fuzz_onnx.c — libFuzzer target for the ONNX loader: any bytes must give a
 * status, never a crash, a leak or undefined behaviour. A net that loads and
 * is small runs forward, jvp and vjp once, so the kernels see the shapes and
 * attributes fuzzing invents. Built by scripts/fuzz.sh (clang).
 */
#include "netmoments.h"

#include <stdint.h>
#include <string.h>

#define SMALL 200000 /* elements over all node outputs */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nm_ctx *ctx = nm_ctx_create();
    nm_net *net = NULL;
    if (ctx && nm_net_read_onnx_memory(ctx, data, size, &net) == NM_OK) {
        int64_t total = 0;
        for (int i = 0; i < nm_net_node_count(net); i++) {
            nm_node_info info;
            nm_net_node_info(ctx, net, i, &info);
            int64_t n = 1;
            for (int k = 0; k < info.ndim; k++) n *= info.shape[k];
            total += n;
        }
        nm_array x;
        int ndim;
        int64_t shape[NM_MAX_DIMS];
        nm_net_input_shape(net, &ndim, shape);
        if (total <= SMALL && nm_array_alloc(ctx, &x, NM_F32, ndim, shape) == NM_OK) {
            int64_t n = nm_array_numel(&x);
            if (n <= SMALL) {
                for (int64_t i = 0; i < n; i++) ((float *)x.data)[i] = (float)((i * 7919) % 13) - 6.0f;
                nm_array y, t, g;
                if (nm_net_forward(ctx, net, 0, -1, &x, &y) == NM_OK) {
                    if (nm_net_jvp(ctx, net, 0, -1, &x, &t) == NM_OK) nm_array_free(ctx, &t);
                    if (nm_net_vjp(ctx, net, 0, -1, &y, &g) == NM_OK) nm_array_free(ctx, &g);
                    nm_array_free(ctx, &y);
                }
            }
            nm_array_free(ctx, &x);
        }
    }
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return 0;
}
