/*
 * onnx_import.c — ONNX ModelProto → nm_net. Initializers and Constant nodes
 * become constants (float, or int64 for shapes and pads); the one graph
 * input that is not an initializer becomes the net input; each node is
 * mapped to an op of the table with its attributes checked by name, so an
 * unsupported op, attribute or type is an error naming the node, the op and
 * the attribute (attributes: onnx_attrs.c). Shapes are inferred and constants folded as nodes are
 * added (src/net.c). Opsets 7–17 of the default domain, and the legacy
 * attributes of the same ops before opset 7 (consumed_inputs, broadcast,
 * is_test, Pad's paddings, Reshape's shape attribute) where they mean the
 * same computation.
 */
#include "onnx_import.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NM_OPSET_MIN 1
#define NM_OPSET_MAX 17
#define NM_FOLD_GROWTH 64                 /* a folded constant may take 64 times the model's bytes, */
#define NM_FOLD_FLOOR ((size_t)64 << 20)  /* and 64 MiB whatever the model's size */

static int64_t opset_of(const Onnx__ModelProto *m)
{
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const char *d = m->opset_import[i]->domain;
        if (!d || !*d || strcmp(d, "ai.onnx") == 0) return m->opset_import[i]->version;
    }
    return -1;
}

/* ---------------------------------------------------------------- tensors */

/* Integer tensors (INT64, INT32, BOOL, UINT8, INT8) as int64, with the
 * element count checked against the data before allocating. */
nm_status nm_onnx_int_tensor(nm_ctx *ctx, const Onnx__TensorProto *t, const char *what, int64_t numel, int64_t **out)
{
    size_t esize;
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: esize = 8; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: esize = 4; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: esize = 1; break;
    default: return nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s: element type %d is not supported", what, (int)t->data_type);
    }
    int64_t have = t->has_raw_data ? (int64_t)(t->raw_data.len / esize)
                   : esize == 8 ? (int64_t)t->n_int64_data : (int64_t)t->n_int32_data;
    if ((t->has_raw_data && t->raw_data.len % esize) || have != numel)
        return nm_fail(ctx, NM_ERR_FORMAT, "%s: dims give %lld elements but the data holds %lld", what, (long long)numel,
                       (long long)have);
    int64_t *v = nm_alloc(ctx, (size_t)(numel ? numel : 1), sizeof(int64_t));
    if (!v) return NM_ERR_NOMEM;
    const uint8_t *raw = t->raw_data.data;
    for (int64_t i = 0; i < numel; i++) {
        if (!t->has_raw_data) {
            v[i] = esize == 8 ? t->int64_data[i] : t->int32_data[i];
        } else if (esize == 8) {
            memcpy(&v[i], raw + 8 * i, 8);
        } else if (esize == 4) {
            int32_t w;
            memcpy(&w, raw + 4 * i, 4);
            v[i] = w;
        } else {
            v[i] = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ? (int8_t)raw[i] : raw[i];
        }
    }
    *out = v;
    return NM_OK;
}

/* Adds tensor t as a constant named name; returns the value index or a status. */
static int add_tensor(nm_ctx *ctx, nm_net *net, const Onnx__TensorProto *t, const char *name)
{
    if (t->n_dims > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "tensor '%s': rank %zu exceeds %d", name, t->n_dims, NM_MAX_DIMS);
    nm_shape s = {(int)t->n_dims, {0}};
    int64_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        s.d[i] = t->dims[i];
        if (t->dims[i] < 0 || (t->dims[i] && numel > ((int64_t)1 << 40) / t->dims[i]))
            return nm_fail(ctx, NM_ERR_FORMAT, "tensor '%s': dimension %lld is negative or the tensor exceeds 2^40 elements",
                           name, (long long)t->dims[i]);
        numel *= t->dims[i];
    }
    if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
        nm_array a;
        nm_status st = nm_onnx_tensor_to_array(ctx, t, name, &a);
        if (st != NM_OK) return st;
        float *f = a.data;
        if (a.dtype == NM_F64) { /* narrow in place: floats fit in the doubles' buffer */
            const double *d = a.data;
            for (int64_t i = 0; i < numel; i++) f[i] = (float)d[i];
        }
        for (int64_t i = 0; i < numel; i++)
            if (!isfinite(f[i])) {
                nm_free(ctx, f);
                return nm_fail(ctx, NM_ERR_NONFINITE, "tensor '%s': non-finite value at flat index %lld", name, (long long)i);
            }
        return nm_net_add_const(ctx, net, name, &s, f, NULL);
    }
    int64_t *iv = NULL;
    nm_status st = nm_onnx_int_tensor(ctx, t, name, numel, &iv);
    if (st != NM_OK) return st;
    return nm_net_add_const(ctx, net, name, &s, NULL, iv);
}

