/*
 * add.c — Add with numpy broadcasting: a bias (one varying input and a
 * constant) or a residual (both varying). Linear, so jvp adds the tangents
 * of the varying inputs; vjp sums the cotangent over each input's broadcast
 * axes (and into the constant's gradient when the net trains).
 *
 * Shapes: a, b broadcast to y.
 */
#include "../net.h"

#include <string.h>

static nm_status add_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *A = NM_IN(net, nd, 0), *B = NM_IN(net, nd, 1);
    nm_value *Y = NM_OUT(net, nd);
    if (nd->a.legacy_axis >= 0 && nd->a.legacy_axis + B->shape.ndim != A->shape.ndim)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Add): legacy broadcast at axis %lld is not right-aligned",
                       nd->name, (long long)nd->a.legacy_axis);
    nm_status st = nm_broadcast_shape(ctx, nd, &A->shape, &B->shape, &Y->shape);
    if (st != NM_OK) return st;
    int r = Y->shape.ndim, batched = 1;
    for (int i = 0; i < 2; i++) {
        const nm_value *X = i ? B : A;
        if (X->varying) batched &= X->batched && X->shape.ndim == r && X->shape.d[0] == Y->shape.d[0];
        else batched &= nm_const_spares_batch(X, r);
    }
    Y->batched = batched && (A->varying || B->varying);
    return NM_OK;
}

/* x[0], x[1] broadcast (numpy rules) to y. */
static nm_status add_forward(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t sa[NM_MAX_DIMS], sb[NM_MAX_DIMS];
    nm_broadcast_strides(&p->xs[0], &p->ys, sa);
    nm_broadcast_strides(&p->xs[1], &p->ys, sb);
    nm_strided(&p->ys, sa, p->y, p->x[0], 0, 0);
    nm_strided(&p->ys, sb, p->y, p->x[1], 0, 1);
    return NM_OK;
}

/* dx[0], dx[1] (NULL for a constant input) broadcast to dy: dy = dx[0] + dx[1]. */
static nm_status add_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t s[NM_MAX_DIMS];
    memset(p->dy, 0, (size_t)nm_shape_numel(&p->dys) * sizeof(float));
    for (int i = 0; i < 2; i++)
        if (p->dx[i]) {
            nm_broadcast_strides(&p->dxs[i], &p->dys, s);
            nm_strided(&p->dys, s, p->dy, p->dx[i], 0, 1);
        }
    return NM_OK;
}

/* dy (y's shape, T samples) summed over each input's broadcast axes into dx[i] and, for a trained constant, gp[i]. */
static nm_status add_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t s[NM_MAX_DIMS];
    for (int i = 0; i < 2; i++) {
        if (p->dx[i]) {
            nm_broadcast_strides(&p->dxs[i], &p->dys, s);
            nm_strided(&p->dys, s, p->dy, p->dx[i], 1, 0);
        }
        if (p->gp[i]) {
            nm_broadcast_strides(&p->xs[i], &p->dys, s);
            nm_strided(&p->dys, s, p->dy, p->gp[i], 1, 0);
        }
    }
    return NM_OK;
}

static const nm_attr_def add_attrs[] = {
    {.name = "broadcast", .kind = NM_ATTR_IGNORE}, /* opset < 7 */
    {.name = "axis", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(legacy_axis), .def = -1},
    {0}};

const nm_op_def nm_op_add = {
    .name = "Add", .min_inputs = 2, .max_inputs = 2, .trainable = {[0] = 1, [1] = 1}, .attrs = add_attrs,
    .infer = add_infer, .forward = add_forward, .jvp = add_jvp, .vjp = add_vjp,
};
