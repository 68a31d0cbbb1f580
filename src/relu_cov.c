/*
 * relu_cov.c — the batched kernel: the p×p covariance of relu(z) for
 * z ~ N(m, S) (DESIGN §1.3–1.5), filled row by row in parallel, by the
 * rules of the chosen method (src/methods). Per-unit quantities (s, α,
 * Φ(α)) are computed once.
 *
 * Shapes: m (p); S (p×p, lower triangle read); C (p×p, both triangles
 * written, the upper one last; may be S).
 */
#include "methods/method.h"

/* C's strictly lower triangle copied onto the upper, by 64 × 64 blocks (a column of writes per row would miss a
 * cache line each). */
static void mirror_lower(int64_t p, double *C)
{
    #pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b0 = 0; b0 < p; b0 += 64)
        for (int64_t c0 = 0; c0 <= b0; c0 += 64)
            for (int64_t u = b0; u < b0 + 64 && u < p; u++)
                for (int64_t v = c0; v < c0 + 64 && v < u; v++) C[v * p + u] = C[u * p + v];
}

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
        if (def->cov_row) { /* the row's pairs at once; the upper triangle below */
            def->cov_row(&un[u], un, S + u * p, u, C + u * p);
            continue;
        }
        for (int64_t v = 0; v < u; v++) {
            double ss = un[u].s * un[v].s, c = 0;
            if (ss > 0) {
                double rho = S[u * p + v] / ss;
                rho = rho > 1 ? 1 : rho < -1 ? -1 : rho;
                c = def->cov(&un[u], &un[v], S[u * p + v], rho);
            }
            C[u * p + v] = c;
        }
    }
    mirror_lower(p, C);
    for (int64_t u = 0; u < p; u++) C[u * p + u] = def->var(&un[u]);
    nm_free(ctx, un);
    return NM_OK;
}

/* ---------------------------------------------------------------- the hinges of ReLU's kin */

double nm_act_apply(const nm_act *act, int64_t u, double z)
{
    if (act->plain) return z > 0 ? z : 0;
    double g = act->g ? act->g[u] : 1, y = act->beta + (act->alpha ? act->alpha[u] * z : 0);
    for (int k = 0; k < act->nh; k++) y += act->w[k] * g * (z > act->t[k] ? z - act->t[k] : 0);
    return y;
}

/* Cov[f_u(z_u), f_v(z_v)] from the hinges' units (un[k][·]: mean m − t_k), S_uv and ρ; for u = v
 * (same = 1) the hinges of one unit, with ρ = 1 between them. */
static double act_pair(const nm_method_def *def, const nm_act *act, const nm_unit *const un[2], int64_t u, int64_t v, double S_uv,
                       double rho, int same)
{
    double gu = act->g ? act->g[u] : 1, gv = act->g ? act->g[v] : 1;
    double au = act->alpha ? act->alpha[u] : 0, av = act->alpha ? act->alpha[v] : 0, c = 0, su = 0, sv = 0;
    for (int k = 0; k < act->nh; k++) {
        su += act->w[k] * gu * def->slope(&un[k][u]);
        sv += act->w[k] * gv * def->slope(&un[k][v]);
        for (int l = 0; l < act->nh; l++) {
            double w = act->w[k] * gu * act->w[l] * gv, ss = un[k][u].s * un[l][v].s;
            if (!(ss > 0)) continue;
            c += w * (same && k == l ? def->var(&un[k][u]) : def->cov(&un[k][u], &un[l][v], S_uv, rho));
        }
    }
    return c + (av * su + au * sv + au * av) * S_uv; /* Stein: Cov[relu(z_u − t), z_v] = E[relu'] S_uv */
}

void nm_act_unit(const nm_act *act, int64_t u, double m, double v, double *mean, double *var, double *slope)
{
    const nm_method_def *def = &nm_method_exact;
    if (!act || act->plain) {
        nm_unit un = nm_unit_of(m, v);
        *mean = def->mean(&un), *var = def->var(&un), *slope = def->slope(&un);
        return;
    }
    double g = act->g ? act->g[u] : 1, al = act->alpha ? act->alpha[u] : 0, s2 = v > 0 ? v : 0, c = 0, sl = 0;
    nm_unit un[2];
    *mean = act->beta + al * m;
    for (int k = 0; k < act->nh; k++) {
        un[k] = nm_unit_of(m - act->t[k], v);
        *mean += act->w[k] * g * def->mean(&un[k]);
        sl += act->w[k] * g * def->slope(&un[k]);
    }
    for (int k = 0; k < act->nh; k++)
        for (int l = 0; l < act->nh && un[k].s > 0; l++)
            c += act->w[k] * act->w[l] * g * g * (k == l ? def->var(&un[k]) : def->cov(&un[k], &un[l], s2, 1));
    *var = c + (2 * al * sl + al * al) * s2; /* Stein: Cov[relu(z − t), z] = E[relu'] Var z */
    *slope = sl + al;
}

nm_status nm_act_cov_matrix(nm_ctx *ctx, int64_t p, const double *m, const double *S, nm_method method, const nm_act *act, double *C)
{
    if (!act || act->plain) return nm_relu_cov_matrix(ctx, p, m, S, method, C);
    if (p < 0 || !m || !S || !C || act->nh < 0 || act->nh > 2) return nm_fail(ctx, NM_ERR_ARG, "act_cov_matrix: bad arguments");
    const nm_method_def *def = nm_method_def_of(method);
    nm_unit *buf = nm_alloc(ctx, (size_t)(2 * (p ? p : 1)), sizeof(nm_unit));
    if (!buf) return NM_ERR_NOMEM;
    const nm_unit *un[2] = {buf, buf + p};
    for (int k = 0; k < act->nh; k++)
        for (int64_t u = 0; u < p; u++) buf[k * p + u] = nm_unit_of(m[u] - act->t[k], S[u * p + u]);
    double *diag = nm_alloc(ctx, (size_t)(p ? p : 1), sizeof(double));
    if (!diag) {
        nm_free(ctx, buf);
        return NM_ERR_NOMEM;
    }
    for (int64_t u = 0; u < p; u++) diag[u] = S[u * p + u];
    #pragma omp parallel for schedule(dynamic, 16)
    for (int64_t u = 0; u < p; u++)
        for (int64_t v = 0; v < u; v++) {
            double ss = un[0][u].s * un[0][v].s, rho = ss > 0 ? S[u * p + v] / ss : 0;
            rho = rho > 1 ? 1 : rho < -1 ? -1 : rho;
            C[u * p + v] = act_pair(def, act, un, u, v, S[u * p + v], rho, 0);
        }
    mirror_lower(p, C);
    for (int64_t u = 0; u < p; u++) C[u * p + u] = act_pair(def, act, un, u, u, diag[u], 1, 1);
    nm_free(ctx, diag);
    nm_free(ctx, buf);
    return NM_OK;
}
