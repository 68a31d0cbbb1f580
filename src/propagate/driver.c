/*
 * driver.c — method propagate's walk (prop.h): the input's Gaussian
 * (μ; a selection's variances as the private diagonal, a dense Σ's factor
 * as the first columns), then every node up to the logits by its rule,
 * each value's state freed after its last reader, and the logits' mean,
 * variances and covariance T Tᵀ + P.
 */
#include "prop.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>

enum { RULE_SAME, RULE_LINEAR, RULE_HINGE, RULE_UNIT, RULE_WINDOW };

/* Node k's rule, or a refusal naming it. */
static nm_status rule_of(nm_ctx *ctx, const nm_net *net, int k, int *rule)
{
    const nm_node *nd = &net->node[k];
    const nm_op_def *d = nm_op_table[nd->op];
    if (d->split) *rule = RULE_HINGE;
    else if (d->window) *rule = RULE_WINDOW;
    else if (d->moments == NM_MOMENTS_UNIT) *rule = RULE_UNIT;
    else if (d->moments == NM_MOMENTS_SAME) *rule = RULE_SAME;
    else if (d->smooth || d->decides || (d->nonlinear_node && d->nonlinear_node(net, nd)))
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "method propagate has no rule for node '%s' (%s) yet: use method exact, which linearizes it",
                       nd->name, nm_op_name(nd->op));
    else *rule = RULE_LINEAR;
    return NM_OK;
}

/* The input's state: μ, and Σ as the private diagonal (a selection) or the first columns (dense). */
static nm_status input_state(nm_prop *pr, const float *mu, const nm_cov *sigma, int64_t n, nm_gauss *g)
{
    int64_t k = nm_cov_rank(sigma);
    double *var = nm_alloc(pr->ctx, (size_t)n, sizeof(double));
    if (!var) return NM_ERR_NOMEM;
    const double *L = nm_cov_split(sigma, var);
    nm_status st = nm_gauss_new(pr, n, L ? k : 0, g);
    if (st != NM_OK) {
        nm_free(pr->ctx, var);
        return st;
    }
    for (int64_t u = 0; u < n; u++) g->m[u] = mu[u];
    if (L) {
        memcpy(g->T, L, (size_t)(n * k) * sizeof(double));
        pr->cols = k;
        nm_free(pr->ctx, var);
    } else g->d2 = var;
    return NM_OK;
}

/* A copy of a state (for a value that a data-moving node passes on while others still read it). */
static nm_status copy_state(nm_prop *pr, const nm_gauss *a, nm_gauss *b)
{
    nm_ctx *ctx = pr->ctx;
    nm_status st = nm_gauss_new(pr, a->n, a->k, b);
    if (st != NM_OK) return st;
    memcpy(b->m, a->m, (size_t)a->n * sizeof(double));
    if (a->k) memcpy(b->T, a->T, (size_t)(a->n * a->k) * sizeof(double));
    if (a->d2 && !(b->d2 = nm_alloc(ctx, (size_t)a->n, sizeof(double)))) st = NM_ERR_NOMEM;
    if (st == NM_OK && a->d2) memcpy(b->d2, a->d2, (size_t)a->n * sizeof(double));
    if (st == NM_OK && a->S) st = nm_tiles_copy(ctx, a->S, &b->S);
    if (st != NM_OK) nm_gauss_free(pr, b);
    return st;
}

/* The logits' moments from their state. */
static nm_status result(nm_prop *pr, const nm_gauss *g, const nm_net_moments_options *o, nm_moments *out)
{
    nm_ctx *ctx = pr->ctx;
    int64_t d = g->n;
    out->d = d;
    out->mean = nm_alloc(ctx, (size_t)d, sizeof(double));
    out->var = nm_alloc(ctx, (size_t)d, sizeof(double));
    if (o->want_cov) out->cov = nm_alloc(ctx, (size_t)(d * d), sizeof(double));
    if (!out->mean || !out->var || (o->want_cov && !out->cov)) return NM_ERR_NOMEM;
    memcpy(out->mean, g->m, (size_t)d * sizeof(double));
    nm_gauss_var(g, out->var);
    if (out->cov && nm_gauss_cov(pr, g, out->cov) != NM_OK) return NM_ERR_NOMEM;
    for (int64_t i = 0; i < d; i++) {
        if (!isfinite(out->mean[i]) || !isfinite(out->var[i]))
            return nm_fail(ctx, NM_ERR_NONFINITE, "method propagate: logit %lld's moments overflow (mean %g, variance %g)", (long long)i,
                           out->mean[i], out->var[i]);
        if (out->var[i] < 0) out->var[i] = 0; /* rounding of C − (GT)(GT)ᵀ where a unit hardly varies */
        if (out->cov && out->cov[i * d + i] < 0) out->cov[i * d + i] = 0;
    }
    if (o->mean_only) {
        nm_free(ctx, out->var), nm_free(ctx, out->cov);
        out->var = out->cov = NULL;
    }
    return NM_OK;
}

