/*
 * kmeans.c — k-means with k-means++ seeding (Arthur & Vassilvitskii 2007)
 * for the linearization points of the paper's Table 3: the centres are the
 * points at which the two-stage linearization is computed once. Seeding
 * draws from the counter-based RNG, distances come from one GEMM per
 * iteration (‖x‖² + ‖c‖² − 2 x·c), and centres are summed in a fixed order,
 * so a seed gives the same clustering for any thread count.
 */
#include "../internal.h"

#include <math.h>
#include <string.h>

/* Uniform double in [0, 1) number k of this seed's k-means stream. */
static double uniform(uint64_t seed, uint64_t k)
{
    uint32_t ctr[4] = {(uint32_t)k, (uint32_t)(k >> 32), 0x6b6d6561u, 0}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, w[4];
    nm_philox4x32(ctr, key, w);
    return ((double)w[0] * 4294967296.0 + w[1]) * 0x1p-64;
}

/* Nearest centre of every point: assign[i], and its squared distance d2[i]. */
static void nearest(const float *X, int64_t n, int64_t dim, const float *C, int64_t k, const double *xn, float *G, double *cn,
                    int64_t *assign, double *d2)
{
    for (int64_t j = 0; j < k; j++) {
        double s = 0;
        for (int64_t t = 0; t < dim; t++) s += (double)C[j * dim + t] * C[j * dim + t];
        cn[j] = s;
    }
    nm_gemm_f32(NM_NOTRANS, NM_TRANS, n, k, dim, 1.0f, X, dim, C, dim, 0.0f, G, k);
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        double bd = INFINITY;
        for (int64_t j = 0; j < k; j++) {
            double dd = xn[i] + cn[j] - 2.0 * G[i * k + j];
            if (dd < bd) bd = dd, best = j;
        }
        assign[i] = best;
        d2[i] = bd > 0 ? bd : 0;
    }
}

nm_status nm_kmeans(nm_ctx *ctx, const float *X, int64_t n, int64_t dim, int64_t k, uint64_t seed, int max_iter,
                    int64_t *assign, float *centers)
{
    if (!ctx || !X || !assign || !centers || n < 1 || dim < 1 || k < 1 || k > n || max_iter < 0)
        return nm_fail(ctx, NM_ERR_ARG, "k-means needs 1 ≤ k ≤ n points");
    double *xn = nm_alloc(ctx, (size_t)n, sizeof(double)), *d2 = nm_alloc(ctx, (size_t)n, sizeof(double));
    float *G = nm_alloc(ctx, (size_t)(n * k), sizeof(float));
    double *acc = nm_alloc(ctx, (size_t)(k * dim), sizeof(double)), *cn = nm_alloc(ctx, (size_t)k, sizeof(double));
    int64_t *cnt = nm_alloc(ctx, (size_t)k, sizeof(int64_t)), *prev = nm_alloc(ctx, (size_t)n, sizeof(int64_t));
    nm_status st = xn && d2 && G && acc && cn && cnt && prev ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK) {
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t t = 0; t < dim; t++) s += (double)X[i * dim + t] * X[i * dim + t];
            xn[i] = s;
        }
        /* k-means++: the first centre uniform, each next one with probability ∝ D(x)² */
        int64_t first = (int64_t)(uniform(seed, 0) * (double)n);
        memcpy(centers, X + first * dim, (size_t)dim * sizeof(float));
        for (int64_t i = 0; i < n; i++) d2[i] = INFINITY;
        for (int64_t j = 1; j < k; j++) {
            double total = 0;
            for (int64_t i = 0; i < n; i++) {
                double s = 0;
                for (int64_t t = 0; t < dim; t++) {
                    double e = (double)X[i * dim + t] - centers[(j - 1) * dim + t];
                    s += e * e;
                }
                d2[i] = fmin(d2[i], s);
                total += d2[i];
            }
            double u = uniform(seed, (uint64_t)j) * total, c = 0;
            int64_t pick = n - 1;
            for (int64_t i = 0; i < n; i++) {
                c += d2[i];
                if (c > u && d2[i] > 0) {
                    pick = i;
                    break;
                }
            }
            memcpy(centers + j * dim, X + pick * dim, (size_t)dim * sizeof(float));
        }
        /* Lloyd iterations until no point changes cluster */
        for (int64_t i = 0; i < n; i++) prev[i] = -1;
        for (int it = 0; it <= max_iter; it++) {
            nearest(X, n, dim, centers, k, xn, G, cn, assign, d2);
            int changed = 0;
            for (int64_t i = 0; i < n; i++) changed |= assign[i] != prev[i];
            if (!changed || it == max_iter) break;
            memcpy(prev, assign, (size_t)n * sizeof(int64_t));
            memset(acc, 0, (size_t)(k * dim) * sizeof(double));
            memset(cnt, 0, (size_t)k * sizeof(int64_t));
            for (int64_t i = 0; i < n; i++) {
                cnt[assign[i]]++;
                for (int64_t t = 0; t < dim; t++) acc[assign[i] * dim + t] += X[i * dim + t];
            }
            for (int64_t j = 0; j < k; j++)
                if (cnt[j]) /* an empty cluster keeps its centre */
                    for (int64_t t = 0; t < dim; t++) centers[j * dim + t] = (float)(acc[j * dim + t] / (double)cnt[j]);
        }
    }
    nm_free(ctx, xn), nm_free(ctx, d2), nm_free(ctx, G), nm_free(ctx, acc), nm_free(ctx, cn), nm_free(ctx, cnt), nm_free(ctx, prev);
    return st;
}
