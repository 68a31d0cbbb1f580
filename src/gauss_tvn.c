/*
 * gauss_tvn.c — the trivariate normal cdf Φ₃ (for the exact max of up to
 * four Gaussians, gauss_max.c). Plackett's identity, as in Genz (2004)
 * §3: along R(t), whose correlations with X1 are t·ρ12 and t·ρ13 and
 * whose ρ23 is kept,
 *   Φ₃(h; R) = Φ(h1) Φ₂(h2, h3; ρ23) + ∫₀¹ Σ_{j=2,3} ρ1j ∂Φ₃/∂ρ1j (R(t)) dt,
 *   ∂Φ₃/∂ρ1j = φ₂(h1, hj; t ρ1j) Φ((hk − β1 h1 − βj hj) / σ_k|1j),
 * the conditional law of the third given the other two under R(t). The
 * variables are ordered so that |ρ23| is the largest correlation: the
 * bivariate densities are then bounded on [0, 1) and the integrand is
 * smooth but where R is (nearly) singular, at t → 1. The integral is
 * adaptive Gauss–Legendre, 20 points checked against 12 on each piece,
 * bisected until they agree to NM_TVN_TOL; tests/test_gauss_max.c checks
 * the result against the closed-form orthant probabilities and the
 * singular and independent limits.
 */
#include "internal.h"
#include "gauss.h"

#include <math.h>

#define NM_TVN_TOL 1e-13
#define NM_TVN_DEPTH 24
#define TWO_PI 6.283185307179586476925286766559

typedef struct {
    double h1, h2, h3, r12, r13, r23;
} tvn;

/* Φ((hk − E[Xk | X1 = h1, Xj = hj]) / sd) under R(t); (j, k) = (2, 3) or, swapped, (3, 2). */
static double cond_cdf(double h1, double hj, double hk, double r1j, double r1k, double rjk)
{
    double D = 1 - r1j * r1j, det = D - r1k * r1k - rjk * rjk + 2 * r1j * r1k * rjk;
    double num = hk - ((r1k - r1j * rjk) * h1 + (rjk - r1j * r1k) * hj) / D;
    if (!(det > 1e-300)) return num > 0 ? 1 : num < 0 ? 0 : 0.5;
    return nm_normal_cdf(num / sqrt(det / D));
}

static double bvn_pdf(double x, double y, double r)
{
    double D = 1 - r * r;
    return exp(-(x * x - 2 * r * x * y + y * y) / (2 * D)) / (TWO_PI * sqrt(D));
}

static double integrand(const tvn *p, double t)
{
    double a = t * p->r12, b = t * p->r13, s = 0;
    if (p->r12 != 0) s += p->r12 * bvn_pdf(p->h1, p->h2, a) * cond_cdf(p->h1, p->h2, p->h3, a, b, p->r23);
    if (p->r13 != 0) s += p->r13 * bvn_pdf(p->h1, p->h3, b) * cond_cdf(p->h1, p->h3, p->h2, b, a, p->r23);
    return s;
}

static double rule(const tvn *p, const nm_gl_rule *g, double lo, double hi)
{
    double c = (lo + hi) / 2, r = (hi - lo) / 2, s = 0;
    for (int i = 0; i < g->n; i++) s += g->w[i] * (integrand(p, c - r * g->x[i]) + integrand(p, c + r * g->x[i]));
    return s * r;
}

static double adapt(const tvn *p, double lo, double hi, int depth)
{
    double fine = rule(p, &nm_gl_rules[2], lo, hi), coarse = rule(p, &nm_gl_rules[1], lo, hi);
    if (fabs(fine - coarse) <= NM_TVN_TOL * (hi - lo) || depth >= NM_TVN_DEPTH) return fine;
    double mid = (lo + hi) / 2;
    return adapt(p, lo, mid, depth + 1) + adapt(p, mid, hi, depth + 1);
}

double nm_tvn_cdf(const double h[3], const double r[3])
{
    /* r = (ρ12, ρ13, ρ23); relabel so that the largest |ρ| is ρ23 */
    double H[3] = {h[0], h[1], h[2]}, Rm[3][3] = {{1, r[0], r[1]}, {r[0], 1, r[2]}, {r[1], r[2], 1}};
    for (int i = 0; i < 3; i++) {
        if (isnan(H[i]) || isnan(r[i])) return NAN;
        H[i] = H[i] > NM_Z_CLAMP ? NM_Z_CLAMP : H[i] < -NM_Z_CLAMP ? -NM_Z_CLAMP : H[i];
    }
    int first = fabs(r[0]) >= fabs(r[1]) && fabs(r[0]) >= fabs(r[2]) ? 2 : fabs(r[1]) >= fabs(r[2]) ? 1 : 0;
    int o[3] = {first, first == 0 ? 1 : 0, first == 2 ? 1 : 2};
    tvn p = {H[o[0]], H[o[1]], H[o[2]], Rm[o[0]][o[1]], Rm[o[0]][o[2]], Rm[o[1]][o[2]]};
    p.r23 = p.r23 > 1 ? 1 : p.r23 < -1 ? -1 : p.r23;
    double v = nm_normal_cdf(p.h1) * nm_bvn_cdf(p.h2, p.h3, p.r23);
    if (p.r12 != 0 || p.r13 != 0) v += adapt(&p, 0, 1, 0);
    return v < 0 ? 0 : v > 1 ? 1 : v;
}
