/*
 * net.c — the network graph (net.h): the op table, building a net value by
 * value and node by node with shape inference and constant folding, and the
 * three run-time passes (forward, jvp, vjp) over any contiguous range of
 * nodes, which is what the two-stage linearization of DESIGN §1.6 needs.
 * Also the public nm_net_* queries and array-level passes.
 */
#include "net.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const nm_op_def *const nm_op_table[NM_OP_COUNT] = {
    [NM_OP_CONV] = &nm_op_conv,
    [NM_OP_GEMM] = &nm_op_gemm,
    [NM_OP_MATMUL] = &nm_op_matmul,
    [NM_OP_ADD] = &nm_op_add,
    [NM_OP_RELU] = &nm_op_relu,
    [NM_OP_LEAKYRELU] = &nm_op_leakyrelu,
    [NM_OP_PRELU] = &nm_op_prelu,
    [NM_OP_MAXPOOL] = &nm_op_maxpool,
    [NM_OP_AVERAGEPOOL] = &nm_op_averagepool,
    [NM_OP_GLOBALAVERAGEPOOL] = &nm_op_globalaveragepool,
    [NM_OP_PAD] = &nm_op_pad,
    [NM_OP_FLATTEN] = &nm_op_flatten,
    [NM_OP_RESHAPE] = &nm_op_reshape,
    [NM_OP_BATCHNORM] = &nm_op_batchnorm,
    [NM_OP_DROPOUT] = &nm_op_dropout,
    [NM_OP_LRN] = &nm_op_lrn,
    [NM_OP_IDENTITY] = &nm_op_identity,
    [NM_OP_SOFTMAX] = &nm_op_softmax,
    [NM_OP_LOGSOFTMAX] = &nm_op_logsoftmax,
};
_Static_assert(sizeof nm_op_table / sizeof nm_op_table[0] == NM_OP_COUNT, "one definition per op");

const char *nm_op_name(nm_op op)
{
    return op >= 0 && op < NM_OP_COUNT ? nm_op_table[op]->name : "?";
}

int nm_threads(void)
{
    return omp_get_max_threads();
}

/* ---------------------------------------------------------------- shapes */

int64_t nm_shape_numel(const nm_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->d[i];
    return n;
}

int64_t nm_shape_tail(const nm_shape *s, int from)
{
    int64_t n = 1;
    for (int i = from; i < s->ndim; i++) n *= s->d[i];
    return n;
}

int nm_shape_equal(const nm_shape *a, const nm_shape *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

const char *nm_shape_str(const nm_shape *s, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < s->ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (o < len) snprintf(buf + o, len - o, ")");
    return buf;
}

nm_status nm_broadcast_shape(nm_ctx *ctx, const nm_node *nd, const nm_shape *a, const nm_shape *b, nm_shape *out)
{
    int r = a->ndim > b->ndim ? a->ndim : b->ndim;
    out->ndim = r;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (%s): shapes %s and %s do not broadcast", nd->name,
                           nm_op_name(nd->op), nm_shape_str(a, sa, sizeof sa), nm_shape_str(b, sb, sizeof sb));
        }
        out->d[i] = da == 1 ? db : da;
    }
    return NM_OK;
}

