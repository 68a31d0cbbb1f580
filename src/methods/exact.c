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

/* nm_exact_cov for a row of pairs: the Price integrals of the pairs with |ρ| < 0.925 batched (gauss.c), in blocks
 * of 64 gathered on the stack; where the integral vanishes (a mean 40 sd out, ρ = 0) its first term straight away;
 * |ρ| ≥ 0.925 one by one. */
void nm_exact_cov_row(const nm_unit *u, const nm_unit *v, const double *S_uv, int64_t n, double *c)
{
    double a[64], b[64], Pa[64], Pb[64], rho[64], out[64];
    int64_t at[64];
    int far = fabs(u->a) > NM_Z_CLAMP;
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
        int64_t j1 = n - j0 < 64 ? n : j0 + 64, m = 0;
        for (int64_t j = j0; j < j1; j++) {
            double ss = u->s * v[j].s, r = ss > 0 ? S_uv[j] / ss : 0;
            r = r > 1 ? 1 : r < -1 ? -1 : r;
            c[j] = 0;
            if (!(ss > 0)) continue;
            if (fabs(r) >= 0.925) {
                c[j] = nm_relu_pair_cov(u->m, v[j].m, u->s, v[j].s, r);
                continue;
            }
            if (far || fabs(v[j].a) > NM_Z_CLAMP || r == 0) { /* the integral vanishes: the kernel's first term, as it computes it */
                c[j] = ss * (r * u->Pa * v[j].Pa);
                continue;
            }
            a[m] = u->a, b[m] = v[j].a, Pa[m] = u->Pa, Pb[m] = v[j].Pa, rho[m] = r, at[m++] = j;
        }
        nm_relu_cov_std_price_n(m, a, b, Pa, Pb, rho, out);
        for (int64_t i = 0; i < m; i++) c[at[i]] = u->s * v[at[i]].s * out[i];
    }
}

double nm_exact_slope(const nm_unit *u)
{
    return u->Pa;
}

const nm_method_def nm_method_exact = {
    .name = "exact", .summary = "exact for an Affine-ReLU-Affine net, any mean (DESIGN 1.5; the default)",
    .mean = nm_exact_mean, .var = nm_exact_var, .cov = nm_exact_cov, .slope = nm_exact_slope, .cov_row = nm_exact_cov_row,
};
