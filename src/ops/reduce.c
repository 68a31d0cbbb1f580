/*
 * reduce.c — ReduceMean and ReduceSum over axes (an attribute, or from
 * opset 13 for ReduceSum an integer input; keepdims; no axes: all), and
 * GlobalMaxPool. The reductions are linear: jvp reduces the tangent, vjp
 * spreads the cotangent back (divided by the count for the mean).
 * GlobalMaxPool routes each output through the argmax of its plane in the
 * primal (frozen, as MaxPool's windows; the first maximum wins).
 *
 * Shapes: Reduce x (d_0, ..., d_r−1) → y with the reduced axes 1 (or
 * dropped without keepdims); GlobalMaxPool x (N, C, ...) → y (N, C, 1, ...).
 */
#include "../net.h"

#include <string.h>

static nm_status reduce_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0), *A = nd->nin > 1 ? NM_IN(net, nd, 1) : NULL;
    nm_attrs *a = &nd->a;
    if (A) {
        if (A->varying || !A->is_int || A->shape.ndim != 1 || A->shape.d[0] > NM_MAX_DIMS)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): axes must be a constant 1-D integer tensor", nd->name, nm_op_name(nd->op));
        a->naxes = A->shape.d[0];
        memcpy(a->axes, A->idata, sizeof(int64_t) * (size_t)a->naxes);
    }
    int r = X->shape.ndim, red[NM_MAX_DIMS] = {0};
    for (int i = 0; i < a->naxes; i++) {
        int64_t k;
        if (!nm_axis(a->axes[i], r, &k)) return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): axis %lld out of range", nd->name, nm_op_name(nd->op), (long long)a->axes[i]);
        red[k] = 1;
    }
    for (int k = 0; k < r && a->naxes == 0; k++) red[k] = 1; /* no axes: every axis */
    nm_value *Y = NM_OUT(net, nd);
    Y->shape.ndim = 0;
    a->size = 1; /* the count of reduced elements per output */
    for (int k = 0; k < r; k++) {
        if (red[k]) a->size *= X->shape.d[k];
        if (!red[k] || a->keepdims) Y->shape.d[Y->shape.ndim++] = red[k] ? 1 : X->shape.d[k];
        a->starts[k] = red[k]; /* which axes, for the passes */
    }
    Y->batched = X->batched && !red[0];
    return NM_OK;
}

/* Strides into y (keepdims layout) for each axis of x: 0 along the reduced ones. */
static void reduce_strides(const nm_attrs *a, const nm_shape *xs, int64_t *st)
{
    int64_t s = 1;
    for (int k = xs->ndim - 1; k >= 0; k--) {
        st[k] = a->starts[k] ? 0 : s;
        if (!a->starts[k]) s *= xs->d[k];
    }
}

/* x (xs) summed into y (zeroed first), scaled by 1/count for the mean. */
static void reduce_apply(const nm_node *nd, const nm_shape *xs, float *x, float *y, int64_t ny)
{
    int64_t st[NM_MAX_DIMS];
    reduce_strides(&nd->a, xs, st);
    memset(y, 0, (size_t)ny * sizeof(float));
    nm_strided(xs, st, x, y, 1, 0);
    if (nd->op == NM_OP_REDUCEMEAN)
        for (int64_t i = 0; i < ny; i++) y[i] /= (float)nd->a.size;
}

/* x[0]: y its sums (means) over the axes. */
static nm_status reduce_forward(const nm_node *nd, nm_pass *p)
{
    reduce_apply(nd, &p->xs[0], p->x[0], p->y, nm_shape_numel(&p->ys));
    return NM_OK;
}

/* dx[0] (T samples): dy its sums (means). */
static nm_status reduce_jvp(const nm_node *nd, nm_pass *p)
{
    reduce_apply(nd, &p->dxs[0], p->dx[0], p->dy, nm_shape_numel(&p->dys));
    return NM_OK;
}

/* dy: dx[0] += dy (/ count) at every element it sums. */
static nm_status reduce_vjp(const nm_node *nd, nm_pass *p)
{
    if (!p->dx[0]) return NM_OK;
    int64_t st[NM_MAX_DIMS], ny = nm_shape_numel(&p->dys);
    reduce_strides(&nd->a, &p->dxs[0], st);
    float *g = p->dy;
    if (nd->op == NM_OP_REDUCEMEAN) {
        if (!(g = nm_pass_scratch(p, (size_t)ny))) return NM_ERR_NOMEM;
        for (int64_t i = 0; i < ny; i++) g[i] = p->dy[i] / (float)nd->a.size;
    }
    nm_strided(&p->dxs[0], st, p->dx[0], g, 0, 1);
    return NM_OK;
}

/* ---- GlobalMaxPool ---- */

static nm_status gmp_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    if (X->shape.ndim < 3) return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (GlobalMaxPool): input of rank %d", nd->name, X->shape.ndim);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    for (int i = 2; i < X->shape.ndim; i++) Y->shape.d[i] = 1;
    Y->batched = X->batched;
    return NM_OK;
}

