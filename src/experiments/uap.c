/*
 * uap.c — DeepFool (Moosavi-Dezfooli et al., CVPR 2016, multi-class) and the
 * universal adversarial perturbation built from it (Moosavi-Dezfooli et
 * al., CVPR 2017; DESIGN §1.9, §2 UAP): passes over the images in a seeded
 * order; for each image that x + v does not fool, the DeepFool step at
 * x + v, then v projected on the ℓp ball of radius ξ; stop at the target
 * fooling rate or after the passes. Gradients of the logits come from the
 * net's vjp (exp.h).
 */
#include "exp.h"

#include <math.h>
#include <string.h>

nm_deepfool_options nm_deepfool_options_default(void)
{
    nm_deepfool_options o = {NM_NORM_2, 0.02, 50};
    return o;
}

nm_uap_options nm_uap_options_default(void)
{
    nm_uap_options o;
    memset(&o, 0, sizeof o);
    o.deepfool = nm_deepfool_options_default();
    o.xi = 2000;
    o.target_rate = 0.8;
    o.passes = 10;
    o.seed = 1;
    return o;
}

/* The step of one DeepFool iteration at logits y, Jacobian J (d × n) for the
 * class c to leave: over k ≠ c, w_k = ∇f_k − ∇f_c and f_k = y_k − y_c; the
 * nearest linearized boundary l minimises |f_l| / ‖w_l‖_q (q the dual norm:
 * 2 for ℓ2, 1 for ℓ∞), and the step reaching it is |f_l|/‖w_l‖₂² w_l (ℓ2) or
 * |f_l|/‖w_l‖₁ sign(w_l) (ℓ∞), added to r. 0, or 1 when every w_k is 0. */
static int deepfool_step(const float *y, const float *J, int64_t d, int64_t n, int c, nm_norm norm, double *w, double *r)
{
    double best = INFINITY;
    int l = -1;
    for (int64_t k = 0; k < d; k++) {
        if (k == c) continue;
        double q = 0;
        for (int64_t j = 0; j < n; j++) {
            double t = (double)J[k * n + j] - J[c * n + j];
            q += norm == NM_NORM_INF ? fabs(t) : t * t;
        }
        if (q == 0) continue;
        double dist = fabs((double)y[k] - y[c]) / (norm == NM_NORM_INF ? q : sqrt(q));
        if (dist < best) best = dist, l = (int)k;
    }
    if (l < 0) return 1;
    double f = fabs((double)y[l] - y[c]), q = 0;
    for (int64_t j = 0; j < n; j++) {
        w[j] = (double)J[l * n + j] - J[c * n + j];
        q += norm == NM_NORM_INF ? fabs(w[j]) : w[j] * w[j];
    }
    /* 1e-4 past the boundary, as DeepFool's own code: a linear net's one step lands across it */
    double s = (f + 1e-4) / q;
    for (int64_t j = 0; j < n; j++) r[j] += norm == NM_NORM_INF ? s * (w[j] > 0 ? 1 : w[j] < 0 ? -1 : 0) : s * w[j];
    return 0;
}

nm_status nm_deepfool(nm_ctx *ctx, nm_net *net, const float *x, int c, const nm_deepfool_options *opt, float *r, int *iters, int *label)
{
    if (!ctx || !net || !x || !r) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    nm_deepfool_options o = opt ? *opt : nm_deepfool_options_default();
    if (o.norm != NM_NORM_2 && o.norm != NM_NORM_INF) return nm_fail(ctx, NM_ERR_ARG, "DeepFool's norm must be 2 or inf");
    if (!(o.overshoot >= 0) || o.max_iter < 1) return nm_fail(ctx, NM_ERR_ARG, "DeepFool needs overshoot ≥ 0 and max_iter ≥ 1");
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    if (c < 0 || c >= d) return nm_fail(ctx, NM_ERR_ARG, "class %d is not one of %lld logits", c, (long long)d);
    float *xt = nm_alloc(ctx, (size_t)n, sizeof(float)), *y = nm_alloc(ctx, (size_t)d, sizeof(float));
    float *J = nm_alloc(ctx, (size_t)(d * n), sizeof(float));
    double *w = nm_alloc(ctx, (size_t)n, sizeof(double)), *rt = nm_alloc_zero(ctx, (size_t)n, sizeof(double));
    nm_status st = xt && y && J && w && rt ? NM_OK : NM_ERR_NOMEM;
    int it = 0, k = c;
    memcpy(xt, x, (size_t)n * sizeof(float));
    while (st == NM_OK) {
        if ((st = nm_exp_logit_jacobian(ctx, net, xt, y, J)) != NM_OK) break;
        if (!nm_all_finite_f32(y, d)) {
            st = nm_fail(ctx, NM_ERR_NONFINITE, "DeepFool: the logits are not finite after %d steps", it);
            break;
        }
        k = nm_exp_argmax_f32(y, d);
        if (k != c || it == o.max_iter) break;
        if (deepfool_step(y, J, d, n, c, o.norm, w, rt)) break; /* flat: no boundary to go to */
        it++;
        for (int64_t j = 0; j < n; j++) xt[j] = (float)(x[j] + (1 + o.overshoot) * rt[j]);
    }
    if (st == NM_OK)
        for (int64_t j = 0; j < n; j++) r[j] = (float)((1 + o.overshoot) * rt[j]);
    if (iters) *iters = it;
    if (label) *label = k;
    nm_free(ctx, xt), nm_free(ctx, y), nm_free(ctx, J), nm_free(ctx, w), nm_free(ctx, rt);
    return st;
}

