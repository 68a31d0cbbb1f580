/*
 * moment_grad.c — a net linearized once (§1.6) and kept for many noise
 * parameters, with the gradients of the logits' mean with respect to the
 * noise (DESIGN §1.11, for the attacks of Eq 3 and Eq 4): for
 * x ~ N(μ, diag(v)) and A, c1, B, c2 frozen, m = A μ + c1,
 * s_u² = Σ_k A_uk² v_k, E[g] = B r + c2 with r_u = m_u Φ(α_u) + s_u φ(α_u);
 * ∂E/∂μ = B diag(Φ(α)) A and ∂E/∂v_k = Σ_u B_iu φ(α_u) A_uk² / (2 s_u). A and
 * A∘A are held as matrices, so each evaluation is three products of d×p by
 * p×n, whatever the number of logits' gradients asked for.
 *
 * The variance's gradients (method exact's variance, §1.5) follow from
 * Bonnet's and Price's theorems, ∂E[f]/∂m_u = E[∂f/∂z_u] and
 * ∂E[f]/∂S_uw = E[∂²f/∂z_u∂z_w] (½ on the diagonal): with b = B's row i,
 * g = bᵀr and V = bᵀ E[relu z relu zᵀ] b − g²,
 *   ∂V/∂m_u  = 2 b_u Σ_w b_w T_uw − 2 g b_u Φ(α_u),  T_uw = E[1{z_u>0} relu z_w] (T_uu = r_u),
 *   ∂V/∂S_uw = b_u b_w P_uw (u ≠ w; P_uw = Φ₂(α_u, α_w; ρ)),
 *   ∂V/∂S_uu = b_u² Φ(α_u) + 2 b_u Σ_{w≠u} b_w D_uw − g b_u φ(α_u)/s_u,
 *   D_uw = φ(α_u)/(2 s_u) E[relu z_w | z_u = 0],
 * and with S = A diag(v) Aᵀ, ∂V/∂v_k = (Aᵀ H A)_kk, H the matrix of the
 * ∂V/∂S_uw. T, P and D are shared by all logits (p² each); every logit then
 * costs one p×p by p×n product.
 */
#include "linearize.h"

#include "gauss.h"

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

void nm_moment_grad_free(nm_ctx *ctx, nm_moment_grad *g)
{
    if (!g) return;
    nm_free(ctx, g->value);
    memset(g, 0, sizeof *g);
}

/* What both gradient calls start with: the arguments and the noise's n means and variances checked (finite,
 * variances ≥ 0), then out's d + 2 d n + d doubles allocated and laid out. */
static nm_status grad_start(nm_ctx *ctx, const nm_linearized *l, const double *mu, const double *v, nm_moment_grad *out)
{
    if (!ctx || !l || !mu || !v || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    int64_t n = l->n, d = l->d;
    if (!nm_all_finite_f64(mu, n) || !nm_all_finite_f64(v, n)) return nm_fail(ctx, NM_ERR_NONFINITE, "the noise's mean or variances are not finite");
    for (int64_t k = 0; k < n; k++)
        if (v[k] < 0) return nm_fail(ctx, NM_ERR_NOT_PSD, "variance %lld is negative (%g)", (long long)k, v[k]);
    double *buf = nm_alloc(ctx, (size_t)(d + 2 * d * n + d), sizeof(double));
    if (!buf) return NM_ERR_NOMEM;
    out->d = d, out->n = n;
    out->value = buf, out->d_mu = buf + d, out->d_v = out->d_mu + d * n, out->d_sigma2 = out->d_v + d * n;
    return NM_OK;
}

nm_status nm_linearized_mean_grad(nm_ctx *ctx, const nm_linearized *l, const double *mu, const double *v, nm_moment_grad *out)
{
    nm_status st = grad_start(ctx, l, mu, v, out);
    if (st != NM_OK) return st;
    int64_t n = l->n, p = l->p, d = l->d;
    double *work = nm_alloc(ctx, (size_t)(4 * p + 2 * d * p), sizeof(double));
    if (!work) {
        nm_moment_grad_free(ctx, out);
        return NM_ERR_NOMEM;
    }
    double *m = work, *s2 = m + p, *r = s2 + p, *w = r + p, *G = w + p, *W = G + d * p;
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
    memcpy(out->value, l->c2, (size_t)d * sizeof(double));
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, d, 1, p, 1.0, l->B, p, r, 1, 1.0, out->value, 1);
    for (int64_t i = 0; i < d; i++)
        for (int64_t u = 0; u < p; u++) G[i * p + u] = l->B[i * p + u] * s2[u], W[i * p + u] = l->B[i * p + u] * w[u];
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, d, n, p, 1.0, G, p, l->A, n, 0.0, out->d_mu, n);
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, d, n, p, 1.0, W, p, l->A2, n, 0.0, out->d_v, n);
    for (int64_t i = 0; i < d; i++) {
        double t = 0;
        for (int64_t k = 0; k < n; k++) t += out->d_v[i * n + k];
        out->d_sigma2[i] = t; /* v = σ² 1 */
    }
    nm_free(ctx, work);
    if (!nm_all_finite_f64(out->value, d)) {
        nm_moment_grad_free(ctx, out);
        return nm_fail(ctx, NM_ERR_NONFINITE, "the mean overflows double");
    }
    return NM_OK;
}

/* The moments of one pair (u, w), z_u ~ N(m_u, s_u²), ρ their correlation:
 * *P = P(z_u > 0, z_w > 0), *T = E[1{z_u>0} relu z_w] and
 * *D = φ(α_u)/(2 s_u) E[relu z_w | z_u = 0] (0 when s_u = 0: no variance to
 * move). A unit without noise has α = ±∞ (clamped) and ρ = 0. */