/* A failure at node k, with where it happened in front of the message. */
static nm_status at_node(nm_prop *pr, int k, const nm_gauss *in, nm_status st)
{
    if (st == NM_OK) return st;
    const nm_node *nd = &pr->net->node[k];
    char msg[sizeof pr->ctx->message];
    snprintf(msg, sizeof msg, "%s", pr->ctx->message);
    return nm_fail(pr->ctx, st, "method propagate at node '%s' (%s; %lld units in, %lld noise columns so far): %s%s", nd->name,
                   nm_op_name(nd->op), (long long)(in ? in->n : 0), (long long)pr->cols, msg,
                   st == NM_ERR_NOMEM ? " (a lower --dense-max, a noise of lower rank, or a larger --mem may help)" : "");
}

typedef struct {
    int *rule, *uses;
    nm_act *act;
    nm_gauss *state;
    unsigned char *live;
} walk;

/* Whether value v is the only live one with columns (so that they may change basis). */
static int alone(const nm_net *net, const walk *w, int v)
{
    for (int u = 0; u < net->nv; u++)
        if (u != v && w->live[u] && w->state[u].k > 0) return 0;
    return 1;
}

/* Runs node k: the inputs' private parts shared where other nodes still read them, then the rule. */
static nm_status step(nm_prop *pr, walk *w, int k, int last_nonlinear)
{
    nm_net *net = pr->net;
    const nm_node *nd = &net->node[k];
    nm_gauss *in[NM_NODE_MAX_IN] = {0}, out;
    nm_status st = NM_OK;
    for (int i = 0; i < nd->nin && st == NM_OK; i++) {
        int v = nd->in[i];
        if (v < 0 || !net->v[v].varying) continue;
        in[i] = &w->state[v];
        if (w->uses[v] > 1) st = nm_gauss_share(pr, in[i]);
    }
    nm_gauss *x = in[0];
    if (st != NM_OK) return at_node(pr, k, x, st);
    int64_t n = x ? x->n : 0;
    switch (w->rule[k]) {
    case RULE_SAME:
        if (w->uses[nd->in[0]] == 1) out = *x, memset(x, 0, sizeof *x);
        else st = copy_state(pr, x, &out);
        break;
    case RULE_LINEAR: st = nm_prop_linear(pr, k, in, &out); break;
    case RULE_HINGE: {
        int dense = n <= pr->dense_max || k == last_nonlinear;
        if (dense && (st = nm_gauss_share_tiles(pr, x)) != NM_OK) break;
        st = nm_prop_unit(pr, k, x, &w->act[k], dense, &out);
        break;
    }
    case RULE_UNIT: st = nm_prop_unit(pr, k, x, NULL, 0, &out); break;
    default: st = nm_prop_window(pr, k, x, &out); break;
    }
    if (st != NM_OK) return at_node(pr, k, x, st);
    for (int i = 0; i < nd->nin; i++) {
        int v = nd->in[i];
        if (in[i] && --w->uses[v] == 0) nm_gauss_free(pr, &w->state[v]), w->live[v] = 0;
    }
    w->state[nd->out] = out, w->live[nd->out] = 1;
    if (pr->rank > 0 && out.k + (out.S ? out.S->kc : 0) > pr->rank && alone(net, w, nd->out)) {
        double moved;
        if ((st = nm_gauss_share_tiles(pr, &w->state[nd->out])) != NM_OK) return at_node(pr, k, x, st);
        if ((st = nm_gauss_compress(pr, &w->state[nd->out], pr->rank, (uint64_t)k, &moved)) != NM_OK) return at_node(pr, k, x, st);
        pr->moved = fmax(pr->moved, moved);
    }
    return NM_OK;
}

