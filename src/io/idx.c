/*
 * idx.c — image data sets in the IDX format of MNIST and Fashion-MNIST
 * (gzipped or plain; zlib reads both): an idx3 file of 8-bit images and an
 * idx1 file of labels. Every size is checked against the bytes present, a
 * file longer than its header says is refused, and the two files must agree
 * on the count. Images are turned into network inputs through the model's
 * input scale x = a·p + b, p = pixel / 255 ∈ [0, 1] (issue 4: the paper's
 * LeNet has a = 255, b = −127.5).
 */
#include "../internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define NM_IDX_MAX_ITEMS 100000000
#define NM_IDX_MAX_SIDE 4096

/* Reads exactly len bytes; 0 when the file ends first or is corrupt. */
static int read_exact(gzFile f, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got <= 0) return 0;
        p += got;
        len -= (size_t)got;
    }
    return 1;
}

/* The header's dimensions, each within its limit, and their product
 * (checked: a failed dimension stops the product). */
static nm_status read_dims(nm_ctx *ctx, const char *path, gzFile f, int want_dims, int64_t *dims, int64_t *total)
{
    uint8_t head[4 + 4 * 3];
    if (!read_exact(f, head, 4)) return nm_fail(ctx, NM_ERR_FORMAT, "%s: truncated IDX header", path);
    if (head[0] || head[1] || head[2] != 0x08)
        return nm_fail(ctx, NM_ERR_FORMAT, "%s: not an IDX file of unsigned bytes (magic %02x %02x %02x %02x)", path, head[0], head[1],
                       head[2], head[3]);
    if (head[3] != want_dims) return nm_fail(ctx, NM_ERR_FORMAT, "%s: %d dimensions (expected %d)", path, head[3], want_dims);
    if (!read_exact(f, head + 4, 4 * (size_t)want_dims)) return nm_fail(ctx, NM_ERR_FORMAT, "%s: truncated IDX header", path);
    *total = 1;
    for (int i = 0; i < want_dims; i++) {
        const uint8_t *b = head + 4 + 4 * i;
        dims[i] = (int64_t)b[0] << 24 | (int64_t)b[1] << 16 | (int64_t)b[2] << 8 | b[3];
        int64_t limit = i == 0 ? NM_IDX_MAX_ITEMS : NM_IDX_MAX_SIDE;
        if (dims[i] < 1 || dims[i] > limit)
            return nm_fail(ctx, NM_ERR_FORMAT, "%s: dimension %d is %lld (allowed 1..%lld)", path, i, (long long)dims[i], (long long)limit);
        if (!nm_mul_ok(*total, dims[i], total)) return nm_fail(ctx, NM_ERR_FORMAT, "%s: the dimensions' product overflows", path);
    }
    return NM_OK;
}

/* The total bytes the header promises, read as they arrive: the buffer
 * grows with the data (doubling, from 1 MiB), never to more than what was
 * read, so a header that claims more than the stream holds is a format
 * error, not an allocation of the claim; the context's budget bounds the
 * rest. */
static nm_status read_data(nm_ctx *ctx, const char *path, gzFile f, int64_t total, uint8_t **out)
{
    size_t cap = 0, have = 0, want = (size_t)total;
    uint8_t *d = NULL;
    nm_status st = NM_OK;
    while (st == NM_OK && have < want) {
        if (have == cap) {
            size_t nc = cap ? 2 * cap : (size_t)1 << 20;
            if (nc > want) nc = want;
            uint8_t *nd = nm_alloc(ctx, nc, 1);
            if (!nd) {
                st = NM_ERR_NOMEM;
                break;
            }
            if (have) memcpy(nd, d, have);
            nm_free(ctx, d);
            d = nd, cap = nc;
        }
        size_t chunk = cap - have > (1u << 30) ? (1u << 30) : cap - have;
        int got = gzread(f, d + have, (unsigned)chunk);
        if (got <= 0) st = nm_fail(ctx, NM_ERR_FORMAT, "%s: truncated: the header promises %lld bytes of data, the file holds %zu", path,
                                   (long long)total, have);
        else have += (size_t)got;
    }
    uint8_t extra;
    if (st == NM_OK && gzread(f, &extra, 1) > 0) st = nm_fail(ctx, NM_ERR_FORMAT, "%s: longer than its header says (inconsistent sizes)", path);
    if (st != NM_OK) {
        nm_free(ctx, d);
        return st;
    }
    *out = d;
    return NM_OK;
}

/* Reads one IDX file of unsigned bytes with `want_dims` dimensions. */
static nm_status read_idx(nm_ctx *ctx, const char *path, int want_dims, int64_t *dims, uint8_t **data)
{
    *data = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f) return nm_fail(ctx, NM_ERR_IO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
    int64_t total = 0;
    nm_status st = read_dims(ctx, path, f, want_dims, dims, &total);
    if (st == NM_OK) st = read_data(ctx, path, f, total, data);
    gzclose(f);
    return st;
}

nm_status nm_dataset_read_idx(nm_ctx *ctx, const char *images, const char *labels, nm_dataset *out)
{
    if (!ctx || !images || !labels || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    int64_t di[3], dl[1];
    uint8_t *px, *lb;
    nm_status st = read_idx(ctx, images, 3, di, &px);
    if (st != NM_OK) return st;
    if ((st = read_idx(ctx, labels, 1, dl, &lb)) != NM_OK) {
        nm_free(ctx, px);
        return st;
    }
    if (dl[0] != di[0]) {
        nm_free(ctx, px);
        nm_free(ctx, lb);
        return nm_fail(ctx, NM_ERR_FORMAT, "%s holds %lld images but %s %lld labels", images, (long long)di[0], labels,
                       (long long)dl[0]);
    }
    int classes = 0;
    for (int64_t i = 0; i < dl[0]; i++) classes = lb[i] + 1 > classes ? lb[i] + 1 : classes;
    *out = (nm_dataset){di[0], di[1], di[2], classes, px, lb};
    return NM_OK;
}

void nm_dataset_free(nm_ctx *ctx, nm_dataset *ds)
{
    if (!ds) return;
    nm_free(ctx, ds->pixels);
    nm_free(ctx, ds->labels);
    memset(ds, 0, sizeof *ds);
}

nm_status nm_dataset_images(nm_ctx *ctx, const nm_dataset *ds, const int64_t *index, int64_t count, nm_scale scale,
                            float *out)
{
    if (!ds || !ds->pixels || !out || count < 0) return nm_fail(ctx, NM_ERR_ARG, "empty data set or NULL argument");
    int64_t per = ds->rows * ds->cols;
    for (int64_t k = 0; k < count; k++) {
        int64_t i = index ? index[k] : k;
        if (i < 0 || i >= ds->n) return nm_fail(ctx, NM_ERR_ARG, "image %lld outside 0..%lld", (long long)i, (long long)ds->n - 1);
        const uint8_t *p = ds->pixels + i * per;
        for (int64_t j = 0; j < per; j++) out[k * per + j] = (float)(scale.a * (p[j] / 255.0) + scale.b);
    }
    return NM_OK;
}
