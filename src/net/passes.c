/*
 * passes.c — the three run-time passes over any contiguous range of nodes
 * (forward, which records the primal; jvp; vjp), which is what the
 * two-stage linearization of DESIGN §1.6 needs, the scratch memory and
 * threading rule the kernels share, and the public passes on nm_arrays.
 */
#include "../net.h"

#include <math.h>
#include <omp.h>
#include <string.h>

int nm_threads(void)
{
    return omp_get_max_threads();
}

float *nm_pass_scratch(nm_pass *p, size_t nfloats)
{
    nm_net *net = p->net;
    if (nfloats <= net->scratch_cap) return net->scratch;
    float *s = nm_alloc(p->ctx, nfloats, sizeof(float));
    if (!s) return NULL;
    nm_free(p->ctx, net->scratch);
    net->scratch = s;
    net->scratch_cap = nfloats;
    return s;
}

int nm_net_range_input(const nm_net *net, int first)
{
    return first == 0 ? net->input : net->node[first - 1].out;
}

size_t nm_net_sample_bytes(const nm_net *net, int first, int last)
{
    double bytes = 0;
    for (int k = first - 1; k <= last; k++) {
        const nm_value *v = &net->v[k < first ? nm_net_range_input(net, first) : net->node[k].out];
        double n = (double)nm_shape_numel(&v->shape);
        bytes += (v->batched && v->shape.d[0] ? n / (double)v->shape.d[0] : n) * sizeof(float);
    }
    return bytes < (double)SIZE_MAX ? (size_t)bytes : SIZE_MAX;
}

int64_t nm_net_batch_fit(const nm_ctx *ctx, size_t per_sample, int64_t want)
{
    size_t limit = ctx ? ctx->mem_limit : 0, live = ctx ? ctx->live_bytes : 0;
    if (!limit || per_sample == 0) return want;
    double room = limit > live ? (double)(limit - live) / 2 : 0, fit = room / (double)per_sample;
    return fit >= (double)want ? want : fit >= 1 ? (int64_t)fit : 1;
}

/* Binds the primal buffers of node nd's inputs and output into p. */
static void bind_primal(nm_net *net, const nm_node *nd, nm_pass *p)
{
    for (int i = 0; i < nd->nin; i++) {
        if (nd->in[i] < 0) continue;
        nm_value *v = &net->v[nd->in[i]];
        p->x[i] = v->varying ? v->x : v->cdata;
        p->xs[i] = v->varying ? v->xs : v->shape;
        p->ix[i] = v->idata;
    }
    nm_value *o = &net->v[nd->out];
    p->y = o->x;
    p->ys = o->xs;
}

/* Checks that nodes first..last read only the range input, constants and
 * their own outputs, and whether every varying value there is batched. */
static nm_status check_range(nm_ctx *ctx, const nm_net *net, int first, int last, int *all_batched)
{
    if (net->output < 0) return nm_fail(ctx, NM_ERR_ARG, "the net has no output");
    if (first < 0 || last >= net->nn || first > last)
        return nm_fail(ctx, NM_ERR_ARG, "node range %d..%d outside 0..%d", first, last, net->nn - 1);
    int rin = nm_net_range_input(net, first);
    *all_batched = net->v[rin].batched;
    for (int k = first; k <= last; k++) {
        const nm_node *nd = &net->node[k];
        for (int i = 0; i < nd->nin; i++) {
            int v = nd->in[i];
            if (v < 0 || !net->v[v].varying || v == rin) continue;
            int pr = net->v[v].producer;
            if (pr < first || pr >= k)
                return nm_fail(ctx, NM_ERR_ARG, "node '%s' reads '%s', which is computed outside nodes %d..%d", nd->name,
                               net->v[v].name, first, last);
        }
        *all_batched &= net->v[nd->out].batched;
    }
    return NM_OK;
}

/* Makes buf hold n floats; never leaves it NULL, even for n = 0. */
static nm_status reserve(nm_ctx *ctx, float **buf, int64_t *cap, int64_t n)
{
    if (n <= *cap && *buf) return NM_OK;
    float *b = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(float));
    if (!b) return NM_ERR_NOMEM;
    nm_free(ctx, *buf);
    *buf = b;
    *cap = n;
    return NM_OK;
}

/* The shape of value v when its batch is n. */
static nm_shape shape_at(const nm_value *v, int64_t n)
{
    nm_shape s = v->shape;
    if (v->batched) s.d[0] = n;
    return s;
}

