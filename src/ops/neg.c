/*
 * neg.c — Neg, y = −x elementwise. Linear, so jvp negates the tangent and
 * vjp subtracts the cotangent.
 *
 * Shapes: x any; y like x.
 */
#include "../net.h"

/* x[0] any shape: y = −x. */
static nm_status neg_forward(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t n = nm_shape_numel(&p->ys);
    for (int64_t i = 0; i < n; i++) p->y[i] = -p->x[0][i];
    return NM_OK;
}

/* dx[0] (T samples): dy = −dx. */
static nm_status neg_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t n = nm_shape_numel(&p->dys);
    for (int64_t i = 0; i < n; i++) p->dy[i] = -p->dx[0][i];
    return NM_OK;
}

/* dy (T samples): dx[0] −= dy. */
static nm_status neg_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    if (!p->dx[0]) return NM_OK;
    int64_t n = nm_shape_numel(&p->dys);
    for (int64_t i = 0; i < n; i++) p->dx[0][i] -= p->dy[i];
    return NM_OK;
}

const nm_op_def nm_op_neg = {
    .name = "Neg", .min_inputs = 1, .max_inputs = 1, .moments = NM_MOMENTS_DIAGONAL,
    .infer = nm_infer_elementwise, .forward = neg_forward, .jvp = neg_jvp, .vjp = neg_vjp,
};
