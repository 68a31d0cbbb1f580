/*
 * graph.c — building a net (net.h): values and nodes in topological order,
 * shape inference through each op's infer as a node is added, constant
 * folding of nodes whose inputs are all constant, copying a net, and the
 * public queries on the graph (node info, ReLU split points, metadata).
 */
#include "../net.h"

#include <stdio.h>
#include <string.h>

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

/* What a node's output takes must fit the context's memory budget (a
 * sample of it, for a batched value), and a folded constant the net's
 * folding limit: refused at load, before a pass allocates it. */
static nm_status check_size(nm_ctx *ctx, const nm_net *net, const nm_node *nd, const nm_value *o)
{
    int64_t n = nm_shape_numel(&o->shape);
    size_t bytes = (size_t)(o->batched && o->shape.d[0] ? n / o->shape.d[0] : n) * sizeof(float);
    size_t limit = nm_ctx_mem_limit(ctx), fold = !o->varying && net->fold_limit ? net->fold_limit : 0;
    char a[32], b[32], sh[128];
    if (limit && bytes > limit)
        return nm_fail(ctx, NM_ERR_NOMEM, "node '%s' (%s): its output %s takes %s%s, beyond the memory budget of %s", nd->name,
                       nm_op_name(nd->op), nm_shape_str(&o->shape, sh, sizeof sh), nm_human_bytes(bytes, a, sizeof a),
                       o->batched ? " a sample" : "", nm_human_bytes(limit, b, sizeof b));
    if (fold && bytes > fold)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): folding its constant inputs would make a constant %s of %s, more "
                       "than the model's size allows (%s)", nd->name, nm_op_name(nd->op), nm_shape_str(&o->shape, sh, sizeof sh),
                       nm_human_bytes(bytes, a, sizeof a), nm_human_bytes(fold, b, sizeof b));
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
    net->v[v].is_int = idata != NULL;
    return v;
}

int nm_net_add_node(nm_ctx *ctx, nm_net *net, nm_op op, const char *name, const char *out_name, int nin,
                    const int *in, const nm_attrs *a)
{
    const nm_op_def *def = nm_op_table[op];
    if (nin < def->min_inputs || nin > def->max_inputs)
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): %d inputs (expects %d to %d)", name, def->name, nin,
                       def->min_inputs, def->max_inputs);
    int varying = 0;
    for (int i = 0; i < nin; i++) {
        if (in[i] >= net->nv) return nm_fail(ctx, NM_ERR_ARG, "node '%s': input value %d does not exist", name, in[i]);
        /* integer tensors are read only where the op says (shapes, pads, modes, or data it moves); every other constant must be float */
        if (in[i] >= 0 && net->v[in[i]].is_int && !def->int_input[i] && !def->int_data)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): input %d ('%s') is an integer tensor where a float one is needed",
                           name, def->name, i, net->v[in[i]].name);
        if (in[i] < 0 && i < def->min_inputs)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): required input %d is missing", name, def->name, i);
        if (in[i] >= 0 && !def->shape_only) varying |= net->v[in[i]].varying;
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
    if (st == NM_OK) st = check_size(ctx, net, nd, o);
    if (st != NM_OK) return st;
    if (varying) {
        o->producer = net->nn - 1;
        return out;
    }
    /* Constant folding: every input is a constant (or only its shape is read), so evaluate now. */
    o->batched = 0;
    size_t numel = (size_t)nm_shape_numel(&o->shape);
    if (o->is_int ? !(o->idata = nm_alloc(ctx, numel ? numel : 1, sizeof(int64_t))) : !(o->cdata = nm_alloc(ctx, numel ? numel : 1, sizeof(float))))
        return NM_ERR_NOMEM;
    nm_pass p = {.ctx = ctx, .net = net};
    for (int i = 0; i < nin; i++) {
        if (in[i] < 0) continue;
        p.x[i] = net->v[in[i]].cdata;
        p.xs[i] = net->v[in[i]].shape;
        p.ix[i] = net->v[in[i]].idata;
    }
    p.y = o->cdata;
    p.iy = o->idata;
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
        if (nm_op_table[op]->final_only)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): supported only as the final node", net->node[k].name,
                           nm_op_name(op));
    }
    net->output = value;
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

/* Node k can split the net (DESIGN §1.6): a piecewise-linear activation up to
 * the logits whose input is the output of node k − 1, with no later node
 * reading a varying value computed before it (a skip around it would leave
 * the top part depending on more than its output). */
