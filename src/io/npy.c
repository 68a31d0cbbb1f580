/*
 * npy.c — NumPy .npy files (format 1.0/2.0/3.0): little-endian float32 or
 * float64 in C order, read and written. The header is parsed strictly; the
 * shape is checked against the file's size before anything is allocated, so
 * an absurd or truncated file fails with a message naming it and the reason.
 */
#include "../internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_HEADER 65536

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return s;
}

/* Finds the value after 'key': in the header dict; NULL if absent. */
static const char *find_key(const char *h, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p = skip_ws(p + strlen(pat));
    if (*p != ':') return NULL;
    return skip_ws(p + 1);
}

static nm_status parse_header(nm_ctx *ctx, const char *path, const char *h, nm_dtype *dtype,
                              int *ndim, int64_t *shape)
{
    const char *d = find_key(h, "descr");
    if (!d || (*d != '\'' && *d != '"')) return nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY header has no 'descr'", path);
    char q = *d++;
    const char *e = strchr(d, q);
    if (!e || e - d > 16) return nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY 'descr' is malformed", path);
    char descr[20];
    memcpy(descr, d, (size_t)(e - d));
    descr[e - d] = 0;
    if (!strcmp(descr, "<f4")) *dtype = NM_F32;
    else if (!strcmp(descr, "<f8")) *dtype = NM_F64;
    else
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s: dtype '%s' is not supported (need little-endian float32 '<f4' or float64 '<f8')", path, descr);
    const char *f = find_key(h, "fortran_order");
    if (!f) return nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY header has no 'fortran_order'", path);
    if (!strncmp(f, "True", 4)) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s: Fortran-order arrays are not supported; save in C order", path);
    if (strncmp(f, "False", 5)) return nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY 'fortran_order' is malformed", path);
    const char *s = find_key(h, "shape");
    if (!s || *s != '(') return nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY header has no 'shape' tuple", path);
    s = skip_ws(s + 1);
    *ndim = 0;
    while (*s != ')') {
        if (*ndim == NM_MAX_DIMS) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s: more than %d dimensions", path, NM_MAX_DIMS);
        if (*s < '0' || *s > '9') return nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY 'shape' is malformed", path);
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno) return nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY dimension out of range", path);
        shape[(*ndim)++] = v;
        s = skip_ws(end);
        if (*s == ',') s = skip_ws(s + 1);
        else if (*s != ')') return nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY 'shape' is malformed", path);
    }
    return NM_OK;
}

