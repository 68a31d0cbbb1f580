/*
 * test_npy.c — NPY files: a file assembled byte by byte here from the
 * format's specification is read correctly (v1.0 float32 and v2.0
 * float64), and what nm_npy_write produces has the specified layout
 * (magic, version, 64-byte aligned header, raw little-endian data).
 */
#include "netmoments.h"
#include "check.h"

#include <string.h>

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Builds an NPY file: prefix, header dict padded to 64 bytes, data. */
static size_t build(unsigned char *buf, int major, const char *dict, const void *data, size_t nbytes)
{
    size_t prefix = major == 1 ? 10 : 12, len = strlen(dict);
    size_t hlen = len + 1 + (64 - (prefix + len + 1) % 64) % 64;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < prefix - 8; i++) buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + prefix, dict, len);
    memset(buf + prefix + len, ' ', hlen - len - 1);
    buf[prefix + hlen - 1] = '\n';
    memcpy(buf + prefix + hlen, data, nbytes);
    return prefix + hlen + nbytes;
}

int main(void)
{
    nm_ctx *ctx = nm_ctx_create();
    unsigned char buf[4096];
    float f[6] = {1, -2, 3.5f, 4, 5, -6.25f};
    size_t n = build(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, sizeof f);
    write_bytes(check_tmp("t_v1.npy"), buf, n);
    nm_array a;
    if (check_true("read v1 f4", nm_npy_read(ctx, check_tmp("t_v1.npy"), &a) == NM_OK)) {
        check_true("v1 shape", a.dtype == NM_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
        check_true("v1 data", !memcmp(a.data, f, sizeof f));
        nm_array_free(ctx, &a);
    }
    double d[4] = {0.1, -1e300, 3, 4e-300};
    n = build(buf, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", d, sizeof d);
    write_bytes(check_tmp("t_v2.npy"), buf, n);
    if (check_true("read v2 f8", nm_npy_read(ctx, check_tmp("t_v2.npy"), &a) == NM_OK)) {
        check_true("v2 shape", a.dtype == NM_F64 && a.ndim == 1 && a.shape[0] == 4);
        check_true("v2 data", !memcmp(a.data, d, sizeof d));
        nm_array_free(ctx, &a);
    }
    n = build(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", d, 8);
    write_bytes(check_tmp("t_scalar.npy"), buf, n);
    if (check_true("read scalar", nm_npy_read(ctx, check_tmp("t_scalar.npy"), &a) == NM_OK)) {
        check_true("scalar", a.ndim == 0 && ((double *)a.data)[0] == d[0]);
        nm_array_free(ctx, &a);
    }
    /* the writer's bytes follow the specification */
    nm_array w = {NM_F32, 2, {2, 3}, f};
    check_true("write", nm_npy_write(ctx, check_tmp("t_w.npy"), &w) == NM_OK);
    FILE *fp = fopen(check_tmp("t_w.npy"), "rb");
    size_t got = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    size_t hlen = buf[8] | (size_t)buf[9] << 8;
    check_true("magic and version 1.0", !memcmp(buf, "\x93NUMPY\x01\x00", 8));
    check_true("header 64-aligned and newline-terminated", (10 + hlen) % 64 == 0 && buf[10 + hlen - 1] == '\n');
    check_true("header dict", strstr((char *)buf + 10, "'descr': '<f4'") && strstr((char *)buf + 10, "'shape': (2, 3)") &&
                                  strstr((char *)buf + 10, "'fortran_order': False"));
    check_true("data after header", got == 10 + hlen + sizeof f && !memcmp(buf + 10 + hlen, f, sizeof f));
    nm_array w1 = {NM_F64, 1, {4}, d};
    nm_npy_write(ctx, check_tmp("t_w1.npy"), &w1);
    fp = fopen(check_tmp("t_w1.npy"), "rb");
    got = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    check_true("1-D shape written as (4,)", strstr((char *)buf + 10, "'shape': (4,)") != NULL);
    nm_ctx_free(ctx);
    return check_finish("test_npy");
}