void nm_broadcast_strides(const nm_shape *in, const nm_shape *out, int64_t *strides)
{
    int64_t s = 1;
    for (int i = out->ndim - 1; i >= 0; i--) {
        int k = i - (out->ndim - in->ndim);
        if (k < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = in->d[k] == 1 ? 0 : s;
        s *= in->d[k];
    }
}

/* Visits every element of shape o with the matching offset under strides
 * st: y[i] = (acc ? y[i] : 0) + src[off] (gather), or dst[off] += y[i]
 * (scatter, reduce = 1). */
void nm_strided(const nm_shape *o, const int64_t *st, float *y, float *other, int reduce, int acc)
{
    int r = o->ndim;
    int64_t n = nm_shape_numel(o);
    if (n == 0) return;
    int64_t inner = r ? o->d[r - 1] : 1, sin = r ? st[r - 1] : 0;
    int64_t idx[NM_MAX_DIMS] = {0}, off = 0;
    for (int64_t base = 0; base < n; base += inner) {
        float *yr = y + base;
        if (reduce) {
            for (int64_t j = 0; j < inner; j++) other[off + j * sin] += yr[j];
        } else if (acc) {
            for (int64_t j = 0; j < inner; j++) yr[j] += other[off + j * sin];
        } else {
            for (int64_t j = 0; j < inner; j++) yr[j] = other[off + j * sin];
        }
        for (int k = r - 2; k >= 0; k--) { /* odometer over the outer axes */
            idx[k]++;
            off += st[k];
            if (idx[k] < o->d[k]) break;
            off -= st[k] * o->d[k];
            idx[k] = 0;
        }
    }
}

int nm_const_spares_batch(const nm_value *c, int r)
{
    return c->shape.ndim < r || c->shape.d[0] == 1;
}

nm_status nm_window_resolve(nm_ctx *ctx, const nm_node *nd, nm_attrs *a, int64_t H, int64_t W, int64_t *OH, int64_t *OW)
{
    int64_t in[2] = {H, W}, out[2];
    for (int k = 0; k < 2; k++) {
        if (a->stride[k] < 1 || a->dil[k] < 1 || a->kernel[k] < 1)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): kernel, strides and dilations must be positive", nd->name,
                           nm_op_name(nd->op));
        int64_t ek = (a->kernel[k] - 1) * a->dil[k] + 1, s = a->stride[k];
        if (a->auto_pad == NM_AUTOPAD_VALID) {
            a->pad[k] = a->pad[k + 2] = 0;
        } else if (a->auto_pad == NM_AUTOPAD_SAME_UPPER || a->auto_pad == NM_AUTOPAD_SAME_LOWER) {
            int64_t o = (in[k] + s - 1) / s, total = (o - 1) * s + ek - in[k];
            if (total < 0) total = 0;
            a->pad[k] = a->auto_pad == NM_AUTOPAD_SAME_UPPER ? total / 2 : total - total / 2;
            a->pad[k + 2] = total - a->pad[k];
        }
        if (a->pad[k] < 0 || a->pad[k + 2] < 0)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): negative pads", nd->name, nm_op_name(nd->op));
        int64_t span = in[k] + a->pad[k] + a->pad[k + 2] - ek;
        if (span < 0)
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (%s): the window (%lld) is larger than the padded input (%lld)",
                           nd->name, nm_op_name(nd->op), (long long)ek, (long long)(in[k] + a->pad[k] + a->pad[k + 2]));
        out[k] = (a->ceil_mode ? (span + s - 1) / s : span / s) + 1;
        if (a->ceil_mode && (out[k] - 1) * s >= in[k] + a->pad[k]) out[k]--; /* no window may start in the end padding */
    }
    a->auto_pad = NM_AUTOPAD_NOTSET;
    *OH = out[0];
    *OW = out[1];
    return NM_OK;
}

nm_attrs nm_attrs_default(nm_op op)
{
    nm_attrs a;
    memset(&a, 0, sizeof a);
    a.stride[0] = a.stride[1] = a.dil[0] = a.dil[1] = 1;
    a.group = 1;
    a.alpha = 1.0f;
    a.beta = 1.0f;
    a.epsilon = 1e-5f;
    a.axis = 1;
    a.legacy_axis = -1;
    if (op == NM_OP_LEAKYRELU) a.alpha = 0.01f;
    if (op == NM_OP_LRN) {
        a.alpha = 1e-4f;
        a.beta = 0.75f;
        a.bias = 1.0f;
    }
    if (op == NM_OP_SOFTMAX || op == NM_OP_LOGSOFTMAX) a.axis = -1;
    return a;
}

/* ---------------------------------------------------------------- building */

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

static char *dup_str(nm_ctx *ctx, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = nm_alloc(ctx, n, 1);
    if (d) memcpy(d, s, n);
    return d;
}

nm_net *nm_net_new(nm_ctx *ctx)
{
    nm_net *net = nm_alloc_zero(ctx, 1, sizeof *net);
    if (!net) return NULL;
    net->input = net->output = -1;
    net->rec_first = net->rec_last = -1;
    return net;
}

