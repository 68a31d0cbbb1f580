/*
 * onnx_export.c — nm_net → ONNX model file (opset 13, IR 7), so trained
 * nets can be written and read back. Constants become initializers (float32
 * or int64, raw_data); attributes are written as resolved (explicit pads,
 * never auto_pad) by each op's attribute list (net.h), and the constant
 * inputs opset 13 wants in place of older attributes (Pad's pads and fill)
 * come from the op's export hook; the batch axis of the input and output is symbolic ("N")
 * when the net is batchable and was loaded at batch 1; metadata_props are kept. Every protobuf
 * structure is built in an arena and released after packing.
 */
#include "../net.h"
#include "onnx.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NM_EXPORT_OPSET 13

typedef struct {
    nm_ctx *ctx;
    void **p;
    size_t n, cap;
    int failed;
} arena;

static void *aalloc(arena *ar, size_t size)
{
    if (ar->failed) return NULL;
    if (ar->n == ar->cap) {
        size_t nc = ar->cap ? 2 * ar->cap : 256;
        void **np = nm_alloc(ar->ctx, nc, sizeof(void *));
        if (!np) {
            ar->failed = 1;
            return NULL;
        }
        if (ar->n) memcpy(np, ar->p, ar->n * sizeof(void *));
        nm_free(ar->ctx, ar->p);
        ar->p = np;
        ar->cap = nc;
    }
    void *q = nm_alloc_zero(ar->ctx, 1, size ? size : 1);
    if (!q) {
        ar->failed = 1;
        return NULL;
    }
    return ar->p[ar->n++] = q;
}

