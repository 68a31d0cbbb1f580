/*
 * relu_cov.c — the batched kernel: the p×p covariance of relu(z) for
 * z ~ N(m, S) (DESIGN §1.3–1.5), filled row by row in parallel. Per-unit
 * quantities (s, α, Φ(α)) are computed once; pairs with |ρ| < 0.925 take
 * the cancellation-free Price integral, the rest the reflected §1.5 form.
 */
#include "internal.h"
#include "gauss.h"

#include <math.h>

#define TWO_PI 6.283185307179586476925286766559

nm_status nm_relu_cov_matrix(nm_ctx *ctx, int64_t p, const double *m, const double *S,
                             nm_method method, double *C)
{
    if (p < 0 || !m || !S || !C) return nm_fail(ctx, NM_ERR_ARG, "relu_cov_matrix: bad arguments");
    if (method < 0 || method >= NM_METHOD_COUNT)
        return nm_fail(ctx, NM_ERR_ARG, "unknown method %d", (int)method);
    double *s = nm_alloc(ctx, (size_t)p * 3, sizeof(double));
    if (!s) return NM_ERR_NOMEM;
    double *a = s + p, *Pa = s + 2 * p;
    for (int64_t u = 0; u < p; u++) {
        double suu = S[u * p + u];
        s[u] = suu > 0 ? sqrt(suu) : 0;
        a[u] = s[u] > 0 ? m[u] / s[u] : (m[u] > 0 ? INFINITY : -INFINITY);
        Pa[u] = nm_normal_cdf(a[u]);
    }
    #pragma omp parallel for schedule(dynamic, 16)
    for (int64_t u = 0; u < p; u++) {
        for (int64_t v = 0; v < u; v++) {
            double ss = s[u] * s[v], c = 0;
            if (ss > 0) {
                double rho = S[u * p + v] / ss;
                rho = rho > 1 ? 1 : rho < -1 ? -1 : rho;
                switch (method) {
                case NM_METHOD_PAPER: /* §1.3: zero-mean covariance */
                    c = ss / TWO_PI * (sqrt((1 - rho) * (1 + rho)) + rho * acos(-rho) - 1);
                    break;
                case NM_METHOD_EXACT:
                    c = fabs(rho) < 0.925
                            ? ss * nm_relu_cov_std_price(a[u], a[v], Pa[u], Pa[v], rho)
                            : nm_relu_pair_cov(m[u], m[v], s[u], s[v], rho);
                    break;
                case NM_METHOD_DELTA: /* §1.7: ReLU masks frozen at the mean */
                    c = (m[u] > 0 && m[v] > 0) ? S[u * p + v] : 0;
                    break;
                }
            }
            C[u * p + v] = c;
            C[v * p + u] = c;
        }
    }
    for (int64_t u = 0; u < p; u++) {
        double d = 0;
        switch (method) {
        case NM_METHOD_PAPER: d = s[u] * s[u] * (0.5 - 1 / TWO_PI); break;
        case NM_METHOD_EXACT: d = nm_relu_var(m[u], s[u]); break;
        case NM_METHOD_DELTA: d = m[u] > 0 ? s[u] * s[u] : 0; break;
        }
        C[u * p + u] = d;
    }
    nm_free(ctx, s);
    return NM_OK;
}
