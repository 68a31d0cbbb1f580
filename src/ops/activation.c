/*
 * activation.c — the piecewise-linear activations Relu, LeakyRelu and PRelu.
 * Each is y = s(x)·x with a slope s that is 1 for x > 0 and 0, α or the
 * PRelu slope otherwise; jvp and vjp multiply by s at the primal (the mask
 * is frozen there, DESIGN §1.6). A tangent element i reads primal element
 * i mod (primal size), which covers P = 1 and P = T (net.h).
 *
 * Shapes: x and y alike, any rank; PRelu's slope broadcasts to x.
 */
#include "../net.h"

/* Slope below zero for element i of a primal of shape xs. */
typedef struct {
    nm_op op;
    float alpha;          /* LeakyRelu */
    const float *slope;   /* PRelu */
    int64_t strides[NM_MAX_DIMS];
    const nm_shape *xs;
} neg_slope;

static neg_slope slope_of(const nm_node *nd, const nm_pass *p)
{
    neg_slope s = {nd->op, nd->a.alpha, NULL, {0}, &p->xs[0]};
    if (nd->op == NM_OP_PRELU) {
        s.slope = p->x[1];
        nm_shape ss = p->xs[1];
        if (nd->a.prelu_channel) { /* (C) read as (C, 1, ..., 1) */
            ss.ndim = p->xs[0].ndim - 1;
            for (int i = 1; i < ss.ndim; i++) ss.d[i] = 1;
        }
        nm_broadcast_strides(&ss, &p->xs[0], s.strides);
    }
    return s;
}

/* Offset into the slope of primal element i. */
static int64_t slope_offset(const neg_slope *s, int64_t i)
{
    int64_t off = 0;
    for (int k = s->xs->ndim - 1; k >= 0; k--) {
        int64_t dk = s->xs->d[k];
        off += (i % dk) * s->strides[k];
        i /= dk;
    }
    return off;
}

static float neg(const neg_slope *s, int64_t i)
{
    switch (s->op) {
    case NM_OP_RELU: return 0.0f;
    case NM_OP_LEAKYRELU: return s->alpha;
    default: return s->slope[slope_offset(s, i)];
    }
}

static nm_status act_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    Y->batched = X->batched;
    if (nd->op == NM_OP_PRELU) {
        const nm_value *S = NM_IN(net, nd, 1);
        if (S->varying)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (PRelu): the slope must be a constant", nd->name);
        nm_shape b;
        /* before opset 7 a 1-D slope of C entries runs along the channels */
        nd->a.prelu_channel = net->opset < 7 && S->shape.ndim == 1 && X->shape.ndim >= 2 &&
                              S->shape.d[0] == X->shape.d[1] && S->shape.d[0] > 1;
        if (nd->a.prelu_channel) return NM_OK;
        nm_status st = nm_broadcast_shape(ctx, nd, &X->shape, &S->shape, &b);
        if (st != NM_OK) return st;
        if (!nm_shape_equal(&b, &X->shape))
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (PRelu): slope does not broadcast to the input", nd->name);
        Y->batched = X->batched && nm_const_spares_batch(S, X->shape.ndim);
    }
    return NM_OK;
}

/* x[0] (any shape), y like it: y = x where x > 0, else 0 (Relu), α x (LeakyRelu) or slope·x (PRelu, x[1]
 * broadcast to x[0]). */
static nm_status act_forward(const nm_node *nd, nm_pass *p)
{
    neg_slope s = slope_of(nd, p);
    int64_t n = nm_shape_numel(&p->xs[0]);
    const float *x = p->x[0];
    if (nd->op == NM_OP_RELU) { /* the hot case, without the slope lookup */
        #pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) p->y[i] = x[i] > 0 ? x[i] : 0.0f;
        return NM_OK;
    }
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) p->y[i] = x[i] > 0 ? x[i] : neg(&s, i) * x[i];
    return NM_OK;
}