static nm_status batch_ok(nm_ctx *ctx, const nm_net *net, int first, int64_t n, int64_t want, int all_batched)
{
    const nm_value *in = &net->v[nm_net_range_input(net, first)];
    if (n == want) return NM_OK;
    if (n < 1) return nm_fail(ctx, NM_ERR_SHAPE, "batch size %lld must be positive", (long long)n);
    if (!all_batched)
        return nm_fail(ctx, NM_ERR_SHAPE, "this part of the net mixes samples along the first axis of '%s', so it runs only with batch size %lld (got %lld)",
                       in->name, (long long)want, (long long)n);
    return NM_OK;
}

/* The float32 passes overflow silently (Inf, then NaN, which a ReLU turns
 * into 0): the forward pass checks the input of every op that could hide a
 * non-finite value and the range's output, and refuses what overflowed. */
static nm_status check_finite(nm_ctx *ctx, const nm_net *net, const nm_node *nd, const nm_value *v, const char *what)
{
    int64_t n = nm_shape_numel(&v->xs), bad = INT64_MAX;
    const float *x = v->x;
    #pragma omp parallel for reduction(min : bad) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]) && i < bad) bad = i;
    if (bad == INT64_MAX) return NM_OK;
    int64_t per = nm_shape_tail(&v->xs, 1);
    return nm_fail(ctx, NM_ERR_NONFINITE, "node '%s' (%s): its %s is %g at sample %lld: the float32 pass overflowed (the input or the "
                   "noise is too large for this network)", nd->name, nm_op_name(nd->op), what, (double)x[bad],
                   (long long)(v->batched && per ? bad / per : 0));
    (void)net;
}

nm_status nm_net_run(nm_ctx *ctx, nm_net *net, int first, int last, int64_t n, const float *x)
{
    int all_batched;
    nm_status st = check_range(ctx, net, first, last, &all_batched);
    if (st != NM_OK) return st;
    nm_value *in = &net->v[nm_net_range_input(net, first)];
    if ((st = batch_ok(ctx, net, first, n, in->shape.d[0], all_batched)) != NM_OK) return st;
    net->rec_first = net->rec_last = -1;
    in->xs = shape_at(in, n);
    int64_t nin = nm_shape_numel(&in->xs);
    if ((st = reserve(ctx, &in->x, &in->x_cap, nin)) != NM_OK) return st;
    if (in->x != x) memcpy(in->x, x, (size_t)nin * sizeof(float));
    for (int k = first; k <= last; k++) {
        const nm_node *nd = &net->node[k];
        nm_value *o = &net->v[nd->out];
        o->xs = shape_at(o, n);
        if ((st = reserve(ctx, &o->x, &o->x_cap, nm_shape_numel(&o->xs))) != NM_OK) return st;
        nm_pass p = {.ctx = ctx, .net = net};
        bind_primal(net, nd, &p);
        const nm_value *x0 = &net->v[nd->in[0]];
        if (nm_op_table[nd->op]->hides_nonfinite && x0->varying && (st = check_finite(ctx, net, nd, x0, "input")) != NM_OK) return st;
        if ((st = nm_op_table[nd->op]->forward(nd, &p)) != NM_OK) return st;
    }
    if ((st = check_finite(ctx, net, &net->node[last], &net->v[net->node[last].out], "output")) != NM_OK) return st;
    net->rec_first = first;
    net->rec_last = last;
    return NM_OK;
}

nm_status nm_net_decide(nm_ctx *ctx, nm_net *net, int k, int32_t *codes)
{
    const nm_node *nd = &net->node[k];
    nm_pass p = {.ctx = ctx, .net = net};
    bind_primal(net, nd, &p);
    return nm_op_table[nd->op]->decide(nd, &p, codes);
}

/* A forward call whose range covers first..last has recorded the primal. */
static nm_status need_primal(nm_ctx *ctx, const nm_net *net, int first, int last)
{
    if (net->rec_first < 0 || first < net->rec_first || last > net->rec_last)
        return nm_fail(ctx, NM_ERR_ARG, "nodes %d..%d have no recorded primal: run forward over them first", first, last);
    return NM_OK;
}

/* Common checks of jvp and vjp: a recorded primal covering the range, and a
 * tangent batch t that is P or (with P = 1 and every value batched) any. */
