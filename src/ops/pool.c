/*
 * pool.c — MaxPool (kernel, strides, pads, dilations, ceil_mode), AveragePool
 * (count_include_pad, ceil_mode) and GlobalAveragePool. MaxPool's jvp and
 * vjp route each output through the argmax of its window in the primal
 * (frozen, DESIGN §1.6; the first maximum in scan order wins ties);
 * average pools are linear, so their jvp is the forward pass of the tangent.
 *
 * Shapes: x (N, C, H, W); y (N, C, OH, OW). GlobalAveragePool: x (N, C, ...)
 * → y (N, C, 1, ...).
 */
#include "../net.h"

#include <string.h>

typedef struct {
    int64_t NC, H, W, OH, OW;
} pool_dims;

static pool_dims pdims(const nm_shape *xs4, const nm_shape *ys4)
{
    nm_shape xs = nm_as_image(xs4), ys = nm_as_image(ys4); /* 1-D: (N, C, 1, L) */
    return (pool_dims){xs.d[0] * xs.d[1], xs.d[2], xs.d[3], ys.d[2], ys.d[3]};
}

/* The kernel offsets [*lo, *hi) along one axis whose positions
 * base + i·dil fall inside [0, n). */
static void window_range(int64_t base, int64_t dil, int64_t k, int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t a = base >= 0 ? 0 : (-base + dil - 1) / dil;
    int64_t b = base + (k - 1) * dil < n ? k : (n - 1 - base) / dil + 1;
    *lo = a;
    *hi = b > a ? b : a;
}

/* The window of output (oh, ow): its top-left corner (bh, bw) in the plane,
 * which may lie in the padding, and the kernel offsets [i0, i1) × [j0, j1)
 * that fall inside the plane. */
typedef struct {
    int64_t bh, bw, i0, i1, j0, j1;
} pool_win;

static pool_win window_at(const nm_attrs *a, const pool_dims *d, int64_t oh, int64_t ow)
{
    pool_win w = {.bh = oh * a->stride[0] - a->pad[0], .bw = ow * a->stride[1] - a->pad[1]};
    window_range(w.bh, a->dil[0], a->kernel[0], d->H, &w.i0, &w.i1);
    window_range(w.bw, a->dil[1], a->kernel[1], d->W, &w.j0, &w.j1);
    return w;
}

/* The most kernel offsets along axis k that any window can have inside the
 * plane: a window far larger than the plane (with as much padding) reads
 * only the plane. */
static int64_t in_plane_bound(const nm_attrs *a, const pool_dims *d, int k)
{
    int64_t n = k ? d->W : d->H, fit = (n - 1) / a->dil[k] + 1;
    return a->kernel[k] < fit ? a->kernel[k] : fit;
}

/* Index of the window's maximum in the plane x (H, W), or -1 when the window
 * lies wholly in the padding. Scan order is row-major over the kernel; the
 * first maximum wins. */
static int64_t window_argmax(const nm_attrs *a, const pool_dims *d, const float *x, int64_t oh, int64_t ow)
{
    pool_win w = window_at(a, d, oh, ow);
    int64_t bh = w.bh, bw = w.bw, i0 = w.i0, i1 = w.i1, j0 = w.j0, j1 = w.j1;
    if (i0 >= i1 || j0 >= j1) return -1;
    int64_t best = (bh + i0 * a->dil[0]) * d->W + bw + j0 * a->dil[1];
    float bv = x[best];
    for (int64_t i = i0; i < i1; i++) {
        const float *row = x + (bh + i * a->dil[0]) * d->W + bw;
        for (int64_t j = j0; j < j1; j++) {
            float v = row[j * a->dil[1]];
            if (v > bv) {
                bv = v;
                best = (bh + i * a->dil[0]) * d->W + bw + j * a->dil[1];
            }
        }
    }
    return best;
}

/* The window of output element o (within a sample) as input elements: the kernel offsets inside the plane. */
static int64_t maxpool_window(const nm_node *nd, const nm_shape *xs, const nm_shape *ys, int64_t o, int64_t *idx)
{
    const nm_attrs *a = &nd->a;
    pool_dims d = pdims(xs, ys);
    if (!idx) return in_plane_bound(a, &d, 0) * in_plane_bound(a, &d, 1);
    int64_t c = o / (d.OH * d.OW), n = 0;
    pool_win w = window_at(a, &d, o / d.OW % d.OH, o % d.OW);
    for (int64_t i = w.i0; i < w.i1; i++)
        for (int64_t j = w.j0; j < w.j1; j++) idx[n++] = (c * d.H + w.bh + i * a->dil[0]) * d.W + w.bw + j * a->dil[1];
    return n;
}

/* Every window inside the plane with unit dilation: the common LeNet and
 * AlexNet pools, which take the fast loop below. */