/* Reads a graph input's declared float tensor shape; a symbolic first axis reads as 1. */
static nm_status input_shape(nm_ctx *ctx, const Onnx__ValueInfoProto *vi, nm_shape *s)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "graph input '%s' is not a tensor", vi->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "graph input '%s': element type %d is not supported (need FLOAT)", vi->name,
                       (int)tt->elem_type);
    if (!tt->shape) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "graph input '%s' declares no shape", vi->name);
    if (tt->shape->n_dim > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "graph input '%s': rank %zu exceeds %d", vi->name, tt->shape->n_dim, NM_MAX_DIMS);
    s->ndim = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) s->d[i] = d->dim_value;
        else if (i == 0) s->d[i] = 1;
        else return nm_fail(ctx, NM_ERR_UNSUPPORTED, "graph input '%s': axis %zu is symbolic (only the batch axis may be)", vi->name, i);
    }
    return NM_OK;
}

/* A Constant node: its value attribute becomes a constant value. */
static int constant_node(nm_ctx *ctx, nm_net *net, const Onnx__NodeProto *n)
{
    if (n->n_attribute != 1)
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Constant): needs exactly one value attribute", n->name);
    const attr_t *at = n->attribute[0];
    const char *name = n->output[0];
    if (nm_onnx_attr_is(at, "value") && at->t) return add_tensor(ctx, net, at->t, name);
    if (nm_onnx_attr_is(at, "value_float") || nm_onnx_attr_is(at, "value_floats")) {
        int scalar = nm_onnx_attr_is(at, "value_float");
        size_t cnt = scalar ? 1 : at->n_floats;
        float *f = nm_alloc(ctx, cnt ? cnt : 1, sizeof(float));
        if (!f) return NM_ERR_NOMEM;
        if (scalar) f[0] = at->f;
        else memcpy(f, at->floats, cnt * sizeof(float));
        nm_shape s = {scalar ? 0 : 1, {(int64_t)cnt}};
        return nm_net_add_const(ctx, net, name, &s, f, NULL);
    }
    if (nm_onnx_attr_is(at, "value_int") || nm_onnx_attr_is(at, "value_ints")) {
        int scalar = nm_onnx_attr_is(at, "value_int");
        size_t cnt = scalar ? 1 : at->n_ints;
        int64_t *v = nm_alloc(ctx, cnt ? cnt : 1, sizeof(int64_t));
        if (!v) return NM_ERR_NOMEM;
        if (scalar) v[0] = at->i;
        else memcpy(v, at->ints, cnt * sizeof(int64_t));
        nm_shape s = {scalar ? 0 : 1, {(int64_t)cnt}};
        return nm_net_add_const(ctx, net, name, &s, NULL, v);
    }
    return nm_onnx_bad_attr(ctx, n, at, "is not supported");
}

/* ---------------------------------------------------------------- graph */

/* Legacy attributes that later opsets made inputs (Reshape's 'shape'
 * before opset 5): where the node lacks the input, the attribute's integers
 * become a constant "<node>.<attribute>" appended as that input. */
