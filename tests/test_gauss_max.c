/*
 * test_gauss_max.c — the max of jointly Gaussian variables (src/gauss_max.c,
 * DESIGN §1.12) and the trivariate normal cdf (src/gauss_tvn.c).
 *  - Φ₃ against closed forms: the orthant probability at h = 0,
 *    1/8 + (asin ρ12 + asin ρ13 + asin ρ23)/(4π), for random correlations;
 *    the independent and block-independent cases; X3 = ±X2 (singular);
 *    and against 10⁶-sample Monte Carlo at random h within 5 SE.
 *  - The max of 2, 3 and 4 (mean, variance, P(z_i is the max), covariance
 *    with a further Gaussian) against 10⁶-sample Monte Carlo drawn here
 *    (splitmix64 and Box–Muller, a Cholesky factor computed here) within
 *    5 standard errors: random correlations of both signs, pool-like
 *    windows, rank-1 and rank-2 windows (singular), duplicated inputs;
 *    the degenerate and far-apart cases of two against closed forms.
 *  - For 5 and 9 (the tree above four) the approximation's errors against
 *    the Monte Carlo are printed, not asserted; what must hold whatever the
 *    approximation: weights are probabilities summing to 1, the mean is at
 *    least the largest input mean (Jensen), the variance is positive.
 */
#include "netmoments.h"
#include "../src/gauss.h"
#include "netbuild.h"
#include "check.h"

/* 10⁶ samples; a fifth of them under ASan/UBSan, whose run checks memory, not the last digit (the tolerances are in
 * standard errors, so they widen with it) */
#if defined(__SANITIZE_ADDRESS__)
#define SAMPLES 200000
#else
#define SAMPLES 1000000
#endif
#define NSE 5.0
#define K_MAX 10 /* the last is the further Gaussian y */

/* A random covariance of k variables with correlations of either sign: L Lᵀ with L lower-triangular. */
static void random_gaussian(int k, double *m, double *C, double *L, double spread)
{
    for (int i = 0; i < k; i++) {
        m[i] = spread * nrand();
        for (int j = 0; j < k; j++) L[i * k + j] = j < i ? 0.8 * nrand() : j == i ? 0.3 + urand() : 0;
    }
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            double s = 0;
            for (int t = 0; t < k; t++) s += L[i * k + t] * L[j * k + t];
            C[i * k + j] = s;
        }
}

typedef struct {
    double mean, var, cov_y, share[K_MAX];   /* of max(z_0..z_{k−1}); its covariance with y = z_k */
    double se_mean, se_var, se_cov, se_share; /* standard errors */
} mc_max;

static void monte_carlo(int k, const double *m, const double *L, int kk, mc_max *r)
{
    double s1 = 0, s2 = 0, sy = 0, sxy = 0, s4 = 0, sxy2 = 0;
    int64_t wins[K_MAX] = {0};
    for (int64_t t = 0; t < SAMPLES; t++) {
        double e[K_MAX], z[K_MAX];
        for (int i = 0; i < kk; i++) e[i] = nrand();
        for (int i = 0; i < kk; i++) {
            z[i] = m[i];
            for (int j = 0; j < kk; j++) z[i] += L[i * kk + j] * e[j]; /* L is lower-triangular but for the low-rank factors */
        }
        int a = 0;
        for (int i = 1; i < k; i++)
            if (z[i] > z[a]) a = i;
        double x = z[a], y = z[k];
        wins[a]++;
        s1 += x, s2 += x * x, sy += y, sxy += x * y, s4 += x * x * x * x, sxy2 += x * x * y * y;
    }
    double N = SAMPLES, mx = s1 / N, my = sy / N;
    r->mean = mx, r->var = s2 / N - mx * mx, r->cov_y = sxy / N - mx * my;
    for (int i = 0; i < k; i++) r->share[i] = wins[i] / N;
    r->se_mean = sqrt(r->var / N);
    r->se_var = sqrt(fmax(0, s4 / N - (s2 / N) * (s2 / N)) / N); /* of the raw second moment: the mean's part is smaller */
    r->se_cov = sqrt(fmax(0, sxy2 / N - (sxy / N) * (sxy / N)) / N);
    r->se_share = 0.5 / sqrt(N);
}

