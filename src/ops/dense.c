/*
 * dense.c — Gemm (transA, transB, α, β, C broadcast to the output) and
 * MatMul (numpy semantics: batch axes broadcast, 1-D operands promoted).
 * Both are bilinear: jvp is dA·B + A·dB over whichever operands vary, and
 * vjp gives dA += dY·Bᵀ and dB += Aᵀ·dY (summed over broadcast batch axes),
 * which for a constant B is the weight gradient when the net trains.
 *
 * Shapes: Gemm A (M, K) or (K, M) with transA, B (K, N) or (N, K) with
 * transB, C broadcast to (M, N), y (M, N). MatMul A (..., M, K),
 * B (..., K, N), y (..., M, N).
 */
#include "../net.h"

#include <string.h>

/* ---- Gemm ---- */

static nm_status gemm_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *A = NM_IN(net, nd, 0), *B = NM_IN(net, nd, 1), *C = NM_IN(net, nd, 2);
    const nm_attrs *a = &nd->a;
    if (A->shape.ndim != 2 || B->shape.ndim != 2)
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Gemm): A and B must be matrices (ranks %d, %d)", nd->name,
                       A->shape.ndim, B->shape.ndim);
    int64_t M = A->shape.d[a->trans_a], K = A->shape.d[!a->trans_a];
    int64_t K2 = B->shape.d[a->trans_b], N = B->shape.d[!a->trans_b];
    if (K != K2)
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Gemm): inner dimensions %lld and %lld differ", nd->name, (long long)K, (long long)K2);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = (nm_shape){2, {M, N}};
    if (C) {
        nm_shape b;
        nm_status st = nm_broadcast_shape(ctx, nd, &Y->shape, &C->shape, &b);
        if (st != NM_OK) return st;
        if (!nm_shape_equal(&b, &Y->shape))
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Gemm): C does not broadcast to (%lld, %lld)", nd->name, (long long)M, (long long)N);
    }
    int c_ok = !C || (C->varying ? C->batched && C->shape.ndim == 2 && C->shape.d[0] == M : nm_const_spares_batch(C, 2));
    Y->batched = A->varying && A->batched && !a->trans_a && !B->varying && c_ok;
    return NM_OK;
}

/* y (=|+=) α op(A) op(B) with A of shape as (rows may be a tangent batch). */
static void gemm_product(const nm_attrs *a, const float *A, const nm_shape *as, const float *B, const nm_shape *bs,
                         float beta, float *y)
{
    int64_t M = as->d[a->trans_a], K = as->d[!a->trans_a], N = bs->d[!a->trans_b];
    nm_gemm_f32(a->trans_a ? NM_TRANS : NM_NOTRANS, a->trans_b ? NM_TRANS : NM_NOTRANS, M, N, K, a->alpha, A,
                as->d[1], B, bs->d[1], beta, y, N);
}

/* x[0] A (M, K) or (K, M), x[1] B (K, N) or (N, K), x[2] C broadcast to (M, N) or NULL: y (M, N) = α op(A) op(B) + β C. */
static nm_status gemm_forward(const nm_node *nd, nm_pass *p)
{
    float beta = 0.0f;
    if (p->x[2]) { /* y = β C, broadcast */
        int64_t st[NM_MAX_DIMS], n = nm_shape_numel(&p->ys);
        nm_broadcast_strides(&p->xs[2], &p->ys, st);
        nm_strided(&p->ys, st, p->y, p->x[2], 0, 0);
        for (int64_t i = 0; i < n; i++) p->y[i] *= nd->a.beta;
        beta = 1.0f;
    }
    gemm_product(&nd->a, p->x[0], &p->xs[0], p->x[1], &p->xs[1], beta, p->y);
    return NM_OK;
}

