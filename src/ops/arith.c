/*
 * arith.c — Add, Sub, Mul and Div with numpy broadcasting, on varying
 * values and constants (and on integer constants when shapes are folded at
 * load). Add and Sub are linear; Mul and Div by a constant are linear too,
 * and with two varying operands (or a varying divisor) they follow the
 * product and quotient rules at the primal, and the net is then not
 * piecewise linear. vjp sums each operand's cotangent over its broadcast
 * axes (and into a trained constant's gradient).
 *
 * Shapes: a, b broadcast to y.
 */
#include "../net.h"

#include <string.h>

static nm_status arith_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *A = NM_IN(net, nd, 0), *B = NM_IN(net, nd, 1);
    nm_value *Y = NM_OUT(net, nd);
    if (nd->a.legacy_axis >= 0 && nd->a.legacy_axis + B->shape.ndim != A->shape.ndim)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): legacy broadcast at axis %lld is not right-aligned", nd->name,
                       nm_op_name(nd->op), (long long)nd->a.legacy_axis);
    if (A->is_int != B->is_int)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): an integer and a float operand", nd->name, nm_op_name(nd->op));
    nm_status st = nm_broadcast_shape(ctx, nd, &A->shape, &B->shape, &Y->shape);
    if (st != NM_OK) return st;
    int r = Y->shape.ndim, batched = 1;
    for (int i = 0; i < 2; i++) {
        const nm_value *X = i ? B : A;
        if (X->varying) batched &= X->batched && X->shape.ndim == r && X->shape.d[0] == Y->shape.d[0];
        else batched &= nm_const_spares_batch(X, r);
    }
    Y->batched = batched && (A->varying || B->varying);
    Y->is_int = A->is_int;
    return NM_OK;
}

/* Mul of two varying operands, or Div by a varying one: not piecewise linear. */
static int arith_smooth(const nm_net *net, const nm_node *nd)
{
    int va = net->v[nd->in[0]].varying, vb = net->v[nd->in[1]].varying;
    return (nd->op == NM_OP_MUL && va && vb) || (nd->op == NM_OP_DIV && vb);
}

