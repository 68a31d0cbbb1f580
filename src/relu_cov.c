/*
 * relu_cov.c — the batched kernel: the p×p covariance of relu(z) for
 * z ~ N(m, S) (DESIGN §1.3–1.5), filled row by row in parallel, by the
 * rules of the chosen method (src/methods). Per-unit quantities (s, α,
 * Φ(α)) are computed once.
 *
 * Shapes: m (p); S (p×p, lower triangle read); C (p×p, both triangles
 * written; may be S).
 */
#include "methods/method.h"

nm_status nm_relu_cov_matrix(nm_ctx *ctx, int64_t p, const double *m, const double *S,
                             nm_method method, double *C)
{
    if (p < 0 || !m || !S || !C) return nm_fail(ctx, NM_ERR_ARG, "relu_cov_matrix: bad arguments");
    if (method < 0 || method >= nm_method_count()) return nm_fail(ctx, NM_ERR_ARG, "unknown method %d", (int)method);
    const nm_method_def *def = nm_method_def_of(method);
    nm_unit *un = nm_alloc(ctx, (size_t)(p ? p : 1), sizeof(nm_unit));
    if (!un) return NM_ERR_NOMEM;
    for (int64_t u = 0; u < p; u++) un[u] = nm_unit_of(m[u], S[u * p + u]);
    #pragma omp parallel for schedule(dynamic, 16)
    for (int64_t u = 0; u < p; u++) {
        for (int64_t v = 0; v < u; v++) {
            double ss = un[u].s * un[v].s, c = 0;
            if (ss > 0) {
                double rho = S[u * p + v] / ss;
                rho = rho > 1 ? 1 : rho < -1 ? -1 : rho;
                c = def->cov(&un[u], &un[v], S[u * p + v], rho);
            }
            C[u * p + v] = c;
            C[v * p + u] = c;
        }
    }
    for (int64_t u = 0; u < p; u++) C[u * p + u] = def->var(&un[u]);
    nm_free(ctx, un);
    return NM_OK;
}
