/*
 * covariance.c — input covariances Σ in the forms users give them
 * (isotropic, diagonal, full, factor, windowed), validated on entry and
 * kept as a factor L (Σ = L Lᵀ, L n×k) behind the two operations every
 * user of Σ goes through (internal.h): X += E Lᵀ, which draws the Monte
 * Carlo's x = μ + L ε and gives L's columns to the jvp passes, and A·L,
 * from which S = AΣAᵀ is one SYRK. Two representations serve the five
 * kinds: a *selection*, whose column c holds one non-zero s_c at row idx_c
 * (isotropic and diagonal: idx_c = c; a window: the window's pixels), and
 * a dense L (full, factor), kept in double and, for the float passes, in
 * float.
 */
#include "internal.h"

#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define NM_SYM_TOL 1e-10 /* relative asymmetry accepted in a full Σ */
#define NM_PSD_TOL 1e-10 /* smallest eigenvalue ≥ −tol · largest */

struct nm_cov {
    nm_cov_kind kind;
    int64_t n, k;
    /* selection: column c has s (or s_c) at row c (or idx_c) */
    double sigma;    /* isotropic and window: the one standard deviation */
    double *diag;    /* diagonal: σ_c (n) */
    int64_t *idx;    /* window: the rows of the columns (k); NULL: row c */
    /* dense: L (n×k) */
    double *L;
    float *L32;
};

static int dense(const nm_cov *c)
{
    return c->L != NULL;
}

static nm_status cov_new(nm_ctx *ctx, nm_cov_kind kind, int64_t n, int64_t k, nm_cov **out)
{
    *out = NULL;
    if (n <= 0) return nm_fail(ctx, NM_ERR_ARG, "covariance dimension %lld must be positive", (long long)n);
    nm_cov *c = nm_alloc_zero(ctx, 1, sizeof *c);
    if (!c) return NM_ERR_NOMEM;
    c->kind = kind;
    c->n = n;
    c->k = k;
    nm_status st = NM_OK;
    if (kind == NM_COV_DIAGONAL && !(c->diag = nm_alloc(ctx, (size_t)n, sizeof(double)))) st = NM_ERR_NOMEM;
    if (kind == NM_COV_WINDOW && !(c->idx = nm_alloc(ctx, (size_t)k, sizeof(int64_t)))) st = NM_ERR_NOMEM;
    if ((kind == NM_COV_FULL || kind == NM_COV_FACTOR) &&
        (!(c->L = nm_alloc(ctx, (size_t)n, (size_t)k * sizeof(double))) || !(c->L32 = nm_alloc(ctx, (size_t)n, (size_t)k * sizeof(float)))))
        st = NM_ERR_NOMEM;
    if (st != NM_OK) {
        nm_cov_free(ctx, c);
        return st;
    }
    *out = c;
    return NM_OK;
}

/* The float copy of a dense L, once L is filled. */
static void fill_L32(nm_cov *c)
{
    for (int64_t i = 0; i < c->n * c->k; i++) c->L32[i] = (float)c->L[i];
}

/* A variance σ² given by the user: finite (NM_ERR_NONFINITE) and ≥ 0 (NM_ERR_NOT_PSD). */
static nm_status check_variance(nm_ctx *ctx, double v, const char *what)
{
    if (!isfinite(v)) return nm_fail(ctx, NM_ERR_NONFINITE, "%s is not finite", what);
    if (v < 0) return nm_fail(ctx, NM_ERR_NOT_PSD, "%s = %g is negative", what, v);
    return NM_OK;
}

nm_status nm_cov_isotropic(nm_ctx *ctx, int64_t n, double sigma2, nm_cov **out)
{
    *out = NULL;
    nm_status st = check_variance(ctx, sigma2, "sigma2");
    if (st == NM_OK) st = cov_new(ctx, NM_COV_ISOTROPIC, n, n, out);
    if (st == NM_OK) (*out)->sigma = sqrt(sigma2);
    return st;
}

nm_status nm_cov_diagonal(nm_ctx *ctx, int64_t n, const double *v, nm_cov **out)
{
    *out = NULL;
    if (!v) return nm_fail(ctx, NM_ERR_ARG, "variance vector is NULL");
    for (int64_t i = 0; i < n; i++) {
        char what[48];
        snprintf(what, sizeof what, "variance %lld", (long long)i);
        nm_status st = check_variance(ctx, v[i], what);
        if (st != NM_OK) return st;
    }
    nm_status st = cov_new(ctx, NM_COV_DIAGONAL, n, n, out);
    if (st != NM_OK) return st;
    for (int64_t i = 0; i < n; i++) (*out)->diag[i] = sqrt(v[i]);
    return NM_OK;
}

