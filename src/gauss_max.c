/*
 * gauss_max.c — moments of the max of jointly Gaussian variables (DESIGN
 * §1.12, for max-pool in method propagate; Clark 1961). For two, exact:
 * with w = z1 − z2 ~ N(Δ, θ²), θ² = v1 + v2 − 2 c12, a = Δ/θ,
 *   max = z2 + relu(w),  E = m2 + E[relu w],
 *   Var = v2 + θ² Var[relu(a + ξ)] + 2 (c12 − v2) Φ(a)   (Stein: Cov(z2, relu w) = Cov(z2, w) Φ(a)),
 *   P(z1 > z2) = Φ(a),  Cov(max, y) = Φ(a) Cov(z1, y) + Φ(−a) Cov(z2, y) for y jointly Gaussian,
 * taken from the side with the larger mean so that no O(m²) terms cancel.
 * For k > 2 a balanced tree of such maxima, each partial max treated as a
 * Gaussian (Clark's approximation): the cross-covariance of two partial
 * maxima is w_Lᵀ C w_R with w their Stein weights (the products of Φ(a)
 * along the tree: approximate probabilities that each input is the max).
 * tests/test_gauss_max.c measures the approximation against Monte Carlo:
 * on random 3- and 4-variable Gaussians with strong correlations of both
 * signs and unequal variances, errors up to 0.05 sd in the mean, 24 % in
 * the variance and 0.11 in P(max) (other orders of combination, sorted or
 * sequential, are no better overall); on pool-like windows (a common factor,
 * similar variances) 0.003 sd, 2.5 % and 0.03. Exact moments for k ≤ 4 need the
 * truncated moments of a (k − 1)-variate normal, still to come (issue 16).
 */
#include "internal.h"
#include "gauss.h"

#include <math.h>

void nm_max2_moments(double m1, double m2, double v1, double v2, double c12, double *mean, double *var, double *p1)
{
    double t2 = v1 + v2 - 2 * c12;
    if (!(t2 > 1e-300 * (v1 + v2 + 1e-300))) { /* z1 − z2 constant: the max is whichever is larger */
        int one = m1 > m2 || (m1 == m2 && v1 >= v2);
        *mean = one ? m1 : m2, *var = one ? v1 : v2, *p1 = m1 > m2 ? 1 : m1 < m2 ? 0 : 0.5;
        return;
    }
    double t = sqrt(t2);
    if (m1 > m2) { /* base on z1: max = z1 + relu(z2 − z1) */
        double a = (m2 - m1) / t, P = nm_normal_cdf(a);
        *mean = m1 + nm_relu_mean(m2 - m1, t);
        *var = fmax(0, v1 + t2 * nm_relu_var_std(a) + 2 * (c12 - v1) * P);
        *p1 = 1 - P;
        return;
    }
    double a = (m1 - m2) / t, P = nm_normal_cdf(a);
    *mean = m2 + nm_relu_mean(m1 - m2, t);
    *var = fmax(0, v2 + t2 * nm_relu_var_std(a) + 2 * (c12 - v2) * P);
    *p1 = P;
}

/* The max of z_i for i in idx[0..k): its mean, variance and Stein weights w (k, summing to 1). */
static void max_tree(int k, const int *idx, const double *m, const double *C, int64_t ld, double *mean, double *var, double *w)
{
    if (k == 1) {
        *mean = m[idx[0]], *var = C[(int64_t)idx[0] * ld + idx[0]], w[0] = 1;
        return;
    }
    int kl = k / 2;
    double ml, vl, mr, vr, c = 0, p;
    max_tree(kl, idx, m, C, ld, &ml, &vl, w);
    max_tree(k - kl, idx + kl, m, C, ld, &mr, &vr, w + kl);
    for (int i = 0; i < kl; i++)
        for (int j = kl; j < k; j++) c += w[i] * w[j] * C[(int64_t)idx[i] * ld + idx[j]];
    nm_max2_moments(ml, mr, vl, vr, c, mean, var, &p);
    for (int i = 0; i < kl; i++) w[i] *= p;
    for (int j = kl; j < k; j++) w[j] *= 1 - p;
}

void nm_maxk_moments(int k, const int *idx, const double *m, const double *C, int64_t ld, double *mean, double *var, double *w)
{
    max_tree(k, idx, m, C, ld, mean, var, w);
}
