/*
 * onnx_attrs.c — ONNX node attributes into an op's nm_attrs, by the op's
 * attribute list (the op files of src/ops): each attribute checked by name, kind and
 * count, defaults and opset-dependent defaults first; an unsupported one is
 * an error naming the node, the op and the attribute.
 */
#include "onnx_import.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

nm_status nm_onnx_bad_attr(nm_ctx *ctx, const Onnx__NodeProto *n, const attr_t *at, const char *why)
{
    return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): attribute '%s' %s", n->name, n->op_type, at->name, why);
}

int nm_onnx_attr_is(const attr_t *at, const char *name)
{
    return strcmp(at->name, name) == 0;
}

static int is_string(const attr_t *at, const char *s)
{
    return at->has_s && at->s.len == strlen(s) && memcmp(at->s.data, s, at->s.len) == 0;
}

/* A one-element tensor attribute (ConstantOfShape's value) as a double, and whether it is an integer. */
static nm_status scalar_attr(nm_ctx *ctx, const Onnx__NodeProto *n, const attr_t *at, double *v, int64_t *is_int)
{
    const Onnx__TensorProto *t = at->t;
    if (!t) return nm_onnx_bad_attr(ctx, n, at, "is not a tensor");
    int64_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) numel *= t->dims[i] >= 0 && t->dims[i] <= 1 ? t->dims[i] : 2;
    if (numel != 1) return nm_onnx_bad_attr(ctx, n, at, "must hold one value");
    *is_int = !(t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE);
    if (!*is_int) {
        nm_array arr;
        nm_status st = nm_onnx_tensor_to_array(ctx, t, n->name, &arr);
        if (st != NM_OK) return st;
        *v = arr.dtype == NM_F64 ? ((double *)arr.data)[0] : ((float *)arr.data)[0];
        nm_array_free(ctx, &arr);
        return isfinite(*v) ? NM_OK : nm_onnx_bad_attr(ctx, n, at, "is not finite");
    }
    int64_t *iv = NULL;
    nm_status st = nm_onnx_int_tensor(ctx, t, n->name, 1, &iv);
    if (st != NM_OK) return st;
    *v = (double)iv[0];
    nm_free(ctx, iv);
    return NM_OK;
}

/* One attribute read by its entry d of the op's attribute list. */
static nm_status read_attr(nm_ctx *ctx, const Onnx__NodeProto *n, const attr_t *at, const nm_attr_def *d, nm_attrs *a)
{
    static const char *const auto_pads[] = {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"}; /* in NM_AUTOPAD_ order */
    char *f = (char *)a + d->offset;
    switch (d->kind) {
    case NM_ATTR_INT: *(int64_t *)f = at->i; return NM_OK;
    case NM_ATTR_BOOL: *(int64_t *)f = at->i != 0; return NM_OK;
    case NM_ATTR_FLOAT: *(float *)f = at->f; return NM_OK;
    case NM_ATTR_INTS: {
        size_t max = (size_t)(d->count < 0 ? -d->count : d->count);
        if (d->window && d->count > 0 && at->n_ints == max / 2) { /* a 1-D window: its one axis is stored as the second */
            int64_t *v = (int64_t *)f;
            if (max == 4) v[0] = 0, v[1] = at->ints[0], v[2] = 0, v[3] = at->ints[1];
            else v[0] = 1, v[1] = at->ints[0];
            return NM_OK;
        }
        if (d->count < 0 ? at->n_ints > max : at->n_ints != max) {
            char why[128];
            if (d->count < 0) snprintf(why, sizeof why, "has too many values");
            else snprintf(why, sizeof why, "has %zu values (expected %zu%s)", at->n_ints, max, d->why ? d->why : "");
            return nm_onnx_bad_attr(ctx, n, at, why);
        }
        if (at->n_ints) memcpy(f, at->ints, at->n_ints * sizeof(int64_t));
        return NM_OK;
    }
    case NM_ATTR_LIST:
        if (at->n_ints > (size_t)d->count) return nm_onnx_bad_attr(ctx, n, at, "has too many values");
        if (at->n_ints) memcpy(f, at->ints, at->n_ints * sizeof(int64_t));
        *(int64_t *)((char *)a + d->count_offset) = (int64_t)at->n_ints;
        return NM_OK;
    case NM_ATTR_ENUM:
        for (int k = 0; d->names[k]; k++)
            if (is_string(at, d->names[k])) {
                *(int64_t *)f = k;
                return NM_OK;
            }
        return nm_onnx_bad_attr(ctx, n, at, "has a value that is not supported");
    case NM_ATTR_SCALAR:
        return scalar_attr(ctx, n, at, (double *)f, &a->value_is_int);
    case NM_ATTR_AUTO_PAD:
        for (int k = 0; k < 4; k++)
            if (is_string(at, auto_pads[k])) {
                *(int64_t *)f = k;
                return NM_OK;
            }
        return nm_onnx_bad_attr(ctx, n, at, "has an unknown value");
    case NM_ATTR_CHECK:
        if (d->str ? !is_string(at, d->str) : (at->i != 0) != (d->def != 0)) return nm_onnx_bad_attr(ctx, n, at, d->why);
        return NM_OK;
    case NM_ATTR_IGNORE:
    case NM_ATTR_INPUT: return NM_OK; /* NM_ATTR_INPUT: made an input by legacy_inputs */
    }
    return nm_onnx_bad_attr(ctx, n, at, "is not supported");
}

/* The attributes of node n through the op's attribute list: defaults,
 * those that depend on the opset, then each attribute the node has. */
nm_status nm_onnx_parse_attrs(nm_ctx *ctx, const Onnx__NodeProto *n, nm_op op, int64_t opset, nm_attrs *a)
{
    const nm_op_def *def = nm_op_table[op];
    *a = nm_attrs_default(op);
    if (def->opset_defaults) def->opset_defaults(a, opset);
    for (size_t k = 0; k < n->n_attribute; k++) {
        const attr_t *at = n->attribute[k];
        if (nm_onnx_attr_is(at, "consumed_inputs")) continue; /* opset < 6: an in-place hint, on any op */
        const nm_attr_def *d = def->attrs;
        while (d && d->name && strcmp(d->name, at->name) != 0) d++;
        if (!d || !d->name) return nm_onnx_bad_attr(ctx, n, at, "is not supported");
        nm_status st = read_attr(ctx, n, at, d, a);
        if (st != NM_OK) return st;
    }
    return NM_OK;
}