/* Visits every element i of shape o with its offsets j1, j2, j3 under the strides s1, s2, s3. */
#define FOR_BROADCAST(o, s1, s2, s3, BODY)                                                                             \
    do {                                                                                                               \
        int r_ = (o)->ndim;                                                                                            \
        int64_t n_ = nm_shape_numel(o), in_ = r_ ? (o)->d[r_ - 1] : 1;                                                 \
        int64_t i1_ = r_ ? (s1)[r_ - 1] : 0, i2_ = r_ ? (s2)[r_ - 1] : 0, i3_ = r_ ? (s3)[r_ - 1] : 0;                 \
        int64_t idx_[NM_MAX_DIMS] = {0}, o1 = 0, o2 = 0, o3 = 0;                                                       \
        for (int64_t base_ = 0; base_ < n_; base_ += in_) {                                                            \
            for (int64_t j_ = 0; j_ < in_; j_++) {                                                                     \
                int64_t i = base_ + j_, j1 = o1 + j_ * i1_, j2 = o2 + j_ * i2_, j3 = o3 + j_ * i3_;                    \
                (void)j1, (void)j2, (void)j3;                                                                          \
                BODY;                                                                                                  \
            }                                                                                                          \
            for (int k_ = r_ - 2; k_ >= 0; k_--) {                                                                     \
                idx_[k_]++, o1 += (s1)[k_], o2 += (s2)[k_], o3 += (s3)[k_];                                            \
                if (idx_[k_] < (o)->d[k_]) break;                                                                      \
                o1 -= (s1)[k_] * (o)->d[k_], o2 -= (s2)[k_] * (o)->d[k_], o3 -= (s3)[k_] * (o)->d[k_], idx_[k_] = 0;   \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

/* x[0], x[1] (or, folding, integer ix[0], ix[1]) broadcast: y = a ∘ b. */
static nm_status arith_forward(const nm_node *nd, nm_pass *p)
{
    int64_t sa[NM_MAX_DIMS], sb[NM_MAX_DIMS];
    nm_broadcast_strides(&p->xs[0], &p->ys, sa);
    nm_broadcast_strides(&p->xs[1], &p->ys, sb);
    nm_op op = nd->op;
    if (p->iy) {
        const int64_t *a = p->ix[0], *b = p->ix[1];
        int64_t nb = nm_shape_numel(&p->xs[1]);
        for (int64_t i = 0; op == NM_OP_DIV && i < nb; i++)
            if (!b[i]) return nm_fail(p->ctx, NM_ERR_FORMAT, "node '%s' (Div): integer division by zero", nd->name);
        FOR_BROADCAST(&p->ys, sa, sb, sb,
                      p->iy[i] = op == NM_OP_ADD ? a[j1] + b[j2] : op == NM_OP_SUB ? a[j1] - b[j2] : op == NM_OP_MUL ? a[j1] * b[j2] : a[j1] / b[j2]);
        return NM_OK;
    }
    const float *a = p->x[0], *b = p->x[1];
    float *y = p->y;
    switch (op) {
    case NM_OP_ADD: FOR_BROADCAST(&p->ys, sa, sb, sb, y[i] = a[j1] + b[j2]); break;
    case NM_OP_SUB: FOR_BROADCAST(&p->ys, sa, sb, sb, y[i] = a[j1] - b[j2]); break;
    case NM_OP_MUL: FOR_BROADCAST(&p->ys, sa, sb, sb, y[i] = a[j1] * b[j2]); break;
    default: FOR_BROADCAST(&p->ys, sa, sb, sb, y[i] = a[j1] / b[j2]); break;
    }
    return NM_OK;
}

/* dx[0], dx[1] (T samples; NULL for a constant) broadcast to dy (T samples): the sum, product or
 * quotient rule at the primal x[0], x[1], which broadcast against dy too (their batch is 1 or T). */
static nm_status arith_jvp(const nm_node *nd, nm_pass *p)
{
    const nm_shape *o = &p->dys;
    int64_t sa[NM_MAX_DIMS], sb[NM_MAX_DIMS], sd[NM_MAX_DIMS];
    nm_broadcast_strides(&p->xs[0], o, sa);
    nm_broadcast_strides(&p->xs[1], o, sb);
    const float *a = p->x[0], *b = p->x[1];
    float *dy = p->dy;
    memset(dy, 0, (size_t)nm_shape_numel(o) * sizeof(float));
    for (int k = 0; k < 2; k++) {
        const float *d = p->dx[k];
        if (!d) continue;
        nm_broadcast_strides(&p->dxs[k], o, sd);
        switch (nd->op) {
        case NM_OP_ADD: FOR_BROADCAST(o, sd, sd, sd, dy[i] += d[j1]); break;
        case NM_OP_SUB: FOR_BROADCAST(o, sd, sd, sd, dy[i] += k ? -d[j1] : d[j1]); break;
        case NM_OP_MUL: FOR_BROADCAST(o, sd, k ? sa : sb, sd, dy[i] += d[j1] * (k ? a : b)[j2]); break;
        default: /* d(a/b) = da/b − db·a/b² */
            if (!k) FOR_BROADCAST(o, sd, sb, sd, dy[i] += d[j1] / b[j2]);
            else FOR_BROADCAST(o, sd, sa, sb, dy[i] -= d[j1] * a[j2] / (b[j3] * b[j3]));
        }
    }
    return NM_OK;
}

/* Adds into g (shape gs, broadcast against dy) the cotangent of operand k: dy, ±dy, dy·other, or the
 * quotient rule's terms, at the primal. */
static void arith_adjoint(const nm_node *nd, const nm_pass *p, int k, float *g, const nm_shape *gs)
{
    const nm_shape *o = &p->dys;
    int64_t sa[NM_MAX_DIMS], sb[NM_MAX_DIMS], sg[NM_MAX_DIMS];
    nm_broadcast_strides(&p->xs[0], o, sa);
    nm_broadcast_strides(&p->xs[1], o, sb);
    nm_broadcast_strides(gs, o, sg);
    const float *a = p->x[0], *b = p->x[1], *dy = p->dy;
    switch (nd->op) {
    case NM_OP_ADD: FOR_BROADCAST(o, sg, sg, sg, g[j1] += dy[i]); break;
    case NM_OP_SUB: FOR_BROADCAST(o, sg, sg, sg, g[j1] += k ? -dy[i] : dy[i]); break;
    case NM_OP_MUL: FOR_BROADCAST(o, sg, k ? sa : sb, sg, g[j1] += dy[i] * (k ? a : b)[j2]); break;
    default:
        if (!k) FOR_BROADCAST(o, sg, sb, sg, g[j1] += dy[i] / b[j2]);
        else FOR_BROADCAST(o, sg, sa, sb, g[j1] -= dy[i] * a[j2] / (b[j3] * b[j3]));
    }
}

/* dy: dx[k] += its share (summed over k's broadcast axes); gp[k] likewise for trained constants. */
static nm_status arith_vjp(const nm_node *nd, nm_pass *p)
{
    for (int k = 0; k < 2; k++) {
        if (p->dx[k]) arith_adjoint(nd, p, k, p->dx[k], &p->dxs[k]);
        if (p->gp[k]) arith_adjoint(nd, p, k, p->gp[k], &p->xs[k]);
    }
    return NM_OK;
}

static const nm_attr_def arith_attrs[] = {
    {.name = "broadcast", .kind = NM_ATTR_IGNORE}, /* opset < 7 */
    {.name = "axis", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(legacy_axis), .def = -1},
    {0}};

#define ARITH_OP(NAME, ROLE)                                                                                           \
    {                                                                                                                  \
        .name = NAME, .role = ROLE, .min_inputs = 2, .max_inputs = 2, .trainable = {[0] = 1, [1] = 1}, .int_data = 1,                \
        .moments = NM_MOMENTS_DIAGONAL, .attrs = arith_attrs, .nonlinear_node = arith_smooth, .infer = arith_infer, .forward = arith_forward,           \
        .jvp = arith_jvp, .vjp = arith_vjp,                                                                            \
    }
const nm_op_def nm_op_add = ARITH_OP("Add", NULL);
const nm_op_def nm_op_sub = ARITH_OP("Sub", NULL);
const nm_op_def nm_op_mul = ARITH_OP("Mul", "linear in each operand, smooth when both vary");
const nm_op_def nm_op_div = ARITH_OP("Div", "linear in the numerator, smooth in the denominator");
