/*
 * index.c — Gather (indices along one axis; scalar indices drop the axis)
 * and Slice (starts, ends, axes, steps: attributes before opset 10, integer
 * inputs after; negative steps, clamped bounds). Both pick elements, so they
 * move float data at run time and integer data (shapes) when folding, jvp
 * picks the tangent's elements and vjp adds the cotangent back.
 *
 * Shapes: Gather y = x.shape[:axis] + idx.shape + x.shape[axis+1:];
 *         Slice y_k = the count of start_k + i·step_k inside [0, x_k).
 */
#include "../net.h"

#include <string.h>

/* ---- Gather ---- */

static nm_status gather_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0), *I = NM_IN(net, nd, 1);
    int r = X->shape.ndim;
    int64_t axis;
    if (I->varying || !I->is_int) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Gather): the indices must be integer constants", nd->name);
    if (r < 1 || !nm_axis(nd->a.axis, r, &axis))
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Gather): axis %lld out of range for rank %d", nd->name, (long long)nd->a.axis, r);
    if (r - 1 + I->shape.ndim > NM_MAX_DIMS) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Gather): output rank too large", nd->name);
    nd->a.axis = axis;
    int64_t n = nm_shape_numel(&I->shape), len = X->shape.d[axis];
    for (int64_t i = 0; i < n; i++)
        if (I->idata[i] < -len || I->idata[i] >= len)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Gather): index %lld outside %lld..%lld", nd->name, (long long)I->idata[i],
                           (long long)-len, (long long)len - 1);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape.ndim = 0;
    for (int k = 0; k < axis; k++) Y->shape.d[Y->shape.ndim++] = X->shape.d[k];
    for (int k = 0; k < I->shape.ndim; k++) Y->shape.d[Y->shape.ndim++] = I->shape.d[k];
    for (int k = (int)axis + 1; k < r; k++) Y->shape.d[Y->shape.ndim++] = X->shape.d[k];
    Y->batched = X->batched && axis > 0;
    Y->is_int = X->is_int;
    return NM_OK;
}

/* Gathers (or, add = 1, adds back into src) along the axis: x of shape xs, the indices of the node. */
static void gather_apply(const nm_node *nd, const nm_pass *p, const nm_shape *xs, const void *src, void *y, size_t esize, int add)
{
    int64_t axis = nd->a.axis, len = xs->d[axis], inner = nm_shape_tail(xs, (int)axis + 1), outer = 1;
    int64_t ni = nm_shape_numel(&p->xs[1]);
    const int64_t *idx = p->ix[1];
    for (int k = 0; k < axis; k++) outer *= xs->d[k];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++) {
            int64_t i = idx[j] < 0 ? idx[j] + len : idx[j];
            char *yo = (char *)y + (size_t)((o * ni + j) * inner) * esize;
            const char *xo = (const char *)src + (size_t)((o * len + i) * inner) * esize;
            if (!add) {
                memcpy(yo, xo, (size_t)inner * esize);
                continue;
            }
            float *d = (float *)xo;
            const float *g = (const float *)yo;
            for (int64_t t = 0; t < inner; t++) d[t] += g[t];
        }
}

/* x[0] (any type), ix[1] the indices: y. */
static nm_status gather_forward(const nm_node *nd, nm_pass *p)
{
    gather_apply(nd, p, &p->xs[0], nm_pass_in(p, 0), nm_pass_out(p), nm_pass_esize(p), 0);
    return NM_OK;
}

/* dx[0] (T samples): dy its gathered elements. */
static nm_status gather_jvp(const nm_node *nd, nm_pass *p)
{
    gather_apply(nd, p, &p->dxs[0], p->dx[0], p->dy, sizeof(float), 0);
    return NM_OK;
}

/* dy: added into dx[0] at the gathered places. */
static nm_status gather_vjp(const nm_node *nd, nm_pass *p)
{
    if (p->dx[0]) gather_apply(nd, p, &p->dxs[0], p->dx[0], p->dy, sizeof(float), 1);
    return NM_OK;
}

/* ---- Slice ---- */

/* starts, ends, axes, steps: from the attributes (opset < 10) or the integer inputs 1..4. */
static nm_status slice_params(nm_ctx *ctx, nm_net *net, nm_node *nd, int64_t *st, int64_t *en, int64_t *ax, int64_t *sp, int64_t *n)
{
    nm_attrs *a = &nd->a;
    if (nd->nin == 1) { /* attributes */
        *n = a->naxes;
        for (int i = 0; i < *n; i++) st[i] = a->starts[i], en[i] = a->ends[i], ax[i] = a->slice_naxes ? a->axes[i] : i, sp[i] = 1;
        return NM_OK;
    }
    const nm_value *in[5] = {NULL};
    for (int k = 1; k < 5; k++) in[k] = k < nd->nin ? NM_IN(net, nd, k) : NULL;
    for (int k = 1; k < 5; k++)
        if (in[k] && (in[k]->varying || !in[k]->is_int || in[k]->shape.ndim != 1))
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Slice): input %d must be a constant 1-D integer tensor", nd->name, k);
    if (!in[1] || !in[2]) return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Slice): starts and ends are required", nd->name);
    *n = in[1]->shape.d[0];
    if (*n > NM_MAX_DIMS || in[2]->shape.d[0] != *n || (in[3] && in[3]->shape.d[0] != *n) || (in[4] && in[4]->shape.d[0] != *n))
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Slice): starts, ends, axes and steps differ in length", nd->name);
    for (int i = 0; i < *n; i++) {
        st[i] = in[1]->idata[i], en[i] = in[2]->idata[i];
        ax[i] = in[3] ? in[3]->idata[i] : i;
        sp[i] = in[4] ? in[4]->idata[i] : 1;
    }
    return NM_OK;
}

