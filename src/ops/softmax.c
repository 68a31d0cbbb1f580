/*
 * softmax.c — Softmax and LogSoftmax, allowed only as the final node: the
 * moments are taken on their input, the logits (DESIGN §1.6), so these
 * passes serve forward evaluation and gradients of the probabilities.
 * Opset ≥ 13 normalizes along one axis; earlier opsets coerce the input to
 * 2-D at the axis and normalize each row. jvp/vjp are the true derivatives:
 * softmax dy = y ⊙ (dx − ⟨y, dx⟩); log-softmax dy = dx − ⟨softmax, dx⟩.
 *
 * Shapes: x any; y like x. Viewed as (outer, len, inner), normalized over len.
 */
#include "../net.h"

#include <math.h>

static nm_status softmax_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    int r = X->shape.ndim;
    int64_t axis = nd->a.axis < 0 ? nd->a.axis + r : nd->a.axis;
    if (axis < 0 || axis >= (r ? r : 1))
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): axis %lld out of range for rank %d", nd->name,
                       nm_op_name(nd->op), (long long)nd->a.axis, r);
    nd->a.axis = axis;
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    Y->batched = X->batched && axis >= 1;
    return NM_OK;
}

typedef struct {
    int64_t outer, len, inner;
} sm_dims;

static sm_dims sdims(const nm_attrs *a, const nm_shape *s)
{
    sm_dims d = {1, 1, 1};
    for (int i = 0; i < s->ndim; i++) {
        if (i < a->axis) d.outer *= s->d[i];
        else if (i == a->axis || a->softmax_2d) d.len *= s->d[i];
        else d.inner *= s->d[i];
    }
    return d;
}

/* softmax of one strided row into p (double); returns log Σ exp(x − max) + max. */
static double row_softmax(const float *x, int64_t len, int64_t st, double *p)
{
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < len; k++) m = fmax(m, x[k * st]);
    for (int64_t k = 0; k < len; k++) s += (p[k] = exp(x[k * st] - m));
    for (int64_t k = 0; k < len; k++) p[k] /= s;
    return m + log(s);
}

/* x[0] any shape, viewed as (outer, len, inner): y = softmax or log-softmax over len. */
static nm_status softmax_forward(const nm_node *nd, nm_pass *p)
{
    sm_dims d = sdims(&nd->a, &p->xs[0]);
    double *buf = (double *)nm_pass_scratch(p, (size_t)(2 * d.len));
    if (!buf) return NM_ERR_NOMEM;
    for (int64_t o = 0; o < d.outer; o++)
        for (int64_t i = 0; i < d.inner; i++) {
            int64_t base = o * d.len * d.inner + i;
            const float *x = p->x[0] + base;
            float *y = p->y + base;
            double lse = row_softmax(x, d.len, d.inner, buf);
            for (int64_t k = 0; k < d.len; k++)
                y[k * d.inner] = (float)(nd->op == NM_OP_SOFTMAX ? buf[k] : x[k * d.inner] - lse);
        }
    return NM_OK;
}

/* out = J v (adjoint 0) or out += Jᵀ v (adjoint 1), per row, at the primal. */
static nm_status softmax_linear(const nm_node *nd, nm_pass *p, const nm_shape *ts, const float *v, float *out, int adjoint)
{
    sm_dims d = sdims(&nd->a, &p->xs[0]), dt = sdims(&nd->a, ts);
    double *s = (double *)nm_pass_scratch(p, (size_t)(2 * d.len));
    if (!s) return NM_ERR_NOMEM;
    int64_t rows = d.outer; /* primal rows; tangent rows cycle over them */
    for (int64_t o = 0; o < dt.outer; o++)
        for (int64_t i = 0; i < d.inner; i++) {
            int64_t base = o * d.len * d.inner + i, pbase = (o % rows) * d.len * d.inner + i;
            row_softmax(p->x[0] + pbase, d.len, d.inner, s);
            const float *vr = v + base;
            double dot = 0, tot = 0;
            for (int64_t k = 0; k < d.len; k++) {
                dot += s[k] * vr[k * d.inner];
                tot += vr[k * d.inner];
            }
            float *orow = out + base;
            for (int64_t k = 0; k < d.len; k++) {
                double val, vk = vr[k * d.inner];
                if (nd->op == NM_OP_SOFTMAX) val = s[k] * (vk - dot);      /* symmetric Jacobian */
                else val = adjoint ? vk - s[k] * tot : vk - dot;             /* I − 1 sᵀ, or its transpose */
                orow[k * d.inner] = (float)((adjoint ? orow[k * d.inner] : 0.0) + val);
            }
        }
    return NM_OK;
}

/* x[0] the primal, dx[0] and dy: dy = y ⊙ (dx − ⟨y, dx⟩) (Softmax), dx − ⟨softmax(x), dx⟩ (LogSoftmax). */
static nm_status softmax_jvp(const nm_node *nd, nm_pass *p)
{
    return softmax_linear(nd, p, &p->dxs[0], p->dx[0], p->dy, 0);
}

/* dy: dx[0] += the transposed Jacobian of the row applied to dy (softmax's is symmetric). */
static nm_status softmax_vjp(const nm_node *nd, nm_pass *p)
{
    return p->dx[0] ? softmax_linear(nd, p, &p->dys, p->dy, p->dx[0], 1) : NM_OK;
}

static const nm_attr_def softmax_attrs[] = {
    {.name = "axis", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(axis), .def = -1, .write = 1},
    {0}};

/* before opset 13 the default axis is 1 and the input is coerced to 2-D there */
static void softmax_opset_defaults(nm_attrs *a, int64_t opset)
{
    if (opset < 13) {
        a->axis = 1;
        a->softmax_2d = 1;
    }
}

/* opset-13 Softmax normalizes one axis only */
static const char *softmax_refusal(const nm_net *net, const nm_node *nd)
{
    int r = net->v[nd->in[0]].shape.ndim;
    return nd->a.softmax_2d && nd->a.axis != r - 1 ? "normalizes several axes (opset < 13)" : NULL;
}

const nm_op_def nm_op_softmax = {
    .name = "Softmax", .min_inputs = 1, .max_inputs = 1, .attrs = softmax_attrs, .final_only = 1,
    .opset_defaults = softmax_opset_defaults, .export_refusal = softmax_refusal,
    .infer = softmax_infer, .forward = softmax_forward, .jvp = softmax_jvp, .vjp = softmax_vjp,
};
const nm_op_def nm_op_logsoftmax = {
    .name = "LogSoftmax", .min_inputs = 1, .max_inputs = 1, .attrs = softmax_attrs, .final_only = 1,
    .opset_defaults = softmax_opset_defaults, .export_refusal = softmax_refusal,
    .infer = softmax_infer, .forward = softmax_forward, .jvp = softmax_jvp, .vjp = softmax_vjp,
};
