/*
 * attack.c — the paper's Gaussian targeted attack (Eq 3, DESIGN §2 and
 * §1.11): noise N(μx, σ² I) added to an image M that fools the net in
 * expectation towards a target class j, by minimising max_{i≠j} (E_i − E_j)
 * over −β ≤ μx ≤ β (on the support, 0 elsewhere) and 0 < σ² ≤ σ²max, E the
 * analytic mean of the logits at M + x under the frozen two-stage
 * linearization (nm_linearized). NLopt's MMA (Svanberg's method of moving
 * asymptotes) solves the epigraph form — variables (μx, σ², t), minimise t
 * subject to E_i − E_j ≤ t for every i ≠ j — with the analytic gradients:
 * MMA takes bound constraints natively, many inequality constraints with
 * their gradients, and stays feasible in the bounds at every iterate,
 * where SLSQP builds a dense quasi-Newton matrix of the 786 variables.
 * With relinearize = R the net is linearized again at M + μx every R
 * evaluations (beyond the paper).
 */
#include "exp.h"

#include <math.h>
#include <nlopt.h>
#include <string.h>

nm_attack_options nm_attack_options_default(void)
{
    nm_attack_options o;
    memset(&o, 0, sizeof o);
    o.target = -1;
    o.beta = 30;
    o.sigma2_max = 2;
    o.max_iter = 300;
    o.margin = 0.5;
    return o;
}

typedef struct {
    nm_ctx *ctx;
    const nm_linearized *lin;
    const float *M;
    const uint8_t *support;
    int64_t n, d, ns;      /* inputs, logits, variables of μx */
    const int64_t *idx;    /* the support's input indices (ns) */
    int target;
    double *mu, *v;        /* n: M + μx, σ² 1 */
    nm_moment_grad g;      /* the mean and its gradients at the last point evaluated */
    nm_status st;
    int evals;
} attack_job;

/* E and its gradients at z = (μx on the support, σ², t). */
static int evaluate(attack_job *j, const double *z)
{
    for (int64_t k = 0; k < j->n; k++) j->mu[k] = j->M[k], j->v[k] = z[j->ns];
    for (int64_t s = 0; s < j->ns; s++) j->mu[j->idx[s]] += z[s];
    nm_moment_grad_free(j->ctx, &j->g);
    j->st = nm_linearized_mean_grad(j->ctx, j->lin, j->mu, j->v, &j->g);
    j->evals++;
    return j->st == NM_OK;
}

static double objective(unsigned nz, const double *z, double *grad, void *user)
{
    (void)user;
    if (grad) {
        memset(grad, 0, nz * sizeof(double));
        grad[nz - 1] = 1;
    }
    return z[nz - 1]; /* t */
}

/* c_r = E_i − E_j − t for the r-th i ≠ j. */
static void constraints(unsigned m, double *c, unsigned nz, const double *z, double *grad, void *user)
{
    attack_job *j = user;
    if (!evaluate(j, z)) {
        for (unsigned r = 0; r < m; r++) c[r] = HUGE_VAL;
        return;
    }
    const nm_moment_grad *g = &j->g;
    int64_t n = j->n, ns = j->ns, tg = j->target;
    for (int64_t i = 0, r = 0; i < j->d; i++) {
        if (i == tg) continue;
        c[r] = g->value[i] - g->value[tg] - z[nz - 1];
        if (grad) {
            double *gr = grad + r * nz;
            for (int64_t s = 0; s < ns; s++) gr[s] = g->d_mu[i * n + j->idx[s]] - g->d_mu[tg * n + j->idx[s]];
            gr[ns] = g->d_sigma2[i] - g->d_sigma2[tg];
            gr[ns + 1] = -1;
        }
        r++;
    }
}

/* max_{i≠j} (E_i − E_j) of the last evaluation. */
static double worst_gap(const attack_job *j)
{
    double w = -INFINITY;
    for (int64_t i = 0; i < j->d; i++)
        if (i != j->target) w = fmax(w, j->g.value[i] - j->g.value[j->target]);
    return w;
}

void nm_attack_result_free(nm_ctx *ctx, nm_attack_result *r)
{
    if (!r) return;
    nm_free(ctx, r->analytic_mean);
    memset(r, 0, sizeof *r);
}

static nm_status attack_targeted(nm_ctx *ctx, nm_net *net, const float *M, const nm_attack_options *opt, float *mu_x, nm_attack_result *out);

