/*
 * clip.c — Clip (ReLU6, Hardtanh, clamp): y = min(max(x, lo), hi), the bounds
 * from attributes before opset 11 and optional constant inputs after.
 * Piecewise linear with two kinks: jvp and vjp pass the tangent where
 * lo < x < hi at the primal and stop it elsewhere (frozen like a ReLU mask,
 * DESIGN §1.6). It hides NaN (min and max skip it), so the forward pass
 * checks its input.
 *
 * Shapes: x any; y like x; lo, hi scalars.
 */
#include "../net.h"

#include <float.h>
#include <math.h>

static nm_status clip_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    for (int i = 1; i < nd->nin; i++) {
        const nm_value *B = NM_IN(net, nd, i);
        if (!B) continue;
        if (B->varying || B->is_int || nm_shape_numel(&B->shape) != 1)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Clip): %s must be a constant float scalar", nd->name, i == 1 ? "min" : "max");
        if (i == 1) nd->a.lo = B->cdata[0];
        else nd->a.hi = B->cdata[0];
    }
    if (!(nd->a.lo <= nd->a.hi)) return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (Clip): min %g above max %g", nd->name, nd->a.lo, nd->a.hi);
    return nm_infer_elementwise(ctx, net, nd);
}

/* x[0]: y = clamp(x, lo, hi). */
static nm_status clip_forward(const nm_node *nd, nm_pass *p)
{
    int64_t n = nm_shape_numel(&p->ys);
    float lo = nd->a.lo, hi = nd->a.hi;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) p->y[i] = fminf(fmaxf(p->x[0][i], lo), hi);
    return NM_OK;
}

/* x[0] the primal (P samples), dx[0] and dy (T samples): dy = dx where lo < x < hi, else 0. */
static nm_status clip_jvp(const nm_node *nd, nm_pass *p)
{
    int64_t n = nm_shape_numel(&p->dys), np = nm_shape_numel(&p->xs[0]);
    const float *x = p->x[0];
    float lo = nd->a.lo, hi = nd->a.hi;
    NM_FOR_TANGENTS(n, np, 65536, { p->dy[i] = x[k] > lo && x[k] < hi ? p->dx[0][i] : 0.0f; });
    return NM_OK;
}

/* dy: dx[0] += dy where lo < x < hi. */
static nm_status clip_vjp(const nm_node *nd, nm_pass *p)
{
    if (!p->dx[0]) return NM_OK;
    int64_t n = nm_shape_numel(&p->dys), np = nm_shape_numel(&p->xs[0]);
    const float *x = p->x[0];
    float lo = nd->a.lo, hi = nd->a.hi;
    NM_FOR_TANGENTS(n, np, 65536, { p->dx[0][i] += x[k] > lo && x[k] < hi ? p->dy[i] : 0.0f; });
    return NM_OK;
}

/* x[0] (the primal): one code per element, below lo (0), inside (1) or above hi (2). */
static nm_status clip_decide(const nm_node *nd, nm_pass *p, int32_t *codes)
{
    int64_t n = nm_shape_numel(&p->xs[0]);
    for (int64_t i = 0; i < n; i++) codes[i] = (p->x[0][i] > nd->a.lo) + (p->x[0][i] >= nd->a.hi);
    return NM_OK;
}

static const nm_attr_def clip_attrs[] = { /* before opset 11 */
    {.name = "min", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(lo), .def = -FLT_MAX},
    {.name = "max", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(hi), .def = FLT_MAX},
    {0}};

/* opset 13: the bounds are inputs */
static int clip_export(const nm_net *net, const nm_node *nd, nm_export_input extra[2])
{
    (void)net;
    extra[0] = (nm_export_input){"min", {0, {0}}, &nd->a.lo, NULL};
    extra[1] = (nm_export_input){"max", {0, {0}}, &nd->a.hi, NULL};
    return 2;
}

const nm_op_def nm_op_clip = {
    .name = "Clip", .split = 1, .decide = clip_decide, .decides = NM_DECIDES_KINK, .min_inputs = 1, .max_inputs = 3, .attrs = clip_attrs, .hides_nonfinite = 1,
    .export_inputs = 1, .export_extra = clip_export,
    .infer = clip_infer, .forward = clip_forward, .jvp = clip_jvp, .vjp = clip_vjp,
};