void nm_net_free(nm_ctx *ctx, nm_net *net)
{
    if (!net) return;
    for (int i = 0; i < net->nv; i++) {
        nm_value *v = &net->v[i];
        nm_free(ctx, v->name);
        nm_free(ctx, v->cdata);
        nm_free(ctx, v->idata);
        nm_free(ctx, v->x);
        nm_free(ctx, v->g);
        nm_free(ctx, v->pg);
    }
    for (int i = 0; i < net->nn; i++) nm_free(ctx, net->node[i].name);
    for (int i = 0; i < net->nmeta; i++) {
        nm_free(ctx, net->meta_key[i]);
        nm_free(ctx, net->meta_val[i]);
    }
    nm_free(ctx, net->meta_key);
    nm_free(ctx, net->meta_val);
    nm_free(ctx, net->v);
    nm_free(ctx, net->node);
    nm_free(ctx, net->scratch);
    nm_free(ctx, net);
}

/* Grows an array of `size`-byte items to hold one more; 0 on failure. */
static int grow(nm_ctx *ctx, void **arr, int *cap, int n, size_t size)
{
    if (n < *cap) return 1;
    int nc = *cap ? 2 * *cap : 16;
    void *a = nm_alloc_zero(ctx, (size_t)nc, size);
    if (!a) return 0;
    if (*arr) memcpy(a, *arr, (size_t)n * size);
    nm_free(ctx, *arr);
    *arr = a;
    *cap = nc;
    return 1;
}

int nm_net_find_value(const nm_net *net, const char *name)
{
    for (int i = net->nv - 1; i >= 0; i--)
        if (strcmp(net->v[i].name, name) == 0) return i;
    return -1;
}

static int add_value(nm_ctx *ctx, nm_net *net, const char *name, const nm_shape *shape)
{
    if (!grow(ctx, (void **)&net->v, &net->nv_cap, net->nv, sizeof(nm_value))) return NM_ERR_NOMEM;
    nm_value *v = &net->v[net->nv];
    memset(v, 0, sizeof *v);
    v->name = dup_str(ctx, name);
    if (!v->name) return NM_ERR_NOMEM;
    if (shape) v->shape = *shape;
    v->producer = -1;
    return net->nv++;
}

static nm_status check_shape(nm_ctx *ctx, const char *name, const nm_shape *s)
{
    if (s->ndim < 0 || s->ndim > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "'%s': rank %d outside 0..%d", name, s->ndim, NM_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] < 0 || (s->d[i] && n > ((int64_t)1 << 40) / s->d[i]))
            return nm_fail(ctx, NM_ERR_FORMAT, "'%s': dimension %d (%lld) is negative or the tensor exceeds 2^40 elements",
                           name, i, (long long)s->d[i]);
        n *= s->d[i];
    }
    return NM_OK;
}

int nm_net_add_input(nm_ctx *ctx, nm_net *net, const char *name, const nm_shape *shape)
{
    if (net->input >= 0) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "'%s': a net has exactly one input", name);
    nm_status st = check_shape(ctx, name, shape);
    if (st != NM_OK) return st;
    if (shape->ndim < 1) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "input '%s' is a scalar (the input needs a first, batch axis)", name);
    int v = add_value(ctx, net, name, shape);
    if (v < 0) return v;
    net->v[v].varying = net->v[v].batched = 1;
    net->input = v;
    return v;
}

