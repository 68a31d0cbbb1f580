/*
 * attack_batch.c — the baseline and the batch of the attacks (issue 15,
 * item 6): projected gradient descent on the real net's logit margin at
 * the same β (deterministic, no noise: what a Gaussian attack is compared
 * with), and many attacks — every image towards every other class, or once
 * each for Eq 4 — on threads, each Gaussian one verified by sampling.
 */
#include "exp.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* The margin to minimise at logits y and the two classes whose difference it is: targeted, the largest
 * other logit minus the target's; untargeted, the label's minus the largest other. */
static double margin(const float *y, int64_t d, int c, int target, int *hi, int *lo)
{
    int avoid = target >= 0 ? target : c, best = -1;
    for (int64_t i = 0; i < d; i++)
        if (i != avoid && (best < 0 || y[i] > y[best])) best = (int)i;
    if (target >= 0) *hi = best, *lo = target;
    else *hi = c, *lo = best;
    return (double)y[*hi] - y[*lo];
}

nm_status nm_attack_pgd(nm_ctx *ctx, nm_net *net, const float *M, const nm_attack_options *opt, int steps, float *mu_x, nm_attack_result *out)
{
    if (!ctx || !net || !M || !opt || !mu_x || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    if (!(opt->beta > 0) || !isfinite(opt->beta)) return nm_fail(ctx, NM_ERR_ARG, "the attack's beta must be finite and > 0");
    if (steps < 1) return nm_fail(ctx, NM_ERR_ARG, "PGD needs at least one step");
    if (!nm_all_finite_f32(M, n)) return nm_fail(ctx, NM_ERR_NONFINITE, "the image is not finite");
    int c, untargeted = opt->target == NM_ATTACK_UNTARGETED;
    nm_status st = nm_exp_predict(ctx, net, M, 1, NULL, NULL, &c);
    if (st != NM_OK) return st;
    if (!untargeted && (opt->target < 0 || opt->target >= d)) return nm_fail(ctx, NM_ERR_ARG, "target %d is not one of the %lld classes", opt->target, (long long)d);
    if (!untargeted && opt->target == c) return nm_fail(ctx, NM_ERR_ARG, "target %d is the image's own label", opt->target);
    int64_t ns = 0;
    for (int64_t k = 0; k < n; k++) ns += !opt->support || opt->support[k];
    if (ns == 0) return nm_fail(ctx, NM_ERR_ARG, "the attack's support is empty");
    float *x = nm_alloc(ctx, (size_t)n, sizeof(float)), *delta = nm_alloc_zero(ctx, (size_t)n, sizeof(float));
    float *y = nm_alloc(ctx, (size_t)d, sizeof(float)), *cot = nm_alloc(ctx, (size_t)d, sizeof(float)), *grad = nm_alloc(ctx, (size_t)n, sizeof(float));
    double *best_y = nm_alloc(ctx, (size_t)d, sizeof(double));
    if (!x || !delta || !y || !cot || !grad || !best_y) st = NM_ERR_NOMEM;
    double eta = 2.5 * opt->beta / steps, best = INFINITY;
    int used = 0, best_lo = 0;
    for (int s = 0; st == NM_OK && s <= steps; s++) {
        for (int64_t k = 0; k < n; k++) x[k] = M[k] + delta[k];
        if ((st = nm_exp_logits_at(ctx, net, x, y)) != NM_OK) break;
        int hi, lo;
        double g = margin(y, d, c, untargeted ? -1 : opt->target, &hi, &lo);
        if (g < best) {
            best = g, best_lo = lo, used = s;
            for (int64_t i = 0; i < d; i++) best_y[i] = y[i];
            memcpy(mu_x, delta, (size_t)n * sizeof(float));
        }
        if (g < -opt->margin || s == steps) break;
        for (int64_t i = 0; i < d; i++) cot[i] = i == hi ? 1.0f : i == lo ? -1.0f : 0.0f;
        if ((st = nm_exp_logits_vjp(ctx, net, 1, cot, grad)) != NM_OK) break; /* ∇(y_hi − y_lo), one vjp */
        for (int64_t k = 0; k < n; k++) {
            if (opt->support && !opt->support[k]) continue;
            float gk = grad[k], t = delta[k] - (float)eta * (gk > 0 ? 1.0f : gk < 0 ? -1.0f : 0.0f);
            delta[k] = fminf((float)opt->beta, fmaxf(-(float)opt->beta, t));
        }
    }
    if (st == NM_OK) {
        out->label = c, out->target = untargeted ? best_lo : opt->target, out->iterations = used, out->support = ns;
        out->gap = best, out->fooled_analytic = best < 0, out->d = d, out->analytic_mean = best_y, best_y = NULL;
    }
    nm_free(ctx, x), nm_free(ctx, delta), nm_free(ctx, y), nm_free(ctx, cot), nm_free(ctx, grad), nm_free(ctx, best_y);
    return st;
}

nm_attack_batch_options nm_attack_batch_options_default(void)
{
    nm_attack_batch_options o;
    memset(&o, 0, sizeof o);
    o.attack = nm_attack_options_default();
    o.pgd_steps = 100;
    o.mc = 1000;
    o.seed = 1;
    return o;
}

void nm_attack_table_free(nm_ctx *ctx, nm_attack_table *t)
{
    if (!t) return;
    nm_free(ctx, t->row), nm_free(ctx, t->mu);
    memset(t, 0, sizeof *t);
}

typedef struct {
    const float *X;
    const int *label;
    const nm_attack_batch_options *o;
    nm_attack_table *out;
    int64_t per_image; /* attacks per image: d − 1, or 1 */
} batch_job;

static nm_status attack_one(nm_ctx *tc, nm_net *net, void *user, int64_t item, void *scratch)
{
    (void)scratch;
    const batch_job *j = user;
    const nm_attack_batch_options *o = j->o;
    int64_t n = j->out->n, d = j->out->d, img = item / j->per_image, k = item % j->per_image;
    const float *M = j->X + img * n;
    double t0 = omp_get_wtime();
    nm_attack_options ao = o->attack;
    int c = j->label[img];
    ao.target = o->untargeted ? NM_ATTACK_UNTARGETED : (int)(k < c ? k : k + 1);
    float *mu = nm_alloc(tc, (size_t)n, sizeof(float));
    double *mean = nm_alloc(tc, (size_t)d, sizeof(double)), share = 0;
    nm_attack_result r = {0};
    nm_status st = mu && mean ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK) st = o->pgd ? nm_attack_pgd(tc, net, M, &ao, o->pgd_steps, mu, &r) : nm_attack_run(tc, net, M, &ao, mu, &r);
    nm_attack_row *row = &j->out->row[item];
    if (st == NM_OK) {
        *row = (nm_attack_row){.image = img, .label = r.label, .target = r.target, .sigma2 = r.sigma2, .support = r.support, .gap = r.gap,
                               .fooled_analytic = r.fooled_analytic, .iterations = r.iterations};
        for (int64_t q = 0; q < n; q++) row->mu_linf = fmax(row->mu_linf, fabs(mu[q])), row->mu_l2 += (double)mu[q] * mu[q];
        row->mu_l2 = sqrt(row->mu_l2);
        int cls = o->untargeted ? r.label : r.target;
        if (o->pgd) {
            row->mc_argmax = nm_exp_argmax_f64(r.analytic_mean, d);
            share = row->mc_argmax == cls;
        } else {
            st = nm_attack_verify_stream(tc, net, M, mu, r.sigma2, o->mc, o->seed, (uint64_t)item, cls, mean, &share);
            row->mc_argmax = nm_exp_argmax_f64(mean, d);
        }
    }
    if (st == NM_OK) {
        row->mc_share = o->untargeted ? 1 - share : share;
        row->success = o->untargeted ? row->mc_argmax != r.label : row->mc_argmax == r.target;
        if (j->out->mu) memcpy(j->out->mu + item * n, mu, (size_t)n * sizeof(float));
        row->time_s = omp_get_wtime() - t0;
    }
    nm_attack_result_free(tc, &r);
    nm_free(tc, mu), nm_free(tc, mean);
    return st;
}

