/*
 * shape.c — ops that move no numbers: Identity, Dropout (inference: the
 * identity), Flatten and Reshape (constant target shape). Row-major data is
 * unchanged, so every pass is a copy (vjp: an accumulation); only the shape
 * and whether the first axis still follows the batch differ.
 *
 * Shapes: x any; y as inferred below, same element count.
 */
#include "../net.h"

#include <string.h>

static nm_status same_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    if (nd->op == NM_OP_DROPOUT && nd->nin > 2 && nd->in[2] >= 0) {
        const nm_value *M = NM_IN(net, nd, 2);
        if (M->varying || !M->idata || nm_shape_numel(&M->shape) != 1)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Dropout): training_mode must be a constant scalar", nd->name);
        if (M->idata[0])
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Dropout): training mode is not supported (inference only)", nd->name);
    }
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    Y->batched = X->batched;
    Y->is_int = X->is_int;
    return NM_OK;
}

static nm_status flatten_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    int r = X->shape.ndim;
    int64_t axis = nd->a.axis < 0 ? nd->a.axis + r : nd->a.axis;
    if (axis < 0 || axis > r)
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Flatten): axis %lld out of range for rank %d", nd->name, (long long)nd->a.axis, r);
    nd->a.axis = axis;
    int64_t lead = 1, rest = 1;
    for (int i = 0; i < r; i++) {
        if (i < axis) lead *= X->shape.d[i];
        else rest *= X->shape.d[i];
    }
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = (nm_shape){2, {lead, rest}};
    Y->batched = X->batched && axis >= 1 && lead == X->shape.d[0]; /* the first axis is still the batch alone */
    Y->is_int = X->is_int;
    return NM_OK;
}

static nm_status reshape_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0), *S = NM_IN(net, nd, 1);
    if (!S || S->varying || !S->idata || S->shape.ndim != 1)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Reshape): the target shape must be a constant 1-D integer tensor", nd->name);
    int64_t r = S->shape.d[0];
    if (r > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Reshape): rank %lld exceeds %d", nd->name, (long long)r, NM_MAX_DIMS);
    nm_shape out = {(int)r, {0}};
    int64_t known = 1, infer_at = -1, numel = nm_shape_numel(&X->shape);
    for (int64_t i = 0; i < r; i++) {
        int64_t t = S->idata[i];
        if (t == 0 && !nd->a.allowzero) {
            if (i >= X->shape.ndim)
                return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Reshape): 0 at axis %lld copies a dimension the input lacks", nd->name, (long long)i);
            t = X->shape.d[i];
        }
        if (t == -1) {
            if (infer_at >= 0)
                return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Reshape): more than one -1", nd->name);
            infer_at = i;
            continue;
        }
        if (t < 0 || (t && known > INT64_MAX / t))
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Reshape): invalid target dimension %lld", nd->name, (long long)S->idata[i]);
        out.d[i] = t;
        known *= t;
    }
    if (infer_at >= 0) {
        if (known == 0 || numel % known)
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Reshape): %lld elements cannot fill the target", nd->name, (long long)numel);
        out.d[infer_at] = numel / known;
        known = numel;
    }
    if (known != numel)
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Reshape): target holds %lld elements, the input %lld", nd->name,
                       (long long)known, (long long)numel);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = out;
    Y->batched = X->batched && r >= 1 && out.d[0] == X->shape.d[0];
    Y->is_int = X->is_int;
    return NM_OK;
}

/* x[0] any shape: y (same elements, the inferred shape) = x. */
static nm_status copy_forward(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    memcpy(nm_pass_out(p), nm_pass_in(p, 0), (size_t)nm_shape_numel(&p->ys) * nm_pass_esize(p));
    return NM_OK;
}

/* dx[0]: dy = dx. */
static nm_status copy_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    memcpy(p->dy, p->dx[0], (size_t)nm_shape_numel(&p->dys) * sizeof(float));
    return NM_OK;
}

/* dy: dx[0] += dy. */
static nm_status copy_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    if (!p->dx[0]) return NM_OK;
    int64_t n = nm_shape_numel(&p->dys);
    for (int64_t i = 0; i < n; i++) p->dx[0][i] += p->dy[i];
    return NM_OK;
}

static const nm_attr_def dropout_attrs[] = {
    {.name = "ratio", .kind = NM_ATTR_IGNORE},
    {.name = "seed", .kind = NM_ATTR_IGNORE},
    {.name = "is_test", .kind = NM_ATTR_CHECK, .def = 1, .why = "= 0 (training mode) is not supported"},
    {0}};

static const nm_attr_def flatten_attrs[] = {
    {.name = "axis", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(axis), .def = 1, .write = 1},
    {0}};

static const nm_attr_def reshape_attrs[] = {
    {.name = "allowzero", .kind = NM_ATTR_BOOL, .offset = NM_ATTR_FIELD(allowzero)},
    {.name = "shape", .kind = NM_ATTR_INPUT, .count = 1}, /* opset < 5: the target shape is an attribute */
    {0}};

/* allowzero arrived in opset 14 */
static const char *reshape_refusal(const nm_net *net, const nm_node *nd)
{
    (void)net;
    return nd->a.allowzero ? "allowzero = 1 (opset 14)" : NULL;
}

const nm_op_def nm_op_identity = {
    .name = "Identity", .min_inputs = 1, .max_inputs = 1, .int_data = 1,
    .moments = NM_MOMENTS_SAME, .infer = same_infer, .forward = copy_forward, .jvp = copy_jvp, .vjp = copy_vjp,
};
/* inference Dropout ignores its ratio and mode, so only its data input is written */
const nm_op_def nm_op_dropout = {
    .name = "Dropout", .min_inputs = 1, .max_inputs = 3, .int_input = {[2] = 1}, .attrs = dropout_attrs, .export_inputs = 1,
    .moments = NM_MOMENTS_SAME, .infer = same_infer, .forward = copy_forward, .jvp = copy_jvp, .vjp = copy_vjp,
};
const nm_op_def nm_op_flatten = {
    .name = "Flatten", .min_inputs = 1, .max_inputs = 1, .int_data = 1, .attrs = flatten_attrs,
    .moments = NM_MOMENTS_SAME, .infer = flatten_infer, .forward = copy_forward, .jvp = copy_jvp, .vjp = copy_vjp,
};
const nm_op_def nm_op_reshape = {
    .name = "Reshape", .min_inputs = 2, .max_inputs = 2, .int_input = {[1] = 1}, .int_data = 1, .attrs = reshape_attrs,
    .export_refusal = reshape_refusal,
    .moments = NM_MOMENTS_SAME, .infer = reshape_infer, .forward = copy_forward, .jvp = copy_jvp, .vjp = copy_vjp,
};
