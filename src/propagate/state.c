/*
 * state.c — the Gaussian state of one value (prop.h): making, widening,
 * its variances and covariance, and its private part turned into shared
 * columns.
 */
#include "prop.h"

#include <lapacke.h>
#include <malloc.h>
#include <math.h>
#include <string.h>

#define CACHE_MIN ((size_t)1 << 17) /* doubles (1 MiB): smaller buffers are freed at once */

/* Whether the cache holds a block. */
static int cached(const nm_prop *pr)
{
    for (int c = 0; c < NM_PROP_CACHE; c++)
        if (pr->cache[c].p) return 1;
    return 0;
}

double *nm_prop_zeros(nm_ctx *ctx, int64_t count)
{
    double *p = nm_alloc(ctx, (size_t)(count ? count : 1), sizeof(double));
    if (p) memset(p, 0, (size_t)count * sizeof(double));
    return p;
}

double *nm_prop_take(nm_prop *pr, size_t count)
{
    int best = -1;
    for (int c = 0; c < NM_PROP_CACHE; c++)
        if (pr->cache[c].p && pr->cache[c].n >= count && pr->cache[c].n <= 2 * count + CACHE_MIN &&
            (best < 0 || pr->cache[c].n < pr->cache[best].n))
            best = c;
    double *p = best >= 0 ? pr->cache[best].p : nm_alloc(pr->ctx, count ? count : 1, sizeof(double));
    if (best >= 0) pr->cache[best].p = NULL;
    else if (!p && cached(pr)) { /* the cache's blocks count against the memory budget: give them up first */
        nm_prop_drain(pr);
        p = nm_alloc(pr->ctx, count ? count : 1, sizeof(double));
    }
    /* zeroed by writing: calloc's untouched pages map the shared zero page, and the kernels' first
     * read-modify-write of each would then fault again and flush every CPU's TLB */
    if (p) memset(p, 0, count * sizeof(double));
    return p;
}

void nm_prop_give(nm_prop *pr, double *p)
{
    if (!p) return;
    size_t n = malloc_usable_size(p) / sizeof(double);
    int slot = 0; /* an empty slot, else the smallest block's */
    for (int c = 0; c < NM_PROP_CACHE; c++) {
        if (!pr->cache[c].p) {
            slot = c;
            break;
        }
        if (pr->cache[c].n < pr->cache[slot].n) slot = c;
    }
    /* kept only while the blocks held stay within half a memory budget: the walk's live states need the rest */
    size_t limit = pr->ctx->mem_limit, held = pr->ctx->live_bytes;
    if (n < CACHE_MIN || (pr->cache[slot].p && pr->cache[slot].n >= n) || (limit && held > limit / 2)) {
        nm_free(pr->ctx, p);
        return;
    }
    nm_free(pr->ctx, pr->cache[slot].p);
    pr->cache[slot].p = p, pr->cache[slot].n = n;
}

void nm_prop_drain(nm_prop *pr)
{
    for (int c = 0; c < NM_PROP_CACHE; c++) nm_free(pr->ctx, pr->cache[c].p), pr->cache[c].p = NULL;
}

void nm_gauss_free(nm_prop *pr, nm_gauss *g)
{
    nm_free(pr->ctx, g->m), nm_prop_give(pr, g->T), nm_free(pr->ctx, g->d2), nm_free(pr->ctx, g->R), nm_tiles_free(pr->ctx, g->S);
    memset(g, 0, sizeof *g);
}

nm_status nm_gauss_new(nm_prop *pr, int64_t n, int64_t k, nm_gauss *g)
{
    memset(g, 0, sizeof *g);
    g->n = n, g->k = k;
    int64_t nk;
    if (!nm_mul_ok(n, k, &nk)) return nm_fail(pr->ctx, NM_ERR_NOMEM, "a factor of %lld × %lld overflows", (long long)n, (long long)k);
    g->m = nm_alloc_zero(pr->ctx, (size_t)n, sizeof(double));
    if (g->m && k > 0) g->T = nm_prop_take(pr, (size_t)nk);
    if (g->m && (k == 0 || g->T)) return NM_OK;
    nm_gauss_free(pr, g);
    return NM_ERR_NOMEM;
}

void nm_gauss_var(const nm_gauss *g, double *v)
{
    #pragma omp parallel for schedule(static) if (g->n * g->k > 65536)
    for (int64_t u = 0; u < g->n; u++) {
        const double *t = g->T ? g->T + u * g->k : NULL;
        double s = g->d2 ? g->d2[u] : g->R ? g->R[u * g->n + u] : 0;
        for (int64_t c = 0; t && c < g->k; c++) s += t[c] * t[c];
        v[u] = s;
    }
    if (g->S) nm_tiles_norms(g->S, v);
}

