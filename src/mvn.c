/*
 * mvn.c — multivariate normal orthant probabilities (DESIGN §1.10) and the
 * flip probability built on them: P(w > 0) for w ~ N(μ, Σ) by Genz's
 * separation of variables (Genz 1992: the variables ordered as Genz and
 * Bretz do, each conditioned on the earlier ones through the Cholesky
 * factor, the remaining integral over the unit cube), evaluated with a
 * randomised Richtmyer lattice (√prime generators, baker's transform,
 * antithetic pairs) whose spread over random shifts is the error estimate.
 * Also the normal quantile the separation needs.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Acklam's rational approximation (relative error 1.2e-9) refined by one
 * Halley step on Φ (erfc based), which brings it to double precision. */
double nm_normal_quantile(double p)
{
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                6.680131188771972e+01,  -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
    if (isnan(p) || p < 0 || p > 1) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    double x;
    if (p < 0.02425 || p > 1 - 0.02425) {
        double q = sqrt(-2 * log(p < 0.5 ? p : 1 - p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        if (p > 0.5) x = -x;
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    /* Halley: e = Φ(x) − p, from the tail that does not cancel */
    double e = x < 0 ? nm_normal_cdf(x) - p : (1 - p) - nm_normal_cdf(-x);
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

nm_mvn_options nm_mvn_options_default(void)
{
    nm_mvn_options o;
    memset(&o, 0, sizeof o);
    o.abs_tol = 1e-4;
    o.min_points = 64;
    o.max_points = 1 << 15;
    o.shifts = 12;
    o.seed = 1;
    return o;
}

/* The separated problem: lower bounds a (q) of X ~ N(0, Σ) in Genz–Bretz
 * order, Σ's Cholesky factor C (q×q lower, row-major; C_ii = 0 where the
 * variable is a combination of the earlier ones). */
typedef struct {
    int64_t q;
    double *a, *C;
} sep;

/* Cholesky of Σ with the variable order of Genz and Bretz: at step i the
 * remaining variable with the smallest conditional probability of its
 * interval (given the truncated means y of those chosen) comes next; small
 * probabilities first concentrate the integrand's variation in few
 * dimensions. S (q×q, both triangles) and a are permuted in place. */
static void separate(sep *s, double *S, double *y)
{
    int64_t q = s->q;
    double *a = s->a, *C = s->C, maxd = 0;
    for (int64_t i = 0; i < q; i++) maxd = fmax(maxd, S[i * q + i]);
    double tol = 1e-13 * maxd;
    memset(C, 0, (size_t)(q * q) * sizeof(double));
    for (int64_t i = 0; i < q; i++) {
        int64_t best = i;
        double bestp = INFINITY;
        for (int64_t j = i; j < q; j++) {
            double v = S[j * q + j], m = 0;
            for (int64_t k = 0; k < i; k++) v -= C[j * q + k] * C[j * q + k], m += C[j * q + k] * y[k];
            double pr = v > tol ? nm_normal_cdf((m - a[j]) / sqrt(v)) : (m > a[j] ? 1 : 0);
            if (pr < bestp) bestp = pr, best = j;
        }
        if (best != i) { /* swap variables i and best */
            for (int64_t k = 0; k < q; k++) {
                double t = S[i * q + k];
                S[i * q + k] = S[best * q + k], S[best * q + k] = t;
            }
            for (int64_t k = 0; k < q; k++) {
                double t = S[k * q + i];
                S[k * q + i] = S[k * q + best], S[k * q + best] = t;
            }
            for (int64_t k = 0; k < i; k++) {
                double t = C[i * q + k];
                C[i * q + k] = C[best * q + k], C[best * q + k] = t;
            }
            double t = a[i];
            a[i] = a[best], a[best] = t;
        }
        double v = S[i * q + i], m = 0;
        for (int64_t k = 0; k < i; k++) v -= C[i * q + k] * C[i * q + k], m += C[i * q + k] * y[k];
        if (v <= tol) { /* determined by the earlier variables */
            y[i] = 0;
            continue;
        }
        double cii = sqrt(v);
        C[i * q + i] = cii;
        for (int64_t j = i + 1; j < q; j++) {
            double t = S[j * q + i];
            for (int64_t k = 0; k < i; k++) t -= C[j * q + k] * C[i * q + k];
            C[j * q + i] = t / cii;
        }
        /* mean of a standard normal truncated to ((a_i − m)/c_ii, ∞) */
        double al = (a[i] - m) / cii, up = nm_normal_cdf(-al);
        y[i] = up > 1e-300 ? nm_normal_pdf(al) / up : al;
    }
}

/* The integrand at w ∈ [0, 1)^{q−1}: the product of the conditional
 * interval probabilities, each later variable drawn by inversion inside
 * its interval (y scratch, q). */
static double integrand(const sep *s, const double *w, double *y)
{
    int64_t q = s->q;
    double f = 1;
    for (int64_t i = 0; i < q; i++) {
        const double *Ci = s->C + i * q;
        double m = 0;
        for (int64_t k = 0; k < i; k++) m += Ci[k] * y[k];
        if (Ci[i] == 0) {
            if (m <= s->a[i]) return 0;
            y[i] = 0;
            continue;
        }
        double up = nm_normal_cdf((m - s->a[i]) / Ci[i]); /* P(X_i > a_i | earlier) */
        f *= up;
        if (f == 0) return 0;
        if (i + 1 < q) { /* y_i = Φ⁻¹(1 − w·up) = −Φ⁻¹(w·up), from the tail */
            double t = w[i] * up;
            y[i] = -nm_normal_quantile(t > 1e-300 ? t : 1e-300);
        }
    }
    return f;
}

/* The first k primes (k ≥ 1), by trial division (k is a logit count). */
static void first_primes(int64_t k, double *out)
{
    int64_t c = 0;
    for (int64_t n = 2; c < k; n++) {
        int prime = 1;
        for (int64_t p = 2; p * p <= n && prime; p++) prime = n % p != 0;
        if (prime) out[c++] = (double)n;
    }
}

/* One randomised lattice estimate per shift with N points, each point and
 * its antithetic image. est (shifts) receives the shift means. */
static void lattice(const sep *s, const nm_mvn_options *o, int64_t N, const double *alpha, double *w, double *x, double *y, double *est)
{
    int64_t dim = s->q - 1;
    for (int r = 0; r < o->shifts; r++) {
        double sum = 0;
        for (int64_t k = 1; k <= N; k++) {
            for (int64_t j = 0; j < dim; j++) {
                uint32_t ctr[4] = {(uint32_t)j, (uint32_t)(j >> 32), (uint32_t)r, 0x6d766e00u}, key[2] = {(uint32_t)o->seed, (uint32_t)(o->seed >> 32)}, u[4];
                nm_philox4x32(ctr, key, u);
                double shift = ((double)u[0] + 0.5) / 4294967296.0, t = (double)k * alpha[j] + shift;
                t -= floor(t);
                x[j] = fabs(2 * t - 1); /* baker's transform: periodises the integrand */
            }
            sum += integrand(s, x, y);
            for (int64_t j = 0; j < dim; j++) w[j] = 1 - x[j];
            sum += integrand(s, w, y);
        }
        est[r] = sum / (double)(2 * N);
    }
}

nm_status nm_mvn_orthant(nm_ctx *ctx, int64_t q, const double *mean, const double *cov, const nm_mvn_options *opt, double *p,
                         double *se)
{
    if (!ctx || (q > 0 && (!mean || !cov)) || !p) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    nm_mvn_options o = opt ? *opt : nm_mvn_options_default();
    if (q < 0) return nm_fail(ctx, NM_ERR_ARG, "negative dimension %lld", (long long)q);
    if (!(o.abs_tol > 0) || o.shifts < 2 || o.min_points < 1 || o.max_points < o.min_points)
        return nm_fail(ctx, NM_ERR_ARG, "orthant options: abs_tol must be > 0, shifts ≥ 2, 1 ≤ min_points ≤ max_points");
    if (!nm_all_finite_f64(mean, q) || !nm_all_finite_f64(cov, q * q))
        return nm_fail(ctx, NM_ERR_NONFINITE, "the orthant probability's mean or covariance is not finite");
    *p = 1;
    if (se) *se = 0;
    if (q == 0) return NM_OK;
    for (int64_t i = 0; i < q; i++) {
        if (cov[i * q + i] < 0) return nm_fail(ctx, NM_ERR_NOT_PSD, "the covariance has a negative variance at %lld", (long long)i);
        for (int64_t j = 0; j < i; j++) {
            double lim = sqrt(cov[i * q + i] * cov[j * q + j]);
            if (fabs(cov[i * q + j]) > lim * (1 + 1e-9) + 1e-300)
                return nm_fail(ctx, NM_ERR_NOT_PSD, "the covariance is not positive semi-definite (|C_%lld,%lld| above √(C_ii C_jj))",
                               (long long)i, (long long)j);
        }
    }
    int64_t dim = q - 1 > 0 ? q - 1 : 1;
    double *buf = nm_alloc(ctx, (size_t)(2 * q * q + 3 * q + 4 * dim + o.shifts), sizeof(double));
    if (!buf) return NM_ERR_NOMEM;
    double *S = buf, *C = S + q * q, *a = C + q * q, *y = a + q, *y0 = y + q, *alpha = y0 + q, *w = alpha + dim, *x = w + dim,
           *primes = x + dim, *est = primes + dim;
    for (int64_t i = 0; i < q; i++) {
        a[i] = -mean[i]; /* w > 0 ⇔ X = w − μ > −μ */
        for (int64_t j = 0; j <= i; j++) S[i * q + j] = S[j * q + i] = cov[i * q + j];
    }
    sep s = {q, a, C};
    separate(&s, S, y0);
    first_primes(dim, primes);
    for (int64_t j = 0; j < dim; j++) alpha[j] = sqrt(primes[j]) - floor(sqrt(primes[j]));
    double mean_est = 0, sd = 0;
    for (int64_t N = o.min_points;; N *= 2) {
        lattice(&s, &o, N, alpha, w, x, y, est);
        mean_est = 0, sd = 0;
        for (int r = 0; r < o.shifts; r++) mean_est += est[r];
        mean_est /= o.shifts;
        for (int r = 0; r < o.shifts; r++) sd += (est[r] - mean_est) * (est[r] - mean_est);
        sd = sqrt(sd / (o.shifts - 1) / o.shifts);
        if (sd <= o.abs_tol || q == 1 || 2 * N > o.max_points) break;
    }
    nm_free(ctx, buf);
    *p = fmin(1, fmax(0, mean_est));
    if (se) *se = sd;
    return NM_OK;
}

nm_status nm_flip_probability(nm_ctx *ctx, int64_t d, const double *mean, const double *cov, int64_t c, const nm_mvn_options *opt,
                              double *p, double *se)
{
    if (!ctx || !mean || !cov || !p) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    if (d < 1 || c < 0 || c >= d) return nm_fail(ctx, NM_ERR_ARG, "class %lld is not one of %lld logits", (long long)c, (long long)d);
    if (!nm_all_finite_f64(mean, d) || !nm_all_finite_f64(cov, d * d))
        return nm_fail(ctx, NM_ERR_NONFINITE, "the logits' mean or covariance is not finite");
    int64_t q = d - 1;
    double *buf = nm_alloc(ctx, (size_t)(q + q * q + 1), sizeof(double));
    if (!buf) return NM_ERR_NOMEM;
    double *m = buf, *D = buf + q;
    /* w_j = y_c − y_j (j ≠ c): mean m_c − m_j, covariance C_cc − C_cj − C_ck + C_jk (§1.10) */
    for (int64_t j = 0, r = 0; j < d; j++) {
        if (j == c) continue;
        m[r] = mean[c] - mean[j];
        for (int64_t k = 0, t = 0; k < d; k++) {
            if (k == c) continue;
            D[r * q + t++] = cov[c * d + c] - cov[c * d + j] - cov[c * d + k] + cov[j * d + k];
        }
        r++;
    }
    double keep;
    nm_status st = nm_mvn_orthant(ctx, q, m, D, opt, &keep, se);
    nm_free(ctx, buf);
    if (st == NM_OK) *p = 1 - keep;
    return st;
}
