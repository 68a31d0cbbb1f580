/*
 * concat.c — Concat along any axis: varying inputs (skip connections,
 * Inception and DenseNet branches), constants beside them, or integer
 * constants (shapes, folded at load). Linear in its inputs: jvp concatenates
 * the tangents (zeros for constants), vjp splits the cotangent.
 *
 * Shapes: inputs alike but along axis; y their sizes summed along it.
 * Viewed as (outer, len_i, inner): outer includes the batch when axis > 0.
 */
#include "../net.h"

#include <string.h>

static nm_status concat_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X0 = NM_IN(net, nd, 0);
    int r = X0->shape.ndim;
    int64_t axis;
    if (r < 1 || !nm_axis(nd->a.axis, r, &axis))
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Concat): axis %lld out of range for rank %d", nd->name, (long long)nd->a.axis, r);
    nd->a.axis = axis;
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X0->shape;
    Y->shape.d[axis] = 0;
    int batched = axis > 0, any_varying = 0;
    for (int i = 0; i < nd->nin; i++) {
        const nm_value *X = NM_IN(net, nd, i);
        if (!X) return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Concat): input %d is missing", nd->name, i);
        if (X->is_int != X0->is_int) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Concat): integer and float inputs mixed", nd->name);
        if (X->shape.ndim != r) return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Concat): inputs of ranks %d and %d", nd->name, r, X->shape.ndim);
        for (int k = 0; k < r; k++)
            if (k != axis && X->shape.d[k] != X0->shape.d[k])
                return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Concat): input %d differs from input 0 along axis %d", nd->name, i, k);
        Y->shape.d[axis] += X->shape.d[axis];
        /* samples stay apart when the axis is not the batch and every varying input follows the batch */
        if (X->varying) batched &= X->batched, any_varying = 1;
        else batched &= X->shape.d[0] == 1 || r == 1;
    }
    Y->batched = batched && any_varying;
    Y->is_int = X0->is_int;
    return NM_OK;
}

/* Inputs src[i] (NULL: zeros) of shapes s[i], batch n of the output, into y; or, with split = 1, the
 * adjoint: y's slabs added into src[i] (float). A constant input of batch 1 is shared by every sample. */
static void concat_apply(const nm_node *nd, int nin, const void *const *src, const nm_shape *s, const nm_shape *ys, void *y,
                         size_t esize, int split)
{
    int64_t axis = nd->a.axis, inner = nm_shape_tail(ys, (int)axis + 1), outer = 1, ylen = ys->d[axis];
    for (int k = 0; k < axis; k++) outer *= ys->d[k];
    int64_t at = 0;
    for (int i = 0; i < nin; i++) {
        int64_t len = s[i].d[axis], run = len * inner, in_outer = nm_shape_numel(&s[i]) / (run ? run : 1);
        for (int64_t o = 0; run > 0 && in_outer > 0 && o < outer; o++) { /* an empty input (shape chains) moves nothing */
            char *dst = (char *)y + (size_t)((o * ylen + at) * inner) * esize;
            if (split) {
                if (!src[i]) continue;
                float *d = (float *)src[i] + (o % in_outer) * run;
                const float *g = (const float *)dst;
                for (int64_t j = 0; j < run; j++) d[j] += g[j];
            } else if (src[i]) {
                memcpy(dst, (const char *)src[i] + (size_t)((o % in_outer) * run) * esize, (size_t)run * esize);
            } else {
                memset(dst, 0, (size_t)run * esize);
            }
        }
        at += len;
    }
}

/* x[i] (or integer constants) along axis into y. */
static nm_status concat_forward(const nm_node *nd, nm_pass *p)
{
    const void *src[NM_NODE_MAX_IN];
    for (int i = 0; i < nd->nin; i++) src[i] = nm_pass_in(p, i);
    concat_apply(nd, nd->nin, src, p->xs, &p->ys, nm_pass_out(p), nm_pass_esize(p), 0);
    return NM_OK;
}

/* dx[i] (T samples; NULL for constants, whose tangent is 0) along axis into dy. */
static nm_status concat_jvp(const nm_node *nd, nm_pass *p)
{
    const void *src[NM_NODE_MAX_IN];
    nm_shape s[NM_NODE_MAX_IN];
    for (int i = 0; i < nd->nin; i++) src[i] = p->dx[i], s[i] = p->dx[i] ? p->dxs[i] : p->xs[i];
    concat_apply(nd, nd->nin, src, s, &p->dys, p->dy, sizeof(float), 0);
    return NM_OK;
}

/* dy split along axis and added into dx[i] where non-NULL. */
static nm_status concat_vjp(const nm_node *nd, nm_pass *p)
{
    const void *dst[NM_NODE_MAX_IN];
    nm_shape s[NM_NODE_MAX_IN];
    for (int i = 0; i < nd->nin; i++) dst[i] = p->dx[i], s[i] = p->dx[i] ? p->dxs[i] : p->xs[i];
    concat_apply(nd, nd->nin, dst, s, &p->dys, p->dy, sizeof(float), 1);
    return NM_OK;
}

static const nm_attr_def concat_attrs[] = {
    {.name = "axis", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(axis), .def = 1, .write = 1},
    {0}};

const nm_op_def nm_op_concat = {
    .name = "Concat", .min_inputs = 1, .max_inputs = NM_NODE_MAX_IN, .int_data = 1, .attrs = concat_attrs,
    .infer = concat_infer, .forward = concat_forward, .jvp = concat_jvp, .vjp = concat_vjp,
};