nm_status nm_gauss_cov(nm_prop *pr, const nm_gauss *g, double *C)
{
    int64_t n = g->n;
    if (g->R) memcpy(C, g->R, (size_t)(n * n) * sizeof(double));
    else memset(C, 0, (size_t)(n * n) * sizeof(double));
    if (g->k > 0) nm_syrk_f64(n, g->k, 1.0, g->T, g->k, 1.0, C, n);
    if (g->S && g->S->kc > 0) { /* S Sᵀ, S laid out dense */
        double *Y = nm_alloc_zero(pr->ctx, (size_t)n, (size_t)g->S->kc * sizeof(double));
        if (!Y) return NM_ERR_NOMEM;
        nm_tiles_put(g->S, Y, g->S->kc, 0);
        nm_syrk_f64(n, g->S->kc, 1.0, Y, g->S->kc, 1.0, C, n);
        nm_free(pr->ctx, Y);
    }
    for (int64_t u = 0; u < n; u++) {
        if (g->d2) C[u * n + u] += g->d2[u];
        for (int64_t v = u + 1; v < n; v++) C[u * n + v] = C[v * n + u];
    }
    return NM_OK;
}

void nm_rows_scale(int64_t rows, int64_t k, const double *s, double *X)
{
    #pragma omp parallel for schedule(static) if (rows * k > 65536)
    for (int64_t u = 0; u < rows; u++)
        for (int64_t c = 0; c < k; c++) X[u * k + c] *= s[u];
}

/* g's factor widened to k2 ≥ g->k columns (the new ones zero). */
static nm_status widen(nm_prop *pr, nm_gauss *g, int64_t k2)
{
    int64_t nk;
    if (!nm_mul_ok(g->n, k2, &nk)) return nm_fail(pr->ctx, NM_ERR_NOMEM, "a factor of %lld × %lld overflows", (long long)g->n, (long long)k2);
    double *T = nm_prop_take(pr, (size_t)nk);
    if (!T) return NM_ERR_NOMEM;
    for (int64_t u = 0; g->T && u < g->n; u++) memcpy(T + u * k2, g->T + u * g->k, (size_t)g->k * sizeof(double));
    nm_prop_give(pr, g->T);
    g->T = T, g->k = k2;
    return NM_OK;
}

/* R's square root as columns: eigenvectors scaled by √λ for λ above rounding (V, w: n × n and n). */
static nm_status share_dense(nm_prop *pr, nm_gauss *g)
{
    nm_ctx *ctx = pr->ctx;
    int64_t n = g->n, r = 0;
    double *w = nm_alloc(ctx, (size_t)n, sizeof(double)), top = 0;
    nm_status st = w ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK && LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)n, g->R, (lapack_int)n, w) != 0)
        st = nm_fail(ctx, NM_ERR_NUMERIC, "the eigenvalues of a residual covariance (%lld units) did not converge", (long long)n);
    for (int64_t c = 0; st == NM_OK && c < n; c++) top = fmax(top, w[c]);
    for (int64_t c = 0; st == NM_OK && c < n; c++) r += w[c] > 1e-13 * top;
    int64_t k0 = pr->cols;
    if (st == NM_OK && (st = widen(pr, g, k0 + r)) == NM_OK) {
        for (int64_t c = 0, j = k0; c < n; c++) {
            if (!(w[c] > 1e-13 * top)) continue;
            double s = sqrt(w[c]);
            for (int64_t u = 0; u < n; u++) g->T[u * g->k + j] = g->R[u * n + c] * s;
            j++;
        }
        pr->cols = k0 + r;
        nm_free(ctx, g->R);
        g->R = NULL;
    }
    nm_free(ctx, w);
    return st;
}

nm_status nm_gauss_share_tiles(nm_prop *pr, nm_gauss *g)
{
    if (!g->S) return NM_OK;
    int64_t k0 = pr->cols;
    nm_status st = widen(pr, g, k0 + g->S->kc);
    if (st != NM_OK) return st;
    nm_tiles_put(g->S, g->T, g->k, k0);
    pr->cols = k0 + g->S->kc;
    nm_tiles_free(pr->ctx, g->S);
    g->S = NULL;
    return NM_OK;
}

nm_status nm_gauss_share(nm_prop *pr, nm_gauss *g)
{
    nm_status st = nm_gauss_share_tiles(pr, g);
    if (st != NM_OK) return st;
    if (g->R) return share_dense(pr, g);
    if (!g->d2) return NM_OK;
    int64_t r = 0, k0 = pr->cols;
    for (int64_t u = 0; u < g->n; u++) r += g->d2[u] > 0;
    st = widen(pr, g, k0 + r);
    if (st != NM_OK) return st;
    for (int64_t u = 0, j = k0; u < g->n; u++)
        if (g->d2[u] > 0) g->T[u * g->k + j++] = sqrt(g->d2[u]);
    pr->cols = k0 + r;
    nm_free(pr->ctx, g->d2);
    g->d2 = NULL;
    return NM_OK;
}