/* x[0] the primal (P samples), dx[0] and dy the tangents (T samples, T = P or P = 1): dy = s(x)·dx with the
 * slope s frozen at the primal. */
static nm_status act_jvp(const nm_node *nd, nm_pass *p)
{
    neg_slope s = slope_of(nd, p);
    int64_t n = nm_shape_numel(&p->dxs[0]), np = nm_shape_numel(&p->xs[0]);
    const float *x = p->x[0], *dx = p->dx[0];
    if (nd->op == NM_OP_RELU) NM_FOR_TANGENTS(n, np, 65536, { p->dy[i] = x[k] > 0 ? dx[i] : 0.0f; });
    else NM_FOR_TANGENTS(n, np, 65536, { p->dy[i] = x[k] > 0 ? dx[i] : neg(&s, k) * dx[i]; });
    return NM_OK;
}

/* x[0] the primal, dy the cotangents (T samples): dx[0] += s(x)·dy; PRelu also gp[1] (the slope's shape) += x·dy where x ≤ 0. */
static nm_status act_vjp(const nm_node *nd, nm_pass *p)
{
    neg_slope s = slope_of(nd, p);
    int64_t n = nm_shape_numel(&p->dys), np = nm_shape_numel(&p->xs[0]);
    const float *x = p->x[0], *dy = p->dy;
    if (p->dx[0]) {
        float *dx = p->dx[0];
        if (nd->op == NM_OP_RELU) NM_FOR_TANGENTS(n, np, 65536, { dx[i] += x[k] > 0 ? dy[i] : 0.0f; });
        else NM_FOR_TANGENTS(n, np, 65536, { dx[i] += x[k] > 0 ? dy[i] : neg(&s, k) * dy[i]; });
    }
    if (nd->op == NM_OP_PRELU && p->gp[1]) /* ∂y/∂slope = x where x ≤ 0 */
        for (int64_t i = 0; i < n; i++) {
            int64_t k = i % np;
            if (!(x[k] > 0)) p->gp[1][slope_offset(&s, k)] += dy[i] * x[k];
        }
    return NM_OK;
}

static const nm_attr_def leakyrelu_attrs[] = {
    {.name = "alpha", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(alpha), .def = 0.01, .write = 1},
    {0}};

/* the opset-6 channel slope has no opset-13 spelling */
static const char *prelu_refusal(const nm_net *net, const nm_node *nd)
{
    (void)net;
    return nd->a.prelu_channel ? "a 1-D channel slope of opset < 7" : NULL;
}

/* x[0] (the primal): one code per element, the side of the kink at 0. */
static nm_status act_decide(const nm_node *nd, nm_pass *p, int32_t *codes)
{
    (void)nd;
    int64_t n = nm_shape_numel(&p->xs[0]);
    for (int64_t i = 0; i < n; i++) codes[i] = p->x[0][i] > 0;
    return NM_OK;
}

const nm_op_def nm_op_relu = {
    .name = "Relu", .split = 1, .decide = act_decide, .decides = NM_DECIDES_KINK, .min_inputs = 1, .max_inputs = 1, .hides_nonfinite = 1,
    .infer = act_infer, .forward = act_forward, .jvp = act_jvp, .vjp = act_vjp,
};
const nm_op_def nm_op_leakyrelu = {
    .name = "LeakyRelu", .split = 1, .decide = act_decide, .decides = NM_DECIDES_KINK, .min_inputs = 1, .max_inputs = 1, .attrs = leakyrelu_attrs,
    .infer = act_infer, .forward = act_forward, .jvp = act_jvp, .vjp = act_vjp,
};
const nm_op_def nm_op_prelu = {
    .name = "PRelu", .split = 1, .decide = act_decide, .decides = NM_DECIDES_KINK, .min_inputs = 2, .max_inputs = 2, .trainable = {[1] = 1}, .export_refusal = prelu_refusal,
    .infer = act_infer, .forward = act_forward, .jvp = act_jvp, .vjp = act_vjp,
};