static void pair_terms(double mw, double su, double sw, double au, double aw, double rho, double *P,
                       double *T, double *D)
{
    double q = sqrt(fmax(0, (1 - rho) * (1 + rho))), qq = fmax(q, 1e-300);
    *P = nm_bvn_cdf(au, aw, rho);
    *T = mw * *P + sw * (nm_normal_pdf(aw) * nm_normal_cdf((au - rho * aw) / qq) + rho * nm_normal_pdf(au) * nm_normal_cdf((aw - rho * au) / qq));
    *D = su > 0 ? nm_normal_pdf(au) / (2 * su) * nm_relu_mean(mw - rho * sw * au, sw * q) : 0;
}

nm_status nm_linearized_var_grad(nm_ctx *ctx, const nm_linearized *l, const double *mu, const double *v, nm_moment_grad *out)
{
    nm_status st = grad_start(ctx, l, mu, v, out);
    if (st != NM_OK) return st;
    int64_t n = l->n, p = l->p, d = l->d;
    double *work = nm_alloc(ctx, (size_t)(6 * p + 5 * p * p + 2 * p * n), sizeof(double));
    if (!work) {
        nm_moment_grad_free(ctx, out);
        return NM_ERR_NOMEM;
    }
    double *m = work, *s = m + p, *a = s + p, *r = a + p, *dm = r + p, *Tb = dm + p;
    double *S = Tb + p, *P = S + p * p, *T = P + p * p, *D = T + p * p, *C = D + p * p, *Ab = C + p * p, *Y = Ab + p * n;
    memcpy(m, l->c1, (size_t)p * sizeof(double));
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, p, 1, n, 1.0, l->A, n, mu, 1, 1.0, m, 1); /* m = A μ + c1 */
    for (int64_t u = 0; u < p; u++)
        for (int64_t k = 0; k < n; k++) Ab[u * n + k] = l->A[u * n + k] * v[k];
    nm_gemm_f64(NM_NOTRANS, NM_TRANS, p, p, n, 1.0, Ab, n, l->A, n, 0.0, S, p); /* S = A diag(v) Aᵀ */
    for (int64_t u = 0; u < p; u++) {
        s[u] = sqrt(fmax(0, S[u * p + u]));
        a[u] = s[u] > 0 ? fmax(-NM_Z_CLAMP, fmin(NM_Z_CLAMP, m[u] / s[u])) : m[u] > 0 ? NM_Z_CLAMP : m[u] < 0 ? -NM_Z_CLAMP : 0;
        r[u] = nm_relu_mean(m[u], s[u]);
    }
    for (int64_t u = 0; u < p; u++)
        for (int64_t w = 0; w < p; w++) {
            if (w == u) {
                P[u * p + u] = 0, T[u * p + u] = r[u], D[u * p + u] = 0, C[u * p + u] = nm_relu_var(m[u], s[u]);
                continue;
            }
            double rho = s[u] > 0 && s[w] > 0 ? fmax(-1, fmin(1, S[u * p + w] / (s[u] * s[w]))) : 0;
            C[u * p + w] = nm_relu_pair_cov(m[u], m[w], s[u], s[w], rho); /* method exact's (§1.5) */
            pair_terms(m[w], s[u], s[w], a[u], a[w], rho, &P[u * p + w], &T[u * p + w], &D[u * p + w]);
        }
    for (int64_t i = 0; i < d; i++) {
        const double *b = l->B + i * p;
        double g = 0;
        for (int64_t u = 0; u < p; u++) g += b[u] * r[u];
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, p, 1, p, 1.0, C, p, b, 1, 0.0, Tb, 1);
        double V = 0;
        for (int64_t u = 0; u < p; u++) V += b[u] * Tb[u];
        out->value[i] = fmax(0, V);
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, p, 1, p, 1.0, T, p, b, 1, 0.0, Tb, 1); /* T b */
        for (int64_t u = 0; u < p; u++) {
            double Db = 0;
            for (int64_t w = 0; w < p; w++) Db += D[u * p + w] * b[w];
            double Phi = nm_normal_cdf(a[u]), phs = s[u] > 0 ? nm_normal_pdf(a[u]) / s[u] : 0;
            dm[u] = 2 * b[u] * Tb[u] - 2 * g * b[u] * Phi;
            /* H = diag(b) P diag(b) with the diagonal below, written over S's row (S is no longer needed) */
            for (int64_t w = 0; w < p; w++) S[u * p + w] = b[u] * b[w] * P[u * p + w];
            S[u * p + u] = b[u] * b[u] * Phi + 2 * b[u] * Db - g * b[u] * phs;
        }
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, 1, n, p, 1.0, dm, p, l->A, n, 0.0, out->d_mu + i * n, n);
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, p, n, p, 1.0, S, p, l->A, n, 0.0, Y, n); /* H A */
        double tot = 0;
        for (int64_t k = 0; k < n; k++) {
            double t = 0;
            for (int64_t u = 0; u < p; u++) t += l->A[u * n + k] * Y[u * n + k];
            out->d_v[i * n + k] = t, tot += t;
        }
        out->d_sigma2[i] = tot;
    }
    nm_free(ctx, work);
    if (!nm_all_finite_f64(out->value, d + 2 * d * n + d)) {
        nm_moment_grad_free(ctx, out);
        return nm_fail(ctx, NM_ERR_NONFINITE, "the variance or its gradients overflow double");
    }
    return NM_OK;
}