nm_status nm_npy_read(nm_ctx *ctx, const char *path, nm_array *out)
{
    memset(out, 0, sizeof *out);
    if (!path) return nm_fail(ctx, NM_ERR_ARG, "NPY path is NULL");
    FILE *fp = fopen(path, "rb");
    if (!fp) return nm_fail(ctx, NM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    nm_status st = NM_OK;
    char *header = NULL;
    unsigned char pre[12];
    if (fread(pre, 1, 8, fp) != 8 || memcmp(pre, "\x93NUMPY", 6)) {
        st = nm_fail(ctx, NM_ERR_FORMAT, "%s: not an NPY file (bad magic)", path);
        goto done;
    }
    int major = pre[6];
    size_t hlen, prefix;
    if (major == 1) {
        if (fread(pre + 8, 1, 2, fp) != 2) goto truncated;
        hlen = pre[8] | (size_t)pre[9] << 8;
        prefix = 10;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 8, 1, 4, fp) != 4) goto truncated;
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        prefix = 12;
    } else {
        st = nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s: NPY format version %d is not supported", path, major);
        goto done;
    }
    if (hlen > NPY_MAX_HEADER) {
        st = nm_fail(ctx, NM_ERR_FORMAT, "%s: NPY header of %zu bytes is implausibly long", path, hlen);
        goto done;
    }
    if (!(header = nm_alloc(ctx, hlen + 1, 1))) {
        st = NM_ERR_NOMEM;
        goto done;
    }
    if (fread(header, 1, hlen, fp) != hlen) goto truncated;
    header[hlen] = 0;
    nm_dtype dtype = NM_F32;
    int ndim = 0;
    int64_t shape[NM_MAX_DIMS];
    if ((st = parse_header(ctx, path, header, &dtype, &ndim, shape)) != NM_OK) goto done;
    /* the data must be exactly what the shape says: check before allocating */
    size_t esize = dtype == NM_F64 ? 8 : 4;
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && numel > (UINT64_MAX / esize) / (uint64_t)shape[i]) {
            st = nm_fail(ctx, NM_ERR_FORMAT, "%s: shape is too large", path);
            goto done;
        }
        numel *= (uint64_t)shape[i];
    }
    if (fseek(fp, 0, SEEK_END) != 0) goto ioerr;
    long fsize = ftell(fp);
    if (fsize < 0) goto ioerr;
    uint64_t have = (uint64_t)fsize - (prefix + hlen), need = numel * esize;
    if (have < need) {
        st = nm_fail(ctx, NM_ERR_FORMAT, "%s: truncated: shape needs %llu bytes of data, file has %llu",
                     path, (unsigned long long)need, (unsigned long long)have);
        goto done;
    }
    if (have > need) {
        st = nm_fail(ctx, NM_ERR_FORMAT, "%s: %llu bytes of data after the array", path, (unsigned long long)(have - need));
        goto done;
    }
    if (fseek(fp, (long)(prefix + hlen), SEEK_SET) != 0) goto ioerr;
    if ((st = nm_array_alloc(ctx, out, dtype, ndim, shape)) != NM_OK) goto done;
    if (fread(out->data, esize, numel, fp) != numel) {
        nm_array_free(ctx, out);
        goto truncated;
    }
    goto done;
truncated:
    st = nm_fail(ctx, NM_ERR_FORMAT, "%s: truncated NPY file", path);
    goto done;
ioerr:
    st = nm_fail(ctx, NM_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
done:
    nm_free(ctx, header);
    fclose(fp);
    return st;
}

nm_status nm_npy_write(nm_ctx *ctx, const char *path, const nm_array *a)
{
    if (!path || !a || (a->dtype != NM_F32 && a->dtype != NM_F64) || a->ndim < 0 || a->ndim > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_ARG, "nm_npy_write: bad array or path");
    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       a->dtype == NM_F64 ? "<f8" : "<f4");
    for (int i = 0; i < a->ndim; i++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld%s", (long long)a->shape[i],
                        a->ndim == 1 || i + 1 < a->ndim ? ", " : "");
    if (a->ndim == 1) len -= 1; /* "(5,)" */
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* pad with spaces and a newline so the data starts on a 64-byte boundary */
    int v1 = 10 + len + 1 <= 65535 + 10;
    size_t prefix = v1 ? 10 : 12, total = prefix + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64, hlen = (size_t)len + pad + 1;
    nm_afile af;
    nm_status st = nm_afile_open(ctx, path, &af);
    if (st != NM_OK) return st;
    FILE *fp = af.f;
    unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)(v1 ? 1 : 2), 0};
    pre[8] = (unsigned char)hlen;
    pre[9] = (unsigned char)(hlen >> 8);
    pre[10] = (unsigned char)(hlen >> 16);
    pre[11] = (unsigned char)(hlen >> 24);
    int ok = fwrite(pre, 1, prefix, fp) == prefix && fwrite(dict, 1, (size_t)len, fp) == (size_t)len;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', fp) != EOF;
    ok = ok && fputc('\n', fp) != EOF;
    size_t esize = a->dtype == NM_F64 ? 8 : 4, numel = (size_t)nm_array_numel(a);
    ok = ok && fwrite(a->data, esize, numel, fp) == numel;
    if (!ok) {
        int err = errno;
        nm_afile_abort(&af);
        return nm_fail(ctx, NM_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return nm_afile_commit(ctx, &af);
}
