/*
 * constants.c — ops whose outputs are known at load, which the importer
 * folds into constants: Shape (of any value, varying or not: its shape is
 * known at load, the batch axis at the loaded size), ConstantOfShape, Range,
 * and Cast (on constants between float and integer types; on varying float
 * values only to a float type, where it is the identity in float32). They
 * are what PyTorch emits for x.view(x.size(0), -1), dynamic batch sizes,
 * ZeroPad2d and reflect padding.
 *
 * Shapes: Shape y (rank) int64; ConstantOfShape y = the input's values;
 * Range y (⌈(limit − start)/delta⌉); Cast y like x.
 */
#include "../net.h"

#include <math.h>
#include <string.h>

enum { ONNX_FLOAT = 1, ONNX_FLOAT16 = 10, ONNX_DOUBLE = 11, ONNX_BFLOAT16 = 16 };

static int float_type(int64_t t)
{
    return t == ONNX_FLOAT || t == ONNX_FLOAT16 || t == ONNX_DOUBLE || t == ONNX_BFLOAT16;
}

/* ---- Shape ---- */

static nm_status shape_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    (void)ctx;
    const nm_value *X = NM_IN(net, nd, 0);
    int r = X->shape.ndim;
    int64_t b = nd->a.starts[0], e = nd->a.ends[0]; /* opset 15: start, end (end absent: r) */
    b = b < 0 ? (b + r < 0 ? 0 : b + r) : (b > r ? r : b);
    e = nd->a.naxes ? (e < 0 ? (e + r < 0 ? 0 : e + r) : (e > r ? r : e)) : r;
    nd->a.starts[0] = b, nd->a.ends[0] = e > b ? e : b;
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = (nm_shape){1, {nd->a.ends[0] - b}};
    Y->is_int = 1;
    return NM_OK;
}

/* xs[0] only: y = its dimensions start..end−1. */
static nm_status shape_forward(const nm_node *nd, nm_pass *p)
{
    for (int64_t i = nd->a.starts[0]; i < nd->a.ends[0]; i++) p->iy[i - nd->a.starts[0]] = p->xs[0].d[i];
    return NM_OK;
}

/* ---- ConstantOfShape ---- */

static nm_status cos_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *S = NM_IN(net, nd, 0);
    if (S->varying || !S->is_int || S->shape.ndim != 1 || S->shape.d[0] > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (ConstantOfShape): the shape must be a constant 1-D integer tensor", nd->name);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape.ndim = (int)S->shape.d[0];
    for (int i = 0; i < Y->shape.ndim; i++) Y->shape.d[i] = S->idata[i];
    Y->is_int = nd->a.value_is_int != 0;
    return NM_OK;
}

/* y filled with the value attribute (0.0 when absent). */
static nm_status cos_forward(const nm_node *nd, nm_pass *p)
{
    int64_t n = nm_shape_numel(&p->ys);
    for (int64_t i = 0; i < n; i++) {
        if (p->iy) p->iy[i] = (int64_t)nd->a.value;
        else p->y[i] = (float)nd->a.value;
    }
    return NM_OK;
}

/* ---- Range ---- */

/* The scalar value of constant input i (integer or float). */
static double scalar(const nm_value *v)
{
    return v->is_int ? (double)v->idata[0] : v->cdata[0];
}

static nm_status range_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *in[3];
    for (int i = 0; i < 3; i++) {
        in[i] = NM_IN(net, nd, i);
        if (in[i]->varying || nm_shape_numel(&in[i]->shape) != 1)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Range): start, limit and delta must be constant scalars", nd->name);
    }
    double start = scalar(in[0]), limit = scalar(in[1]), delta = scalar(in[2]);
    double n = delta != 0 ? ceil((limit - start) / delta) : -1;
    if (!(n >= 0 ? n <= 1e9 : delta != 0))
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Range): start %g, limit %g, delta %g", nd->name, start, limit, delta);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = (nm_shape){1, {n > 0 ? (int64_t)n : 0}};
    Y->is_int = in[0]->is_int;
    nd->a.value = start, nd->a.lo = (float)delta;
    return NM_OK;
}