/* Two variables: Clark's formulas are exact. */
static void test_two(void)
{
    for (int trial = 0; trial < 6; trial++) {
        double m[3], C[9], L[9];
        random_gaussian(3, m, C, L, trial < 3 ? 0.5 : 2.0);
        double mean, var, p;
        nm_max2_moments(m[0], m[1], C[0], C[4], C[1], &mean, &var, &p);
        mc_max r;
        monte_carlo(2, m, L, 3, &r);
        double cov_y = p * C[2] + (1 - p) * C[5]; /* Stein: Cov(max, y) = Σ P(z_i is the max) Cov(z_i, y) */
        check_close("max of 2: mean vs MC", mean, r.mean, NSE * r.se_mean, 0);
        check_close("max of 2: variance vs MC", var, r.var, NSE * r.se_var, 0);
        check_close("max of 2: P(z1 > z2) vs MC", p, r.share[0], NSE * r.se_share, 0);
        check_close("max of 2: Cov(max, y) vs MC", cov_y, r.cov_y, NSE * r.se_cov, 0);
        int idx[2] = {0, 1};
        double mt, vt, w[2];
        nm_maxk_moments(2, idx, m, C, 3, &mt, &vt, w);
        check_true("the tree of two is Clark's", mt == mean && vt == var && w[0] == p && w[1] == 1 - p);
    }
    double mean, var, p;
    nm_max2_moments(1, 3, 2, 2, 2, &mean, &var, &p); /* z2 = z1 + 2: the max is z2 */
    check_true("degenerate: the larger of two that differ by a constant", mean == 3 && var == 2 && p == 0);
    nm_max2_moments(-50, 0, 1, 1, 0, &mean, &var, &p);
    check_close("far apart: the larger one's mean", mean, 0, 1e-200, 0);
    check_close("far apart: the larger one's variance", var, 1, 1e-15, 0);
    nm_max2_moments(1e6, 1e6 - 3, 1, 1, 0.5, &mean, &var, &p);
    check_close("large means: no cancellation in the variance", var, 1 + 1 * nm_relu_var_std(-3) + 2 * (0.5 - 1) * nm_normal_cdf(-3), 1e-12, 0);
}

/* A pool-like window: neighbours of a feature map, positively correlated (a common factor plus each its own),
 * similar variances, means within a standard deviation of each other. */
static void pool_gaussian(int k, double *m, double *C, double *L)
{
    double common = 0.4 + 0.5 * urand();
    for (int i = 0; i < k; i++) {
        m[i] = 0.5 * nrand();
        for (int j = 0; j < k; j++) L[i * k + j] = 0;
    }
    /* z_i = m_i + a ε_0 + b_i ε_i: a lower-triangular factor of the same covariance by Cholesky of C */
    double a = sqrt(common);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) C[i * k + j] = a * a + (i == j ? (1 - common) * (0.8 + 0.4 * urand()) : 0);
    for (int j = 0; j < k; j++) {
        double d = C[j * k + j];
        for (int t = 0; t < j; t++) d -= L[j * k + t] * L[j * k + t];
        L[j * k + j] = sqrt(d);
        for (int i = j + 1; i < k; i++) {
            double e = C[i * k + j];
            for (int t = 0; t < j; t++) e -= L[i * k + t] * L[j * k + t];
            L[i * k + j] = e / L[j * k + j];
        }
    }
}