void nm_project_ball(float *v, int64_t n, nm_norm norm, double xi)
{
    if (norm == NM_NORM_INF) {
        for (int64_t j = 0; j < n; j++) v[j] = (float)fmin(xi, fmax(-xi, v[j]));
        return;
    }
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)v[j] * v[j];
    s = sqrt(s);
    if (s > xi)
        for (int64_t j = 0; j < n; j++) v[j] = (float)(v[j] * (xi / s));
}

/* The share of images whose label at x + v differs from their clean label. */
static nm_status fooling_rate(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, const int *clean, const float *v, int *lab,
                              double *rate)
{
    nm_status st = nm_exp_predict(ctx, net, X, count, v, NULL, lab);
    int64_t f = 0;
    for (int64_t i = 0; st == NM_OK && i < count; i++) f += lab[i] != clean[i];
    *rate = (double)f / (double)count;
    return st;
}

/* A seeded permutation of 0..count−1 for pass `pass` (Fisher–Yates on Philox words). */
static void pass_order(int64_t count, uint64_t seed, int pass, int64_t *perm)
{
    for (int64_t i = 0; i < count; i++) perm[i] = i;
    for (int64_t i = count - 1; i > 0; i--) {
        uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)pass, 0x75617000u}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, w[4];
        nm_philox4x32(ctr, key, w);
        uint64_t u = ((uint64_t)w[0] << 32) | w[1];
        int64_t j = (int64_t)(u % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

nm_status nm_uap_run(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, const nm_uap_options *opt, float *v, nm_uap_result *out)
{
    if (!ctx || !net || !X || !opt || !v || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    nm_uap_options o = *opt;
    if (count < 1) return nm_fail(ctx, NM_ERR_ARG, "the universal perturbation needs at least one image");
    if (!(o.xi > 0) || !isfinite(o.xi)) return nm_fail(ctx, NM_ERR_ARG, "the radius xi must be finite and > 0");
    if (!(o.target_rate >= 0 && o.target_rate <= 1)) return nm_fail(ctx, NM_ERR_ARG, "the target fooling rate must be in [0, 1]");
    if (o.passes < 1 || o.passes > NM_UAP_MAX_PASSES) return nm_fail(ctx, NM_ERR_ARG, "passes must be 1 to %d", NM_UAP_MAX_PASSES);
    int64_t n = nm_exp_input_size(net);
    if (!nm_all_finite_f32(X, count * n)) return nm_fail(ctx, NM_ERR_NONFINITE, "the images are not finite");
    int *clean = nm_alloc(ctx, (size_t)count, sizeof(int)), *lab = nm_alloc(ctx, (size_t)count, sizeof(int));
    int64_t *perm = nm_alloc(ctx, (size_t)count, sizeof(int64_t));
    float *xv = nm_alloc(ctx, (size_t)n, sizeof(float)), *r = nm_alloc(ctx, (size_t)n, sizeof(float));
    nm_status st = clean && lab && perm && xv && r ? NM_OK : NM_ERR_NOMEM;
    memset(v, 0, (size_t)n * sizeof(float));
    if (st == NM_OK) st = nm_exp_predict(ctx, net, X, count, NULL, NULL, clean);
    for (int pass = 0; st == NM_OK && pass < o.passes; pass++) {
        pass_order(count, o.seed, pass, perm);
        for (int64_t t = 0; st == NM_OK && t < count; t++) {
            int64_t i = perm[t];
            for (int64_t j = 0; j < n; j++) xv[j] = X[i * n + j] + v[j];
            int k, it;
            if ((st = nm_exp_predict(ctx, net, xv, 1, NULL, NULL, &k)) != NM_OK) break;
            if (k == clean[i]) { /* not fooled yet: DeepFool at x + v, then project */
                if ((st = nm_deepfool(ctx, net, xv, clean[i], &o.deepfool, r, &it, &k)) != NM_OK) break;
                if (k != clean[i]) {
                    for (int64_t j = 0; j < n; j++) v[j] += r[j];
                    nm_project_ball(v, n, o.deepfool.norm, o.xi);
                }
            }
            if (o.progress) o.progress(o.user, pass * count + t + 1, (int64_t)o.passes * count);
        }
        if (st == NM_OK) st = fooling_rate(ctx, net, X, count, clean, v, lab, &out->rate[pass]);
        if (st != NM_OK) break;
        out->passes = pass + 1;
        if (o.pass_done) o.pass_done(o.user, pass + 1, out->rate[pass]);
        if (out->rate[pass] >= o.target_rate) break;
    }
    nm_free(ctx, clean), nm_free(ctx, lab), nm_free(ctx, perm), nm_free(ctx, xv), nm_free(ctx, r);
    return st;
}