nm_status nm_propagate_moments(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, const nm_net_moments_options *opt,
                               nm_moments *out)
{
    return nm_propagate_moments_with(ctx, net, mu, sigma, opt, out, NULL, 1);
}

nm_status nm_propagate_moments_with(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                                    const nm_net_moments_options *opt, nm_moments *out, double *node_seconds, int sparse)
{
    memset(out, 0, sizeof *out);
    nm_net_moments_options o = opt ? *opt : nm_net_moments_options_default();
    if (o.dense_max < 0) return nm_fail(ctx, NM_ERR_ARG, "dense_max %lld must be non-negative", (long long)o.dense_max);
    if (o.rank < 0) return nm_fail(ctx, NM_ERR_ARG, "rank %lld must be non-negative", (long long)o.rank);
    int last = nm_net_logits_node(net), last_nonlinear = -1;
    nm_status st = nm_require_batchable(ctx, net, last, "method propagate needs");
    int64_t n = nm_units(&net->v[net->input]);
    if (st == NM_OK && nm_cov_dim(sigma) != n)
        st = nm_fail(ctx, NM_ERR_SHAPE, "the covariance is over %lld inputs but the model has %lld", (long long)nm_cov_dim(sigma), (long long)n);
    walk w = {0};
    if (st == NM_OK) {
        w.rule = nm_alloc_zero(ctx, (size_t)(last + 1), sizeof(int));
        w.act = nm_alloc_zero(ctx, (size_t)(last + 1), sizeof(nm_act));
        w.uses = nm_alloc_zero(ctx, (size_t)net->nv, sizeof(int));
        w.state = nm_alloc_zero(ctx, (size_t)net->nv, sizeof(nm_gauss));
        w.live = nm_alloc_zero(ctx, (size_t)net->nv, 1);
        if (!w.rule || !w.act || !w.uses || !w.state || !w.live) st = NM_ERR_NOMEM;
    }
    for (int k = 0; k <= last && st == NM_OK; k++) {
        const nm_node *nd = &net->node[k];
        if ((st = rule_of(ctx, net, k, &w.rule[k])) != NM_OK) break;
        if (w.rule[k] >= RULE_HINGE) last_nonlinear = k;
        for (int i = 0; i < nd->nin; i++)
            if (nd->in[i] >= 0 && net->v[nd->in[i]].varying) w.uses[nd->in[i]]++;
        if (w.rule[k] == RULE_HINGE) st = nm_act_of_node(ctx, net, k, nm_units(NM_OUT(net, nd)), &w.act[k]);
    }
    float *muf = NULL;
    if (st == NM_OK) st = nm_to_float(ctx, mu, n, "the input mean", &muf);
    if (st == NM_OK) st = nm_net_run(ctx, net, 0, last, 1, muf); /* the primal the jvp passes need (shapes only: they are linear) */
    nm_prop pr = {.ctx = ctx, .net = net, .dense_max = o.dense_max, .rank = o.rank, .sparse = sparse};
    if (st == NM_OK && (st = input_state(&pr, muf, sigma, n, &w.state[net->input])) == NM_OK) w.live[net->input] = 1;
    for (int k = 0; k <= last && st == NM_OK; k++) {
        double t0 = node_seconds ? omp_get_wtime() : 0;
        st = step(&pr, &w, k, last_nonlinear);
        if (node_seconds) node_seconds[k] = omp_get_wtime() - t0;
    }
    if (st == NM_OK) st = result(&pr, &w.state[net->node[last].out], &o, out);
    if (st == NM_OK) out->rank_moved = pr.moved;
    if (st != NM_OK) nm_moments_free(ctx, out);
    for (int v = 0; w.live && v < net->nv; v++)
        if (w.live[v]) nm_gauss_free(&pr, &w.state[v]);
    nm_prop_drain(&pr);
    for (int k = 0; w.act && k <= last; k++) nm_act_free(ctx, &w.act[k]);
    nm_free(ctx, w.rule), nm_free(ctx, w.act), nm_free(ctx, w.uses), nm_free(ctx, w.state), nm_free(ctx, w.live), nm_free(ctx, muf);
    return st;
}