nm_status nm_cov_factor(nm_ctx *ctx, int64_t n, int64_t k, const double *L, nm_cov **out)
{
    *out = NULL;
    if (k <= 0 || !L) return nm_fail(ctx, NM_ERR_ARG, "factor must be n x k with k > 0");
    if (!nm_all_finite_f64(L, n * k)) return nm_fail(ctx, NM_ERR_NONFINITE, "factor holds a non-finite value");
    nm_status st = cov_new(ctx, NM_COV_FACTOR, n, k, out);
    if (st != NM_OK) return st;
    memcpy((*out)->L, L, (size_t)(n * k) * sizeof(double));
    fill_L32(*out);
    return NM_OK;
}

nm_status nm_cov_window(nm_ctx *ctx, int64_t C, int64_t H, int64_t W, int64_t r, int64_t c, int64_t h, int64_t w,
                        double sigma2, nm_cov **out)
{
    *out = NULL;
    nm_status st = check_variance(ctx, sigma2, "sigma2");
    if (st != NM_OK) return st;
    int64_t n, k;
    /* compared without forming r + h (the values are the user's, and may be near INT64_MAX) */
    if (C < 1 || H < 1 || W < 1 || h < 1 || w < 1 || r < 0 || c < 0 || r >= H || c >= W || h > H - r || w > W - c)
        return nm_fail(ctx, NM_ERR_ARG, "window at row %lld, column %lld of %lld x %lld pixels is not inside a %lld x %lld image",
                       (long long)r, (long long)c, (long long)h, (long long)w, (long long)H, (long long)W);
    if (!nm_mul_ok(C, H, &n) || !nm_mul_ok(n, W, &n) || !nm_mul_ok(C, h, &k) || !nm_mul_ok(k, w, &k))
        return nm_fail(ctx, NM_ERR_ARG, "an image of %lld x %lld x %lld pixels is too large", (long long)C, (long long)H, (long long)W);
    if ((st = cov_new(ctx, NM_COV_WINDOW, n, k, out)) != NM_OK) return st;
    (*out)->sigma = sqrt(sigma2);
    int64_t j = 0; /* column j of L is σ times the unit vector of the j-th pixel in the window */
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t y = r; y < r + h; y++)
            for (int64_t x = c; x < c + w; x++) (*out)->idx[j++] = (ch * H + y) * W + x;
    return NM_OK;
}

/* Full Σ: check symmetry and PSD by a symmetric eigendecomposition
 * Σ = V Λ Vᵀ, then keep L = V Λ₊^{1/2} restricted to positive eigenvalues.
 * Entries rounded to float32 perturb the eigenvalues by up to
 * n·2^−24·max|C| (a PSD matrix rounded may dip that far below 0), so the
 * tolerances follow the entries' precision. */
nm_status nm_cov_full(nm_ctx *ctx, int64_t n, const double *C, nm_cov **out)
{
    return nm_cov_full_dtype(ctx, n, C, NM_F64, out);
}