static nm_status legacy_inputs(nm_ctx *ctx, nm_net *net, const Onnx__NodeProto *n, nm_op op, int *in, int *nin)
{
    for (const nm_attr_def *d = nm_op_table[op]->attrs; d && d->name; d++) {
        if (d->kind != NM_ATTR_INPUT || *nin != d->count) continue;
        for (size_t k = 0; k < n->n_attribute; k++) {
            const attr_t *at = n->attribute[k];
            if (!nm_onnx_attr_is(at, d->name)) continue;
            int64_t *v = nm_alloc(ctx, at->n_ints ? at->n_ints : 1, sizeof(int64_t));
            if (!v) return NM_ERR_NOMEM;
            memcpy(v, at->ints, at->n_ints * sizeof(int64_t));
            char name[300];
            snprintf(name, sizeof name, "%s.%s", n->name, d->name);
            nm_shape s = {1, {(int64_t)at->n_ints}};
            int c = nm_net_add_const(ctx, net, name, &s, NULL, v);
            if (c < 0) return (nm_status)c;
            in[(*nin)++] = c;
        }
    }
    return NM_OK;
}

static nm_status add_nodes(nm_ctx *ctx, nm_net *net, const Onnx__GraphProto *g, int64_t opset)
{
    for (size_t k = 0; k < g->n_node; k++) {
        Onnx__NodeProto *n = g->node[k];
        char autoname[64], *given = n->name;
        if (!n->name || !*n->name) { /* nameless nodes are common: name them by position */
            snprintf(autoname, sizeof autoname, "%s_%zu", n->op_type ? n->op_type : "node", k);
            n->name = autoname;
        }
        nm_status st = NM_OK;
        int op = nm_op_find(n->op_type);
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0)
            st = nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s': op %s of domain '%s' is not supported", n->name, n->op_type, n->domain);
        else if (op < 0 && strcmp(n->op_type, "Constant") != 0)
            st = nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s': op %s is not supported", n->name, n->op_type);
        else if (n->n_output < 1 || !*n->output[0])
            st = nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s) has no output", n->name, n->op_type);
        for (size_t o = 1; st == NM_OK && o < n->n_output; o++)
            if (*n->output[o])
                st = nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): output %zu ('%s') is not supported (only the first output is)",
                             n->name, n->op_type, o, n->output[o]);
        if (st == NM_OK && strcmp(n->op_type, "Constant") == 0) {
            int v = constant_node(ctx, net, n);
            st = v < 0 ? (nm_status)v : NM_OK;
        } else if (st == NM_OK) {
            int in[NM_NODE_MAX_IN];
            nm_attrs a;
            if (n->n_input > NM_NODE_MAX_IN)
                st = nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): %zu inputs", n->name, n->op_type, n->n_input);
            int nin = (int)n->n_input;
            for (size_t i = 0; st == NM_OK && i < n->n_input; i++) {
                in[i] = *n->input[i] ? nm_net_find_value(net, n->input[i]) : -1;
                if (*n->input[i] && in[i] < 0)
                    st = nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): input '%s' is not defined (a missing initializer?)",
                                 n->name, n->op_type, n->input[i]);
            }
            if (st == NM_OK) st = nm_onnx_parse_attrs(ctx, n, (nm_op)op, opset, &a);
            if (st == NM_OK) st = legacy_inputs(ctx, net, n, (nm_op)op, in, &nin);
            if (st == NM_OK) {
                int v = nm_net_add_node(ctx, net, (nm_op)op, n->name, n->output[0], nin, in, &a);
                st = v < 0 ? (nm_status)v : NM_OK;
            }
        }
        n->name = given; /* the model owns only its own strings */
        if (st != NM_OK) return st;
    }
    return NM_OK;
}

/* Every reason the model cannot run, at once (issue 13): the op types not
 * supported, with their counts, and the attributes the supported ops do not
 * know. NM_OK when there is none. */
