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

/* ------------------------------------------------ the exact max of three or four (Tallis 1961; Afonja 1972) */

#define MAX_EXACT 4

/* P(Y ≥ 0) for Y ~ N(mu, S), d ≤ 3 (S d × d, row-major); a component of variance ≤ eps is taken as its mean. */
static double orthant(int d, const double *mu, const double *S, double eps)
{
    double a[3], s[3];
    int live[3], n = 0;
    for (int j = 0; j < d; j++) {
        if (S[j * d + j] > eps) live[n] = j, s[n] = sqrt(S[j * d + j]), a[n] = mu[j] / s[n], n++;
        else if (mu[j] < 0) return 0;
    }
    if (n == 0) return 1;
    if (n == 1) return nm_normal_cdf(a[0]);
    double r[3];
    for (int x = 0, q = 0; x < n; x++)
        for (int y = x + 1; y < n; y++) r[q++] = S[live[x] * d + live[y]] / (s[x] * s[y]);
    if (n == 2) return nm_bvn_cdf(a[0], a[1], r[0]);
    return nm_tvn_cdf(a, r);
}

/* Y ~ N(mu, S) (d components) given Y_j = 0: the other d − 1 in their order. */
static void condition(int d, const double *mu, const double *S, int j, double *mu2, double *S2)
{
    double sjj = S[j * d + j];
    for (int x = 0, a = 0; x < d; x++) {
        if (x == j) continue;
        mu2[a] = mu[x] - S[x * d + j] * mu[j] / sjj;
        for (int y = 0, b = 0; y < d; y++)
            if (y != j) S2[a * (d - 1) + b++] = S[x * d + y] - S[x * d + j] * S[y * d + j] / sjj;
        a++;
    }
}

/* The density at 0 of N(mu, s2). */
static double density0(double mu, double s2)
{
    double s = sqrt(s2);
    return nm_normal_pdf(mu / s) / s;
}

/* The region where z_i is the max, R_i = {Y ≥ 0} with Y_j = z_i − z_j (d = k − 1 of them): P(R_i), and E[u 1_R],
 * E[u² 1_R] for u = z_i − m_i, by Stein's lemma once and twice (the truncated moments of Tallis 1961):
 *   E[u g(Y)] = Σ_j c_j E[∂_j g],   E[u² g] = C_ii E[g] + Σ_j c_j E[u ∂_j g],   c_j = Cov(z_i, Y_j),
 * where E[∂_j 1_R] = p_j(0) P(rest ≥ 0 | Y_j = 0) and E[u ∂_j 1_R] is the same under the law given Y_j = 0. */
static void region(int d, const double *mY, const double *SY, const double *c, double Cii, double eps, double *P, double *Eu,
                   double *Eu2)
{
    double m1[2], S1[4], m2[1], S2[1];
    *P = orthant(d, mY, SY, eps), *Eu = 0, *Eu2 = Cii * *P;
    for (int j = 0; j < d; j++) {
        double sjj = SY[j * d + j], pj = density0(mY[j], sjj);
        condition(d, mY, SY, j, m1, S1);
        double Hj = orthant(d - 1, m1, S1, eps), inner = -c[j] * mY[j] / sjj * Hj;
        for (int l = 0, q = 0; l < d; l++) {
            if (l == j) continue;
            double slq = S1[q * (d - 1) + q];
            if (slq > eps) {
                condition(d - 1, m1, S1, q, m2, S2);
                inner += (c[l] - c[j] * SY[j * d + l] / sjj) * density0(m1[q], slq) * orthant(d - 2, m2, S2, eps);
            }
            q++;
        }
        *Eu += c[j] * pj * Hj;
        *Eu2 += c[j] * pj * inner;
    }
}

