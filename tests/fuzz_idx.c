/*
 * fuzz_idx.c — libFuzzer target for the IDX reader: the input's first byte
 * says where the image file ends and the label file begins (as a share of
 * the rest), and whether the image file is gzipped; any bytes give a status
 * or a data set whose images convert, and an allocation beyond the
 * context's budget is an error, never an abort.
 */
#include "fuzz_util.h"

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t cut = 1 + (size - 1) * (data[0] & 0x7f) / 127;
    const char *img = fuzz_file("images", data + 1, cut - 1), *lbl = fuzz_file("labels", data + cut, size - cut);
    if (data[0] & 0x80) { /* the images gzipped */
        gzFile g = gzopen(img, "wb");
        if (g) {
            gzwrite(g, data + 1, (unsigned)(cut - 1));
            gzclose(g);
        }
    }
    nm_ctx *ctx = fuzz_ctx();
    nm_dataset ds;
    if (ctx && nm_dataset_read_idx(ctx, img, lbl, &ds) == NM_OK) {
        float x[16 * 16];
        int64_t first = 0;
        if (ds.rows * ds.cols <= 16 * 16) nm_dataset_images(ctx, &ds, &first, 1, (nm_scale){255, -127.5}, x);
        nm_dataset_free(ctx, &ds);
    }
    nm_ctx_free(ctx);
    return 0;
}
