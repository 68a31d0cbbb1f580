/*
 * layout.c — ops that rearrange elements without arithmetic: Transpose
 * (perm), Squeeze and Unsqueeze (axes as an attribute before opset 13, an
 * integer input after), and Expand (broadcast to a shape). They move float
 * data at run time and integer data when folding shapes at load; all are
 * linear, so jvp moves the tangent the same way and vjp adds the cotangent
 * back (over the broadcast axes, for Expand).
 *
 * Shapes: Transpose y_i = x_perm[i]; Squeeze / Unsqueeze: x with size-1
 * axes removed / inserted; Expand: x broadcast against the shape input.
 */
#include "../net.h"

#include <string.h>

/* ---- Transpose ---- */

static nm_status transpose_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    int r = X->shape.ndim;
    nm_attrs *a = &nd->a;
    if (a->naxes == 0) /* default: reverse the axes */
        for (int i = 0; i < r; i++) a->axes[i] = r - 1 - i;
    else if (a->naxes != r)
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Transpose): perm has %lld entries for rank %d", nd->name, (long long)a->naxes, r);
    a->naxes = r;
    int seen[NM_MAX_DIMS] = {0};
    nm_value *Y = NM_OUT(net, nd);
    Y->shape.ndim = r;
    for (int i = 0; i < r; i++) {
        if (a->axes[i] < 0 || a->axes[i] >= r || seen[a->axes[i]]++)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Transpose): perm is not a permutation of 0..%d", nd->name, r - 1);
        Y->shape.d[i] = X->shape.d[a->axes[i]];
    }
    Y->batched = X->batched && a->axes[0] == 0;
    Y->is_int = X->is_int;
    return NM_OK;
}

/* Strides into the input of shape xs for each output axis: y[i] = x[Σ i_k st_k]. */
static void transpose_strides(const nm_attrs *a, const nm_shape *xs, int64_t *st)
{
    int64_t in[NM_MAX_DIMS], s = 1;
    for (int k = xs->ndim - 1; k >= 0; k--) in[k] = s, s *= xs->d[k];
    for (int i = 0; i < xs->ndim; i++) st[i] = in[a->axes[i]];
}

/* x[0] (any rank r): y = x with its axes permuted. */
static nm_status transpose_forward(const nm_node *nd, nm_pass *p)
{
    int64_t st[NM_MAX_DIMS];
    transpose_strides(&nd->a, &p->xs[0], st);
    nm_strided_any(&p->ys, st, nm_pass_out(p), nm_pass_in(p, 0), nm_pass_esize(p));
    return NM_OK;
}

/* dx[0] (T samples): dy = dx permuted. */
static nm_status transpose_jvp(const nm_node *nd, nm_pass *p)
{
    int64_t st[NM_MAX_DIMS];
    transpose_strides(&nd->a, &p->dxs[0], st);
    nm_strided_any(&p->dys, st, p->dy, p->dx[0], sizeof(float));
    return NM_OK;
}

/* dy: dx[0] += dy permuted back. */
static nm_status transpose_vjp(const nm_node *nd, nm_pass *p)
{
    if (!p->dx[0]) return NM_OK;
    int64_t st[NM_MAX_DIMS];
    transpose_strides(&nd->a, &p->dxs[0], st);
    nm_strided(&p->dys, st, p->dy, p->dx[0], 1, 0);
    return NM_OK;
}

/* ---- Squeeze, Unsqueeze ---- */

/* The axes from the attribute or, from opset 13, the integer input 1. */
static nm_status axes_of(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *A = nd->nin > 1 ? NM_IN(net, nd, 1) : NULL;
    if (!A) return NM_OK;
    if (A->varying || !A->is_int || A->shape.ndim > 1 || nm_shape_numel(&A->shape) > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): axes must be a constant 1-D integer tensor", nd->name, nm_op_name(nd->op));
    nd->a.naxes = nm_shape_numel(&A->shape);
    memcpy(nd->a.axes, A->idata, sizeof(int64_t) * (size_t)nd->a.naxes);
    return NM_OK;
}

static nm_status squeeze_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    nm_status st = axes_of(ctx, net, nd);
    if (st != NM_OK) return st;
    const nm_value *X = NM_IN(net, nd, 0);
    nm_value *Y = NM_OUT(net, nd);
    int r = X->shape.ndim, drop[NM_MAX_DIMS] = {0};
    for (int i = 0; i < nd->a.naxes; i++) {
        int64_t k;
        if (!nm_axis(nd->a.axes[i], r, &k) || X->shape.d[k] != 1)
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Squeeze): axis %lld is not of size 1", nd->name, (long long)nd->a.axes[i]);
        drop[k] = 1;
    }
    /* without axes every size-1 axis goes, but the batch axis of a batched value (size 1 only as loaded) stays */
    for (int k = 0; k < r && nd->a.naxes == 0; k++) drop[k] = X->shape.d[k] == 1 && !(k == 0 && X->batched);
    Y->shape.ndim = 0;
    for (int k = 0; k < r; k++)
        if (!drop[k]) Y->shape.d[Y->shape.ndim++] = X->shape.d[k];
    Y->batched = X->batched && !drop[0];
    Y->is_int = X->is_int;
    return NM_OK;
}

