/*
 * pad.c — Pad, constant, reflect and edge modes: pads (begin and end per
 * axis; negative values crop) from the attribute (opset < 11) or a constant
 * input, and the fill value from the attribute or a constant input. Each
 * output element is an input element or the constant fill, so jvp pads the
 * tangent the same way (with zeros for the fill) and vjp adds each output's
 * cotangent to the input element it came from.
 *
 * Shapes: x (d_0, ..., d_r−1); y (d_i + begin_i + end_i).
 */
#include "../net.h"

static nm_status pad_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    int r = X->shape.ndim;
    nm_attrs *a = &nd->a;
    const nm_value *P = NM_IN(net, nd, 1), *V = nd->nin > 2 ? NM_IN(net, nd, 2) : NULL;
    if (P) {
        if (P->varying || !P->idata || nm_shape_numel(&P->shape) != 2 * r)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Pad): pads must be a constant integer tensor of %d entries", nd->name, 2 * r);
        for (int i = 0; i < 2 * r; i++) a->pads[i] = P->idata[i];
    }
    if (V) {
        if (V->varying || !V->cdata || nm_shape_numel(&V->shape) != 1)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Pad): constant_value must be a constant float scalar", nd->name);
        a->pad_value = V->cdata[0];
    }
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    for (int i = 0; i < r; i++) {
        if (!nm_add_ok(Y->shape.d[i], a->pads[i], &Y->shape.d[i]) || !nm_add_ok(Y->shape.d[i], a->pads[r + i], &Y->shape.d[i]))
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Pad): pads %lld and %lld of axis %d overflow", nd->name,
                           (long long)a->pads[i], (long long)a->pads[r + i], i);
        if (Y->shape.d[i] < 0)
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Pad): axis %d would have negative size", nd->name, i);
    }
    Y->batched = X->batched && r >= 1 && a->pads[0] == 0 && a->pads[r] == 0;
    return NM_OK;
}

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

/* For each y element: its x offset, or −1 in a constant padding; reflect mirrors about the edge
 * (x_1, x_0 | x_0 ... — ONNX's, without repeating the edge), edge repeats it. */
static int64_t source(const nm_attrs *a, const nm_shape *xs, const nm_shape *ys, int64_t o)
{
    int r = ys->ndim;
    int64_t off = 0, stride = 1;
    for (int k = r - 1; k >= 0; k--) {
        int64_t i = o % ys->d[k] - a->pads[k], d = xs->d[k];
        o /= ys->d[k];
        if (i < 0 || i >= d) {
            if (a->mode == PAD_CONSTANT || d == 0) return -1;
            if (a->mode == PAD_EDGE || d == 1) i = i < 0 ? 0 : d - 1;
            else { /* reflect, with period 2(d − 1) for pads wider than the axis */
                int64_t per = 2 * (d - 1);
                i = ((i % per) + per) % per;
                if (i >= d) i = per - i;
            }
        }
        off += i * stride;
        stride *= d;
    }
    return off;
}

/* adjoint = 0: y = pad(x, fill); 1: x += cropᵀ(y). */
static void pad_apply(const nm_attrs *a, const nm_shape *xs, const nm_shape *ys, float *x, float *y, float fill, int adjoint)
{
    int64_t n = nm_shape_numel(ys);
    for (int64_t o = 0; o < n; o++) {
        int64_t s = source(a, xs, ys, o);
        if (adjoint) {
            if (s >= 0) x[s] += y[o];
        } else {
            y[o] = s >= 0 ? x[s] : fill;
        }
    }
}

/* x[0] (d_0, ..., d_r−1): y (d_i + begin_i + end_i) = x inside, the fill value outside. */
static nm_status pad_forward(const nm_node *nd, nm_pass *p)
{
    pad_apply(&nd->a, &p->xs[0], &p->ys, p->x[0], p->y, nd->a.pad_value, 0);
    return NM_OK;
}

/* dx[0] (T, ...) and dy padded alike: dy = dx inside, 0 outside. */
static nm_status pad_jvp(const nm_node *nd, nm_pass *p)
{
    pad_apply(&nd->a, &p->dxs[0], &p->dys, p->dx[0], p->dy, 0.0f, 0);
    return NM_OK;
}

/* dy (padded shape): dx[0] += dy's interior. */
static nm_status pad_vjp(const nm_node *nd, nm_pass *p)
{
    if (p->dx[0]) pad_apply(&nd->a, &p->dxs[0], &p->dys, p->dx[0], p->dy, 0.0f, 1);
    return NM_OK;
}

static const char *const pad_modes[] = {"constant", "reflect", "edge", NULL};
static const nm_attr_def pad_attrs[] = {
    {.name = "mode", .kind = NM_ATTR_ENUM, .offset = NM_ATTR_FIELD(mode), .names = pad_modes, .write = 1},
    {.name = "pads", .kind = NM_ATTR_INTS, .offset = NM_ATTR_FIELD(pads), .count = -2 * NM_MAX_DIMS},
    {.name = "paddings", .kind = NM_ATTR_INTS, .offset = NM_ATTR_FIELD(pads), .count = -2 * NM_MAX_DIMS}, /* opset < 2 */
    {.name = "value", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(pad_value)},
    {0}};

/* opset 13: the resolved pads and the fill value are inputs */
static int pad_export_extra(const nm_net *net, const nm_node *nd, nm_export_input extra[2])
{
    int r = net->v[nd->in[0]].shape.ndim;
    extra[0] = (nm_export_input){"pads", {1, {2 * r}}, NULL, nd->a.pads};
    extra[1] = (nm_export_input){"value", {0, {0}}, &nd->a.pad_value, NULL};
    return 2;
}

const nm_op_def nm_op_pad = {
    .name = "Pad", .min_inputs = 1, .max_inputs = 3, .int_input = {[1] = 1}, .attrs = pad_attrs,
    .export_inputs = 1, .export_extra = pad_export_extra,
    .infer = pad_infer, .forward = pad_forward, .jvp = pad_jvp, .vjp = pad_vjp,
};