/* dx[i] the tangents of the varying operands (NULL for constants): dy (M, N) = α (op(dA) op(B) + op(A) op(dB)) + β dC. */
static nm_status gemm_jvp(const nm_node *nd, nm_pass *p)
{
    float beta = 0.0f;
    if (p->dx[0]) {
        gemm_product(&nd->a, p->dx[0], &p->dxs[0], p->x[1], &p->xs[1], 0.0f, p->dy);
        beta = 1.0f;
    }
    if (p->dx[1]) gemm_product(&nd->a, p->x[0], &p->xs[0], p->dx[1], &p->dxs[1], beta, p->dy);
    else if (beta == 0.0f) memset(p->dy, 0, (size_t)nm_shape_numel(&p->dys) * sizeof(float));
    if (p->dx[2]) { /* + β dC, broadcast */
        int64_t st[NM_MAX_DIMS], n = nm_shape_numel(&p->dys);
        float *tmp = nm_pass_scratch(p, (size_t)n);
        if (!tmp) return NM_ERR_NOMEM;
        nm_broadcast_strides(&p->dxs[2], &p->dys, st);
        nm_strided(&p->dys, st, tmp, p->dx[2], 0, 0);
        for (int64_t i = 0; i < n; i++) p->dy[i] += nd->a.beta * tmp[i];
    }
    return NM_OK;
}

/* dy (M, N): dx[0] += α dy op(B)ᵀ (transposed back), dx[1] += α op(A)ᵀ dy, dx[2] += β dy summed over C's
 * broadcast axes; the same into gp[i] for trained constants. */
static nm_status gemm_vjp(const nm_node *nd, nm_pass *p)
{
    const nm_attrs *a = &nd->a;
    const float *dy = p->dy;
    int64_t Mt = p->dys.d[0], N = p->dys.d[1];
    if (p->dx[0]) { /* dA (Mt, K) += α dY op(B)ᵀ, or dA (K, M) += α op(B) dYᵀ */
        const nm_shape *bs = &p->xs[1];
        int64_t K = bs->d[a->trans_b];
        if (!a->trans_a)
            nm_gemm_f32(NM_NOTRANS, a->trans_b ? NM_NOTRANS : NM_TRANS, Mt, K, N, a->alpha, dy, N, p->x[1], bs->d[1],
                        1.0f, p->dx[0], K);
        else
            nm_gemm_f32(a->trans_b ? NM_TRANS : NM_NOTRANS, NM_TRANS, K, Mt, N, a->alpha, p->x[1], bs->d[1], dy, N,
                        1.0f, p->dx[0], Mt);
    }
    float *dB = p->dx[1] ? p->dx[1] : p->gp[1];
    if (dB) { /* dB (K, N) += α op(A)ᵀ dY, or dB (N, K) += α dYᵀ op(A); needs T = P */
        const nm_shape *as = &p->xs[0];
        int64_t K = as->d[!a->trans_a];
        if (!a->trans_b)
            nm_gemm_f32(a->trans_a ? NM_NOTRANS : NM_TRANS, NM_NOTRANS, K, N, Mt, a->alpha, p->x[0], as->d[1], dy, N,
                        1.0f, dB, N);
        else
            nm_gemm_f32(NM_TRANS, a->trans_a ? NM_TRANS : NM_NOTRANS, N, K, Mt, a->alpha, dy, N, p->x[0], as->d[1],
                        1.0f, dB, K);
    }
    float *dC = p->dx[2] ? p->dx[2] : p->gp[2];
    if (dC) { /* dC += β dY summed over C's broadcast axes */
        int64_t st[NM_MAX_DIMS], n = nm_shape_numel(&p->dys);
        float *tmp = nm_pass_scratch(p, (size_t)n);
        if (!tmp) return NM_ERR_NOMEM;
        for (int64_t i = 0; i < n; i++) tmp[i] = a->beta * dy[i];
        nm_broadcast_strides(p->dx[2] ? &p->dxs[2] : &p->xs[2], &p->dys, st);
        nm_strided(&p->dys, st, tmp, dC, 1, 0);
    }
    return NM_OK;
}

/* ---- MatMul ---- */

typedef struct {
    nm_shape bat;                              /* broadcast batch axes */
    int64_t sa[NM_MAX_DIMS], sb[NM_MAX_DIMS];  /* matrix strides of A and B per batch axis */
    int64_t M, K, N;
} mm_geom;

