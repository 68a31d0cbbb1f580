/*
 * moment_grad.c — a net linearized once (§1.6) and kept for many noise
 * parameters, with the gradients of the logits' mean with respect to the
 * noise (DESIGN §1.11, for the attacks of Eq 3 and Eq 4): for
 * x ~ N(μ, diag(v)) and A, c1, B, c2 frozen, m = A μ + c1,
 * s_u² = Σ_k A_uk² v_k, E[g] = B r + c2 with r_u = m_u Φ(α_u) + s_u φ(α_u);
 * ∂E/∂μ = B diag(Φ(α)) A and ∂E/∂v_k = Σ_u B_iu φ(α_u) A_uk² / (2 s_u). A and
 * A∘A are held as matrices, so each evaluation is three products of d×p by
 * p×n, whatever the number of logits' gradients asked for.
 */
#include "linearize.h"

#include <math.h>
#include <string.h>

struct nm_linearized {
    int64_t n, p, d;
    double *A, *A2, *c1, *B, *c2; /* p×n, p×n (A∘A), p, d×p, d */
};

void nm_linearized_free(nm_ctx *ctx, nm_linearized *l)
{
    if (!l) return;
    nm_free(ctx, l->A), nm_free(ctx, l->A2), nm_free(ctx, l->c1), nm_free(ctx, l->B), nm_free(ctx, l->c2);
    nm_free(ctx, l);
}

int64_t nm_linearized_inputs(const nm_linearized *l) { return l->n; }
int64_t nm_linearized_outputs(const nm_linearized *l) { return l->d; }

nm_status nm_linearized_create(nm_ctx *ctx, nm_net *net, const nm_array *x0, const nm_net_moments_options *opt, nm_linearized **out)
{
    if (!ctx || !net || !x0 || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    *out = NULL;
    nm_net_moments_options o = opt ? *opt : nm_net_moments_options_default();
    o.x0 = NULL, o.y0 = NULL; /* linearized at x0 itself */
    nm_lin L;
    nm_status st = nm_lin_prepare(ctx, net, x0, &o, &L);
    if (st != NM_OK) return st;
    if (!L.act.plain) {
        nm_lin_free(ctx, &L);
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "the moments' gradients need a ReLU at the split (this split is another activation)");
    }
    nm_linearized *l = nm_alloc_zero(ctx, 1, sizeof *l);
    if (!l) st = NM_ERR_NOMEM;
    if (st == NM_OK) {
        l->n = L.n, l->p = L.p, l->d = L.d;
        st = nm_lin_form_A(ctx, net, &L, &l->A, &l->c1);
    }
    if (st == NM_OK) {
        l->A2 = nm_alloc(ctx, (size_t)(l->p * l->n), sizeof(double));
        l->B = nm_alloc(ctx, (size_t)(l->d * l->p), sizeof(double));
        l->c2 = nm_alloc(ctx, (size_t)l->d, sizeof(double));
        if (!l->A2 || !l->B || !l->c2) st = NM_ERR_NOMEM;
    }
    if (st == NM_OK) {
        for (int64_t i = 0; i < l->p * l->n; i++) l->A2[i] = l->A[i] * l->A[i];
        memcpy(l->B, L.B, (size_t)(l->d * l->p) * sizeof(double));
        memcpy(l->c2, L.c2, (size_t)l->d * sizeof(double));
        *out = l;
    } else {
        nm_linearized_free(ctx, l);
    }
    nm_lin_free(ctx, &L);
    return st;
}

void nm_mean_grad_free(nm_ctx *ctx, nm_mean_grad *g)
{
    if (!g) return;
    nm_free(ctx, g->mean);
    memset(g, 0, sizeof *g);
}

nm_status nm_linearized_mean_grad(nm_ctx *ctx, const nm_linearized *l, const double *mu, const double *v, nm_mean_grad *out)
{
    if (!ctx || !l || !mu || !v || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    int64_t n = l->n, p = l->p, d = l->d;
    if (!nm_all_finite_f64(mu, n) || !nm_all_finite_f64(v, n)) return nm_fail(ctx, NM_ERR_NONFINITE, "the noise's mean or variances are not finite");
    for (int64_t k = 0; k < n; k++)
        if (v[k] < 0) return nm_fail(ctx, NM_ERR_NOT_PSD, "variance %lld is negative (%g)", (long long)k, v[k]);
    double *buf = nm_alloc(ctx, (size_t)(d + 2 * d * n + d + 4 * p + 2 * d * p), sizeof(double));
    if (!buf) return NM_ERR_NOMEM;
    out->d = d, out->n = n;
    out->mean = buf, out->dmean_dmu = buf + d, out->dmean_dv = out->dmean_dmu + d * n, out->dmean_dsigma2 = out->dmean_dv + d * n;
    double *m = out->dmean_dsigma2 + d, *s2 = m + p, *r = s2 + p, *w = r + p, *G = w + p, *W = G + d * p;
    memcpy(m, l->c1, (size_t)p * sizeof(double));
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, p, 1, n, 1.0, l->A, n, mu, 1, 1.0, m, 1);     /* m = A μ + c1 */
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, p, 1, n, 1.0, l->A2, n, v, 1, 0.0, s2, 1);    /* s² = (A∘A) v */
    for (int64_t u = 0; u < p; u++) {
        double s = sqrt(fmax(0, s2[u]));
        r[u] = nm_relu_mean(m[u], s);
        if (s > 0) {
            double a = m[u] / s;
            w[u] = nm_normal_pdf(a) / (2 * s); /* ∂r/∂(s²) = φ(α) / (2s) */
            s2[u] = nm_normal_cdf(a);          /* reuse: Φ(α) = ∂r/∂m */
        } else {
            w[u] = 0; /* a unit without noise: its row of A∘A, the only path to it, is 0 */
            s2[u] = m[u] > 0 ? 1 : m[u] < 0 ? 0 : 0.5;
        }
    }
    memcpy(out->mean, l->c2, (size_t)d * sizeof(double));
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, d, 1, p, 1.0, l->B, p, r, 1, 1.0, out->mean, 1);
    for (int64_t i = 0; i < d; i++)
        for (int64_t u = 0; u < p; u++) G[i * p + u] = l->B[i * p + u] * s2[u], W[i * p + u] = l->B[i * p + u] * w[u];
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, d, n, p, 1.0, G, p, l->A, n, 0.0, out->dmean_dmu, n);
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, d, n, p, 1.0, W, p, l->A2, n, 0.0, out->dmean_dv, n);
    for (int64_t i = 0; i < d; i++) {
        double t = 0;
        for (int64_t k = 0; k < n; k++) t += out->dmean_dv[i * n + k];
        out->dmean_dsigma2[i] = t; /* v = σ² 1 */
    }
    if (!nm_all_finite_f64(out->mean, d)) {
        nm_mean_grad_free(ctx, out);
        return nm_fail(ctx, NM_ERR_NONFINITE, "the mean overflows double");
    }
    return NM_OK;
}