static int windows_inside(const nm_attrs *a, const pool_dims *d)
{
    return a->dil[0] == 1 && a->dil[1] == 1 && a->pad[0] == 0 && a->pad[1] == 0 &&
           (d->OH - 1) * a->stride[0] + a->kernel[0] <= d->H && (d->OW - 1) * a->stride[1] + a->kernel[1] <= d->W;
}

static nm_status pool_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    if (X->shape.ndim != 4 && X->shape.ndim != 3)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): only 1-D and 2-D pooling is supported (input of rank %d)",
                       nd->name, nm_op_name(nd->op), X->shape.ndim);
    if (nd->a.kernel[0] < 1 || nd->a.kernel[1] < 1)
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): kernel_shape must give positive sizes", nd->name, nm_op_name(nd->op));
    nd->a.spatial = X->shape.ndim - 2;
    nm_shape x4 = nm_as_image(&X->shape);
    int64_t OH, OW;
    nm_status st = nm_window_resolve(ctx, nd, &nd->a, x4.d[2], x4.d[3], &OH, &OW);
    if (st != NM_OK) return st;
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = nd->a.spatial == 1 ? (nm_shape){3, {X->shape.d[0], X->shape.d[1], OW}} : (nm_shape){4, {X->shape.d[0], X->shape.d[1], OH, OW}};
    Y->batched = X->batched;
    return NM_OK;
}

/* ---- MaxPool ---- */

/* x[0] (N, C, H, W): y (N, C, OH, OW) = the maximum of each window (padding never wins). */
static nm_status maxpool_forward(const nm_node *nd, nm_pass *p)
{
    const nm_attrs *a = &nd->a;
    pool_dims d = pdims(&p->xs[0], &p->ys);
    int inside = windows_inside(a, &d);
    #pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < d.NC; nc++) {
        const float *x = p->x[0] + nc * d.H * d.W;
        float *y = p->y + nc * d.OH * d.OW;
        if (inside && a->kernel[0] == 2 && a->kernel[1] == 2 && a->stride[0] == 2 && a->stride[1] == 2) {
            for (int64_t oh = 0; oh < d.OH; oh++) { /* the LeNet pool, unrolled */
                const float *r0 = x + 2 * oh * d.W, *r1 = r0 + d.W;
                for (int64_t ow = 0; ow < d.OW; ow++) {
                    float m0 = r0[2 * ow] > r0[2 * ow + 1] ? r0[2 * ow] : r0[2 * ow + 1];
                    float m1 = r1[2 * ow] > r1[2 * ow + 1] ? r1[2 * ow] : r1[2 * ow + 1];
                    y[oh * d.OW + ow] = m0 > m1 ? m0 : m1;
                }
            }
            continue;
        }
        for (int64_t oh = 0; oh < d.OH; oh++)
            for (int64_t ow = 0; ow < d.OW; ow++) {
                if (inside) {
                    const float *w = x + oh * a->stride[0] * d.W + ow * a->stride[1];
                    float m = w[0];
                    for (int64_t i = 0; i < a->kernel[0]; i++)
                        for (int64_t j = 0; j < a->kernel[1]; j++) m = w[i * d.W + j] > m ? w[i * d.W + j] : m;
                    y[oh * d.OW + ow] = m;
                } else {
                    int64_t k = window_argmax(a, &d, x, oh, ow);
                    y[oh * d.OW + ow] = k >= 0 ? x[k] : 0.0f;
                }
            }
    }
    return NM_OK;
}

/* Tangent plane tc (of T·C) reads primal plane (t % P)·C + c. */
static int64_t primal_plane(const nm_pass *p, int64_t tc)
{
    int64_t C = p->xs[0].d[1], P = p->xs[0].d[0];
    return ((tc / C) % P) * C + tc % C;
}

/* The argmax of every window of every primal plane (−1: all padding),
 * computed once and shared by all the tangents of a plane. */
static int32_t *argmax_table(const nm_node *nd, nm_pass *p, const pool_dims *d)
{
    int64_t per = d->OH * d->OW;
    int32_t *idx = (int32_t *)nm_pass_scratch(p, (size_t)(d->NC * per));
    if (!idx) return NULL;
    const nm_attrs *a = &nd->a;
    int fast = windows_inside(a, d) && a->kernel[0] == 2 && a->kernel[1] == 2 && a->stride[0] == 2 && a->stride[1] == 2;
    #pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < d->NC; nc++) {
        const float *x = p->x[0] + nc * d->H * d->W;
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++) {
                if (fast) { /* the LeNet pool: same scan order, first maximum wins */
                    int32_t k = (int32_t)(2 * oh * d->W + 2 * ow), best = k;
                    if (x[k + 1] > x[best]) best = k + 1;
                    if (x[k + d->W] > x[best]) best = (int32_t)(k + d->W);
                    if (x[k + d->W + 1] > x[best]) best = (int32_t)(k + d->W + 1);
                    idx[nc * per + oh * d->OW + ow] = best;
                } else {
                    idx[nc * per + oh * d->OW + ow] = (int32_t)window_argmax(a, d, x, oh, ow);
                }
            }
    }
    return idx;
}