/* Index of the first maximum of the plane x (n elements). */
static int64_t plane_argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* x[0] (N, C, ...): y (N, C, 1, ...) the maximum of each plane. */
static nm_status gmp_forward(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t planes = p->xs[0].d[0] * p->xs[0].d[1], n = nm_shape_tail(&p->xs[0], 2);
    for (int64_t c = 0; c < planes; c++) p->y[c] = p->x[0][c * n + plane_argmax(p->x[0] + c * n, n)];
    return NM_OK;
}

/* Output element o (plane o of a sample) takes the max of the whole plane. */
static int64_t gmp_window(const nm_node *nd, const nm_shape *xs, const nm_shape *ys, int64_t o, int64_t *idx)
{
    (void)nd, (void)ys;
    int64_t n = nm_shape_tail(xs, 2);
    for (int64_t i = 0; idx && i < n; i++) idx[i] = o * n + i;
    return n;
}

/* dx[0] (T, C, ...): dy the tangent at each primal plane's argmax. */
static nm_status gmp_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    int64_t pp = p->xs[0].d[0] * p->xs[0].d[1], planes = p->dxs[0].d[0] * p->dxs[0].d[1], n = nm_shape_tail(&p->xs[0], 2);
    for (int64_t c = 0; c < planes; c++) p->dy[c] = p->dx[0][c * n + plane_argmax(p->x[0] + (c % pp) * n, n)];
    return NM_OK;
}

/* dy: added into dx[0] at each primal plane's argmax. */
static nm_status gmp_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    if (!p->dx[0]) return NM_OK;
    int64_t pp = p->xs[0].d[0] * p->xs[0].d[1], planes = p->dxs[0].d[0] * p->dxs[0].d[1], n = nm_shape_tail(&p->xs[0], 2);
    for (int64_t c = 0; c < planes; c++) p->dx[0][c * n + plane_argmax(p->x[0] + (c % pp) * n, n)] += p->dy[c];
    return NM_OK;
}

/* x[0] (the primal): one code per output element, its plane's argmax. */
static nm_status gmp_decide(const nm_node *nd, nm_pass *p, int32_t *codes)
{
    (void)nd;
    int64_t planes = p->xs[0].d[0] * p->xs[0].d[1], n = nm_shape_tail(&p->xs[0], 2);
    for (int64_t c = 0; c < planes; c++) codes[c] = (int32_t)plane_argmax(p->x[0] + c * n, n);
    return NM_OK;
}

static const nm_attr_def reduce_attrs[] = {
    {.name = "axes", .kind = NM_ATTR_LIST, .offset = NM_ATTR_FIELD(axes), .count = NM_MAX_DIMS, .count_offset = NM_ATTR_FIELD(naxes), .write = 1},
    {.name = "keepdims", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(keepdims), .def = 1, .write = 1},
    {.name = "noop_with_empty_axes", .kind = NM_ATTR_CHECK, .def = 0, .why = "= 1 is not supported"},
    {0}};

/* ReduceSum takes its axes as an input from opset 13 */
static int sum_export(const nm_net *net, const nm_node *nd, nm_export_input extra[2])
{
    (void)net;
    extra[0] = (nm_export_input){"axes", {1, {nd->a.naxes}}, NULL, nd->a.axes};
    return nd->a.naxes > 0;
}
static const nm_attr_def sum_attrs[] = { /* the axes are written as an input */
    {.name = "axes", .kind = NM_ATTR_LIST, .offset = NM_ATTR_FIELD(axes), .count = NM_MAX_DIMS, .count_offset = NM_ATTR_FIELD(naxes)},
    {.name = "keepdims", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(keepdims), .def = 1, .write = 1},
    {.name = "noop_with_empty_axes", .kind = NM_ATTR_CHECK, .def = 0, .why = "= 1 is not supported"},
    {0}};

const nm_op_def nm_op_reducemean = {
    .name = "ReduceMean", .min_inputs = 1, .max_inputs = 1, .attrs = reduce_attrs,
    .infer = reduce_infer, .forward = reduce_forward, .jvp = reduce_jvp, .vjp = reduce_vjp,
};
const nm_op_def nm_op_reducesum = {
    .name = "ReduceSum", .min_inputs = 1, .max_inputs = 2, .int_input = {[1] = 1}, .attrs = sum_attrs,
    .export_inputs = 1, .export_extra = sum_export,
    .infer = reduce_infer, .forward = reduce_forward, .jvp = reduce_jvp, .vjp = reduce_vjp,
};
const nm_op_def nm_op_globalmaxpool = {
    .name = "GlobalMaxPool", .min_inputs = 1, .max_inputs = 1, .hides_nonfinite = 1, .decide = gmp_decide,
    .decides = NM_DECIDES_ARGMAX, .window = gmp_window,
    .infer = gmp_infer, .forward = gmp_forward, .jvp = gmp_jvp, .vjp = gmp_vjp,
};