static nm_status tangent_ok(nm_ctx *ctx, nm_net *net, int first, int last, int64_t t)
{
    int all_batched;
    nm_status st = check_range(ctx, net, first, last, &all_batched);
    if (st != NM_OK) return st;
    if ((st = need_primal(ctx, net, first, last)) != NM_OK) return st;
    const nm_value *in = &net->v[nm_net_range_input(net, first)];
    int64_t P = in->xs.d[0];
    if (t == P) return NM_OK;
    if (t < 1) return nm_fail(ctx, NM_ERR_SHAPE, "tangent batch %lld must be positive", (long long)t);
    if (P != 1 || !in->batched)
        return nm_fail(ctx, NM_ERR_SHAPE, "%lld tangents for a primal batch of %lld (need 1 primal or one tangent per sample)",
                       (long long)t, (long long)P);
    return batch_ok(ctx, net, first, t, P, all_batched);
}

/* Tangent shape of v: its primal shape with the tangent batch. */
static nm_shape tangent_shape(const nm_value *v, int64_t t)
{
    nm_shape s = v->xs;
    if (v->batched) s.d[0] = t;
    return s;
}

static nm_status reserve_g(nm_ctx *ctx, nm_value *v, int64_t t, int zero)
{
    v->gs = tangent_shape(v, t);
    int64_t n = nm_shape_numel(&v->gs);
    nm_status st = reserve(ctx, &v->g, &v->g_cap, n);
    if (st == NM_OK && zero) memset(v->g, 0, (size_t)n * sizeof(float));
    return st;
}

static void bind_tangents(nm_net *net, const nm_node *nd, nm_pass *p)
{
    for (int i = 0; i < nd->nin; i++) {
        if (nd->in[i] < 0 || !net->v[nd->in[i]].varying) continue;
        p->dx[i] = net->v[nd->in[i]].g;
        p->dxs[i] = net->v[nd->in[i]].gs;
    }
    p->dy = net->v[nd->out].g;
    p->dys = net->v[nd->out].gs;
}

nm_status nm_net_run_jvp(nm_ctx *ctx, nm_net *net, int first, int last, int64_t t, const float *dx)
{
    nm_status st = tangent_ok(ctx, net, first, last, t);
    if (st != NM_OK) return st;
    nm_value *in = &net->v[nm_net_range_input(net, first)];
    if ((st = reserve_g(ctx, in, t, 0)) != NM_OK) return st;
    memcpy(in->g, dx, (size_t)nm_shape_numel(&in->gs) * sizeof(float));
    for (int k = first; k <= last; k++) {
        const nm_node *nd = &net->node[k];
        if ((st = reserve_g(ctx, &net->v[nd->out], t, 0)) != NM_OK) return st;
        nm_pass p = {.ctx = ctx, .net = net};
        bind_primal(net, nd, &p);
        bind_tangents(net, nd, &p);
        if ((st = nm_op_table[nd->op]->jvp(nd, &p)) != NM_OK) return st;
    }
    return NM_OK;
}

nm_status nm_net_run_vjp(nm_ctx *ctx, nm_net *net, int first, int last, int64_t t, const float *dy, unsigned flags)
{
    nm_status st = tangent_ok(ctx, net, first, last, t);
    if (st != NM_OK) return st;
    if ((st = reserve_g(ctx, &net->v[nm_net_range_input(net, first)], t, 1)) != NM_OK) return st;
    for (int k = first; k <= last; k++)
        if ((st = reserve_g(ctx, &net->v[net->node[k].out], t, k != last)) != NM_OK) return st;
    nm_value *out = &net->v[net->node[last].out];
    memcpy(out->g, dy, (size_t)nm_shape_numel(&out->gs) * sizeof(float));
    for (int k = last; k >= first; k--) {
        const nm_node *nd = &net->node[k];
        nm_pass p = {.ctx = ctx, .net = net};
        bind_primal(net, nd, &p);
        bind_tangents(net, nd, &p);
        if (flags & NM_VJP_NO_INPUT)
            for (int i = 0; i < nd->nin; i++)
                if (nd->in[i] == nm_net_range_input(net, first)) p.dx[i] = NULL;
        if (flags & NM_VJP_PARAMS)
            for (int i = 0; i < nd->nin; i++)
                if (nd->in[i] >= 0 && nm_op_table[nd->op]->trainable[i]) p.gp[i] = net->v[nd->in[i]].pg;
        if ((st = nm_op_table[nd->op]->vjp(nd, &p)) != NM_OK) return st;
    }
    return NM_OK;
}

/* ---------------------------------------------------------------- public passes on arrays */

typedef enum { PASS_FORWARD, PASS_JVP, PASS_VJP } pass_kind;

/* Checks the array against the shape the range expects (its first axis is
 * the batch) and returns the batch and a float copy. */
