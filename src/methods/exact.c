/*
 * exact.c — method exact (DESIGN §1.5): the exact moments of relu(z) for
 * any mean, so that an (Affine, ReLU, Affine) network's moments are exact.
 * Pairs with |ρ| < 0.925 take the cancellation-free Price integral, the
 * rest the reflected §1.5 form.
 */
#include "method.h"
#include "../gauss.h"

#include <math.h>

double nm_exact_mean(const nm_unit *u)
{
    return nm_relu_mean(u->m, u->s);
}

double nm_exact_var(const nm_unit *u)
{
    return nm_relu_var(u->m, u->s);
}

double nm_exact_cov(const nm_unit *u, const nm_unit *v, double S_uv, double rho)
{
    (void)S_uv;
    return fabs(rho) < 0.925 ? u->s * v->s * nm_relu_cov_std_price(u->a, v->a, u->Pa, v->Pa, rho)
                             : nm_relu_pair_cov(u->m, v->m, u->s, v->s, rho);
}

double nm_exact_slope(const nm_unit *u)
{
    return u->Pa;
}

const nm_method_def nm_method_exact = {
    .name = "exact", .summary = "exact for an Affine-ReLU-Affine net, any mean (DESIGN 1.5; the default)",
    .mean = nm_exact_mean, .var = nm_exact_var, .cov = nm_exact_cov, .slope = nm_exact_slope,
};