static char *astr(arena *ar, const char *s)
{
    char *d = aalloc(ar, strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static void arena_free(arena *ar)
{
    for (size_t i = 0; i < ar->n; i++) nm_free(ar->ctx, ar->p[i]);
    nm_free(ar->ctx, ar->p);
}

/* ---- attributes ---- */

static Onnx__AttributeProto *attr_new(arena *ar, const char *name, Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = aalloc(ar, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = astr(ar, name);
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *attr_ints(arena *ar, const char *name, size_t n, const int64_t *v)
{
    Onnx__AttributeProto *a = attr_new(ar, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = aalloc(ar, n * sizeof(int64_t));
    if (!a || !d) return NULL;
    memcpy(d, v, n * sizeof(int64_t));
    a->n_ints = n;
    a->ints = d;
    return a;
}

static Onnx__AttributeProto *attr_int(arena *ar, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(ar, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_string(arena *ar, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr_new(ar, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *d = astr(ar, v);
    if (!a || !d) return NULL;
    a->has_s = 1;
    a->s.len = strlen(d);
    a->s.data = (uint8_t *)d;
    return a;
}

static Onnx__AttributeProto *attr_float(arena *ar, const char *name, float v)
{
    Onnx__AttributeProto *a = attr_new(ar, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
    return a;
}

/* Fills at[] with the attributes of nd that its op's list marks as
 * written, in list order; returns how many (0 on an arena failure, which
 * the caller reports). */
static int node_attrs(arena *ar, const nm_node *nd, Onnx__AttributeProto **at)
{
    int n = 0;
    for (const nm_attr_def *d = nm_op_table[nd->op]->attrs; d && d->name; d++) {
        if (!d->write) continue;
        const char *f = (const char *)&nd->a + d->offset;
        const int64_t *v = (const int64_t *)f;
        if (d->kind == NM_ATTR_FLOAT) at[n++] = attr_float(ar, d->name, *(const float *)f);
        else if (d->kind == NM_ATTR_INTS && d->window && nd->a.spatial == 1) /* a 1-D window: its second axis */
            at[n++] = attr_ints(ar, d->name, (size_t)d->count / 2, d->count == 4 ? (const int64_t[]){v[1], v[3]} : &v[1]);
        else if (d->kind == NM_ATTR_INTS) at[n++] = attr_ints(ar, d->name, (size_t)d->count, v);
        else if (d->kind == NM_ATTR_LIST) at[n++] = attr_ints(ar, d->name, (size_t)*(const int64_t *)((const char *)&nd->a + d->count_offset), v);
        else if (d->kind == NM_ATTR_ENUM) at[n++] = attr_string(ar, d->name, d->names[*v]);
        else at[n++] = attr_int(ar, d->name, *v);
    }
    for (int i = 0; i < n; i++)
        if (!at[i]) return 0;
    return n;
}

/* ---- tensors ---- */

static Onnx__TensorProto *tensor_new(arena *ar, const char *name, const nm_shape *s, const float *f, const int64_t *iv)
{
    Onnx__TensorProto *t = aalloc(ar, sizeof *t);
    int64_t *dims = aalloc(ar, (size_t)(s->ndim ? s->ndim : 1) * sizeof(int64_t));
    size_t n = (size_t)nm_shape_numel(s), bytes = n * (f ? sizeof(float) : sizeof(int64_t));
    uint8_t *raw = aalloc(ar, bytes);
    if (!t || !dims || !raw) return NULL;
    onnx__tensor_proto__init(t);
    t->name = astr(ar, name);
    t->n_dims = (size_t)s->ndim;
    memcpy(dims, s->d, (size_t)s->ndim * sizeof(int64_t));
    t->dims = dims;
    t->has_data_type = 1;
    t->data_type = f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    memcpy(raw, f ? (const void *)f : (const void *)iv, bytes); /* little-endian, as ONNX raw_data is */
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = raw;
    return t;
}

static Onnx__ValueInfoProto *value_info(arena *ar, const nm_value *v, int symbolic_batch)
{
    Onnx__ValueInfoProto *vi = aalloc(ar, sizeof *vi);
    Onnx__TypeProto *tp = aalloc(ar, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = aalloc(ar, sizeof *tt);
    Onnx__TensorShapeProto *sh = aalloc(ar, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = aalloc(ar, (size_t)(v->shape.ndim + 1) * sizeof *dims);
    if (!vi || !tp || !tt || !sh || !dims) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < v->shape.ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = aalloc(ar, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0 && symbolic_batch) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = astr(ar, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = v->shape.d[i];
        }
        dims[i] = d;
    }
    sh->n_dim = (size_t)v->shape.ndim;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = astr(ar, v->name);
    vi->type = tp;
    return vi;
}

/* ---- the model ---- */

/* What the node loop fills: the initializers written so far, once each. */
typedef struct {
    Onnx__TensorProto **inits;
    size_t ninit;
    char *written; /* per value */
} init_list;

/* Node nd as a NodeProto, its constant inputs appended to the initializers. */
static nm_status build_node(nm_ctx *ctx, arena *ar, const nm_net *net, const nm_node *nd, init_list *il, Onnx__NodeProto **out)
{
    const nm_op_def *def = nm_op_table[nd->op];
    const char *why = def->export_refusal ? def->export_refusal(net, nd) : NULL;
    if (why)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s) cannot be written at opset %d: %s", nd->name, nm_op_name(nd->op),
                       NM_EXPORT_OPSET, why);
    Onnx__NodeProto *n = aalloc(ar, sizeof *n);
    char **ins = aalloc(ar, (NM_NODE_MAX_IN + 2) * sizeof(char *)), **outs = aalloc(ar, sizeof(char *));
    int nattr = 1;
    for (const nm_attr_def *d = def->attrs; d && d->name; d++) nattr++;
    Onnx__AttributeProto **at = aalloc(ar, (size_t)nattr * sizeof *at);
    if (!n || !ins || !outs || !at) return NM_ERR_NOMEM;
    onnx__node_proto__init(n);
    n->name = astr(ar, nd->name);
    n->op_type = astr(ar, nm_op_name(nd->op));
    int nin = def->export_inputs ? def->export_inputs : nd->nin;
    for (int i = 0; i < nin; i++) {
        int v = nd->in[i];
        ins[i] = astr(ar, v >= 0 ? net->v[v].name : "");
        if (v >= 0 && !net->v[v].varying && !il->written[v]) {
            const nm_value *c = &net->v[v];
            if (!(il->inits[il->ninit++] = tensor_new(ar, c->name, &c->shape, c->cdata, c->idata))) return NM_ERR_NOMEM;
            il->written[v] = 1;
        }
    }
    nm_export_input extra[2];
    int nx = def->export_extra ? def->export_extra(net, nd, extra) : 0;
    for (int i = 0; i < nx; i++) { /* constants that opset 13 takes as inputs */
        char name[300];
        snprintf(name, sizeof name, "%s.%s", nd->name, extra[i].suffix);
        if (!(il->inits[il->ninit++] = tensor_new(ar, name, &extra[i].shape, extra[i].f, extra[i].i))) return NM_ERR_NOMEM;
        ins[nin++] = astr(ar, name);
    }
    n->n_input = (size_t)nin;
    n->input = ins;
    outs[0] = astr(ar, net->v[nd->out].name);
    n->n_output = 1;
    n->output = outs;
    n->n_attribute = (size_t)node_attrs(ar, nd, at);
    n->attribute = at;
    *out = n;
    return NM_OK;
}

/* The graph's input and output, and the model's metadata_props. */
static nm_status build_io_meta(arena *ar, const nm_net *net, Onnx__GraphProto *g, Onnx__ModelProto *m)
{
    /* a symbolic batch reads back as 1, so it is written only where that is the loaded size */
    int sym = nm_net_batchable(net) && net->v[net->input].shape.d[0] == 1;
    Onnx__ValueInfoProto **gin = aalloc(ar, sizeof *gin), **gout = aalloc(ar, sizeof *gout);
    if (!gin || !gout || !(gin[0] = value_info(ar, &net->v[net->input], sym)) || !(gout[0] = value_info(ar, &net->v[net->output], sym)))
        return NM_ERR_NOMEM;
    g->n_input = g->n_output = 1;
    g->input = gin;
    g->output = gout;
    if (!net->nmeta) return NM_OK;
    Onnx__StringStringEntryProto **md = aalloc(ar, (size_t)net->nmeta * sizeof *md);
    if (!md) return NM_ERR_NOMEM;
    for (int i = 0; i < net->nmeta; i++) {
        if (!(md[i] = aalloc(ar, sizeof *md[i]))) return NM_ERR_NOMEM;
        onnx__string_string_entry_proto__init(md[i]);
        md[i]->key = astr(ar, net->meta_key[i]);
        md[i]->value = astr(ar, net->meta_val[i]);
    }
    m->n_metadata_props = (size_t)net->nmeta;
    m->metadata_props = md;
    return NM_OK;
}

static nm_status build(nm_ctx *ctx, arena *ar, const nm_net *net, Onnx__ModelProto *m)
{
    Onnx__GraphProto *g = aalloc(ar, sizeof *g);
    Onnx__OperatorSetIdProto *os = aalloc(ar, sizeof *os);
    Onnx__OperatorSetIdProto **osl = aalloc(ar, sizeof *osl);
    Onnx__NodeProto **nodes = aalloc(ar, (size_t)(net->nn + 1) * sizeof *nodes);
    init_list il = {aalloc(ar, (size_t)(net->nv + 2 * net->nn + 1) * sizeof(Onnx__TensorProto *)), 0, aalloc(ar, (size_t)net->nv + 1)};
    if (!g || !os || !osl || !nodes || !il.inits || !il.written) return NM_ERR_NOMEM;
    onnx__model_proto__init(m);
    onnx__graph_proto__init(g);
    onnx__operator_set_id_proto__init(os);
    os->domain = astr(ar, "");
    os->has_version = 1;
    os->version = NM_EXPORT_OPSET;
    osl[0] = os;
    m->has_ir_version = 1;
    m->ir_version = 7;
    m->n_opset_import = 1;
    m->opset_import = osl;
    m->producer_name = astr(ar, "netmoments");
    m->producer_version = astr(ar, NM_VERSION);
    m->graph = g;
    g->name = astr(ar, "netmoments");
    nm_status st = NM_OK;
    for (int k = 0; st == NM_OK && k < net->nn; k++) st = build_node(ctx, ar, net, &net->node[k], &il, &nodes[k]);
    if (st != NM_OK) return st;
    g->n_node = (size_t)net->nn;
    g->node = nodes;
    g->n_initializer = il.ninit;
    g->initializer = il.inits;
    if ((st = build_io_meta(ar, net, g, m)) != NM_OK) return st;
    return ar->failed ? NM_ERR_NOMEM : NM_OK;
}

nm_status nm_net_write_onnx(nm_ctx *ctx, const nm_net *net, const char *path)
{
    if (!ctx || !net || !path) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    if (net->output < 0) return nm_fail(ctx, NM_ERR_ARG, "the net has no output");
    arena ar = {ctx, NULL, 0, 0, 0};
    Onnx__ModelProto m;
    nm_status st = build(ctx, &ar, net, &m);
    if (st == NM_OK && ar.failed) st = NM_ERR_NOMEM;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (st == NM_OK) {
        len = protobuf_c_message_get_packed_size(&m.base);
        buf = nm_alloc(ctx, len, 1);
        if (!buf) st = NM_ERR_NOMEM;
        else protobuf_c_message_pack(&m.base, buf);
    }
    arena_free(&ar);
    nm_afile af;
    if (st == NM_OK && (st = nm_afile_open(ctx, path, &af)) == NM_OK) {
        if (fwrite(buf, 1, len, af.f) == len) st = nm_afile_commit(ctx, &af);
        else nm_afile_abort(&af), st = nm_fail(ctx, NM_ERR_IO, "%s: write failed", path);
    }
    nm_free(ctx, buf);
    return st;
}