static nm_status scan_support(nm_ctx *ctx, const Onnx__GraphProto *g)
{
    enum { MAX_TYPES = 32, MAX_ATTRS = 12 };
    const char *types[MAX_TYPES];
    int counts[MAX_TYPES] = {0}, nt = 0, na = 0, more_types = 0, more_attrs = 0;
    char attrs[MAX_ATTRS][160];
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        int op = nm_op_find(n->op_type);
        if (op < 0 && strcmp(n->op_type, "Constant") != 0) {
            int t = 0;
            while (t < nt && strcmp(types[t], n->op_type)) t++;
            if (t == nt && nt < MAX_TYPES) types[nt++] = n->op_type;
            if (t < nt) counts[t]++;
            else more_types = 1;
            continue;
        }
        for (size_t i = 0; op >= 0 && i < n->n_attribute; i++) {
            const attr_t *at = n->attribute[i];
            const nm_attr_def *d = nm_op_table[op]->attrs;
            while (d && d->name && strcmp(d->name, at->name)) d++;
            if (nm_onnx_attr_is(at, "consumed_inputs") || (d && d->name)) continue;
            if (na < MAX_ATTRS) snprintf(attrs[na++], sizeof attrs[0], "%s.%s (node '%.80s')", n->op_type, at->name, n->name ? n->name : "");
            else more_attrs = 1;
        }
    }
    if (!nt && !na) return NM_OK;
    char msg[sizeof ctx->message];
    size_t o = 0;
    if (nt) o += (size_t)snprintf(msg + o, sizeof msg - o, "ops not supported:");
    for (int t = 0; t < nt && o < sizeof msg; t++) o += (size_t)snprintf(msg + o, sizeof msg - o, " %s (x%d)%s", types[t], counts[t], t + 1 < nt ? "," : "");
    if (more_types && o < sizeof msg) o += (size_t)snprintf(msg + o, sizeof msg - o, " and more");
    if (na && o < sizeof msg) o += (size_t)snprintf(msg + o, sizeof msg - o, "%sattributes not supported:", nt ? "; " : "");
    for (int i = 0; i < na && o < sizeof msg; i++) o += (size_t)snprintf(msg + o, sizeof msg - o, " %s%s", attrs[i], i + 1 < na ? "," : "");
    if (more_attrs && o < sizeof msg) snprintf(msg + o, sizeof msg - o, " and more");
    return nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s (netmoments ops lists what is)", msg);
}

/* The strings the importer reads unguarded must be present (protobuf-c
 * leaves absent optional strings NULL). */
static nm_status check_strings(nm_ctx *ctx, const Onnx__GraphProto *g)
{
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        if (!n->op_type) return nm_fail(ctx, NM_ERR_FORMAT, "node %zu has no op_type", k);
        for (size_t a = 0; a < n->n_attribute; a++)
            if (!n->attribute[a]->name) return nm_fail(ctx, NM_ERR_FORMAT, "node %zu (%s): an attribute has no name", k, n->op_type);
    }
    for (size_t i = 0; i < g->n_initializer; i++)
        if (!g->initializer[i]->name) return nm_fail(ctx, NM_ERR_FORMAT, "initializer %zu has no name", i);
    for (size_t i = 0; i < g->n_input; i++)
        if (!g->input[i]->name) return nm_fail(ctx, NM_ERR_FORMAT, "graph input %zu has no name", i);
    for (size_t i = 0; i < g->n_output; i++)
        if (!g->output[i]->name) return nm_fail(ctx, NM_ERR_FORMAT, "graph output %zu has no name", i);
    return NM_OK;
}

