/*
 * batchnorm.c — BatchNormalization in inference mode: per channel,
 * y = k·x + h with k = scale / sqrt(var + ε) and h = B − mean·k, computed
 * from the four constant inputs. Affine in x, so jvp and vjp scale by k.
 * Training mode (and its extra outputs) is refused at load.
 *
 * Shapes: x (N, C, ...); scale, B, mean, var (C); y like x.
 */
#include "../net.h"

#include <math.h>

static nm_status bn_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0);
    if (X->shape.ndim < 2)
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (BatchNormalization): input of rank %d has no channel axis", nd->name, X->shape.ndim);
    for (int i = 1; i < 5; i++) {
        const nm_value *P = NM_IN(net, nd, i);
        if (P->varying)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (BatchNormalization): scale, B, mean and var must be constants", nd->name);
        if (nm_shape_numel(&P->shape) != X->shape.d[1] || P->shape.ndim != 1)
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (BatchNormalization): input %d must have %lld entries", nd->name, i,
                           (long long)X->shape.d[1]);
    }
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    Y->batched = X->batched;
    return NM_OK;
}

/* y = k x (+ h when with_shift), per channel of a (N, C, S) tensor; add = 1 accumulates. */
static void bn_apply(const nm_node *nd, const nm_pass *p, const nm_shape *s, const float *x, float *y, int with_shift, int add)
{
    int64_t N = s->d[0], C = s->d[1], S = nm_shape_tail(s, 2);
    const float *scale = p->x[1], *bias = p->x[2], *mean = p->x[3], *var = p->x[4];
    #pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t c = nc % C;
        double k = scale[c] / sqrt((double)var[c] + nd->a.epsilon);
        float kf = (float)k, hf = with_shift ? (float)(bias[c] - mean[c] * k) : 0.0f;
        const float *xr = x + nc * S;
        float *yr = y + nc * S;
        for (int64_t i = 0; i < S; i++) yr[i] = (add ? yr[i] : 0.0f) + kf * xr[i] + hf;
    }
}

/* x[0] (N, C, ...), x[1..4] scale, B, mean, var (C): y (N, C, ...) = k_c x + h_c. */
static nm_status bn_forward(const nm_node *nd, nm_pass *p)
{
    bn_apply(nd, p, &p->xs[0], p->x[0], p->y, 1, 0);
    return NM_OK;
}

/* dx[0] and dy (T, C, ...): dy = k_c dx. */
static nm_status bn_jvp(const nm_node *nd, nm_pass *p)
{
    bn_apply(nd, p, &p->dxs[0], p->dx[0], p->dy, 0, 0);
    return NM_OK;
}

/* dy (T, C, ...): dx[0] += k_c dy. */
static nm_status bn_vjp(const nm_node *nd, nm_pass *p)
{
    if (p->dx[0]) bn_apply(nd, p, &p->dys, p->dy, p->dx[0], 0, 1);
    return NM_OK;
}

static const nm_attr_def bn_attrs[] = {
    {.name = "epsilon", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(epsilon), .def = 1e-5, .write = 1},
    {.name = "momentum", .kind = NM_ATTR_IGNORE}, /* used only in training */
    {.name = "spatial", .kind = NM_ATTR_CHECK, .def = 1, .why = "must be 1"},
    {.name = "training_mode", .kind = NM_ATTR_CHECK, .def = 0, .why = "= 1 (training mode) is not supported"},
    {.name = "is_test", .kind = NM_ATTR_CHECK, .def = 1, .why = "= 0 (training mode) is not supported"},
    {0}};

const nm_op_def nm_op_batchnorm = {
    .name = "BatchNormalization", .min_inputs = 5, .max_inputs = 5, .attrs = bn_attrs, .moments = NM_MOMENTS_DIAGONAL,
    .infer = bn_infer, .forward = bn_forward, .jvp = bn_jvp, .vjp = bn_vjp,
};
