/*
 * paper.c — method paper (DESIGN §1.4, the paper's Theorem 2): the exact
 * mean of §1.2, and the zero-mean pair covariance of §1.3 whatever the
 * means, as the paper and its code apply it.
 */
#include "method.h"

#include <math.h>

#define TWO_PI 6.283185307179586476925286766559

static double paper_mean(const nm_unit *u)
{
    return nm_relu_mean(u->m, u->s);
}

static double paper_var(const nm_unit *u)
{
    return u->s * u->s * (0.5 - 1 / TWO_PI);
}

/* §1.3: s_u s_v/(2π) (√(1−ρ²) + ρ arccos(−ρ) − 1) */
static double paper_cov(const nm_unit *u, const nm_unit *v, double S_uv, double rho)
{
    (void)S_uv;
    double ss = u->s * v->s;
    return ss / TWO_PI * (sqrt((1 - rho) * (1 + rho)) + rho * acos(-rho) - 1);
}

static double paper_slope(const nm_unit *u)
{
    (void)u;
    return 0.5; /* the zero-mean formula: Φ(0) */
}

const nm_method_def nm_method_paper = {
    .name = "paper", .summary = "the paper's Theorem 2 (zero-mean pair covariance, DESIGN 1.4)",
    .mean = paper_mean, .var = paper_var, .cov = paper_cov, .slope = paper_slope,
};