nm_status nm_cov_full_dtype(nm_ctx *ctx, int64_t n, const double *C, nm_dtype source, nm_cov **out)
{
    *out = NULL;
    if (n <= 0 || !C) return nm_fail(ctx, NM_ERR_ARG, "covariance must be a non-empty n x n matrix");
    if (source != NM_F32 && source != NM_F64) return nm_fail(ctx, NM_ERR_ARG, "unknown dtype %d", (int)source);
    double eps = source == NM_F32 ? FLT_EPSILON / 2 : DBL_EPSILON / 2;
    double sym_tol = fmax(NM_SYM_TOL, 4 * eps), psd_tol = fmax(NM_PSD_TOL, (double)n * eps);
    if (!nm_all_finite_f64(C, n * n)) return nm_fail(ctx, NM_ERR_NONFINITE, "covariance holds a non-finite value");
    double scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(C[i * n + i]));
    /* the message's eigenvalues and the tolerances below are relative, so scaling leaves them unchanged */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++)
            if (fabs(C[i * n + j] - C[j * n + i]) > sym_tol * fmax(scale, 1e-300))
                return nm_fail(ctx, NM_ERR_NOT_PSD, "covariance is not symmetric: C[%lld][%lld] = %g but C[%lld][%lld] = %g",
                               (long long)i, (long long)j, C[i * n + j], (long long)j, (long long)i, C[j * n + i]);
    double *V = nm_alloc(ctx, (size_t)(n * n + n), sizeof(double));
    if (!V) return NM_ERR_NOMEM;
    double *w = V + n * n;
    /* Entries far from 1 (beyond 2^±256) are scaled by an even power of two first, exactly, so that the eigenvalues
     * do not overflow (or underflow) double; L takes the square root of the scale back. Others are not touched. */
    int e = 0;
    double big = 0;
    for (int64_t i = 0; i < n * n; i++) big = fmax(big, fabs(C[i]));
    if (big > 0x1p256 || (big > 0 && big < 0x1p-256)) frexp(big, &e), e &= ~1;
    for (int64_t i = 0; i < n * n; i++) V[i] = ldexp(C[i], -e);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)n, V, (lapack_int)n, w);
    if (info == 0 && !nm_all_finite_f64(w, n)) info = -1000;
    if (info != 0) {
        nm_free(ctx, V);
        return nm_fail(ctx, NM_ERR_NUMERIC, "eigendecomposition of the covariance failed (LAPACK info %d)", (int)info);
    }
    double wmax = fmax(w[n - 1], 0);
    if (w[0] < -psd_tol * fmax(wmax, 1e-300)) {
        double w0 = ldexp(w[0], e), wm = ldexp(wmax, e);
        nm_free(ctx, V);
        return nm_fail(ctx, NM_ERR_NOT_PSD, "covariance is not positive semi-definite: smallest eigenvalue %g, below the %g that rounding "
                       "%s entries allows (%.3g times the largest, %g)", w0, -psd_tol * wm, source == NM_F32 ? "float32" : "double",
                       psd_tol, wm);
    }
    int64_t first = 0; /* eigenvalues ascending: keep the positive ones */
    while (first < n && !(w[first] > psd_tol * wmax)) first++;
    int64_t k = n - first > 0 ? n - first : 1;
    nm_status st = cov_new(ctx, NM_COV_FULL, n, k, out);
    if (st != NM_OK) {
        nm_free(ctx, V);
        return st;
    }
    double *L = (*out)->L;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            int64_t col = first + j;
            L[i * k + j] = col < n ? ldexp(V[i * n + col] * sqrt(w[col]), e / 2) : 0;
        }
    fill_L32(*out);
    nm_free(ctx, V);
    return NM_OK;
}

void nm_cov_free(nm_ctx *ctx, nm_cov *cov)
{
    if (!cov) return;
    nm_free(ctx, cov->diag);
    nm_free(ctx, cov->idx);
    nm_free(ctx, cov->L);
    nm_free(ctx, cov->L32);
    nm_free(ctx, cov);
}

nm_cov_kind nm_cov_get_kind(const nm_cov *cov) { return cov->kind; }
int64_t nm_cov_dim(const nm_cov *cov) { return cov->n; }
int64_t nm_cov_rank(const nm_cov *cov) { return cov->k; }

/* ---------------------------------------------------------------- the two operations */

/* Selection column c: its row and its standard deviation. */
static int64_t sel_row(const nm_cov *c, int64_t col) { return c->idx ? c->idx[col] : col; }
static double sel_sd(const nm_cov *c, int64_t col) { return c->diag ? c->diag[col] : c->sigma; }

void nm_cov_add_factor_f32(const nm_cov *cov, int64_t rows, const float *E, float *X)
{
    int64_t n = cov->n, k = cov->k;
    if (dense(cov)) {
        nm_gemm_f32(NM_NOTRANS, NM_TRANS, rows, n, k, 1.0f, E, k, cov->L32, k, 1.0f, X, n);
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < k; c++) X[r * n + sel_row(cov, c)] += (float)sel_sd(cov, c) * E[r * k + c];
}

void nm_cov_times_factor(const nm_cov *cov, int64_t p, const double *A, double *AL)
{
    int64_t n = cov->n, k = cov->k;
    if (dense(cov)) {
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, p, k, n, 1.0, A, n, cov->L, k, 0.0, AL, k);
        return;
    }
    #pragma omp parallel for
    for (int64_t i = 0; i < p; i++)
        for (int64_t c = 0; c < k; c++) AL[i * k + c] = A[i * n + sel_row(cov, c)] * sel_sd(cov, c);
}

const double *nm_cov_split(const nm_cov *cov, double *var)
{
    if (dense(cov)) return cov->L;
    memset(var, 0, (size_t)cov->n * sizeof(double));
    for (int64_t c = 0; c < cov->k; c++) {
        double s = sel_sd(cov, c);
        var[sel_row(cov, c)] += s * s;
    }
    return NULL;
}