int nm_net_add_const(nm_ctx *ctx, nm_net *net, const char *name, const nm_shape *shape, float *data, int64_t *idata)
{
    nm_status st = check_shape(ctx, name, shape);
    int v = st == NM_OK ? add_value(ctx, net, name, shape) : st;
    if (v < 0) {
        nm_free(ctx, data);
        nm_free(ctx, idata);
        return v;
    }
    net->v[v].cdata = data;
    net->v[v].idata = idata;
    return v;
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

int nm_net_add_node(nm_ctx *ctx, nm_net *net, nm_op op, const char *name, const char *out_name, int nin,
                    const int *in, const nm_attrs *a)
{
    const nm_op_def *def = nm_op_table[op];
    if (nin < def->min_in || nin > def->max_in)
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): %d inputs (expects %d to %d)", name, def->name, nin,
                       def->min_in, def->max_in);
    int varying = 0;
    for (int i = 0; i < nin; i++) {
        if (in[i] >= net->nv) return nm_fail(ctx, NM_ERR_ARG, "node '%s': input value %d does not exist", name, in[i]);
        /* integer tensors are read only as shapes, pads and Dropout's mode; every other constant must be float */
        int int_ok = (op == NM_OP_RESHAPE && i == 1) || (op == NM_OP_PAD && i == 1) || (op == NM_OP_DROPOUT && i == 2);
        if (in[i] >= 0 && !net->v[in[i]].varying && !net->v[in[i]].cdata && !int_ok)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): input %d ('%s') is an integer tensor where a float one is needed",
                           name, def->name, i, net->v[in[i]].name);
        if (in[i] < 0 && i < def->min_in)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): required input %d is missing", name, def->name, i);
        if (in[i] >= 0) varying |= net->v[in[i]].varying;
    }
    int out = add_value(ctx, net, out_name, NULL);
    if (out < 0) return out;
    if (!grow(ctx, (void **)&net->node, &net->nn_cap, net->nn, sizeof(nm_node))) return NM_ERR_NOMEM;
    nm_node *nd = &net->node[net->nn];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->name = dup_str(ctx, name);
    if (!nd->name) return NM_ERR_NOMEM;
    nd->nin = nin;
    for (int i = 0; i < NM_NODE_MAX_IN; i++) nd->in[i] = i < nin ? in[i] : -1;
    nd->out = out;
    nd->a = *a;
    net->nn++; /* owned by the net from here, so nm_net_free releases it */
    nm_value *o = &net->v[out];
    o->varying = varying;
    nm_status st = def->infer(ctx, net, nd);
    if (st == NM_OK) st = check_shape(ctx, out_name, &o->shape);
    if (st != NM_OK) return st;
    if (varying) {
        o->producer = net->nn - 1;
        return out;
    }
    /* Constant folding: every input is a constant, so evaluate now. */
    o->batched = 0;
    for (int i = 0; i < nin; i++)
        if (in[i] >= 0 && i == 0 && !net->v[in[i]].cdata)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): integer tensors are supported only as shapes and pads",
                           name, def->name);
    o->cdata = nm_alloc(ctx, (size_t)nm_shape_numel(&o->shape), sizeof(float));
    if (!o->cdata) return NM_ERR_NOMEM;
    nm_pass p = {.ctx = ctx, .net = net};
    for (int i = 0; i < nin; i++) {
        if (in[i] < 0) continue;
        p.x[i] = net->v[in[i]].cdata;
        p.xs[i] = net->v[in[i]].shape;
        p.ix[i] = net->v[in[i]].idata;
    }
    p.y = o->cdata;
    p.ys = o->shape;
    st = def->forward(nd, &p);
    if (st != NM_OK) return st;
    net->nn--; /* the node is folded away; its output stays as a constant */
    nm_free(ctx, nd->name);
    return out;
}

nm_status nm_net_set_output(nm_ctx *ctx, nm_net *net, int value)
{
    if (value < 0 || value >= net->nv) return nm_fail(ctx, NM_ERR_ARG, "output value %d does not exist", value);
    if (!net->v[value].varying || net->nn == 0)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "output '%s' does not depend on the input", net->v[value].name);
    if (net->node[net->nn - 1].out != value)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "output '%s' must be written by the last node", net->v[value].name);
    for (int k = 0; k + 1 < net->nn; k++) {
        nm_op op = net->node[k].op;
        if (op == NM_OP_SOFTMAX || op == NM_OP_LOGSOFTMAX)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): supported only as the final node", net->node[k].name,
                           nm_op_name(op));
    }
    net->output = value;
    return NM_OK;
}

/* ---------------------------------------------------------------- passes */

int nm_net_range_input(const nm_net *net, int first)
{
    return first == 0 ? net->input : net->node[first - 1].out;
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
        if ((st = nm_op_table[nd->op]->forward(nd, &p)) != NM_OK) return st;
    }
    net->rec_first = first;
    net->rec_last = last;
    return NM_OK;
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
                if (nd->in[i] >= 0 && (nm_op_table[nd->op]->trainable >> i & 1u)) p.gp[i] = net->v[nd->in[i]].pg;
        if ((st = nm_op_table[nd->op]->vjp(nd, &p)) != NM_OK) return st;
    }
    return NM_OK;
}

/* ---------------------------------------------------------------- public queries */

int nm_net_node_count(const nm_net *net)
{
    return net->nn;
}

