/*
 * covariance.c — input covariances Σ in the forms users give them
 * (isotropic, diagonal, full, factor), validated on entry and kept with a
 * factor L (Σ = L Lᵀ) from which S = AΣAᵀ is one SYRK on A·L and Monte
 * Carlo draws x = μ + L ε.
 */
#include "internal.h"

#include <lapacke.h>
#include <math.h>
#include <string.h>

#define NM_SYM_TOL 1e-10 /* relative asymmetry accepted in a full Σ */
#define NM_PSD_TOL 1e-10 /* smallest eigenvalue ≥ −tol · largest */

struct nm_cov {
    nm_cov_kind kind;
    int64_t n, k;
    double sigma; /* isotropic */
    double *buf;  /* diagonal: σ_i (n); full/factor: L (n×k) */
};

static nm_status cov_new(nm_ctx *ctx, nm_cov_kind kind, int64_t n, int64_t k, nm_cov **out)
{
    *out = NULL;
    if (n <= 0) return nm_fail(ctx, NM_ERR_ARG, "covariance dimension %lld must be positive", (long long)n);
    nm_cov *c = nm_alloc_zero(ctx, 1, sizeof *c);
    if (!c) return NM_ERR_NOMEM;
    c->kind = kind;
    c->n = n;
    c->k = k;
    if (kind != NM_COV_ISOTROPIC) {
        c->buf = nm_alloc(ctx, (size_t)n, (size_t)(kind == NM_COV_DIAGONAL ? 1 : k) * sizeof(double));
        if (!c->buf) {
            nm_free(ctx, c);
            return NM_ERR_NOMEM;
        }
    }
    *out = c;
    return NM_OK;
}

nm_status nm_cov_isotropic(nm_ctx *ctx, int64_t n, double sigma2, nm_cov **out)
{
    *out = NULL;
    if (!isfinite(sigma2)) return nm_fail(ctx, NM_ERR_NONFINITE, "sigma2 is not finite");
    if (sigma2 < 0) return nm_fail(ctx, NM_ERR_ARG, "sigma2 = %g is negative", sigma2);
    nm_status st = cov_new(ctx, NM_COV_ISOTROPIC, n, n, out);
    if (st == NM_OK) (*out)->sigma = sqrt(sigma2);
    return st;
}

nm_status nm_cov_diagonal(nm_ctx *ctx, int64_t n, const double *v, nm_cov **out)
{
    *out = NULL;
    if (!v) return nm_fail(ctx, NM_ERR_ARG, "variance vector is NULL");
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) return nm_fail(ctx, NM_ERR_NONFINITE, "variance %lld is not finite", (long long)i);
        if (v[i] < 0) return nm_fail(ctx, NM_ERR_NOT_PSD, "variance %lld = %g is negative", (long long)i, v[i]);
    }
    nm_status st = cov_new(ctx, NM_COV_DIAGONAL, n, n, out);
    if (st != NM_OK) return st;
    for (int64_t i = 0; i < n; i++) (*out)->buf[i] = sqrt(v[i]);
    return NM_OK;
}

nm_status nm_cov_factor(nm_ctx *ctx, int64_t n, int64_t k, const double *L, nm_cov **out)
{
    *out = NULL;
    if (k <= 0 || !L) return nm_fail(ctx, NM_ERR_ARG, "factor must be n x k with k > 0");
    if (!nm_all_finite_f64(L, n * k)) return nm_fail(ctx, NM_ERR_NONFINITE, "factor holds a non-finite value");
    nm_status st = cov_new(ctx, NM_COV_FACTOR, n, k, out);
    if (st == NM_OK) memcpy((*out)->buf, L, (size_t)(n * k) * sizeof(double));
    return st;
}