/* Φ₃ against closed forms and Monte Carlo. */
static void test_tvn(void)
{
    for (int trial = 0; trial < 20; trial++) {
        double m[3], C[9], L[9], r[3], h0[3] = {0, 0, 0};
        random_gaussian(3, m, C, L, 1);
        r[0] = C[1] / sqrt(C[0] * C[4]), r[1] = C[2] / sqrt(C[0] * C[8]), r[2] = C[5] / sqrt(C[4] * C[8]);
        double want = 0.125 + (asin(r[0]) + asin(r[1]) + asin(r[2])) / (4 * M_PI);
        check_close("tvn: orthant at h = 0 (closed form)", nm_tvn_cdf(h0, r), want, 1e-13, 0);
        double h[3] = {nrand(), nrand(), nrand()}, z0[3] = {0, 0, 0};
        check_close("tvn: independent", nm_tvn_cdf(h, z0), nm_normal_cdf(h[0]) * nm_normal_cdf(h[1]) * nm_normal_cdf(h[2]), 1e-14, 0);
        double rb[3] = {r[0], 0, 0};
        check_close("tvn: X3 independent of (X1, X2)", nm_tvn_cdf(h, rb), nm_bvn_cdf(h[0], h[1], r[0]) * nm_normal_cdf(h[2]), 1e-13, 0);
        double rs[3] = {r[0], r[0], 1}; /* X3 = X2 */
        check_close("tvn: X3 = X2 (singular)", nm_tvn_cdf(h, rs), nm_bvn_cdf(h[0], fmin(h[1], h[2]), r[0]), 1e-10, 0);
        double rn[3] = {r[0], -r[0], -1}; /* X3 = −X2: P(X1 ≤ h1, −h3 ≤ X2 ≤ h2) */
        double wn = h[1] > -h[2] ? nm_bvn_cdf(h[0], h[1], r[0]) - nm_bvn_cdf(h[0], -h[2], r[0]) : 0;
        check_close("tvn: X3 = -X2 (singular)", nm_tvn_cdf(h, rn), wn, 1e-10, 0);
        if (trial < 6) { /* against sampling */
            int64_t in = 0;
            for (int64_t t = 0; t < SAMPLES; t++) {
                double e[3] = {nrand(), nrand(), nrand()}, z[3];
                int all = 1;
                for (int a = 0; a < 3; a++) {
                    z[a] = 0;
                    for (int b = 0; b <= a; b++) z[a] += L[a * 3 + b] * e[b];
                    all &= z[a] <= h[a] * sqrt(C[a * 3 + a]);
                }
                in += all;
            }
            double p = nm_tvn_cdf(h, r), se = sqrt(fmax(p * (1 - p), 1e-12) / SAMPLES);
            check_close("tvn: P(X <= h) vs MC", p, in / (double)SAMPLES, NSE * se, 0);
        }
    }
}

/* A rank-r window: z_i = m_i + Σ_{t<r} a_it ε_t (r < k: C singular), with its (non-triangular) factor in L. */
static void lowrank_gaussian(int k, int r, double *m, double *C, double *L)
{
    for (int i = 0; i < k; i++) {
        m[i] = 0.5 * nrand();
        for (int j = 0; j < k; j++) L[i * k + j] = j < r ? nrand() : 0;
    }
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            double s = 0;
            for (int t = 0; t < k; t++) s += L[i * k + t] * L[j * k + t];
            C[i * k + j] = s;
        }
}

enum { RANDOM, POOLLIKE, RANK1, RANK2, DUPLICATE };
static const char *kind_name[] = {"random", "pool-like", "rank-1", "rank-2", "duplicated-input"};