void nm_net_input_shape(const nm_net *net, int *ndim, int64_t shape[NM_MAX_DIMS])
{
    const nm_value *v = &net->v[net->input];
    *ndim = v->shape.ndim;
    memcpy(shape, v->shape.d, sizeof(int64_t) * (size_t)v->shape.ndim);
}

int nm_net_batchable(const nm_net *net)
{
    for (int k = 0; k < net->nn; k++)
        if (!net->v[net->node[k].out].batched) return 0;
    return 1;
}

static int64_t node_params(const nm_net *net, const nm_node *nd)
{
    int64_t n = 0;
    for (int i = 0; i < nd->nin; i++)
        if (nd->in[i] >= 0 && !net->v[nd->in[i]].varying && net->v[nd->in[i]].cdata)
            n += nm_shape_numel(&net->v[nd->in[i]].shape);
    return n;
}

nm_status nm_net_node_info(nm_ctx *ctx, const nm_net *net, int i, nm_node_info *out)
{
    if (i < 0 || i >= net->nn) return nm_fail(ctx, NM_ERR_ARG, "node %d outside 0..%d", i, net->nn - 1);
    const nm_node *nd = &net->node[i];
    const nm_value *o = &net->v[nd->out];
    memset(out, 0, sizeof *out);
    out->name = nd->name;
    out->op = nm_op_name(nd->op);
    out->output = o->name;
    out->ndim = o->shape.ndim;
    memcpy(out->shape, o->shape.d, sizeof(int64_t) * (size_t)o->shape.ndim);
    out->params = node_params(net, nd);
    out->batched = o->batched;
    out->relu_index = 0;
    for (int k = 0; k <= i && nd->op == NM_OP_RELU; k++) out->relu_index += net->node[k].op == NM_OP_RELU;
    return NM_OK;
}

int64_t nm_net_param_count(const nm_net *net)
{
    int64_t n = 0;
    for (int k = 0; k < net->nn; k++) n += node_params(net, &net->node[k]);
    return n;
}

int nm_net_relu_count(const nm_net *net)
{
    int n = 0;
    for (int k = 0; k < net->nn; k++) n += net->node[k].op == NM_OP_RELU;
    return n;
}

int nm_net_relu_node(const nm_net *net, int l)
{
    for (int k = 0; k < net->nn; k++)
        if (net->node[k].op == NM_OP_RELU && --l == 0) return k;
    return -1;
}

int nm_net_logits_node(const nm_net *net)
{
    int last = net->nn - 1;
    nm_op op = net->node[last].op;
    return (op == NM_OP_SOFTMAX || op == NM_OP_LOGSOFTMAX) && last > 0 ? last - 1 : last;
}

const char *nm_net_meta(const nm_net *net, const char *key)
{
    for (int i = 0; i < net->nmeta; i++)
        if (strcmp(net->meta_key[i], key) == 0) return net->meta_val[i];
    return NULL;
}

nm_status nm_net_set_meta(nm_ctx *ctx, nm_net *net, const char *key, const char *value)
{
    char *v = dup_str(ctx, value);
    if (!v) return NM_ERR_NOMEM;
    for (int i = 0; i < net->nmeta; i++)
        if (strcmp(net->meta_key[i], key) == 0) {
            nm_free(ctx, net->meta_val[i]);
            net->meta_val[i] = v;
            return NM_OK;
        }
    char *k = dup_str(ctx, key);
    char **nk = nm_alloc(ctx, (size_t)net->nmeta + 1, sizeof(char *));
    char **nv = nm_alloc(ctx, (size_t)net->nmeta + 1, sizeof(char *));
    if (!k || !nk || !nv) {
        nm_free(ctx, v);
        nm_free(ctx, k);
        nm_free(ctx, nk);
        nm_free(ctx, nv);
        return NM_ERR_NOMEM;
    }
    if (net->nmeta) {
        memcpy(nk, net->meta_key, sizeof(char *) * (size_t)net->nmeta);
        memcpy(nv, net->meta_val, sizeof(char *) * (size_t)net->nmeta);
    }
    nm_free(ctx, net->meta_key);
    nm_free(ctx, net->meta_val);
    net->meta_key = nk;
    net->meta_val = nv;
    nk[net->nmeta] = k;
    nv[net->nmeta] = v;
    net->nmeta++;
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