nm_status nm_cov_window(nm_ctx *ctx, int64_t C, int64_t H, int64_t W, int64_t r, int64_t c, int64_t h, int64_t w,
                        double sigma2, nm_cov **out)
{
    *out = NULL;
    if (!isfinite(sigma2)) return nm_fail(ctx, NM_ERR_NONFINITE, "sigma2 is not finite");
    if (sigma2 < 0) return nm_fail(ctx, NM_ERR_ARG, "sigma2 = %g is negative", sigma2);
    if (C < 1 || H < 1 || W < 1 || h < 1 || w < 1 || r < 0 || c < 0 || r + h > H || c + w > W)
        return nm_fail(ctx, NM_ERR_ARG, "window rows %lld..%lld, columns %lld..%lld is not inside a %lld x %lld image",
                       (long long)r, (long long)(r + h - 1), (long long)c, (long long)(c + w - 1), (long long)H, (long long)W);
    int64_t n = C * H * W, k = C * h * w;
    nm_status st = cov_new(ctx, NM_COV_FACTOR, n, k, out);
    if (st != NM_OK) return st;
    double *L = (*out)->buf, s = sqrt(sigma2);
    memset(L, 0, (size_t)(n * k) * sizeof(double));
    int64_t j = 0; /* column j of L is σ times the unit vector of the j-th pixel in the window */
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t y = r; y < r + h; y++)
            for (int64_t x = c; x < c + w; x++) L[((ch * H + y) * W + x) * k + j++] = s;
    return NM_OK;
}

/* Full Σ: check symmetry and PSD by a symmetric eigendecomposition
 * Σ = V Λ Vᵀ, then keep L = V Λ₊^{1/2} restricted to positive eigenvalues. */
nm_status nm_cov_full(nm_ctx *ctx, int64_t n, const double *C, nm_cov **out)
{
    *out = NULL;
    if (n <= 0 || !C) return nm_fail(ctx, NM_ERR_ARG, "covariance must be a non-empty n x n matrix");
    if (!nm_all_finite_f64(C, n * n)) return nm_fail(ctx, NM_ERR_NONFINITE, "covariance holds a non-finite value");
    double scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(C[i * n + i]));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++)
            if (fabs(C[i * n + j] - C[j * n + i]) > NM_SYM_TOL * fmax(scale, 1e-300))
                return nm_fail(ctx, NM_ERR_NOT_PSD, "covariance is not symmetric: C[%lld][%lld] = %g but C[%lld][%lld] = %g",
                               (long long)i, (long long)j, C[i * n + j], (long long)j, (long long)i, C[j * n + i]);
    double *V = nm_alloc(ctx, (size_t)(n * n + n), sizeof(double));
    if (!V) return NM_ERR_NOMEM;
    double *w = V + n * n;
    memcpy(V, C, (size_t)(n * n) * sizeof(double));
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)n, V, (lapack_int)n, w);
    if (info != 0) {
        nm_free(ctx, V);
        return nm_fail(ctx, NM_ERR_NUMERIC, "eigendecomposition of the covariance failed (LAPACK info %d)", (int)info);
    }
    double wmax = fmax(w[n - 1], 0);
    if (w[0] < -NM_PSD_TOL * fmax(wmax, 1e-300)) {
        double w0 = w[0];
        nm_free(ctx, V);
        return nm_fail(ctx, NM_ERR_NOT_PSD, "covariance is not positive semi-definite: smallest eigenvalue %g (largest %g)", w0, wmax);
    }
    int64_t first = 0; /* eigenvalues ascending: keep the positive ones */
    while (first < n && !(w[first] > NM_PSD_TOL * wmax)) first++;
    int64_t k = n - first > 0 ? n - first : 1;
    nm_status st = cov_new(ctx, NM_COV_FULL, n, k, out);
    if (st != NM_OK) {
        nm_free(ctx, V);
        return st;
    }
    double *L = (*out)->buf;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            int64_t col = first + j;
            L[i * k + j] = col < n ? V[i * n + col] * sqrt(w[col]) : 0;
        }
    nm_free(ctx, V);
    return NM_OK;
}

void nm_cov_free(nm_ctx *ctx, nm_cov *cov)
{
    if (!cov) return;
    nm_free(ctx, cov->buf);
    nm_free(ctx, cov);
}

nm_cov_kind nm_cov_get_kind(const nm_cov *cov) { return cov->kind; }
int64_t nm_cov_dim(const nm_cov *cov) { return cov->n; }

void nm_cov_view(const nm_cov *cov, nm_cov_factor_view *view)
{
    view->kind = cov->kind;
    view->n = cov->n;
    view->k = cov->k;
    view->sigma = cov->sigma;
    view->diag = cov->kind == NM_COV_DIAGONAL ? cov->buf : NULL;
    view->L = (cov->kind == NM_COV_FULL || cov->kind == NM_COV_FACTOR) ? cov->buf : NULL;
}
