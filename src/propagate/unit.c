/*
 * unit.c — an elementwise nonlinearity f in method propagate. Per unit,
 * z_u ~ N(m_u, v_u): the exact mean and variance of f(z_u) (ReLU's kin as
 * hinges, DESIGN §1.1; smooth ops by Gauss–Hermite quadrature of their
 * own float32 forward) and the Stein weight g_u = E[f'(z_u)]. The columns
 * map exactly, T ← diag(g) T (Stein's lemma: Cov[f(z_u), ε] = g_u Cov[z_u, ε]);
 * the private part becomes diag(g) P diag(g) with the diagonal set so that
 * each unit's variance is exact. A dense hinge layer instead takes the
 * exact pair covariance C of f(z) (§1.5) and keeps C − (GT)(GT)ᵀ, the part
 * of C the columns do not carry, as its private part.
 */
#include "prop.h"

#include <math.h>
#include <string.h>

#define GH_POINTS 48

/* Gauss–Hermite nodes and weights for E[f(ξ)], ξ ~ N(0, 1): Newton on the orthonormal Hermite
 * recurrence from the usual asymptotic first guesses, then z = √2 x, w = w_x / √π. */
static void gh_rule(int q, double *z, double *w)
{
    const double pim4 = 0.7511255444649425; /* π^(−1/4) */
    double x = 0, pp = 0;
    for (int i = 0; i < (q + 1) / 2; i++) {
        if (i == 0) x = sqrt(2.0 * q + 1) - 1.85575 * pow(2.0 * q + 1, -0.16667);
        else if (i == 1) x -= 1.14 * pow(q, 0.426) / x;
        else if (i == 2) x = 1.86 * x - 0.86 * z[0] / sqrt(2.0);
        else if (i == 3) x = 1.91 * x - 0.91 * z[1] / sqrt(2.0);
        else x = 2 * x - z[i - 2] / sqrt(2.0);
        for (int it = 0; it < 100; it++) {
            double p1 = pim4, p2 = 0;
            for (int j = 1; j <= q; j++) {
                double p3 = p2;
                p2 = p1;
                p1 = x * sqrt(2.0 / j) * p2 - sqrt((j - 1.0) / j) * p3;
            }
            pp = sqrt(2.0 * q) * p2;
            double x1 = x;
            x = x1 - p1 / pp;
            if (fabs(x - x1) <= 1e-15 * fabs(x)) break;
        }
        z[i] = sqrt(2.0) * x, z[q - 1 - i] = -sqrt(2.0) * x;
        w[i] = w[q - 1 - i] = 2.0 / (pp * pp) / sqrt(M_PI);
    }
}

/* mean, var, slope of a smooth elementwise node k per unit, by its forward on GH_POINTS samples. */
static nm_status smooth_moments(nm_prop *pr, int k, const nm_gauss *in, const double *v, double *mean, double *var, double *slope)
{
    int64_t n = in->n, q = GH_POINTS;
    double z[GH_POINTS], w[GH_POINTS];
    gh_rule(GH_POINTS, z, w);
    float *x[NM_NODE_MAX_IN] = {0}, *y = nm_alloc(pr->ctx, (size_t)q, (size_t)n * sizeof(float));
    x[0] = nm_alloc(pr->ctx, (size_t)q, (size_t)n * sizeof(float));
    nm_status st = x[0] && y ? NM_OK : NM_ERR_NOMEM;
    for (int64_t i = 0; st == NM_OK && i < q; i++)
        for (int64_t u = 0; u < n; u++) x[0][i * n + u] = (float)(in->m[u] + sqrt(v[u]) * z[i]);
    if (st == NM_OK) st = nm_node_forward(pr->ctx, pr->net, k, q, x, y);
    for (int64_t u = 0; st == NM_OK && u < n; u++) {
        double e = 0, c = 0, s = 0, sd = sqrt(v[u]);
        for (int64_t i = 0; i < q; i++) e += w[i] * y[i * n + u];
        for (int64_t i = 0; i < q; i++) {
            double dv = y[i * n + u] - e;
            c += w[i] * dv * dv, s += w[i] * dv * z[i];
        }
        mean[u] = e, var[u] = c, slope[u] = sd > 0 ? s / sd : 0;
    }
    nm_free(pr->ctx, x[0]), nm_free(pr->ctx, y);
    return st;
}