static nm_status array_in(nm_ctx *ctx, const nm_value *v, const nm_shape *want, const nm_array *a, const char *what,
                          int64_t *batch, float **buf)
{
    *buf = NULL;
    if (!a || !a->data || (a->dtype != NM_F32 && a->dtype != NM_F64))
        return nm_fail(ctx, NM_ERR_ARG, "%s: empty array or unknown dtype", what);
    int ok = a->ndim == want->ndim && a->ndim >= 1;
    for (int i = 1; ok && i < a->ndim; i++) ok = a->shape[i] == want->d[i];
    if (!ok) {
        char s1[128], s2[128];
        nm_shape got = {a->ndim, {0}};
        memcpy(got.d, a->shape, sizeof(int64_t) * (size_t)(a->ndim > 0 ? a->ndim : 0));
        return nm_fail(ctx, NM_ERR_SHAPE, "%s: shape %s does not match '%s' %s (the first axis is the batch)", what,
                       nm_shape_str(&got, s1, sizeof s1), v->name, nm_shape_str(want, s2, sizeof s2));
    }
    nm_status st = nm_array_to_f32(ctx, a, what, buf);
    if (st != NM_OK) return st;
    *batch = a->shape[0];
    return NM_OK;
}

static nm_status array_out(nm_ctx *ctx, const nm_shape *s, const float *data, nm_array *out)
{
    nm_status st = nm_array_alloc(ctx, out, NM_F32, s->ndim, s->d);
    if (st == NM_OK) memcpy(out->data, data, (size_t)nm_shape_numel(s) * sizeof(float));
    return st;
}