/* Splits shapes into batch axes and matrices; 0 when they do not agree. */
static int mm_geom_of(const nm_shape *as, const nm_shape *bs, mm_geom *g)
{
    if (as->ndim < 1 || bs->ndim < 1) return 0;
    nm_shape ab = {0, {0}}, bb = {0, {0}};
    if (as->ndim == 1) {
        g->M = 1;
        g->K = as->d[0];
    } else {
        g->M = as->d[as->ndim - 2];
        g->K = as->d[as->ndim - 1];
        ab.ndim = as->ndim - 2;
        memcpy(ab.d, as->d, sizeof(int64_t) * (size_t)ab.ndim);
    }
    int64_t K2;
    if (bs->ndim == 1) {
        K2 = bs->d[0];
        g->N = 1;
    } else {
        K2 = bs->d[bs->ndim - 2];
        g->N = bs->d[bs->ndim - 1];
        bb.ndim = bs->ndim - 2;
        memcpy(bb.d, bs->d, sizeof(int64_t) * (size_t)bb.ndim);
    }
    if (K2 != g->K) return 0;
    g->bat.ndim = ab.ndim > bb.ndim ? ab.ndim : bb.ndim;
    for (int i = 0; i < g->bat.ndim; i++) {
        int ia = i - (g->bat.ndim - ab.ndim), ib = i - (g->bat.ndim - bb.ndim);
        int64_t da = ia >= 0 ? ab.d[ia] : 1, db = ib >= 0 ? bb.d[ib] : 1;
        if (da != db && da != 1 && db != 1) return 0;
        g->bat.d[i] = da == 1 ? db : da;
    }
    nm_broadcast_strides(&ab, &g->bat, g->sa);
    nm_broadcast_strides(&bb, &g->bat, g->sb);
    return 1;
}

static int64_t mm_off(const mm_geom *g, const int64_t *st, int64_t b, int64_t mat)
{
    int64_t off = 0;
    for (int k = g->bat.ndim - 1; k >= 0; k--) {
        off += (b % g->bat.d[k]) * st[k];
        b /= g->bat.d[k];
    }
    return off * mat;
}

static nm_status matmul_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *A = NM_IN(net, nd, 0), *B = NM_IN(net, nd, 1);
    mm_geom g;
    if (!mm_geom_of(&A->shape, &B->shape, &g))
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (MatMul): operand shapes do not agree", nd->name);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = g.bat;
    if (A->shape.ndim > 1) Y->shape.d[Y->shape.ndim++] = g.M;
    if (B->shape.ndim > 1) Y->shape.d[Y->shape.ndim++] = g.N;
    if (Y->shape.ndim > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (MatMul): result rank exceeds %d", nd->name, NM_MAX_DIMS);
    Y->batched = A->varying && A->batched && A->shape.ndim >= 2 && !B->varying && B->shape.ndim <= 2;
    return NM_OK;
}

/* y (=|+=) A·B for each batch index. */
static void mm_product(const float *A, const nm_shape *as, const float *B, const nm_shape *bs, float beta, float *y)
{
    mm_geom g;
    mm_geom_of(as, bs, &g);
    int64_t nb = nm_shape_numel(&g.bat);
    for (int64_t b = 0; b < nb; b++)
        nm_gemm_f32(NM_NOTRANS, NM_NOTRANS, g.M, g.N, g.K, 1.0f, A + mm_off(&g, g.sa, b, g.M * g.K), g.K,
                    B + mm_off(&g, g.sb, b, g.K * g.N), g.N, beta, y + b * g.M * g.N, g.N);
}

/* x[0] A (..., M, K), x[1] B (..., K, N), batch axes broadcast, 1-D operands promoted: y (..., M, N) = A B. */
static nm_status matmul_forward(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    mm_product(p->x[0], &p->xs[0], p->x[1], &p->xs[1], 0.0f, p->y);
    return NM_OK;
}

/* dx[0], dx[1] the tangents of the varying operands: dy (..., M, N) = dA B + A dB. */
static nm_status matmul_jvp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    float beta = 0.0f;
    if (p->dx[0]) {
        mm_product(p->dx[0], &p->dxs[0], p->x[1], &p->xs[1], 0.0f, p->dy);
        beta = 1.0f;
    }
    if (p->dx[1]) mm_product(p->x[0], &p->xs[0], p->dx[1], &p->dxs[1], beta, p->dy);
    else if (beta == 0.0f) memset(p->dy, 0, (size_t)nm_shape_numel(&p->dys) * sizeof(float));
    return NM_OK;
}