/* The max of k against 10⁶ samples: asserted within 5 SE for k ≤ 4 (exact), measured and printed above. */
static void test_max(int k, int trials, int kind)
{
    double worst_mean = 0, worst_var = 0, worst_share = 0, worst_z = 0;
    char what[96];
    for (int trial = 0; trial < trials; trial++) {
        int kk = k + 1, idx[K_MAX];
        double m[K_MAX], C[K_MAX * K_MAX], L[K_MAX * K_MAX], w[K_MAX], mean, var;
        if (kind == POOLLIKE) pool_gaussian(kk, m, C, L);
        else if (kind == RANK1 || kind == RANK2) lowrank_gaussian(kk, kind == RANK1 ? 1 : 2, m, C, L);
        else random_gaussian(kk, m, C, L, 0.7);
        if (kind == DUPLICATE) { /* z_1 = z_0 + 0.3 and z_2 = z_0: the same variable up to constants */
            for (int j = 0; j < kk; j++) L[1 * kk + j] = L[2 * kk + j] = L[0 * kk + j];
            m[1] = m[0] + 0.3, m[2] = m[0];
            for (int i = 0; i < kk; i++)
                for (int j = 0; j < kk; j++) {
                    double s = 0;
                    for (int t = 0; t < kk; t++) s += L[i * kk + t] * L[j * kk + t];
                    C[i * kk + j] = s;
                }
        }
        for (int i = 0; i < k; i++) idx[i] = i;
        nm_maxk_moments(k, idx, m, C, kk, &mean, &var, w);
        mc_max r;
        monte_carlo(k, m, L, kk, &r);
        double sd = sqrt(r.var), wsum = 0, cov_y = 0;
        for (int i = 0; i < k; i++) cov_y += w[i] * C[i * kk + k];
        worst_mean = fmax(worst_mean, fabs(mean - r.mean) / sd);
        worst_var = fmax(worst_var, fabs(var / r.var - 1));
        worst_z = fmax(worst_z, fmax(fabs(mean - r.mean) / r.se_mean, fabs(var - r.var) / r.se_var));
        double mmax = m[0];
        int inside = 1;
        for (int i = 0; i < k; i++) {
            worst_share = fmax(worst_share, fabs(w[i] - r.share[i])), wsum += w[i];
            mmax = fmax(mmax, m[i]), inside &= w[i] >= 0 && w[i] <= 1;
        }
        check_close("max: weights sum to 1", wsum, 1, 1e-9, 0);
        check_true("max: weights in [0, 1], mean >= the largest input mean, variance > 0", inside && mean >= mmax - 1e-12 && var > 0);
        if (k > 4) continue;
        snprintf(what, sizeof what, "max of %d, %s: mean vs MC", k, kind_name[kind]);
        check_close(what, mean, r.mean, NSE * r.se_mean, 0);
        snprintf(what, sizeof what, "max of %d, %s: variance vs MC", k, kind_name[kind]);
        check_close(what, var, r.var, NSE * r.se_var, 0);
        snprintf(what, sizeof what, "max of %d, %s: Cov(max, y) vs MC", k, kind_name[kind]);
        check_close(what, cov_y, r.cov_y, NSE * r.se_cov, 0);
        for (int i = 0; i < k; i++) {
            snprintf(what, sizeof what, "max of %d, %s: P(z_%d is the max) vs MC", k, kind_name[kind], i);
            check_close(what, w[i], r.share[i], NSE * r.se_share, 0);
        }
    }
    printf("max of %d (%s), %d %s Gaussians vs %d samples: worst |mean error| %.4f sd, worst |var ratio - 1| %.4f, worst |P(max) error| "
           "%.4f, worst |z| %.2f\n",
           k, k <= 4 ? "exact" : "tree of exact fours", trials, kind_name[kind], SAMPLES, worst_mean, worst_var, worst_share, worst_z);
}

int main(void)
{
    test_two();
    test_tvn();
    for (int k = 3; k <= 4; k++) {
        test_max(k, 6, RANDOM);
        test_max(k, 6, POOLLIKE);
        test_max(k, 3, RANK1);
        test_max(k, 3, RANK2);
        test_max(k, 3, DUPLICATE);
    }
    test_max(5, 4, RANDOM);
    test_max(9, 4, POOLLIKE);
    return check_finish("test_gauss_max");
}