nm_status nm_attack_batch(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, const nm_attack_batch_options *opt, nm_attack_table *out)
{
    if (!ctx || !net || !X || !opt || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    if (count < 1) return nm_fail(ctx, NM_ERR_ARG, "no images to attack");
    if (!opt->pgd && opt->mc < 1) return nm_fail(ctx, NM_ERR_ARG, "the verification needs mc >= 1");
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    if (d < 2) return nm_fail(ctx, NM_ERR_ARG, "an attack needs at least two classes (the net has %lld logits)", (long long)d);
    int *label = nm_alloc(ctx, (size_t)count, sizeof(int));
    nm_status st = label ? nm_exp_predict(ctx, net, X, count, NULL, NULL, label) : NM_ERR_NOMEM;
    batch_job j = {X, label, opt, out, opt->untargeted ? 1 : d - 1};
    out->count = count * j.per_image, out->n = n, out->d = d;
    if (st == NM_OK && !(out->row = nm_alloc_zero(ctx, (size_t)out->count, sizeof(nm_attack_row)))) st = NM_ERR_NOMEM;
    if (st == NM_OK && opt->keep_mu && !(out->mu = nm_alloc(ctx, (size_t)(out->count * n), sizeof(float)))) st = NM_ERR_NOMEM;
    nm_dist_slab slab[] = {{out->row, sizeof(nm_attack_row)}, {out->mu, (size_t)n * sizeof(float)}};
    if (st == NM_OK) st = nm_exp_parallel(ctx, net, out->count, 0, attack_one, &j, opt->progress, opt->user, slab, 2);
    nm_free(ctx, label);
    if (st != NM_OK) {
        nm_attack_table_free(ctx, out);
        return st;
    }
    for (int64_t i = 0; i < out->count; i++) {
        const nm_attack_row *r = &out->row[i];
        out->successes += r->success;
        out->mean_linf += r->mu_linf / (double)out->count, out->mean_l2 += r->mu_l2 / (double)out->count;
        out->mean_time_s += r->time_s / (double)out->count;
    }
    return NM_OK;
}

nm_status nm_attack_samples(nm_ctx *ctx, nm_net *net, const float *M, const float *mu_x, double sigma2, int64_t k, uint64_t seed,
                            uint64_t stream, float *X, int *labels)
{
    if (!ctx || !net || !M || !mu_x || !X || !labels) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    if (k < 1 || !(sigma2 >= 0) || !isfinite(sigma2)) return nm_fail(ctx, NM_ERR_ARG, "samples need k >= 1 and a finite sigma2 >= 0");
    int64_t n = nm_exp_input_size(net);
    nm_rng rng = {seed};
    nm_rng_normals(&rng, stream, 0, k * n, X); /* as nm_exp_mc_flip draws them: n normals per sample in order */
    float s = (float)sqrt(sigma2);
    for (int64_t t = 0; t < k; t++)
        for (int64_t i = 0; i < n; i++) X[t * n + i] = (M[i] + mu_x[i]) + s * X[t * n + i];
    return nm_exp_predict(ctx, net, X, k, NULL, NULL, labels);
}
