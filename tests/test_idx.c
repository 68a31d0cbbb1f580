/*
 * test_idx.c — the IDX reader. Files are assembled byte by byte here from
 * the format (big-endian header, unsigned bytes), written gzipped and
 * plain, and read back; truncated files, files longer than their header,
 * wrong magic or rank, zero or absurd dimensions and counts that disagree
 * are refused. The input scale x = a·p + b is checked against its formula,
 * and the data sets setup.sh prepares have the sizes the issue gives.
 */
#include "netmoments.h"
#include "check.h"

#include <stdint.h>
#include <string.h>
#include <zlib.h>

#define TOL_F32_SCALE 1e-4 /* 255 p − 127.5 in float, absolute */

static nm_ctx *ctx;

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void write_file(const char *path, const uint8_t *b, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, b, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

/* An idx3 of n images rows×cols with pixel (i, r, c) = (7i + 3r + c) mod 256, then `extra` trailing bytes. */
static size_t make_images(uint8_t *b, uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t extra)
{
    put32(b, magic);
    put32(b + 4, n), put32(b + 8, rows), put32(b + 12, cols);
    size_t k = 16;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t c = 0; c < cols; c++) b[k++] = (uint8_t)((7 * i + 3 * r + c) % 256);
    for (size_t e = 0; e < extra; e++) b[k++] = 0;
    return k;
}

static size_t make_labels(uint8_t *b, uint32_t n)
{
    put32(b, 0x801);
    put32(b + 4, n);
    for (uint32_t i = 0; i < n; i++) b[8 + i] = (uint8_t)(i % 10);
    return 8 + n;
}

static void expect_fail(const char *what, const char *img, const char *lbl, nm_status want)
{
    nm_dataset ds;
    nm_status st = nm_dataset_read_idx(ctx, img, lbl, &ds);
    char w[600];
    snprintf(w, sizeof w, "%s: %s (%s)", what, nm_status_str(st), nm_ctx_message(ctx));
    check_true(w, st == want && ds.pixels == NULL && *nm_ctx_message(ctx));
}

int main(void)
{
    ctx = nm_ctx_create();
    static uint8_t b[1 << 20];
    const char *img = check_tmp("img"), *lbl = check_tmp("lbl");
    for (int gz = 0; gz < 2; gz++) {
        size_t n = make_images(b, 0x803, 37, 5, 6, 0);
        write_file(img, b, n, gz);
        write_file(lbl, b, make_labels(b, 37), gz);
        nm_dataset ds;
        if (check_true(gz ? "gzipped files read" : "plain files read", nm_dataset_read_idx(ctx, img, lbl, &ds) == NM_OK)) {
            check_true("sizes", ds.n == 37 && ds.rows == 5 && ds.cols == 6 && ds.classes == 10);
            int same = 1;
            for (int i = 0; i < 37; i++) {
                same &= ds.labels[i] == i % 10;
                for (int r = 0; r < 5; r++)
                    for (int c = 0; c < 6; c++) same &= ds.pixels[(i * 5 + r) * 6 + c] == (7 * i + 3 * r + c) % 256;
            }
            check_true("every pixel and label as written", same);
            float x[2 * 30];
            int64_t idx[2] = {36, 3};
            nm_scale sc = {255.0, -127.5};
            if (check_true("images scale", nm_dataset_images(ctx, &ds, idx, 2, sc, x) == NM_OK))
                for (int k = 0; k < 2; k++)
                    for (int j = 0; j < 30; j++) {
                        int r = j / 6, c = j % 6, i = (int)idx[k];
                        double p = ((7 * i + 3 * r + c) % 256) / 255.0;
                        check_close("x = a p + b", x[k * 30 + j], 255.0 * p - 127.5, TOL_F32_SCALE, 0);
                    }
            check_true("index out of range refused", nm_dataset_images(ctx, &ds, (int64_t[]){37}, 1, sc, x) == NM_ERR_ARG);
            nm_dataset_free(ctx, &ds);
        }
    }
    /* bad files */
    size_t n = make_images(b, 0x803, 37, 5, 6, 0);
    write_file(img, b, n - 1, 1);
    expect_fail("truncated data", img, lbl, NM_ERR_FORMAT);
    write_file(img, b, 10, 1);
    expect_fail("truncated header", img, lbl, NM_ERR_FORMAT);
    n = make_images(b, 0x803, 37, 5, 6, 3);
    write_file(img, b, n, 1);
    expect_fail("longer than the header says", img, lbl, NM_ERR_FORMAT);
    n = make_images(b, 0x0D03, 37, 5, 6, 0);
    write_file(img, b, n, 1);
    expect_fail("float element type", img, lbl, NM_ERR_FORMAT);
    n = make_images(b, 0x802, 37, 5, 6, 0);
    write_file(img, b, n, 1);
    expect_fail("rank 2 for images", img, lbl, NM_ERR_FORMAT);
    n = make_images(b, 0x803, 37, 0, 6, 0);
    write_file(img, b, n, 1);
    expect_fail("zero rows", img, lbl, NM_ERR_FORMAT);
    put32(b, 0x803), put32(b + 4, 0x7fffffff), put32(b + 8, 28), put32(b + 12, 28);
    write_file(img, b, 16, 1);
    expect_fail("2^31 images promised by 16 bytes", img, lbl, NM_ERR_FORMAT);
    n = make_images(b, 0x803, 36, 5, 6, 0);
    write_file(img, b, n, 1);
    expect_fail("36 images, 37 labels", img, lbl, NM_ERR_FORMAT);
    write_file(img, (const uint8_t *)"garbage, not gzip or IDX", 24, 0);
    expect_fail("garbage", img, lbl, NM_ERR_FORMAT);
    expect_fail("missing file", check_tmp("no_such_file"), lbl, NM_ERR_IO);

    /* the data sets setup.sh prepares */
    struct {
        const char *img, *lbl;
        int64_t n;
    } sets[] = {
        {"data/mnist/train-images-idx3-ubyte.gz", "data/mnist/train-labels-idx1-ubyte.gz", 8004},
        {"data/mnist/test-images-idx3-ubyte.gz", "data/mnist/test-labels-idx1-ubyte.gz", 1996},
        {"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", 60000},
        {"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", 10000},
    };
    for (int i = 0; i < 4; i++) {
        if (!check_have(sets[i].img)) continue;
        nm_dataset ds;
        nm_status st = nm_dataset_read_idx(ctx, sets[i].img, sets[i].lbl, &ds);
        char w[600];
        snprintf(w, sizeof w, "%s: %lld images of 28x28, 10 classes (%s)", sets[i].img, (long long)sets[i].n, nm_ctx_message(ctx));
        check_true(w, st == NM_OK && ds.n == sets[i].n && ds.rows == 28 && ds.cols == 28 && ds.classes == 10);
        if (st == NM_OK) nm_dataset_free(ctx, &ds);
    }
    nm_ctx_free(ctx);
    return check_finish("test_idx");
}
