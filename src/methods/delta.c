/*
 * delta.c — the delta method (DESIGN §1.7): the whole net linearized at μ,
 * every ReLU mask frozen there, so relu(z) has mean relu(m) and the
 * covariance of the units that are on.
 */
#include "method.h"

static double delta_mean(const nm_unit *u)
{
    return u->m > 0 ? u->m : 0;
}

static double delta_var(const nm_unit *u)
{
    return u->m > 0 ? u->s * u->s : 0;
}

static double delta_cov(const nm_unit *u, const nm_unit *v, double S_uv, double rho)
{
    (void)rho;
    return u->m > 0 && v->m > 0 ? S_uv : 0;
}

static double delta_slope(const nm_unit *u)
{
    return u->m > 0;
}

const nm_method_def nm_method_delta = {
    .name = "delta", .summary = "the delta method: linearized at the mean (DESIGN 1.7)",
    .at_mean = 1, .mean = delta_mean, .var = delta_var, .cov = delta_cov, .slope = delta_slope,
};