/* dy (..., M, N): dx[0] += dy Bᵀ, dx[1] += Aᵀ dy (each summed over its broadcast batch axes); gp[1] likewise. */
static nm_status matmul_vjp(const nm_node *nd, nm_pass *p)
{
    (void)nd;
    const nm_shape *as = p->dx[0] ? &p->dxs[0] : &p->xs[0];
    mm_geom g;
    if (p->dx[0]) { /* dA_b += dY_b Bᵀ, summed where A broadcasts */
        mm_geom_of(as, &p->xs[1], &g);
        int64_t nb = nm_shape_numel(&g.bat);
        for (int64_t b = 0; b < nb; b++)
            nm_gemm_f32(NM_NOTRANS, NM_TRANS, g.M, g.K, g.N, 1.0f, p->dy + b * g.M * g.N, g.N,
                        p->x[1] + mm_off(&g, g.sb, b, g.K * g.N), g.N, 1.0f, p->dx[0] + mm_off(&g, g.sa, b, g.M * g.K), g.K);
    }
    float *dB = p->dx[1] ? p->dx[1] : p->gp[1];
    if (dB) { /* dB_b += A_bᵀ dY_b; needs T = P */
        mm_geom_of(&p->xs[0], &p->xs[1], &g);
        int64_t nb = nm_shape_numel(&g.bat);
        for (int64_t b = 0; b < nb; b++)
            nm_gemm_f32(NM_TRANS, NM_NOTRANS, g.K, g.N, g.M, 1.0f, p->x[0] + mm_off(&g, g.sa, b, g.M * g.K), g.K,
                        p->dy + b * g.M * g.N, g.N, 1.0f, dB + mm_off(&g, g.sb, b, g.K * g.N), g.N);
    }
    return NM_OK;
}

static const nm_attr_def gemm_attrs[] = {
    {.name = "alpha", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(alpha), .def = 1, .write = 1},
    {.name = "beta", .kind = NM_ATTR_FLOAT, .offset = NM_ATTR_FIELD(beta), .def = 1, .write = 1},
    {.name = "transA", .kind = NM_ATTR_BOOL, .offset = NM_ATTR_FIELD(trans_a), .write = 1},
    {.name = "transB", .kind = NM_ATTR_BOOL, .offset = NM_ATTR_FIELD(trans_b), .write = 1},
    {.name = "broadcast", .kind = NM_ATTR_IGNORE}, /* opset < 7: C broadcasts, as it always does now */
    {0}};

/* Method propagate's map from A (net.h) when A is the varying (M, K) operand and B a constant: sample row r of A
 * maps to row r of y by y_n = Σ_k α op(B)_kn x_k, one group of every row over every column. With transB and α = 1
 * (PyTorch's Linear) the rows are B's own; otherwise α op(B)ᵀ is copied. */
static int gemm_matrix(nm_ctx *ctx, const nm_net *net, const nm_node *nd, int i, nm_wmat *W, nm_status *st)
{
    const nm_value *A = NM_IN(net, nd, 0), *B = NM_IN(net, nd, 1);
    if (i != 0 || nd->a.trans_a || B->varying || !A->batched || A->shape.d[0] != 1) return 0;
    int64_t K = A->shape.d[1], N = B->shape.d[!nd->a.trans_b];
    const float *b = B->cdata;
    float al = nd->a.alpha;
    int own = !nd->a.trans_b || al != 1;
    if ((*st = nm_wmat_alloc(ctx, N, K, 1, N, K, own ? N * K : 0, W)) != NM_OK) return 1;
    for (int64_t n = 0; n < N; n++) W->row[n] = n;
    for (int64_t k = 0; k < K; k++) W->idx[k] = k;
    W->gp[1] = N, W->ip[1] = K, W->ld[0] = K, W->v[0] = own ? W->own : b;
    for (int64_t n = 0; own && n < N; n++)
        for (int64_t k = 0; k < K; k++) W->own[n * K + k] = al * (nd->a.trans_b ? b[n * K + k] : b[k * N + n]);
    return 1;
}

const nm_op_def nm_op_gemm = {
    .name = "Gemm", .min_inputs = 2, .max_inputs = 3, .trainable = {[1] = 1, [2] = 1}, .attrs = gemm_attrs,
    .matrix = gemm_matrix, .infer = gemm_infer, .forward = gemm_forward, .jvp = gemm_jvp, .vjp = gemm_vjp,
};
const nm_op_def nm_op_matmul = {
    .name = "MatMul", .min_inputs = 2, .max_inputs = 2, .trainable = {[1] = 1},
    .infer = matmul_infer, .forward = matmul_forward, .jvp = matmul_jvp, .vjp = matmul_vjp,
};