static int split_ok(const nm_net *net, int k)
{
    if (!nm_op_table[net->node[k].op]->split || k > nm_net_logits_node(net)) return 0;
    if (net->node[k].in[0] != nm_net_range_input(net, k)) return 0;
    for (int j = k + 1; j < net->nn; j++)
        for (int i = 0; i < net->node[j].nin; i++) {
            int v = net->node[j].in[i];
            if (v >= 0 && net->v[v].varying && net->v[v].producer < k) return 0;
        }
    return 1;
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
    for (int k = 0; k <= i && split_ok(net, i); k++) out->relu_index += split_ok(net, k);
    return NM_OK;
}

int64_t nm_net_param_count(const nm_net *net)
{
    int64_t n = 0;
    for (int k = 0; k < net->nn; k++) n += node_params(net, &net->node[k]);
    return n;
}

int nm_net_piecewise_linear(const nm_net *net)
{
    for (int k = 0; k <= nm_net_logits_node(net); k++) {
        const nm_op_def *def = nm_op_table[net->node[k].op];
        if (def->smooth || (def->nonlinear_node && def->nonlinear_node(net, &net->node[k]))) return 0;
    }
    return 1;
}

int nm_net_relu_count(const nm_net *net)
{
    int n = 0;
    for (int k = 0; k < net->nn; k++) n += split_ok(net, k);
    return n;
}

int nm_net_relu_node(const nm_net *net, int l)
{
    for (int k = 0; k < net->nn; k++)
        if (split_ok(net, k) && --l == 0) return k;
    return -1;
}

int nm_net_logits_node(const nm_net *net)
{
    int last = net->nn - 1;
    return nm_op_table[net->node[last].op]->final_only && last > 0 ? last - 1 : last;
}

const char *nm_net_get_meta(const nm_net *net, const char *key)
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


/* ---------------------------------------------------------------- copying */

static nm_status copy_value(nm_ctx *ctx, const nm_value *s, nm_value *d)
{
    memset(d, 0, sizeof *d);
    d->shape = s->shape;
    d->varying = s->varying;
    d->batched = s->batched;
    d->is_int = s->is_int;
    d->producer = s->producer;
    int64_t n = nm_shape_numel(&s->shape);
    if (!(d->name = dup_str(ctx, s->name))) return NM_ERR_NOMEM;
    if (s->cdata && !(d->cdata = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(float)))) return NM_ERR_NOMEM;
    if (s->idata && !(d->idata = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(int64_t)))) return NM_ERR_NOMEM;
    if (s->cdata) memcpy(d->cdata, s->cdata, (size_t)n * sizeof(float));
    if (s->idata) memcpy(d->idata, s->idata, (size_t)n * sizeof(int64_t));
    return NM_OK;
}

nm_status nm_net_copy(nm_ctx *ctx, const nm_net *src, nm_net **out)
{
    if (!ctx || !src || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    *out = NULL;
    nm_net *net = nm_net_new(ctx);
    if (!net) return NM_ERR_NOMEM;
    nm_status st = NM_OK;
    net->input = src->input;
    net->output = src->output;
    net->opset = src->opset;
    net->v = nm_alloc_zero(ctx, (size_t)(src->nv ? src->nv : 1), sizeof(nm_value));
    net->node = nm_alloc_zero(ctx, (size_t)(src->nn ? src->nn : 1), sizeof(nm_node));
    if (!net->v || !net->node) st = NM_ERR_NOMEM;
    else net->nv_cap = src->nv ? src->nv : 1, net->nn_cap = src->nn ? src->nn : 1;
    for (int i = 0; st == NM_OK && i < src->nv; i++) { /* counted as it goes, so nm_net_free releases what was copied */
        st = copy_value(ctx, &src->v[i], &net->v[i]);
        net->nv++;
    }
    for (int i = 0; st == NM_OK && i < src->nn; i++) {
        net->node[i] = src->node[i];
        if (!(net->node[i].name = dup_str(ctx, src->node[i].name))) st = NM_ERR_NOMEM;
        net->nn++;
    }
    for (int i = 0; st == NM_OK && i < src->nmeta; i++) st = nm_net_set_meta(ctx, net, src->meta_key[i], src->meta_val[i]);
    if (st != NM_OK) {
        nm_net_free(ctx, net);
        return st;
    }
    *out = net;
    return NM_OK;
}
