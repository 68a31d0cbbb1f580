/*
 * lrn.c — LRN, local response normalization across channels (AlexNet):
 * y_c = x_c · D_c^(−β), D_c = bias + (α/size) Σ_{c' ∈ W(c)} x_c'², with the
 * window W(c) = [c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉]. It is smooth, so jvp
 * and vjp use its true derivative at the primal:
 *   ∂y_c/∂x_c' = [c = c'] D_c^(−β) − 2αβ/size · x_c x_c' D_c^(−β−1) [c' ∈ W(c)].
 *
 * Shapes: x (N, C, ...); y like x.
 */
#include "../net.h"

#include <math.h>
#include <string.h>

static nm_status lrn_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    if (X->shape.ndim < 2)
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (LRN): input of rank %d has no channel axis", nd->name, X->shape.ndim);
    if (nd->a.size < 1)
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (LRN): size must be a positive integer", nd->name);
    return nm_infer_elementwise(ctx, net, nd);
}

typedef struct {
    int64_t N, C, S;
    int64_t lo, hi; /* window offsets: c' from c − lo to c + hi */
} lrn_dims;

static lrn_dims ldims(const nm_node *nd, const nm_shape *s)
{
    lrn_dims d = {s->d[0], s->d[1], 0, (nd->a.size - 1) / 2, nd->a.size / 2};
    d.S = nm_shape_tail(s, 2);
    return d;
}

/* D_c at sample plane x (C, S), channel c, position s. */
static double lrn_D(const nm_attrs *a, const lrn_dims *d, const float *x, int64_t c, int64_t s)
{
    double sum = 0;
    int64_t c0 = c - d->lo < 0 ? 0 : c - d->lo, c1 = c + d->hi >= d->C ? d->C - 1 : c + d->hi;
    for (int64_t k = c0; k <= c1; k++) sum += (double)x[k * d->S + s] * x[k * d->S + s];
    return a->bias + a->alpha / (double)a->size * sum;
}

/* x[0] (N, C, ...): y (N, C, ...) = x_c D_c^(−β). */
static nm_status lrn_forward(const nm_node *nd, nm_pass *p)
{
    lrn_dims d = ldims(nd, &p->xs[0]);
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < d.N; n++) {
        const float *x = p->x[0] + n * d.C * d.S;
        float *y = p->y + n * d.C * d.S;
        for (int64_t c = 0; c < d.C; c++)
            for (int64_t s = 0; s < d.S; s++)
                y[c * d.S + s] = (float)(x[c * d.S + s] * pow(lrn_D(&nd->a, &d, x, c, s), -nd->a.beta));
    }
    return NM_OK;
}

/* One tangent sample: out = J v (adjoint = 0) or out += Jᵀ v (adjoint = 1)
 * at the primal plane x (C, S). */
static void lrn_linear(const nm_attrs *a, const lrn_dims *d, const float *x, const float *v, float *out, int adjoint)
{
    double g = 2.0 * a->alpha * a->beta / (double)a->size;
    for (int64_t s = 0; s < d->S; s++)
        for (int64_t c = 0; c < d->C; c++) {
            double D = lrn_D(a, d, x, c, s), Db = pow(D, -a->beta), coef = g * x[c * d->S + s] * Db / D;
            int64_t c0 = c - d->lo < 0 ? 0 : c - d->lo, c1 = c + d->hi >= d->C ? d->C - 1 : c + d->hi;
            if (!adjoint) {
                double dot = 0;
                for (int64_t k = c0; k <= c1; k++) dot += (double)x[k * d->S + s] * v[k * d->S + s];
                out[c * d->S + s] = (float)(Db * v[c * d->S + s] - coef * dot);
            } else {
                double vc = v[c * d->S + s];
                out[c * d->S + s] += (float)(Db * vc);
                for (int64_t k = c0; k <= c1; k++) out[k * d->S + s] -= (float)(coef * vc * x[k * d->S + s]);
            }
        }
}

/* x[0] the primal, dx[0] and dy (T, C, ...) the tangents: dy = (∂y/∂x at the primal) dx. */
static nm_status lrn_jvp(const nm_node *nd, nm_pass *p)
{
    lrn_dims d = ldims(nd, &p->xs[0]);
    int64_t T = p->dxs[0].d[0], P = d.N, plane = d.C * d.S;
    #pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++)
        lrn_linear(&nd->a, &d, p->x[0] + (t % P) * plane, p->dx[0] + t * plane, p->dy + t * plane, 0);
    return NM_OK;
}

/* x[0] the primal, dy (T, C, ...): dx[0] += (∂y/∂x)ᵀ dy. */
static nm_status lrn_vjp(const nm_node *nd, nm_pass *p)
{
    if (!p->dx[0]) return NM_OK;
    lrn_dims d = ldims(nd, &p->xs[0]);
    int64_t T = p->dys.d[0], P = d.N, plane = d.C * d.S;
    #pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++)
        lrn_linear(&nd->a, &d, p->x[0] + (t % P) * plane, p->dy + t * plane, p->dx[0] + t * plane, 1);
    return NM_OK;
}

static const nm_attr_def lrn_attrs[] = {
    {.name = "alpha", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(alpha), .def = 1e-4, .write = 1},
    {.name = "beta", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(beta), .def = 0.75, .write = 1},
    {.name = "bias", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(bias), .def = 1, .write = 1},
    {.name = "size", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(size), .write = 1},
    {0}};

const nm_op_def nm_op_lrn = {
    .name = "LRN", .min_inputs = 1, .max_inputs = 1, .attrs = lrn_attrs, .smooth = 1,
    .infer = lrn_infer, .forward = lrn_forward, .jvp = lrn_jvp, .vjp = lrn_vjp,
};
