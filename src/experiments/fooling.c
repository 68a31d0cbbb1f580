/*
 * fooling.c — fooling-rate prediction and top-k ordering (DESIGN §1.9, the
 * paper's §4.2 and Table 2) and flip probabilities (§1.10): per image X with
 * clean label c = argmax R(X) and a perturbation N, the real label at X + N,
 * the argmax of the analytic mean of R(X + N + n), n ~ N(0, σ² I) (linearized
 * at X + N, split at the last ReLU), whether each is fooled (≠ c), whether
 * their top-k orders agree; optionally the same from a Monte Carlo mean of
 * the real net, the flip probability P(argmax R(X + N + n) ≠ c) from the
 * analytic Gaussian of the logits (nm_flip_probability), and the Monte
 * Carlo's flip frequency. Images run on threads with a net copy each; every
 * random number is keyed by (seed, image), so results do not depend on the
 * thread count.
 */
#include "exp.h"

#include <math.h>
#include <string.h>

nm_fooling_options nm_fooling_options_default(void)
{
    nm_fooling_options o;
    memset(&o, 0, sizeof o);
    o.sigma2 = 1e-4;
    o.method = NM_METHOD_EXACT;
    o.topk = 5;
    o.seed = 1;
    o.mvn = nm_mvn_options_default();
    return o;
}

void nm_fooling_free(nm_ctx *ctx, nm_fooling *f)
{
    if (!f) return;
    nm_free(ctx, f->ibuf);
    nm_free(ctx, f->dbuf);
    memset(f, 0, sizeof *f);
}

/* The classes of y (d) in decreasing order (ties by index), the first k into top. */
static void top_order(const double *y, int64_t d, int k, int *top)
{
    for (int t = 0; t < k; t++) {
        int best = -1;
        for (int64_t i = 0; i < d; i++) {
            int used = 0;
            for (int s = 0; s < t; s++) used |= top[s] == i;
            if (!used && (best < 0 || y[i] > y[best])) best = (int)i;
        }
        top[t] = best;
    }
}

/* match[k−1] = 1 when the first k of both orders agree, k = 1..K. */
static void top_match(const double *a, const double *b, int64_t d, int K, uint8_t *match)
{
    int ta[NM_FOOLING_MAX_TOPK], tb[NM_FOOLING_MAX_TOPK], same = 1;
    top_order(a, d, K, ta);
    top_order(b, d, K, tb);
    for (int k = 0; k < K; k++) match[k] = (uint8_t)(same &= ta[k] == tb[k]);
}

typedef struct {
    const float *X, *N;
    const int64_t *index; /* the images' indices in their data set (the Monte Carlo's streams), or NULL: 0.. */
    const nm_fooling_options *o;
    nm_fooling *out;
    int64_t n, d;
} fool_job;

static nm_status fool_one(nm_ctx *tc, nm_net *net, void *user, int64_t r, void *scratch)
{
    const fool_job *j = user;
    const nm_fooling_options *o = j->o;
    nm_fooling *f = j->out;
    int64_t n = j->n, d = j->d;
    double *yr = scratch, *mc_mean = yr + d;
    float *x = (float *)(mc_mean + d), *y = x + n, *buf = y + d;
    memcpy(x, j->X + r * n, (size_t)n * sizeof(float));
    int c, pert;
    nm_status st = nm_exp_predict(tc, net, x, 1, NULL, NULL, &c);
    if (st == NM_OK && j->N)
        for (int64_t i = 0; i < n; i++) x[i] += j->N[i];
    if (st == NM_OK) st = nm_exp_predict(tc, net, x, 1, NULL, y, &pert);
    if (st != NM_OK) return st;
    for (int64_t i = 0; i < d; i++) yr[i] = y[i];
    nm_array xa = {NM_F32, 1, {n}, x};
    nm_cov *cov = NULL;
    nm_moments m = {0};
    nm_net_moments_options mo = nm_net_moments_options_default();
    mo.method = o->method;
    mo.want_cov = o->flip;
    mo.mean_only = !o->flip;
    st = nm_cov_isotropic(tc, n, o->sigma2, &cov);
    if (st == NM_OK) st = nm_net_moments(tc, net, &xa, cov, &mo, &m);
    if (st == NM_OK) {
        f->clean[r] = c, f->perturbed[r] = pert;
        f->predicted[r] = nm_exp_argmax_f64(m.mean, d);
        top_match(m.mean, yr, d, o->topk, f->topk_match + r * o->topk);
    }
    if (st == NM_OK && o->flip) st = nm_flip_probability(tc, d, m.mean, m.cov, c, &o->mvn, &f->flip[r], &f->flip_se[r]);
    if (st == NM_OK && o->mc) {
        double fl;
        st = nm_exp_mc_flip(tc, net, x, sqrt(o->sigma2), NULL, 0, o->mc, o->seed, (uint64_t)(j->index ? j->index[r] : r), c, buf, mc_mean, &fl);
        if (st == NM_OK) {
            f->mc_predicted[r] = nm_exp_argmax_f64(mc_mean, d);
            top_match(mc_mean, yr, d, o->topk, f->topk_match_mc + r * o->topk);
            if (f->mc_flip) f->mc_flip[r] = fl;
        }
    }
    nm_moments_free(tc, &m);
    nm_cov_free(tc, cov);
    return st;
}

