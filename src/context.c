/*
 * context.c — status names, the per-context error message, checked
 * allocation with its failure-injection hook, and nm_array helpers.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <locale.h>
#include <malloc.h>

static const char *const status_names[NM_STATUS_COUNT] = {
    "ok",
    "invalid argument",
    "shape mismatch",
    "non-finite value",
    "covariance not positive semi-definite",
    "out of memory",
    "I/O error",
    "malformed file",
    "unsupported",
    "numerical failure",
};
_Static_assert(sizeof status_names / sizeof status_names[0] == NM_STATUS_COUNT,
               "one name per nm_status");

const char *nm_status_str(nm_status s)
{
    int i = -(int)s;
    if (i < 0 || i >= NM_STATUS_COUNT) return "unknown status";
    return status_names[i];
}

/* The default budget of every context: an eighth of the physical memory,
 * but at least 1 GiB (or half the memory of a machine with less than 2). */
static size_t default_mem_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    size_t phys = pages > 0 && size > 0 ? (size_t)pages * (size_t)size : (size_t)8 << 30, gib = (size_t)1 << 30;
    size_t lim = phys / 8;
    if (lim < gib) lim = phys / 2 < gib ? phys / 2 : gib;
    return lim;
}

nm_ctx *nm_ctx_create(void)
{
    nm_ctx *ctx = calloc(1, sizeof(nm_ctx));
    if (ctx) ctx->mem_limit = default_mem_limit();
    return ctx;
}

nm_status nm_ctx_set_mem_limit(nm_ctx *ctx, size_t bytes)
{
    if (!ctx) return NM_ERR_ARG;
    ctx->mem_limit = bytes ? bytes : default_mem_limit();
    return NM_OK;
}

size_t nm_ctx_mem_limit(const nm_ctx *ctx)
{
    return ctx ? ctx->mem_limit : 0;
}

const char *nm_human_bytes(size_t n, char *buf, size_t len)
{
    const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
    return buf;
}

void nm_ctx_free(nm_ctx *ctx)
{
    free(ctx);
}

const char *nm_ctx_message(const nm_ctx *ctx)
{
    return ctx ? ctx->message : "no context";
}

long nm_ctx_fail_alloc_after(nm_ctx *ctx, long n)
{
    if (!ctx) return 0;
    ctx->fail_at = n > 0 ? ctx->alloc_count + n : 0;
    return ctx->alloc_count;
}