static nm_status run_pass(nm_ctx *ctx, nm_net *net, pass_kind kind, int first, int last, const nm_array *a, nm_array *out)
{
    if (!ctx || !net || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    if (last < 0) last = net->nn - 1;
    int all_batched;
    nm_status st = check_range(ctx, net, first, last, &all_batched);
    if (st != NM_OK) return st;
    nm_value *in = &net->v[nm_net_range_input(net, first)], *o = &net->v[net->node[last].out];
    nm_value *src = kind == PASS_VJP ? o : in;
    nm_shape want = kind == PASS_FORWARD ? src->shape : src->xs;
    if (kind != PASS_FORWARD && (st = need_primal(ctx, net, first, last)) != NM_OK) return st;
    int64_t n = 0;
    float *buf;
    const char *what = kind == PASS_FORWARD ? "input" : kind == PASS_JVP ? "tangents" : "cotangents";
    if ((st = array_in(ctx, src, &want, a, what, &n, &buf)) != NM_OK) return st;
    if (kind == PASS_FORWARD) st = nm_net_run(ctx, net, first, last, n, buf);
    else if (kind == PASS_JVP) st = nm_net_run_jvp(ctx, net, first, last, n, buf);
    else st = nm_net_run_vjp(ctx, net, first, last, n, buf, 0);
    nm_free(ctx, buf);
    if (st != NM_OK) return st;
    if (kind == PASS_FORWARD) return array_out(ctx, &o->xs, o->x, out);
    if (kind == PASS_JVP) return array_out(ctx, &o->gs, o->g, out);
    return array_out(ctx, &in->gs, in->g, out);
}

nm_status nm_net_forward(nm_ctx *ctx, nm_net *net, int first, int last, const nm_array *x, nm_array *y)
{
    return run_pass(ctx, net, PASS_FORWARD, first, last, x, y);
}

nm_status nm_net_jvp(nm_ctx *ctx, nm_net *net, int first, int last, const nm_array *t, nm_array *y)
{
    return run_pass(ctx, net, PASS_JVP, first, last, t, y);
}

nm_status nm_net_vjp(nm_ctx *ctx, nm_net *net, int first, int last, const nm_array *c, nm_array *x)
{
    return run_pass(ctx, net, PASS_VJP, first, last, c, x);
}

/* Node k's pass record at the recorded primal with the caller's tangents dx (t samples, one buffer per
 * varying input) and dy. */
static nm_status bind_node(nm_ctx *ctx, nm_net *net, int k, int64_t t, float *const *dx, float *dy, nm_pass *p)
{
    const nm_node *nd = &net->node[k];
    nm_status st = need_primal(ctx, net, k, k);
    if (st != NM_OK) return st;
    *p = (nm_pass){.ctx = ctx, .net = net};
    bind_primal(net, nd, p);
    for (int i = 0; i < nd->nin; i++) {
        if (nd->in[i] < 0 || !net->v[nd->in[i]].varying) continue;
        p->dx[i] = dx[i];
        p->dxs[i] = tangent_shape(&net->v[nd->in[i]], t);
    }
    p->dy = dy;
    p->dys = tangent_shape(&net->v[nd->out], t);
    return NM_OK;
}

nm_status nm_node_jvp(nm_ctx *ctx, nm_net *net, int k, int64_t t, float *const *dx, float *dy)
{
    nm_pass p;
    nm_status st = bind_node(ctx, net, k, t, dx, dy, &p);
    return st == NM_OK ? nm_op_table[net->node[k].op]->jvp(&net->node[k], &p) : st;
}

nm_status nm_node_vjp(nm_ctx *ctx, nm_net *net, int k, int64_t t, const float *dy, float *const *dx)
{
    nm_pass p;
    nm_status st = bind_node(ctx, net, k, t, dx, (float *)dy, &p);
    return st == NM_OK ? nm_op_table[net->node[k].op]->vjp(&net->node[k], &p) : st;
}

/* Node k's primal on the caller's inputs: x[i] for every varying input, and in place of a constant where
 * non-NULL. */
static void bind_at(nm_ctx *ctx, nm_net *net, int k, int64_t n, float *const *x, nm_pass *p)
{
    const nm_node *nd = &net->node[k];
    *p = (nm_pass){.ctx = ctx, .net = net};
    bind_primal(net, nd, p);
    for (int i = 0; i < nd->nin; i++) {
        if (nd->in[i] < 0) continue;
        if (net->v[nd->in[i]].varying) p->x[i] = x[i], p->xs[i] = shape_at(&net->v[nd->in[i]], n);
        else if (x[i]) p->x[i] = x[i];
    }
    p->y = NULL;
    p->ys = shape_at(&net->v[nd->out], n);
}

nm_status nm_node_forward(nm_ctx *ctx, nm_net *net, int k, int64_t n, float *const *x, float *y)
{
    nm_pass p;
    bind_at(ctx, net, k, n, x, &p);
    p.y = y;
    return nm_op_table[net->node[k].op]->forward(&net->node[k], &p);
}

nm_status nm_node_vjp_at(nm_ctx *ctx, nm_net *net, int k, int64_t n, float *const *x, const float *dy, float *const *dx,
                         float *const *gp)
{
    nm_pass p;
    bind_at(ctx, net, k, n, x, &p);
    const nm_node *nd = &net->node[k];
    for (int i = 0; i < nd->nin; i++) {
        if (nd->in[i] < 0) continue;
        if (net->v[nd->in[i]].varying) p.dx[i] = dx[i], p.dxs[i] = p.xs[i];
        else if (nm_op_table[nd->op]->trainable[i]) p.gp[i] = gp[i];
    }
    p.dy = (float *)dy;
    p.dys = p.ys;
    return nm_op_table[nd->op]->vjp(nd, &p);
}

nm_status nm_wmat_alloc(nm_ctx *ctx, int64_t rows, int64_t cols, int64_t ng, int64_t nrow, int64_t nidx, int64_t nown, nm_wmat *W)
{
    *W = (nm_wmat){.rows = rows, .cols = cols, .ng = ng};
    W->gp = nm_alloc_zero(ctx, (size_t)(ng + 1), sizeof(int64_t));
    W->ip = nm_alloc_zero(ctx, (size_t)(ng + 1), sizeof(int64_t));
    W->row = nm_alloc(ctx, (size_t)(nrow ? nrow : 1), sizeof(int64_t));
    W->idx = nm_alloc(ctx, (size_t)(nidx ? nidx : 1), sizeof(int64_t));
    W->ld = nm_alloc(ctx, (size_t)(ng ? ng : 1), sizeof(int64_t));
    W->v = nm_alloc(ctx, (size_t)(ng ? ng : 1), sizeof(float *));
    W->own = nown ? nm_alloc(ctx, (size_t)nown, sizeof(float)) : NULL;
    if (W->gp && W->ip && W->row && W->idx && W->ld && W->v && (!nown || W->own)) return NM_OK;
    nm_wmat_free(ctx, W);
    return NM_ERR_NOMEM;
}

void nm_wmat_free(nm_ctx *ctx, nm_wmat *W)
{
    nm_free(ctx, W->gp), nm_free(ctx, W->ip), nm_free(ctx, W->row), nm_free(ctx, W->idx), nm_free(ctx, W->ld);
    nm_free(ctx, (void *)W->v), nm_free(ctx, (void *)W->vd), nm_free(ctx, W->own);
    memset(W, 0, sizeof *W);
}
