/*
 * smooth.c — the elementwise activations that are not piecewise linear
 * (Sigmoid, Tanh, Elu, Softplus, Erf, Gelu, HardSwish) and HardSigmoid
 * (piecewise linear: max(0, min(1, αx + β))), one table of y = f(x) and its
 * derivative f'(x): jvp and vjp multiply by f' at the primal. With one of
 * the smooth ones the two-stage linearization freezes a curvature as well
 * as masks, and the net is flagged not piecewise linear
 * (nm_net_piecewise_linear). Saturating ones turn ±Inf into finite values,
 * so the forward pass checks their inputs. Computed in double, stored in float.
 *
 * Shapes: x any; y like x.
 */
#include "../net.h"

#include <math.h>

#define SQRT_2_OVER_PI 0.79788456080286535588
#define INV_SQRT2 0.70710678118654752440

/* f(x) and, into *df, f'(x); a is the op's α (Elu, HardSigmoid), b its β, mode Gelu's approximation. */
static double act(nm_op op, double x, double a, double b, int64_t mode, double *df)
{
    double t, e, s;
    switch (op) {
    case NM_OP_SIGMOID:
        s = x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
        *df = s * (1 - s);
        return s;
    case NM_OP_TANH:
        t = tanh(x);
        *df = 1 - t * t;
        return t;
    case NM_OP_ELU:
        if (x > 0) return *df = 1, x;
        e = exp(x);
        *df = a * e;
        return a * (e - 1);
    case NM_OP_SOFTPLUS: /* log(1 + e^x), stable in both tails */
        *df = x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
        return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
    case NM_OP_ERF:
        *df = 2 / sqrt(M_PI) * exp(-x * x);
        return erf(x);
    case NM_OP_GELU:
        if (mode == 1) { /* tanh approximation */
            double u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
            t = tanh(u);
            *df = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
            return 0.5 * x * (1 + t);
        }
        s = 0.5 * erfc(-x * INV_SQRT2);
        *df = s + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
        return x * s;
    case NM_OP_HARDSIGMOID:
        t = a * x + b;
        *df = t > 0 && t < 1 ? a : 0;
        return t < 0 ? 0 : t > 1 ? 1 : t;
    default: /* HardSwish: x · hardsigmoid(x) with α = 1/6, β = 1/2 */
        t = x / 6 + 0.5;
        if (t <= 0) return *df = 0, 0;
        if (t >= 1) return *df = 1, x;
        *df = t + x / 6;
        return x * t;
    }
}

/* HardSigmoid and HardSwish: one code per element, the piece of the primal (below, between, above the kinks). */
static nm_status hard_decide(const nm_node *nd, nm_pass *p, int32_t *codes)
{
    int64_t n = nm_shape_numel(&p->xs[0]);
    double a = nd->op == NM_OP_HARDSIGMOID ? nd->a.alpha : 1.0 / 6, b = nd->op == NM_OP_HARDSIGMOID ? nd->a.beta : 0.5;
    for (int64_t i = 0; i < n; i++) {
        double t = a * p->x[0][i] + b;
        codes[i] = (t > 0) + (t >= 1);
    }
    return NM_OK;
}

/* x[0]: y = f(x). */
static nm_status act_forward(const nm_node *nd, nm_pass *p)
{
    int64_t n = nm_shape_numel(&p->ys);
    #pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        double df;
        p->y[i] = (float)act(nd->op, p->x[0][i], nd->a.alpha, nd->a.beta, nd->a.mode, &df);
    }
    return NM_OK;
}

/* x[0] the primal (P samples), dx[0] and dy (T samples): dy = f'(x) dx. */
static nm_status act_jvp(const nm_node *nd, nm_pass *p)
{
    int64_t n = nm_shape_numel(&p->dys), np = nm_shape_numel(&p->xs[0]);
    NM_FOR_TANGENTS(n, np, 16384, {
        double df;
        act(nd->op, p->x[0][k], nd->a.alpha, nd->a.beta, nd->a.mode, &df);
        p->dy[i] = (float)(df * p->dx[0][i]);
    });
    return NM_OK;
}

/* dy: dx[0] += f'(x) dy. */
static nm_status act_vjp(const nm_node *nd, nm_pass *p)
{
    if (!p->dx[0]) return NM_OK;
    int64_t n = nm_shape_numel(&p->dys), np = nm_shape_numel(&p->xs[0]);
    NM_FOR_TANGENTS(n, np, 16384, {
        double df;
        act(nd->op, p->x[0][k], nd->a.alpha, nd->a.beta, nd->a.mode, &df);
        p->dx[0][i] += (float)(df * p->dy[i]);
    });
    return NM_OK;
}

static const nm_attr_def elu_attrs[] = {{.name = "alpha", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(alpha), .def = 1, .write = 1}, {0}};
static const nm_attr_def hardsigmoid_attrs[] = {
    {.name = "alpha", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(alpha), .def = 0.2, .write = 1},
    {.name = "beta", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(beta), .def = 0.5, .write = 1},
    {0}};
static const char *const gelu_modes[] = {"none", "tanh", NULL};
static const nm_attr_def gelu_attrs[] = {
    {.name = "approximate", .kind = NM_ATTR_ENUM, .offset = NM_ATTR_FIELD(mode), .names = gelu_modes, .write = 1},
    {0}};

/* Gelu is an opset-20 op: it cannot be written at opset 13 */
static const char *gelu_refusal(const nm_net *net, const nm_node *nd)
{
    (void)net, (void)nd;
    return "Gelu (opset 20)";
}

#define ACT_OP(NAME, SMOOTH, ATTRS, ...)                                                                               \
    {                                                                                                                  \
        .name = NAME, .min_inputs = 1, .max_inputs = 1, .smooth = SMOOTH, .hides_nonfinite = SMOOTH, .attrs = ATTRS,    \
        .moments = NM_MOMENTS_UNIT, \
        .infer = nm_infer_elementwise,                                                                                            \
        .forward = act_forward, .jvp = act_jvp, .vjp = act_vjp, __VA_ARGS__                                            \
    }
const nm_op_def nm_op_sigmoid = ACT_OP("Sigmoid", 1, NULL);
const nm_op_def nm_op_tanh = ACT_OP("Tanh", 1, NULL);
const nm_op_def nm_op_elu = ACT_OP("Elu", 1, elu_attrs);
const nm_op_def nm_op_softplus = ACT_OP("Softplus", 1, NULL);
const nm_op_def nm_op_erf = ACT_OP("Erf", 1, NULL);
const nm_op_def nm_op_gelu = ACT_OP("Gelu", 1, gelu_attrs, .export_refusal = gelu_refusal);
const nm_op_def nm_op_hardsigmoid = ACT_OP("HardSigmoid", 0, hardsigmoid_attrs, .split = 1, .decide = hard_decide, .decides = NM_DECIDES_KINK);
const nm_op_def nm_op_hardswish = ACT_OP("HardSwish", 1, NULL, .decide = hard_decide, .decides = NM_DECIDES_KINK);