/* x[0] the primal (P planes), dx[0] (T, C, H, W): dy (T, C, OH, OW) = dx at each window's argmax in the primal. */
/* x[0] (the primal): one code per output element, its window's argmax. */
static nm_status maxpool_decide(const nm_node *nd, nm_pass *p, int32_t *codes)
{
    pool_dims d = pdims(&p->xs[0], &p->ys);
    int32_t *idx = argmax_table(nd, p, &d);
    if (!idx) return NM_ERR_NOMEM;
    memcpy(codes, idx, sizeof(int32_t) * (size_t)(d.NC * d.OH * d.OW));
    return NM_OK;
}

static nm_status maxpool_jvp(const nm_node *nd, nm_pass *p)
{
    pool_dims d = pdims(&p->xs[0], &p->ys);
    int32_t *idx = argmax_table(nd, p, &d);
    if (!idx) return NM_ERR_NOMEM;
    int64_t TC = p->dxs[0].d[0] * p->dxs[0].d[1], per = d.OH * d.OW;
    #pragma omp parallel for schedule(static)
    for (int64_t tc = 0; tc < TC; tc++) {
        const int32_t *k = idx + primal_plane(p, tc) * per;
        const float *dx = p->dx[0] + tc * d.H * d.W;
        float *dy = p->dy + tc * per;
        for (int64_t o = 0; o < per; o++) dy[o] = k[o] >= 0 ? dx[k[o]] : 0.0f;
    }
    return NM_OK;
}

/* x[0] the primal, dy (T, C, OH, OW): dx[0] (T, C, H, W) += dy routed to each window's argmax in the primal. */
static nm_status maxpool_vjp(const nm_node *nd, nm_pass *p)
{
    if (!p->dx[0]) return NM_OK;
    pool_dims d = pdims(&p->xs[0], &p->ys);
    int32_t *idx = argmax_table(nd, p, &d);
    if (!idx) return NM_ERR_NOMEM;
    int64_t TC = p->dys.d[0] * p->dys.d[1], per = d.OH * d.OW;
    #pragma omp parallel for schedule(static)
    for (int64_t tc = 0; tc < TC; tc++) {
        const int32_t *k = idx + primal_plane(p, tc) * per;
        float *dx = p->dx[0] + tc * d.H * d.W;
        const float *dy = p->dy + tc * per;
        for (int64_t o = 0; o < per; o++)
            if (k[o] >= 0) dx[k[o]] += dy[o];
    }
    return NM_OK;
}

/* ---- AveragePool: a fixed linear map, so one routine serves all passes ---- */

/* The number of positions window w's average divides by: those inside the
 * plane, or with count_include_pad those inside the padded plane. Closed
 * forms, so a kernel much larger than the plane costs only the plane. */
static int64_t avg_divisor(const nm_attrs *a, const pool_dims *d, const pool_win *w)
{
    int64_t p0, p1, q0, q1;
    if (!a->count_include_pad) return (w->i1 - w->i0) * (w->j1 - w->j0);
    window_range(w->bh + a->pad[0], a->dil[0], a->kernel[0], d->H + a->pad[0] + a->pad[2], &p0, &p1);
    window_range(w->bw + a->pad[1], a->dil[1], a->kernel[1], d->W + a->pad[1] + a->pad[3], &q0, &q1);
    return (p1 - p0) * (q1 - q0);
}

/* adjoint = 0: y = avg(x); adjoint = 1: x += avgᵀ(y). NC planes. */
static void avgpool_apply(const nm_attrs *a, const pool_dims *d, int64_t NC, float *x, float *y, int adjoint)
{
    #pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        float *xp = x + nc * d->H * d->W;
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++) {
                pool_win w = window_at(a, d, oh, ow);
                int64_t div = avg_divisor(a, d, &w);
                float *yo = y + (nc * d->OH + oh) * d->OW + ow;
                float s = 0, g = div ? *yo / (float)div : 0.0f;
                for (int64_t i = w.i0; i < w.i1; i++) {
                    float *row = xp + (w.bh + i * a->dil[0]) * d->W + w.bw;
                    for (int64_t j = w.j0; j < w.j1; j++) {
                        if (adjoint) row[j * a->dil[1]] += g;
                        else s += row[j * a->dil[1]];
                    }
                }
                if (!adjoint) *yo = div ? s / (float)div : 0.0f;
            }
    }
}