static nm_status fooling_alloc(nm_ctx *ctx, const nm_fooling_options *o, int64_t count, int64_t d, nm_fooling *f)
{
    f->images = count, f->d = d, f->topk = o->topk;
    int64_t K = o->topk;
    f->ibuf = nm_alloc_zero(ctx, (size_t)(4 * count + 2 * count * K), sizeof(int));
    f->dbuf = nm_alloc_zero(ctx, (size_t)(3 * count), sizeof(double));
    if (!f->ibuf || !f->dbuf) return NM_ERR_NOMEM;
    f->clean = f->ibuf, f->perturbed = f->clean + count, f->predicted = f->perturbed + count;
    f->mc_predicted = o->mc ? f->predicted + count : NULL;
    f->topk_match = (uint8_t *)(f->ibuf + 4 * count);
    f->topk_match_mc = o->mc ? f->topk_match + count * K : NULL;
    f->flip = o->flip ? f->dbuf : NULL, f->flip_se = o->flip ? f->dbuf + count : NULL;
    f->mc_flip = o->flip && o->mc ? f->dbuf + 2 * count : NULL;
    return NM_OK;
}

/* The rates and accuracies over the images. */
static void fooling_summarize(const nm_fooling_options *o, nm_fooling *f)
{
    int64_t N = f->images, K = o->topk, fr = 0, fp = 0, fm = 0, dis = 0, dism = 0;
    for (int64_t r = 0; r < N; r++) {
        int real = f->perturbed[r] != f->clean[r], pred = f->predicted[r] != f->clean[r];
        fr += real, fp += pred, dis += real != pred;
        if (f->mc_predicted) {
            int mc = f->mc_predicted[r] != f->clean[r];
            fm += mc, dism += real != mc;
        }
    }
    f->rate_real = (double)fr / (double)N, f->rate_predicted = (double)fp / (double)N, f->disagreements = dis;
    f->rate_mc = f->mc_predicted ? (double)fm / (double)N : NAN, f->disagreements_mc = f->mc_predicted ? dism : -1;
    for (int k = 0; k < K; k++) {
        int64_t a = 0, b = 0;
        for (int64_t r = 0; r < N; r++) a += f->topk_match[r * K + k], b += f->topk_match_mc ? f->topk_match_mc[r * K + k] : 0;
        f->topk_accuracy[k] = (double)a / (double)N;
        f->topk_accuracy_mc[k] = f->topk_match_mc ? (double)b / (double)N : NAN;
    }
}

nm_status nm_fooling_run(nm_ctx *ctx, const nm_net *net, const float *X, const int64_t *index, int64_t count, const float *N,
                         const nm_fooling_options *opt, nm_fooling *out)
{
    if (!ctx || !net || !X || !opt || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    const nm_fooling_options *o = opt;
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    if (count < 1) return nm_fail(ctx, NM_ERR_ARG, "fooling needs at least one image");
    if (!(o->sigma2 > 0) || !isfinite(o->sigma2)) return nm_fail(ctx, NM_ERR_ARG, "fooling: sigma2 must be finite and > 0");
    if (o->topk < 1 || o->topk > NM_FOOLING_MAX_TOPK || o->topk > d)
        return nm_fail(ctx, NM_ERR_ARG, "fooling: top-k must be 1 to %d and at most the %lld logits", NM_FOOLING_MAX_TOPK, (long long)d);
    if (o->mc < 0) return nm_fail(ctx, NM_ERR_ARG, "fooling: negative Monte Carlo sample count");
    if (o->method < 0 || o->method >= nm_method_count()) return nm_fail(ctx, NM_ERR_ARG, "unknown method %d", (int)o->method);
    if (!nm_all_finite_f32(X, count * n)) return nm_fail(ctx, NM_ERR_NONFINITE, "fooling: the images are not finite");
    if (N && !nm_all_finite_f32(N, n)) return nm_fail(ctx, NM_ERR_NONFINITE, "fooling: the perturbation is not finite");
    nm_status st = fooling_alloc(ctx, o, count, d, out);
    if (st != NM_OK) {
        nm_fooling_free(ctx, out);
        return st;
    }
    int64_t B = NM_FOOLING_MC_BATCH;
    size_t scratch = (size_t)(n + d + (o->mc ? B * (n + d) + n : 0)) * sizeof(float) + 2 * sizeof(double) * (size_t)(d + 1);
    fool_job j = {X, N, index, o, out, n, d};
    size_t K = (size_t)o->topk;
    nm_dist_slab slab[] = {{out->clean, sizeof(int)},       {out->perturbed, sizeof(int)},     {out->predicted, sizeof(int)},
                           {out->mc_predicted, sizeof(int)}, {out->topk_match, K},               {out->topk_match_mc, K},
                           {out->flip, sizeof(double)},      {out->flip_se, sizeof(double)},    {out->mc_flip, sizeof(double)}};
    st = nm_exp_parallel(ctx, net, count, scratch, fool_one, &j, o->progress, o->user, slab, (int)(sizeof slab / sizeof slab[0]));
    if (st == NM_OK) fooling_summarize(o, out);
    else nm_fooling_free(ctx, out);
    return st;
}