/* Untargeted (Eq 4's objective, E_c − max_{j≠c} E_j): the targeted attack towards each other class in the
 * order of R(M)'s logits, largest first, until one fools with the margin; else the one with the smallest gap. */
static nm_status attack_untargeted(nm_ctx *ctx, nm_net *net, const float *M, const nm_attack_options *opt, float *mu_x, nm_attack_result *out)
{
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    float *y = nm_alloc(ctx, (size_t)d, sizeof(float)), *mu = nm_alloc(ctx, (size_t)n, sizeof(float));
    int *order = nm_alloc(ctx, (size_t)d, sizeof(int)), c;
    nm_status st = y && mu && order ? nm_exp_predict(ctx, net, M, 1, NULL, y, &c) : NM_ERR_NOMEM;
    for (int64_t i = 0; i < d; i++) order[i] = (int)i;
    for (int64_t i = 1; st == NM_OK && i < d; i++) /* insertion sort by logit, decreasing */
        for (int64_t k = i; k > 0 && y[order[k]] > y[order[k - 1]]; k--) {
            int t = order[k];
            order[k] = order[k - 1], order[k - 1] = t;
        }
    int have = 0, evals = 0;
    for (int64_t r = 0; st == NM_OK && r < d; r++) {
        if (order[r] == c) continue;
        nm_attack_options o = *opt;
        o.target = order[r];
        nm_attack_result t;
        if ((st = attack_targeted(ctx, net, M, &o, mu, &t)) != NM_OK) break;
        evals += t.iterations;
        if (!have || t.gap < out->gap) {
            nm_attack_result_free(ctx, out);
            *out = t, have = 1;
            memcpy(mu_x, mu, (size_t)n * sizeof(float));
        } else {
            nm_attack_result_free(ctx, &t);
        }
        if (out->gap < -opt->margin + 1e-9) break;
    }
    if (st == NM_OK) out->iterations = evals;
    else nm_attack_result_free(ctx, out);
    nm_free(ctx, y), nm_free(ctx, mu), nm_free(ctx, order);
    return st;
}

nm_status nm_attack_run(nm_ctx *ctx, nm_net *net, const float *M, const nm_attack_options *opt, float *mu_x, nm_attack_result *out)
{
    if (!ctx || !net || !M || !opt || !mu_x || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    if (opt->target == NM_ATTACK_UNTARGETED) return attack_untargeted(ctx, net, M, opt, mu_x, out);
    return attack_targeted(ctx, net, M, opt, mu_x, out);
}

nm_status nm_attack_support(nm_ctx *ctx, int64_t n, double alpha, uint64_t seed, uint8_t *mask, int64_t *count)
{
    if (!ctx || !mask || n < 1) return nm_fail(ctx, NM_ERR_ARG, "NULL argument or no inputs");
    if (!(alpha > 0 && alpha <= 100)) return nm_fail(ctx, NM_ERR_ARG, "alpha must be in (0, 100] (a percentage of the inputs)");
    int64_t k = (int64_t)llround(alpha / 100 * (double)n), *perm = nm_alloc(ctx, (size_t)n, sizeof(int64_t));
    if (!perm) return NM_ERR_NOMEM;
    if (k < 1) k = 1;
    for (int64_t i = 0; i < n; i++) perm[i] = i, mask[i] = 0;
    for (int64_t i = 0; i < k; i++) { /* a partial Fisher–Yates on Philox words */
        uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), 0, 0x73707274u}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, w[4];
        nm_philox4x32(ctr, key, w);
        uint64_t u = ((uint64_t)w[0] << 32) | w[1];
        int64_t j = i + (int64_t)(u % (uint64_t)(n - i)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
        mask[perm[i]] = 1;
    }
    nm_free(ctx, perm);
    if (count) *count = k;
    return NM_OK;
}