/* y_i = start + i·delta. */
static nm_status range_forward(const nm_node *nd, nm_pass *p)
{
    int64_t n = p->ys.d[0];
    if (p->iy) {
        int64_t s = p->ix[0][0], d = p->ix[2][0];
        for (int64_t i = 0; i < n; i++) p->iy[i] = s + i * d;
    } else {
        for (int64_t i = 0; i < n; i++) p->y[i] = (float)(p->x[0][0] + (double)i * p->x[2][0]);
    }
    (void)nd;
    return NM_OK;
}

/* ---- Cast ---- */

static nm_status cast_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    if (X->varying && !float_type(nd->a.to))
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Cast): a value that depends on the input can be cast only to a float type", nd->name);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    Y->batched = X->batched;
    Y->is_int = !float_type(nd->a.to);
    return NM_OK;
}

/* x[0] or ix[0] into y or iy: float to integer truncates toward zero (to bool: non-zero is 1). */
static nm_status cast_forward(const nm_node *nd, nm_pass *p)
{
    int64_t n = nm_shape_numel(&p->ys);
    int to_bool = nd->a.to == 9;
    for (int64_t i = 0; i < n; i++) {
        if (p->iy && p->ix[0]) p->iy[i] = to_bool ? p->ix[0][i] != 0 : p->ix[0][i];
        else if (p->iy) p->iy[i] = to_bool ? p->x[0][i] != 0 : (int64_t)p->x[0][i];
        else p->y[i] = p->ix[0] ? (float)p->ix[0][i] : p->x[0][i];
    }
    return NM_OK;
}

/* dx[0]: dy = dx (float to float in float32). */
static nm_status cast_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    memcpy(p->dy, p->dx[0], (size_t)nm_shape_numel(&p->dys) * sizeof(float));
    return NM_OK;
}

/* dy: dx[0] += dy. */
static nm_status cast_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    if (!p->dx[0]) return NM_OK;
    int64_t n = nm_shape_numel(&p->dys);
    for (int64_t i = 0; i < n; i++) p->dx[0][i] += p->dy[i];
    return NM_OK;
}

static const nm_attr_def shape_attrs[] = { /* opset 15 */
    {.name = "start", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(starts)},
    {.name = "end", .kind = NM_ATTR_LIST, .offset = NM_ATTR_FIELD(ends), .count = 1, .count_offset = NM_ATTR_FIELD(naxes)},
    {0}};
static const nm_attr_def cos_attrs[] = {{.name = "value", .kind = NM_ATTR_SCALAR, .offset = NM_ATTR_FIELD(value)}, {0}};
static const nm_attr_def cast_attrs[] = {
    {.name = "to", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(to), .def = ONNX_FLOAT, .write = 1},
    {.name = "saturate", .kind = NM_ATTR_IGNORE}, /* float8 types only */
    {0}};

const nm_op_def nm_op_shape = {
    .name = "Shape", .min_inputs = 1, .max_inputs = 1, .shape_only = 1, .int_data = 1, .attrs = shape_attrs,
    .infer = shape_infer, .forward = shape_forward, .jvp = nm_pass_folded_only, .vjp = nm_pass_folded_only,
};
const nm_op_def nm_op_constantofshape = {
    .name = "ConstantOfShape", .min_inputs = 1, .max_inputs = 1, .int_input = {[0] = 1}, .attrs = cos_attrs,
    .infer = cos_infer, .forward = cos_forward, .jvp = nm_pass_folded_only, .vjp = nm_pass_folded_only,
};
const nm_op_def nm_op_range = {
    .name = "Range", .min_inputs = 3, .max_inputs = 3, .int_input = {[0] = 1, [1] = 1, [2] = 1},
    .infer = range_infer, .forward = range_forward, .jvp = nm_pass_folded_only, .vjp = nm_pass_folded_only,
};
const nm_op_def nm_op_cast = {
    .name = "Cast", .min_inputs = 1, .max_inputs = 1, .int_data = 1, .attrs = cast_attrs,
    .infer = cast_infer, .forward = cast_forward, .jvp = cast_jvp, .vjp = cast_vjp,
};