static nm_status unsqueeze_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    nm_status st = axes_of(ctx, net, nd);
    if (st != NM_OK) return st;
    const nm_value *X = NM_IN(net, nd, 0);
    nm_value *Y = NM_OUT(net, nd);
    int r = X->shape.ndim + (int)nd->a.naxes, ins[NM_MAX_DIMS] = {0};
    if (r > NM_MAX_DIMS || nd->a.naxes < 1)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Unsqueeze): %lld axes for rank %d", nd->name, (long long)nd->a.naxes, X->shape.ndim);
    for (int i = 0; i < nd->a.naxes; i++) {
        int64_t k;
        if (!nm_axis(nd->a.axes[i], r, &k) || ins[k]++)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Unsqueeze): axis %lld is out of range or repeated", nd->name, (long long)nd->a.axes[i]);
    }
    Y->shape.ndim = r;
    for (int k = 0, j = 0; k < r; k++) Y->shape.d[k] = ins[k] ? 1 : X->shape.d[j++];
    Y->batched = X->batched && !ins[0];
    Y->is_int = X->is_int;
    return NM_OK;
}

/* Same elements, another shape: a copy (of either type), its tangent a copy, its cotangent added back. */
static nm_status same_forward(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    memcpy(nm_pass_out(p), nm_pass_in(p, 0), (size_t)nm_shape_numel(&p->ys) * nm_pass_esize(p));
    return NM_OK;
}

/* dx[0]: dy = dx. */
static nm_status same_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    memcpy(p->dy, p->dx[0], (size_t)nm_shape_numel(&p->dys) * sizeof(float));
    return NM_OK;
}

/* dy: dx[0] += dy. */
static nm_status same_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    if (!p->dx[0]) return NM_OK;
    int64_t n = nm_shape_numel(&p->dys);
    for (int64_t i = 0; i < n; i++) p->dx[0][i] += p->dy[i];
    return NM_OK;
}

/* ---- Expand ---- */

static nm_status expand_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0), *S = NM_IN(net, nd, 1);
    if (S->varying || !S->is_int || S->shape.ndim != 1 || S->shape.d[0] > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Expand): the shape must be a constant 1-D integer tensor", nd->name);
    nm_shape want = {(int)S->shape.d[0], {0}};
    for (int i = 0; i < want.ndim; i++) want.d[i] = S->idata[i];
    nm_value *Y = NM_OUT(net, nd);
    nm_status st = nm_broadcast_shape(ctx, nd, &X->shape, &want, &Y->shape);
    if (st != NM_OK) return st;
    Y->batched = X->batched && Y->shape.ndim == X->shape.ndim && Y->shape.d[0] == X->shape.d[0];
    Y->is_int = X->is_int;
    return NM_OK;
}

/* x[0] broadcast to y. */
static nm_status expand_forward(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t st[NM_MAX_DIMS];
    nm_broadcast_strides(&p->xs[0], &p->ys, st);
    nm_strided_any(&p->ys, st, nm_pass_out(p), nm_pass_in(p, 0), nm_pass_esize(p));
    return NM_OK;
}

/* dx[0] broadcast to dy. */
static nm_status expand_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t st[NM_MAX_DIMS];
    nm_broadcast_strides(&p->dxs[0], &p->dys, st);
    nm_strided(&p->dys, st, p->dy, p->dx[0], 0, 0);
    return NM_OK;
}

/* dy summed over the broadcast axes into dx[0]. */
static nm_status expand_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    if (!p->dx[0]) return NM_OK;
    int64_t st[NM_MAX_DIMS];
    nm_broadcast_strides(&p->dxs[0], &p->dys, st);
    nm_strided(&p->dys, st, p->dy, p->dx[0], 1, 0);
    return NM_OK;
}

static const nm_attr_def transpose_attrs[] = {
    {.name = "perm", .kind = NM_ATTR_LIST, .offset = NM_ATTR_FIELD(axes), .count = NM_MAX_DIMS, .count_offset = NM_ATTR_FIELD(naxes), .write = 1},
    {0}};

static const nm_attr_def axes_attrs[] = { /* before opset 13 */
    {.name = "axes", .kind = NM_ATTR_LIST, .offset = NM_ATTR_FIELD(axes), .count = NM_MAX_DIMS, .count_offset = NM_ATTR_FIELD(naxes)},
    {0}};

/* opset 13 wants the axes as an input */
static int axes_export(const nm_net *net, const nm_node *nd, nm_export_input extra[2])
{
    (void)net;
    extra[0] = (nm_export_input){"axes", {1, {nd->a.naxes}}, NULL, nd->a.axes};
    return nd->a.naxes > 0;
}

const nm_op_def nm_op_transpose = {
    .name = "Transpose", .min_inputs = 1, .max_inputs = 1, .int_data = 1, .attrs = transpose_attrs,
    .infer = transpose_infer, .forward = transpose_forward, .jvp = transpose_jvp, .vjp = transpose_vjp,
};
const nm_op_def nm_op_squeeze = {
    .name = "Squeeze", .min_inputs = 1, .max_inputs = 2, .int_input = {[1] = 1}, .int_data = 1, .attrs = axes_attrs,
    .export_inputs = 1, .export_extra = axes_export,
    .moments = NM_MOMENTS_SAME, .infer = squeeze_infer, .forward = same_forward, .jvp = same_jvp, .vjp = same_vjp,
};
const nm_op_def nm_op_unsqueeze = {
    .name = "Unsqueeze", .min_inputs = 1, .max_inputs = 2, .int_input = {[1] = 1}, .int_data = 1, .attrs = axes_attrs,
    .export_inputs = 1, .export_extra = axes_export,
    .moments = NM_MOMENTS_SAME, .infer = unsqueeze_infer, .forward = same_forward, .jvp = same_jvp, .vjp = same_vjp,
};
const nm_op_def nm_op_expand = {
    .name = "Expand", .min_inputs = 2, .max_inputs = 2, .int_input = {[1] = 1}, .int_data = 1,
    .infer = expand_infer, .forward = expand_forward, .jvp = expand_jvp, .vjp = expand_vjp,
};