nm_status nm_fail(nm_ctx *ctx, nm_status status, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->message, sizeof ctx->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

static void *alloc_impl(nm_ctx *ctx, size_t count, size_t size, bool zero)
{
    if (size != 0 && count > SIZE_MAX / size) {
        nm_fail(ctx, NM_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    size_t nbytes = count * size;
    if (nbytes == 0) nbytes = 1;
    if (ctx) ctx->alloc_count++; /* a NULL context allocates too, uncounted, and keeps no message */
    if (ctx && ctx->mem_limit && (nbytes > ctx->mem_limit || ctx->live_bytes > ctx->mem_limit - nbytes)) {
        char a[32], b[32], c[32];
        nm_fail(ctx, NM_ERR_NOMEM, "allocating %s with %s held would exceed the memory budget of %s", nm_human_bytes(nbytes, a, sizeof a),
                nm_human_bytes(ctx->live_bytes, b, sizeof b), nm_human_bytes(ctx->mem_limit, c, sizeof c));
        return NULL;
    }
    if (ctx && ctx->fail_at != 0 && ctx->alloc_count == ctx->fail_at) {
        nm_fail(ctx, NM_ERR_NOMEM, "out of memory allocating %zu bytes (injected)", nbytes);
        return NULL;
    }
    void *p = zero ? calloc(1, nbytes) : malloc(nbytes);
    if (!p) nm_fail(ctx, NM_ERR_NOMEM, "out of memory allocating %zu bytes", nbytes);
    if (p && ctx) {
        ctx->live_bytes += malloc_usable_size(p);
        if (ctx->live_bytes > ctx->peak_bytes) ctx->peak_bytes = ctx->live_bytes;
    }
    return p;
}

void *nm_alloc(nm_ctx *ctx, size_t count, size_t size)
{
    return alloc_impl(ctx, count, size, false);
}

void *nm_alloc_zero(nm_ctx *ctx, size_t count, size_t size)
{
    return alloc_impl(ctx, count, size, true);
}

void nm_free(nm_ctx *ctx, void *p)
{
    if (!p) return;
    if (ctx) { /* blocks freed through another context than their own only skew its count */
        size_t n = malloc_usable_size(p);
        ctx->live_bytes = ctx->live_bytes > n ? ctx->live_bytes - n : 0;
    }
    free(p);
}

size_t nm_ctx_mem_peak(nm_ctx *ctx)
{
    if (!ctx) return 0;
    size_t p = ctx->peak_bytes;
    ctx->peak_bytes = ctx->live_bytes;
    return p;
}

bool nm_all_finite_f64(const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

bool nm_all_finite_f32(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* ---------------------------------------------------------------- arrays */

int64_t nm_array_numel(const nm_array *a)
{
    int64_t n = 1;
    for (int i = 0; i < a->ndim; i++) n *= a->shape[i];
    return n;
}

static size_t dtype_size(nm_dtype t)
{
    return t == NM_F64 ? sizeof(double) : sizeof(float);
}

nm_status nm_array_alloc(nm_ctx *ctx, nm_array *out, nm_dtype dtype, int ndim,
                         const int64_t *shape)
{
    memset(out, 0, sizeof *out);
    if (dtype != NM_F32 && dtype != NM_F64)
        return nm_fail(ctx, NM_ERR_ARG, "array dtype %d is neither F32 nor F64", (int)dtype);
    if (ndim < 0 || ndim > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_ARG, "array rank %d outside 0..%d", ndim, NM_MAX_DIMS);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return nm_fail(ctx, NM_ERR_ARG, "negative dimension %lld", (long long)shape[i]);
        if (shape[i] != 0 && numel > INT64_MAX / shape[i])
            return nm_fail(ctx, NM_ERR_ARG, "array of rank %d has too many elements", ndim);
        numel *= shape[i];
    }
    void *data = nm_alloc_zero(ctx, (size_t)numel, dtype_size(dtype));
    if (!data) return NM_ERR_NOMEM;
    out->dtype = dtype;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) out->shape[i] = shape[i];
    out->data = data;
    return NM_OK;
}

void nm_array_free(nm_ctx *ctx, nm_array *a)
{
    if (!a) return;
    nm_free(ctx, a->data);
    memset(a, 0, sizeof *a);
}

nm_status nm_array_to_f64(nm_ctx *ctx, const nm_array *a, double **out)
{
    *out = NULL;
    if (!a || !a->data || (a->dtype != NM_F32 && a->dtype != NM_F64))
        return nm_fail(ctx, NM_ERR_ARG, "array is empty or of unknown dtype");
    int64_t n = nm_array_numel(a);
    double *d = nm_alloc(ctx, (size_t)n, sizeof(double));
    if (!d) return NM_ERR_NOMEM;
    if (a->dtype == NM_F64) {
        memcpy(d, a->data, (size_t)n * sizeof(double));
    } else {
        const float *f = a->data;
        for (int64_t i = 0; i < n; i++) d[i] = f[i];
    }
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(d[i])) {
            nm_free(ctx, d);
            return nm_fail(ctx, NM_ERR_NONFINITE, "array holds a non-finite value at flat index %lld",
                           (long long)i);
        }
    }
    *out = d;
    return NM_OK;
}

nm_status nm_array_to_f32(nm_ctx *ctx, const nm_array *a, const char *what, float **out)
{
    *out = NULL;
    if (!a || !a->data || (a->dtype != NM_F32 && a->dtype != NM_F64))
        return nm_fail(ctx, NM_ERR_ARG, "%s: empty array or unknown dtype", what);
    int64_t n = nm_array_numel(a);
    float *f = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(float));
    if (!f) return NM_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) {
        double v = a->dtype == NM_F64 ? ((const double *)a->data)[i] : ((const float *)a->data)[i];
        if (!isfinite(v)) {
            nm_free(ctx, f);
            return nm_fail(ctx, NM_ERR_NONFINITE, "%s holds a non-finite value at flat index %lld", what, (long long)i);
        }
        f[i] = (float)v;
        if (!isfinite(f[i])) { /* the passes run in float32 */
            nm_free(ctx, f);
            return nm_fail(ctx, NM_ERR_NONFINITE, "%s: value %g at flat index %lld is beyond float32's range (±3.4e38), in which the network runs",
                           what, v, (long long)i);
        }
    }
    *out = f;
    return NM_OK;
}

/* ---------------------------------------------------------------- numbers in text */

/* Numbers the library writes into and reads from files (the input scale in
 * ONNX metadata) use the "C" locale whatever the host application set: a
 * decimal comma would otherwise write "-127,5" and read "-127.5" as -127. */

int nm_format_c(char *buf, size_t len, const char *fmt, ...)
{
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    locale_t old = c ? uselocale(c) : (locale_t)0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (c) {
        uselocale(old);
        freelocale(c);
    }
    return c ? n : -1;
}

int nm_parse_doubles_c(const char *s, int count, double *out)
{
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c) return 0;
    int i = 0;
    for (char *end; i < count; i++, s = end) {
        out[i] = strtod_l(s, &end, c);
        if (end == s) break;
    }
    freelocale(c);
    return i == count;
}