/* The dense hinge layer: out->R = C − (GT)(GT)ᵀ with C the exact covariance of f(z) and g the slopes. */
static nm_status dense_pairs(nm_prop *pr, const nm_act *act, const nm_gauss *in, const double *g, nm_gauss *out)
{
    nm_ctx *ctx = pr->ctx;
    int64_t n = in->n;
    double *S0 = nm_alloc_zero(ctx, (size_t)(n * n), sizeof(double)), *C = nm_alloc(ctx, (size_t)(n * n), sizeof(double));
    nm_status st = S0 && C ? NM_OK : NM_ERR_NOMEM;
    nm_gauss cols = *in, priv = *in;
    cols.d2 = NULL, cols.R = NULL, cols.S = NULL, priv.k = 0, priv.T = NULL;
    if (st == NM_OK) st = nm_gauss_cov(pr, &cols, S0); /* T Tᵀ */
    if (st == NM_OK) st = nm_gauss_cov(pr, &priv, C);  /* the private part */
    if (st == NM_OK) {
        for (int64_t i = 0; i < n * n; i++) C[i] += S0[i];
        st = nm_act_cov_matrix(ctx, n, in->m, C, NM_METHOD_EXACT, act, C);
    }
    if (st == NM_OK) {
        for (int64_t u = 0; u < n; u++)
            for (int64_t v = 0; v < n; v++) C[u * n + v] -= g[u] * g[v] * S0[u * n + v];
        out->R = C, C = NULL;
    }
    nm_free(ctx, S0), nm_free(ctx, C);
    return st;
}

nm_status nm_prop_unit(nm_prop *pr, int k, const nm_gauss *in, const nm_act *act, int dense, nm_gauss *out)
{
    nm_ctx *ctx = pr->ctx;
    int64_t n = in->n;
    double *v = nm_alloc(ctx, (size_t)n, sizeof(double)), *var = nm_alloc(ctx, (size_t)n, sizeof(double));
    double *g = nm_alloc(ctx, (size_t)n, sizeof(double));
    nm_status st = v && var && g ? nm_gauss_new(pr, n, in->k, out) : NM_ERR_NOMEM;
    if (st == NM_OK) nm_gauss_var(in, v);
    if (st == NM_OK && act) {
        #pragma omp parallel for schedule(static) if (n > 4096)
        for (int64_t u = 0; u < n; u++) nm_act_unit(act, u, in->m[u], v[u], &out->m[u], &var[u], &g[u]);
    } else if (st == NM_OK) st = smooth_moments(pr, k, in, v, out->m, var, g);
    if (st == NM_OK && in->k > 0) {
        memcpy(out->T, in->T, (size_t)(n * in->k) * sizeof(double));
        nm_rows_scale(n, in->k, g, out->T);
    }
    if (st == NM_OK && dense && act) st = dense_pairs(pr, act, in, g, out);
    else if (st == NM_OK) {
        /* the sparse private columns map as the shared ones do */
        if (in->S && (st = nm_tiles_copy(ctx, in->S, &out->S)) == NM_OK) nm_tiles_scale(out->S, g);
        /* the private part: diag(g) P diag(g), its diagonal what the columns leave of each variance */
        double *P = st != NM_OK ? NULL : in->R ? nm_alloc(ctx, (size_t)(n * n), sizeof(double)) : nm_alloc(ctx, (size_t)n, sizeof(double));
        if (st == NM_OK && !P) st = NM_ERR_NOMEM;
        for (int64_t u = 0; st == NM_OK && u < n; u++) {
            double cols = v[u] - (in->d2 ? in->d2[u] : in->R ? in->R[u * n + u] : 0), r = var[u] - g[u] * g[u] * cols;
            r = r > 0 ? r : 0;
            if (!in->R) {
                P[u] = r;
                continue;
            }
            for (int64_t w = 0; w < n; w++) P[u * n + w] = g[u] * g[w] * in->R[u * n + w];
            P[u * n + u] = r;
        }
        if (st == NM_OK && in->R) out->R = P;
        else if (st == NM_OK) out->d2 = P;
    }
    nm_free(ctx, v), nm_free(ctx, var), nm_free(ctx, g);
    if (st != NM_OK) nm_gauss_free(pr, out);
    return st;
}