/* The max of k ≤ MAX_EXACT inputs sel[0..k) of z ~ N(m, C) (C k0 × k0 here, already jittered), means shifted by m0. */
static void max_exact(int k, const int *sel, const double *m, const double *C, int k0, double eps, double *mean, double *var,
                      double *w)
{
    double E1 = 0, E2 = 0;
    for (int a = 0; a < k; a++) {
        int i = sel[a], d = k - 1;
        double mY[MAX_EXACT - 1], SY[(MAX_EXACT - 1) * (MAX_EXACT - 1)], c[MAX_EXACT - 1], P, Eu, Eu2;
        for (int x = 0, jx = 0; x < k; x++) {
            if (x == a) continue;
            int j = sel[x];
            mY[jx] = m[i] - m[j], c[jx] = C[i * k0 + i] - C[i * k0 + j];
            for (int y = 0, ly = 0; y < k; y++) {
                if (y == a) continue;
                int l = sel[y];
                SY[jx * d + ly++] = C[i * k0 + i] - C[i * k0 + j] - C[i * k0 + l] + C[j * k0 + l];
            }
            jx++;
        }
        region(d, mY, SY, c, C[i * k0 + i], eps, &P, &Eu, &Eu2);
        w[a] = P;
        E1 += m[i] * P + Eu;
        E2 += m[i] * m[i] * P + 2 * m[i] * Eu + Eu2;
    }
    *mean = E1, *var = fmax(0, E2 - E1 * E1);
}

/* Exact moments of the max of k ≤ MAX_EXACT: inputs that another equals up to a constant, or that lie 38 sd of
 * their difference below another, are dropped (weight 0); two or fewer left go to Clark's exact formula; three
 * or four to max_exact, on C with 1e-12 of the largest variance added to its diagonal so that every
 * conditional law it takes is proper (changing the moments by that relative amount). */
static void max_small(int k, const int *idx, const double *m, const double *C, int64_t ld, double *mean, double *var, double *w)
{
    double lm[MAX_EXACT], lC[MAX_EXACT * MAX_EXACT], scale = 0, m0 = -INFINITY;
    int keep[MAX_EXACT], sel[MAX_EXACT], n = 0;
    for (int a = 0; a < k; a++) {
        lm[a] = m[idx[a]], keep[a] = 1, w[a] = 0;
        for (int b = 0; b < k; b++) lC[a * k + b] = C[(int64_t)idx[a] * ld + idx[b]];
        scale = fmax(scale, lC[a * k + a]);
    }
    double tie = 1e-9 * scale;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k && keep[a]; b++) {
            if (b == a) continue;
            double t2 = lC[a * k + a] + lC[b * k + b] - 2 * lC[a * k + b], dm = lm[a] - lm[b];
            if (t2 <= tie ? dm < 0 || (dm == 0 && a > b) : dm < -38 * sqrt(t2)) keep[a] = 0;
        }
    for (int a = 0; a < k; a++)
        if (keep[a]) sel[n++] = a, m0 = fmax(m0, lm[a]);
    if (n <= 2) {
        double p = 1;
        if (n == 1) *mean = lm[sel[0]], *var = lC[sel[0] * k + sel[0]];
        else nm_max2_moments(lm[sel[0]], lm[sel[1]], lC[sel[0] * k + sel[0]], lC[sel[1] * k + sel[1]], lC[sel[0] * k + sel[1]], mean, var, &p);
        w[sel[0]] = p;
        if (n == 2) w[sel[1]] = 1 - p;
        return;
    }
    double ws[MAX_EXACT];
    for (int a = 0; a < k; a++) lm[a] -= m0, lC[a * k + a] += 1e-12 * scale;
    max_exact(n, sel, lm, lC, k, 1e-15 * scale, mean, var, ws);
    *mean += m0;
    for (int a = 0; a < n; a++) w[sel[a]] = ws[a];
}

/* The max of z_i for i in idx[0..k): its mean, variance and Stein weights w (k, summing to 1); exact for k ≤ 4,
 * above it a balanced tree whose leaves are exact. */
static void max_tree(int k, const int *idx, const double *m, const double *C, int64_t ld, double *mean, double *var, double *w)
{
    if (k <= MAX_EXACT) {
        max_small(k, idx, m, C, ld, mean, var, w);
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