static nm_status attack_targeted(nm_ctx *ctx, nm_net *net, const float *M, const nm_attack_options *opt, float *mu_x, nm_attack_result *out)
{
    if (!ctx || !net || !M || !opt || !mu_x || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    const nm_attack_options *o = opt;
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    if (!(o->beta > 0) || !isfinite(o->beta)) return nm_fail(ctx, NM_ERR_ARG, "the attack's beta must be finite and > 0");
    if (!(o->sigma2_max > 0) || !isfinite(o->sigma2_max)) return nm_fail(ctx, NM_ERR_ARG, "the attack's sigma2 bound must be finite and > 0");
    if (o->max_iter < 1 || o->relinearize < 0) return nm_fail(ctx, NM_ERR_ARG, "the attack needs max_iter >= 1 and relinearize >= 0");
    if (!nm_all_finite_f32(M, n)) return nm_fail(ctx, NM_ERR_NONFINITE, "the image is not finite");
    int c;
    nm_status st = nm_exp_predict(ctx, net, M, 1, NULL, NULL, &c);
    if (st != NM_OK) return st;
    if (o->target < 0 || o->target >= d) return nm_fail(ctx, NM_ERR_ARG, "target %d is not one of the %lld classes", o->target, (long long)d);
    if (o->target == c) return nm_fail(ctx, NM_ERR_ARG, "target %d is the image's own label", o->target);
    attack_job j = {.ctx = ctx, .M = M, .support = o->support, .n = n, .d = d, .target = o->target};
    int64_t *idx = nm_alloc(ctx, (size_t)n, sizeof(int64_t));
    double *buf = nm_alloc(ctx, (size_t)(2 * n + 3 * (n + 2) + d), sizeof(double));
    float *x0 = nm_alloc(ctx, (size_t)n, sizeof(float));
    if (!idx || !buf || !x0) st = NM_ERR_NOMEM;
    for (int64_t k = 0; st == NM_OK && k < n; k++)
        if (!o->support || o->support[k]) idx[j.ns++] = k;
    if (st == NM_OK && j.ns == 0) st = nm_fail(ctx, NM_ERR_ARG, "the attack's support is empty");
    unsigned nz = (unsigned)(j.ns + 2);
    double *z = buf + 2 * n, *lo = z + nz, *hi = lo + nz;
    j.idx = idx, j.mu = buf, j.v = buf + n;
    nm_linearized *lin = NULL;
    nm_net_moments_options mo = nm_net_moments_options_default();
    mo.split_relu = o->split_relu;
    memcpy(x0, M, (size_t)n * sizeof(float));
    if (st == NM_OK) {
        for (int64_t s = 0; s < j.ns; s++) z[s] = 0, lo[s] = -o->beta, hi[s] = o->beta;
        z[j.ns] = 0.5 * o->sigma2_max, lo[j.ns] = 1e-6 * o->sigma2_max, hi[j.ns] = o->sigma2_max; /* 0 < σ² ≤ σ²max */
        lo[j.ns + 1] = -HUGE_VAL, hi[j.ns + 1] = HUGE_VAL;
    }
    /* Rounds: linearize at x0 (M, then M + μx with relinearize), stop if already fooled by the margin there,
     * else optimise for the round's budget (all of it without relinearize). The result is judged under the
     * linearization at its own point when relinearizing, as the paper's is under the one at M. */
    int success = 0, last_round = 0;
    while (st == NM_OK) {
        nm_array xa = {NM_F32, 1, {n}, x0};
        nm_linearized_free(ctx, lin), lin = NULL;
        if ((st = nm_linearized_create(ctx, net, &xa, &mo, &lin)) != NM_OK) break;
        j.lin = lin;
        if (!evaluate(&j, z)) break;
        success = worst_gap(&j) < -o->margin + 1e-9;
        if (success || last_round || j.evals >= o->max_iter) break;
        z[j.ns + 1] = worst_gap(&j); /* t starts feasible */
        nlopt_opt nl = nlopt_create(NLOPT_LD_MMA, nz);
        if (!nl) {
            st = nm_fail(ctx, NM_ERR_NOMEM, "NLopt could not make its optimiser");
            break;
        }
        double *tol = hi + nz; /* d − 1 constraint tolerances */
        for (int64_t r = 0; r + 1 < d; r++) tol[r] = 1e-9;
        int budget = o->max_iter - j.evals;
        if (o->relinearize > 0 && o->relinearize < budget) budget = o->relinearize;
        nlopt_set_lower_bounds(nl, lo), nlopt_set_upper_bounds(nl, hi);
        nlopt_set_min_objective(nl, objective, NULL);
        nlopt_add_inequality_mconstraint(nl, (unsigned)(d - 1), constraints, &j, tol);
        nlopt_set_stopval(nl, -o->margin);
        nlopt_set_maxeval(nl, budget);
        nlopt_set_ftol_abs(nl, 1e-7);
        /* MMA's dual problem (d − 1 variables) is solved by an inner optimiser allowed 100,000 evaluations and
         * a relative tolerance of 1e-14 by default; near a kink of max_i that is what every step costs (a minute
         * per attack was seen). A tolerance of 1e-10 and 500 evaluations keep each step to milliseconds. */
        nlopt_set_param(nl, "dual_ftol_rel", 1e-10);
        nlopt_set_param(nl, "dual_maxeval", 500);
        double f;
        nlopt_result res = nlopt_optimize(nl, z, &f);
        nlopt_destroy(nl);
        if (j.st != NM_OK) {
            st = j.st;
            break;
        }
        if (res < 0 && res != NLOPT_ROUNDOFF_LIMITED) {
            st = nm_fail(ctx, NM_ERR_NUMERIC, "NLopt's MMA failed (%s)", nlopt_result_to_string(res));
            break;
        }
        if (!o->relinearize) { /* the paper's: judged under the linearization at M */
            if (evaluate(&j, z)) success = worst_gap(&j) < -o->margin + 1e-9;
            break;
        }
        /* linearize again at M + μx; after a round that converged or spent the budget, only to judge it */
        last_round = res != NLOPT_MAXEVAL_REACHED && res != NLOPT_STOPVAL_REACHED;
        for (int64_t k = 0; k < n; k++) j.mu[k] = M[k];
        for (int64_t s = 0; s < j.ns; s++) j.mu[idx[s]] += z[s];
        for (int64_t k = 0; k < n; k++) x0[k] = (float)j.mu[k];
    }
    if (st == NM_OK && j.st != NM_OK) st = j.st;
    if (st == NM_OK) {
        for (int64_t k = 0; k < n; k++) mu_x[k] = 0;
        for (int64_t s = 0; s < j.ns; s++) mu_x[idx[s]] = (float)z[s];
        out->label = c, out->target = o->target, out->sigma2 = z[j.ns], out->iterations = j.evals, out->support = j.ns;
        out->gap = worst_gap(&j);
        out->fooled_analytic = out->gap < 0;
        out->d = d;
        if (!(out->analytic_mean = nm_alloc(ctx, (size_t)d, sizeof(double)))) st = NM_ERR_NOMEM;
        else memcpy(out->analytic_mean, j.g.value, (size_t)d * sizeof(double));
    }
    nm_moment_grad_free(ctx, &j.g);
    nm_linearized_free(ctx, lin);
    nm_free(ctx, idx), nm_free(ctx, buf), nm_free(ctx, x0);
    return st;
}

nm_status nm_attack_verify_stream(nm_ctx *ctx, nm_net *net, const float *M, const float *mu_x, double sigma2, int64_t mc, uint64_t seed,
                                  uint64_t stream, int cls, double *mc_mean, double *share)
{
    if (!ctx || !net || !M || !mu_x || !mc_mean || !share) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    if (mc < 1 || !(sigma2 >= 0) || !isfinite(sigma2)) return nm_fail(ctx, NM_ERR_ARG, "verification needs mc >= 1 and a finite sigma2 >= 0");
    if (cls < 0 || cls >= d) return nm_fail(ctx, NM_ERR_ARG, "class %d is not one of the %lld classes", cls, (long long)d);
    float *x = nm_alloc(ctx, (size_t)n, sizeof(float)), *buf = nm_alloc(ctx, (size_t)(NM_FOOLING_MC_BATCH * (n + d) + n), sizeof(float));
    nm_status st = x && buf ? NM_OK : NM_ERR_NOMEM;
    double flip = 0;
    if (st == NM_OK) {
        for (int64_t k = 0; k < n; k++) x[k] = M[k] + mu_x[k];
        st = nm_exp_mc_flip(ctx, net, x, sqrt(sigma2), NULL, 0, mc, seed, stream, cls, buf, mc_mean, &flip);
    }
    if (st == NM_OK) *share = 1 - flip;
    nm_free(ctx, x), nm_free(ctx, buf);
    return st;
}

nm_status nm_attack_verify(nm_ctx *ctx, nm_net *net, const float *M, const float *mu_x, double sigma2, int64_t mc, uint64_t seed, int cls,
                           double *mc_mean, double *share)
{
    return nm_attack_verify_stream(ctx, net, M, mu_x, sigma2, mc, seed, 0, cls, mc_mean, share);
}