nm_status nm_net_from_model(nm_ctx *ctx, const Onnx__ModelProto *m, int nbind, const char *const *names,
                            const Onnx__TensorProto *const *tensors, nm_net **out)
{
    *out = NULL;
    const Onnx__GraphProto *g = m->graph;
    nm_status st = check_strings(ctx, g);
    if (st == NM_OK) st = scan_support(ctx, g);
    if (st != NM_OK) return st;
    int64_t opset = opset_of(m);
    if (opset < NM_OPSET_MIN || opset > NM_OPSET_MAX)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "opset %lld of the default domain is not supported (need %d to %d)",
                       (long long)opset, NM_OPSET_MIN, NM_OPSET_MAX);
    nm_net *net = nm_net_new(ctx);
    if (!net) return NM_ERR_NOMEM;
    net->opset = opset;
    /* constants folded at load may grow the model (shapes, small broadcasts), but not without bound */
    size_t bytes = protobuf_c_message_get_packed_size(&m->base);
    net->fold_limit = bytes < NM_FOLD_FLOOR / NM_FOLD_GROWTH ? NM_FOLD_FLOOR : NM_FOLD_GROWTH * bytes;
    for (size_t i = 0; st == NM_OK && i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        int v = add_tensor(ctx, net, t, t->name);
        if (v < 0) st = (nm_status)v;
    }
    for (size_t i = 0; st == NM_OK && i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (nm_net_find_value(net, vi->name) >= 0) continue; /* an initializer listed as input (IR < 4) */
        int v = -1;
        for (int b = 0; b < nbind; b++)
            if (strcmp(names[b], vi->name) == 0) v = add_tensor(ctx, net, tensors[b], vi->name);
        if (v == -1 && net->input < 0) {
            nm_shape s;
            st = input_shape(ctx, vi, &s);
            if (st == NM_OK) v = nm_net_add_input(ctx, net, vi->name, &s);
        } else if (v == -1) {
            st = nm_fail(ctx, NM_ERR_UNSUPPORTED, "graph input '%s' is a second input (a net has one input; the others must be initializers)",
                         vi->name);
        }
        if (st == NM_OK && v < 0) st = (nm_status)v;
    }
    if (st == NM_OK && net->input < 0) st = nm_fail(ctx, NM_ERR_UNSUPPORTED, "the graph has no input");
    if (st == NM_OK) st = add_nodes(ctx, net, g, opset);
    if (st == NM_OK && g->n_output != 1)
        st = nm_fail(ctx, NM_ERR_UNSUPPORTED, "the graph has %zu outputs (one is supported)", g->n_output);
    if (st == NM_OK) {
        int v = nm_net_find_value(net, g->output[0]->name);
        st = v < 0 ? nm_fail(ctx, NM_ERR_FORMAT, "graph output '%s' is not computed", g->output[0]->name)
                   : nm_net_set_output(ctx, net, v);
    }
    for (size_t i = 0; st == NM_OK && i < m->n_metadata_props; i++)
        if (m->metadata_props[i]->key && m->metadata_props[i]->value)
            st = nm_net_set_meta(ctx, net, m->metadata_props[i]->key, m->metadata_props[i]->value);
    if (st != NM_OK) {
        nm_net_free(ctx, net);
        return st;
    }
    *out = net;
    return NM_OK;
}

/* Converts a parsed model; on failure the message is prefixed with origin. */
static nm_status load_model(nm_ctx *ctx, Onnx__ModelProto *m, const char *origin, nm_net **out)
{
    nm_status st = nm_net_from_model(ctx, m, 0, NULL, NULL, out);
    nm_onnx_model_free(ctx, m);
    if (st != NM_OK) {
        char msg[sizeof ctx->message];
        snprintf(msg, sizeof msg, "%s", ctx->message);
        nm_fail(ctx, st, "%s: %s", origin, msg);
    }
    return st;
}

nm_status nm_net_read_onnx(nm_ctx *ctx, const char *path, nm_net **out)
{
    if (!ctx || !path || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    *out = NULL;
    Onnx__ModelProto *m;
    nm_status st = nm_onnx_model_read(ctx, path, &m);
    return st == NM_OK ? load_model(ctx, m, path, out) : st;
}

nm_status nm_net_read_onnx_memory(nm_ctx *ctx, const void *data, size_t len, nm_net **out)
{
    if (!ctx || (!data && len) || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    *out = NULL;
    Onnx__ModelProto *m;
    nm_status st = nm_onnx_model_parse(ctx, data, len, &m);
    return st == NM_OK ? load_model(ctx, m, "model", out) : st;
}
