/*
 * rank.c — method propagate's optional compression of a value's shared
 * columns to rank K (nm_net_moments_options.rank): T (n × k) → T V
 * (n × K), V an orthonormal basis of T's top K right singular directions
 * found by a randomized range finder (Halko, Martinsson & Tropp 2011,
 * Alg. 4.4: a Gaussian test matrix of K + 10 columns and one power
 * iteration, re-orthonormalized), then the exact top K of what it spans.
 * Since V Vᵀ ≼ I, T V Vᵀ Tᵀ ≼ T Tᵀ: no unit's column variance grows, and
 * what each unit loses is added to its private variance, so every unit
 * keeps its variance and only the correlations the dropped directions
 * carried are lost. Only a value that no other live value shares columns
 * with may be compressed (the new columns are a new basis).
 */
#include "prop.h"

#include <lapacke.h>
#include <math.h>
#include <string.h>

#define OVERSAMPLE 10

/* Q (k × l, row-major) replaced by an orthonormal basis of its columns. */
static nm_status orthonormalize(nm_ctx *ctx, int64_t k, int64_t l, double *Q, double *tau)
{
    if (LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)k, (lapack_int)l, Q, (lapack_int)l, tau) != 0 ||
        LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)k, (lapack_int)l, (lapack_int)l, Q, (lapack_int)l, tau) != 0)
        return nm_fail(ctx, NM_ERR_NUMERIC, "--rank: the QR factorization of a %lld × %lld range basis failed", (long long)k, (long long)l);
    return NM_OK;
}

/* The part of each unit's column variance that T' = C W_K leaves, onto the private part; the moved share of the trace. */
static nm_status keep_variances(nm_prop *pr, nm_gauss *g, const double *T2, int64_t K, double *moved)
{
    int64_t n = g->n;
    if (!g->d2 && !g->R && !(g->d2 = nm_alloc_zero(pr->ctx, (size_t)n, sizeof(double)))) return NM_ERR_NOMEM;
    double total = 0, lost = 0;
    for (int64_t u = 0; u < n; u++) {
        double a = 0, b = 0;
        for (int64_t c = 0; c < g->k; c++) a += g->T[u * g->k + c] * g->T[u * g->k + c];
        for (int64_t c = 0; c < K; c++) b += T2[u * K + c] * T2[u * K + c];
        double r = a > b ? a - b : 0;
        if (g->d2) g->d2[u] += r;
        else g->R[u * n + u] += r;
        total += a, lost += r;
    }
    *moved = total > 0 ? lost / total : 0;
    return NM_OK;
}

nm_status nm_gauss_compress(nm_prop *pr, nm_gauss *g, int64_t K, uint64_t stream, double *moved)
{
    nm_ctx *ctx = pr->ctx;
    int64_t n = g->n, k = g->k, l = K + OVERSAMPLE < k ? K + OVERSAMPLE : k;
    *moved = 0;
    if (K < 1 || k <= K) return NM_OK;
    double *Y = nm_alloc(ctx, (size_t)(n * l), sizeof(double)), *Q = nm_alloc(ctx, (size_t)(k * l), sizeof(double));
    double *G = nm_alloc(ctx, (size_t)(l * l), sizeof(double)), *ev = nm_alloc(ctx, (size_t)l, sizeof(double));
    double *tau = nm_alloc(ctx, (size_t)l, sizeof(double));
    float *om = nm_alloc(ctx, (size_t)(k * l), sizeof(float));
    double *T2 = NULL;
    nm_status st = Y && Q && G && ev && tau && om ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK) {
        nm_rng rng = {0x72616e6bu}; /* fixed: the same compression for the same state */
        nm_rng_normals(&rng, stream, 0, k * l, om);
        for (int64_t i = 0; i < k * l; i++) Q[i] = om[i];
    }
    /* two passes of Tᵀ T on the test matrix, orthonormalized after each: Q spans T's top right singular directions */
    for (int pass = 0; pass < 2 && st == NM_OK; pass++) {
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, n, l, k, 1.0, g->T, k, Q, l, 0.0, Y, l);
        nm_gemm_f64(NM_TRANS, NM_NOTRANS, k, l, n, 1.0, g->T, k, Y, l, 0.0, Q, l);
        st = orthonormalize(ctx, k, l, Q, tau);
    }
    /* C = T Q (n × l); CᵀC = W Λ Wᵀ; T' = C W_K, the K largest */
    if (st == NM_OK) {
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, n, l, k, 1.0, g->T, k, Q, l, 0.0, Y, l);
        nm_gemm_f64(NM_TRANS, NM_NOTRANS, l, l, n, 1.0, Y, l, Y, l, 0.0, G, l);
        if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)l, G, (lapack_int)l, ev) != 0)
            st = nm_fail(ctx, NM_ERR_NUMERIC, "--rank: the eigenvalues of a %lld × %lld Gram matrix did not converge", (long long)l, (long long)l);
    }
    if (st == NM_OK && !(T2 = nm_prop_take(pr, (size_t)(n * K)))) st = NM_ERR_NOMEM;
    if (st == NM_OK) {
        /* dsyevd's eigenvalues ascend: the last K columns of G */
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, n, K, l, 1.0, Y, l, G + (l - K), l, 0.0, T2, K);
        st = keep_variances(pr, g, T2, K, moved);
    }
    if (st == NM_OK) {
        nm_prop_give(pr, g->T);
        g->T = T2, g->k = K, pr->cols = K;
        T2 = NULL;
    }
    nm_prop_give(pr, T2);
    nm_free(ctx, Y), nm_free(ctx, Q), nm_free(ctx, G), nm_free(ctx, ev), nm_free(ctx, tau), nm_free(ctx, om);
    return st;
}