/* x[0] (N, C, H, W): y (N, C, OH, OW) = the mean of each window (padding counted with count_include_pad). */
static nm_status avgpool_forward(const nm_node *nd, nm_pass *p)
{
    pool_dims d = pdims(&p->xs[0], &p->ys);
    avgpool_apply(&nd->a, &d, d.NC, p->x[0], p->y, 0);
    return NM_OK;
}

/* dx[0] (T, C, H, W): dy (T, C, OH, OW) = the average pool of dx (the op is linear). */
static nm_status avgpool_jvp(const nm_node *nd, nm_pass *p)
{
    pool_dims d = pdims(&p->dxs[0], &p->dys);
    avgpool_apply(&nd->a, &d, d.NC, p->dx[0], p->dy, 0);
    return NM_OK;
}

/* dy (T, C, OH, OW): dx[0] (T, C, H, W) += each window's share of dy. */
static nm_status avgpool_vjp(const nm_node *nd, nm_pass *p)
{
    if (!p->dx[0]) return NM_OK;
    pool_dims d = pdims(&p->dxs[0], &p->dys);
    avgpool_apply(&nd->a, &d, d.NC, p->dx[0], p->dy, 1);
    return NM_OK;
}

/* ---- GlobalAveragePool: mean over every axis after the channels ---- */

static nm_status gap_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    if (X->shape.ndim < 3)
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (GlobalAveragePool): input of rank %d (need N, C and spatial axes)",
                       nd->name, X->shape.ndim);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    for (int i = 2; i < X->shape.ndim; i++) Y->shape.d[i] = 1;
    Y->batched = X->batched;
    return NM_OK;
}

/* adjoint = 0: y = mean(x) per plane; 1: x += y / S per plane. */
static void gap_apply(const nm_shape *xs, float *x, float *y, int adjoint)
{
    int64_t NC = xs->d[0] * xs->d[1], S = nm_shape_tail(xs, 2);
    #pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        float *xp = x + nc * S;
        if (adjoint) {
            float g = y[nc] / (float)S;
            for (int64_t i = 0; i < S; i++) xp[i] += g;
        } else {
            double s = 0;
            for (int64_t i = 0; i < S; i++) s += xp[i];
            y[nc] = (float)(s / (double)S);
        }
    }
}

/* x[0] (N, C, ...): y (N, C, 1, ...) = the mean over the spatial axes. */
static nm_status gap_forward(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    gap_apply(&p->xs[0], p->x[0], p->y, 0);
    return NM_OK;
}

/* dx[0] (T, C, ...): dy (T, C, 1, ...) = its spatial mean. */
static nm_status gap_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    gap_apply(&p->dxs[0], p->dx[0], p->dy, 0);
    return NM_OK;
}

/* dy (T, C, 1, ...): dx[0] (T, C, ...) += dy / (spatial size) at every position. */
static nm_status gap_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    if (p->dx[0]) gap_apply(&p->dxs[0], p->dx[0], p->dy, 1);
    return NM_OK;
}

static const nm_attr_def maxpool_attrs[] = {
    NM_WINDOW_ATTRS,
    {.name = "dilations", .kind = NM_ATTR_INTS, .offset = NM_ATTR_FIELD(dil), .count = 2, .def = 1, .why = NM_WINDOW_ONLY_2D,
     .write = 1, .window = 1},
    {.name = "ceil_mode", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(ceil_mode), .write = 1},
    {.name = "storage_order", .kind = NM_ATTR_IGNORE}, /* affects only the indices output */
    {0}};

static const nm_attr_def avgpool_attrs[] = {
    NM_WINDOW_ATTRS,
    {.name = "ceil_mode", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(ceil_mode), .write = 1},
    {.name = "count_include_pad", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(count_include_pad), .write = 1},
    {0}};

const nm_op_def nm_op_maxpool = {
    .name = "MaxPool", .min_inputs = 1, .max_inputs = 1, .attrs = maxpool_attrs, .hides_nonfinite = 1,
    .decide = maxpool_decide, .decides = NM_DECIDES_ARGMAX, .window = maxpool_window,
    .infer = pool_infer, .forward = maxpool_forward, .jvp = maxpool_jvp, .vjp = maxpool_vjp,
};
const nm_op_def nm_op_averagepool = {
    .name = "AveragePool", .min_inputs = 1, .max_inputs = 1, .attrs = avgpool_attrs,
    .infer = pool_infer, .forward = avgpool_forward, .jvp = avgpool_jvp, .vjp = avgpool_vjp,
};
const nm_op_def nm_op_globalaveragepool = {
    .name = "GlobalAveragePool", .min_inputs = 1, .max_inputs = 1,
    .infer = gap_infer, .forward = gap_forward, .jvp = gap_jvp, .vjp = gap_vjp,
};