static nm_status slice_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    int r = X->shape.ndim;
    int64_t st[NM_MAX_DIMS], en[NM_MAX_DIMS], ax[NM_MAX_DIMS], sp[NM_MAX_DIMS], n = 0;
    nm_status s = slice_params(ctx, net, nd, st, en, ax, sp, &n);
    if (s != NM_OK) return s;
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    for (int k = 0; k < r; k++) nd->a.starts[k] = 0, nd->a.steps[k] = 1;
    for (int i = 0; i < n; i++) {
        int64_t k, d;
        if (!nm_axis(ax[i], r, &k)) return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Slice): axis %lld out of range", nd->name, (long long)ax[i]);
        d = X->shape.d[k];
        if (sp[i] == 0) return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Slice): step 0", nd->name);
        /* ONNX: negative bounds count from the end, then clamp to [0, d] (to [−1, d−1] for negative steps) */
        int64_t b = st[i] < 0 ? (st[i] < -d ? 0 : st[i] + d) : st[i], e = en[i] < 0 ? (en[i] < -d ? -1 : en[i] + d) : en[i];
        if (sp[i] > 0) b = b > d ? d : b, e = e > d ? d : (e < 0 ? 0 : e);
        else b = b > d - 1 ? d - 1 : b, e = e > d - 1 ? d - 1 : e;
        int64_t cnt = sp[i] > 0 ? (e > b ? (e - b + sp[i] - 1) / sp[i] : 0) : (b > e ? (b - e - sp[i] - 1) / -sp[i] : 0);
        Y->shape.d[k] = cnt;
        nd->a.starts[k] = b, nd->a.steps[k] = sp[i];
    }
    Y->batched = X->batched && nd->a.starts[0] == 0 && nd->a.steps[0] == 1 && Y->shape.d[0] == X->shape.d[0];
    Y->is_int = X->is_int;
    return NM_OK;
}

/* Strides and the offset of the first element, into x of shape xs: y[i] = x[off0 + Σ i_k st_k]. */
static int64_t slice_strides(const nm_attrs *a, const nm_shape *xs, int64_t *st)
{
    int64_t s = 1, off = 0;
    for (int k = xs->ndim - 1; k >= 0; k--) {
        off += a->starts[k] * s;
        st[k] = a->steps[k] * s;
        s *= xs->d[k];
    }
    return off;
}

/* x[0] (any type): y its slice. */
static nm_status slice_forward(const nm_node *nd, nm_pass *p)
{
    int64_t st[NM_MAX_DIMS], off = slice_strides(&nd->a, &p->xs[0], st);
    nm_strided_any(&p->ys, st, nm_pass_out(p), (const char *)nm_pass_in(p, 0) + (size_t)off * nm_pass_esize(p), nm_pass_esize(p));
    return NM_OK;
}

/* dx[0] (T samples): dy its slice. */
static nm_status slice_jvp(const nm_node *nd, nm_pass *p)
{
    int64_t st[NM_MAX_DIMS], off = slice_strides(&nd->a, &p->dxs[0], st);
    nm_strided_any(&p->dys, st, p->dy, p->dx[0] + off, sizeof(float));
    return NM_OK;
}

/* dy: added into dx[0] at the sliced places. */
static nm_status slice_vjp(const nm_node *nd, nm_pass *p)
{
    if (!p->dx[0]) return NM_OK;
    int64_t st[NM_MAX_DIMS], off = slice_strides(&nd->a, &p->dxs[0], st);
    nm_strided(&p->dys, st, p->dy, p->dx[0] + off, 1, 0);
    return NM_OK;
}

static const nm_attr_def gather_attrs[] = {
    {.name = "axis", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(axis), .def = 0, .write = 1},
    {0}};

/* before opset 10 the bounds are attributes */
static const nm_attr_def slice_attrs[] = {
    {.name = "starts", .kind = NM_ATTR_LIST, .offset = NM_ATTR_FIELD(starts), .count = NM_MAX_DIMS, .count_offset = NM_ATTR_FIELD(naxes)},
    {.name = "ends", .kind = NM_ATTR_LIST, .offset = NM_ATTR_FIELD(ends), .count = NM_MAX_DIMS, .count_offset = NM_ATTR_FIELD(naxes)},
    {.name = "axes", .kind = NM_ATTR_LIST, .offset = NM_ATTR_FIELD(axes), .count = NM_MAX_DIMS, .count_offset = NM_ATTR_FIELD(slice_naxes)},
    {0}};

static const char *slice_refusal(const nm_net *net, const nm_node *nd)
{
    (void)net;
    return nd->nin == 1 ? "Slice with attribute bounds (opset < 10)" : NULL;
}

const nm_op_def nm_op_gather = {
    .name = "Gather", .min_inputs = 2, .max_inputs = 2, .int_input = {[1] = 1}, .int_data = 1, .attrs = gather_attrs,
    .infer = gather_infer, .forward = gather_forward, .jvp = gather_jvp, .vjp = gather_vjp,
};
const nm_op_def nm_op_slice = {
    .name = "Slice", .min_inputs = 1, .max_inputs = 5, .int_input = {[1] = 1, [2] = 1, [3] = 1, [4] = 1}, .int_data = 1,
    .attrs = slice_attrs, .export_refusal = slice_refusal,
    .infer = slice_infer, .forward = slice_forward, .jvp = slice_jvp, .vjp = slice_vjp,
};
