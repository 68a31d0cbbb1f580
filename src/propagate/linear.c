/*
 * linear.c — a linear (affine) op in method propagate: y = Σ_i W_i x_i + b
 * over its varying inputs x_i. b is the op's float32 forward at zero, W_i
 * is read off its float32 jvp of unit tangents (every entry of W_i e_j is
 * one product, so exact), and the state is mapped in double:
 * m ← Σ W_i m_i + b, T ← Σ W_i T_i, and the private parts by
 * W_i P_i W_iᵀ: a diagonal stays one where no input reaches two outputs,
 * becomes dense where the output is small, and shared columns otherwise.
 *
 * Shapes: W_i rows = the output's units, cols = input i's (per sample).
 */
#include "prop.h"

#include <string.h>

#define DENSE_SHARE 0.25 /* a W with more non-zeros than this share of its entries is applied by GEMM */

typedef struct {
    int64_t rows, cols, nnz;
    int64_t *ptr; /* rows + 1 */
    int64_t *idx; /* nnz column indices */
    float *val;   /* nnz */
} csr;

static void csr_free(nm_ctx *ctx, csr *W)
{
    nm_free(ctx, W->ptr), nm_free(ctx, W->idx), nm_free(ctx, W->val);
    memset(W, 0, sizeof *W);
}

static int64_t units(const nm_value *v)
{
    return v->batched && v->shape.d[0] ? nm_shape_numel(&v->shape) / v->shape.d[0] : nm_shape_numel(&v->shape);
}

/* Triplets (column-major) gathered from jvp columns, grown on demand. */
typedef struct {
    int64_t n, cap;
    int64_t *row, *col;
    float *val;
} triplets;

static nm_status push(nm_ctx *ctx, triplets *t, int64_t r, int64_t c, float v)
{
    if (t->n == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 1 << 16;
        int64_t *row = nm_alloc(ctx, (size_t)cap, sizeof(int64_t)), *col = nm_alloc(ctx, (size_t)cap, sizeof(int64_t));
        float *val = nm_alloc(ctx, (size_t)cap, sizeof(float));
        if (!row || !col || !val) {
            nm_free(ctx, row), nm_free(ctx, col), nm_free(ctx, val);
            return NM_ERR_NOMEM;
        }
        if (t->n) {
            memcpy(row, t->row, (size_t)t->n * sizeof(int64_t));
            memcpy(col, t->col, (size_t)t->n * sizeof(int64_t));
            memcpy(val, t->val, (size_t)t->n * sizeof(float));
        }
        nm_free(ctx, t->row), nm_free(ctx, t->col), nm_free(ctx, t->val);
        t->row = row, t->col = col, t->val = val, t->cap = cap;
    }
    t->row[t->n] = r, t->col[t->n] = c, t->val[t->n] = v;
    t->n++;
    return NM_OK;
}

/* The triplets sorted into rows (a counting sort: columns stay in order within a row). */
static nm_status to_csr(nm_ctx *ctx, const triplets *t, int64_t rows, int64_t cols, csr *W)
{
    W->rows = rows, W->cols = cols, W->nnz = t->n;
    W->ptr = nm_alloc_zero(ctx, (size_t)(rows + 1), sizeof(int64_t));
    W->idx = nm_alloc(ctx, (size_t)(t->n ? t->n : 1), sizeof(int64_t));
    W->val = nm_alloc(ctx, (size_t)(t->n ? t->n : 1), sizeof(float));
    if (!W->ptr || !W->idx || !W->val) return NM_ERR_NOMEM;
    for (int64_t e = 0; e < t->n; e++) W->ptr[t->row[e] + 1]++;
    for (int64_t r = 0; r < rows; r++) W->ptr[r + 1] += W->ptr[r];
    int64_t *fill = nm_alloc(ctx, (size_t)(rows ? rows : 1), sizeof(int64_t));
    if (!fill) return NM_ERR_NOMEM;
    memcpy(fill, W->ptr, (size_t)rows * sizeof(int64_t));
    for (int64_t e = 0; e < t->n; e++) {
        int64_t at = fill[t->row[e]]++;
        W->idx[at] = t->col[e], W->val[at] = t->val[e];
    }
    nm_free(ctx, fill);
    return NM_OK;
}

/* Tangent buffers for every varying input of node k (t samples each, zeroed), input i's filled by the caller. */
static nm_status tangents(nm_ctx *ctx, const nm_net *net, const nm_node *nd, int64_t t, float **dx)
{
    for (int j = 0; j < nd->nin; j++) {
        const nm_value *v = NM_IN(net, nd, j);
        if (!v || !v->varying) continue;
        if (!(dx[j] = nm_alloc_zero(ctx, (size_t)t, (size_t)units(v) * sizeof(float)))) return NM_ERR_NOMEM;
    }
    return NM_OK;
}

/* W_i of node k from jvp passes: one tangent of all ones for an elementwise op (diag), else unit tangents
 * in chunks. */
static nm_status extract(nm_prop *pr, int k, int i, int diag, csr *W)
{
    nm_ctx *ctx = pr->ctx;
    nm_net *net = pr->net;
    const nm_node *nd = &net->node[k];
    int64_t nin = units(NM_IN(net, nd, i)), nout = units(NM_OUT(net, nd));
    int64_t C = diag ? 1 : nm_net_batch_fit(ctx, (size_t)(nin + nout) * 2 * sizeof(float), 256);
    if (C > nin) C = nin;
    float *dx[NM_NODE_MAX_IN] = {0}, *dy = nm_alloc(ctx, (size_t)C, (size_t)nout * sizeof(float));
    triplets t = {0};
    nm_status st = dy ? tangents(ctx, net, nd, C, dx) : NM_ERR_NOMEM;
    for (int64_t c0 = 0; st == NM_OK && c0 < (diag ? 1 : nin); c0 += C) {
        int64_t c = diag ? 1 : nin - c0 < C ? nin - c0 : C;
        for (int64_t s = 0; s < (diag ? nin : c); s++) dx[i][diag ? s : s * nin + c0 + s] = 1.0f;
        if ((st = nm_node_jvp(ctx, net, k, c, dx, dy)) != NM_OK) break;
        for (int64_t s = 0; st == NM_OK && s < c; s++)
            for (int64_t o = 0; st == NM_OK && o < nout; o++) {
                float w = dy[s * nout + o];
                if (w != 0) st = push(ctx, &t, o, diag ? o : c0 + s, w);
            }
        for (int64_t s = 0; s < (diag ? nin : c); s++) dx[i][diag ? s : s * nin + c0 + s] = 0.0f;
    }
    if (st == NM_OK) st = to_csr(ctx, &t, nout, nin, W);
    nm_free(ctx, t.row), nm_free(ctx, t.col), nm_free(ctx, t.val), nm_free(ctx, dy);
    for (int j = 0; j < nd->nin; j++) nm_free(ctx, dx[j]);
    return st;
}

/* Y (rows × ky) += W X, X n × kx (kx ≤ ky): by rows of W, or one GEMM when W is dense enough. */
static nm_status apply(nm_ctx *ctx, const csr *W, const double *X, int64_t kx, double *Y, int64_t ky)
{
    if (kx == 0) return NM_OK;
    if ((double)W->nnz > DENSE_SHARE * (double)W->rows * (double)W->cols && kx > 16) {
        double *D = nm_alloc_zero(ctx, (size_t)W->rows, (size_t)W->cols * sizeof(double));
        if (D) {
            for (int64_t r = 0; r < W->rows; r++)
                for (int64_t e = W->ptr[r]; e < W->ptr[r + 1]; e++) D[r * W->cols + W->idx[e]] = W->val[e];
            nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, W->rows, kx, W->cols, 1.0, D, W->cols, X, kx, 1.0, Y, ky);
            nm_free(ctx, D);
            return NM_OK;
        }
        ctx->message[0] = 0; /* no room for the dense copy: by rows */
    }
    #pragma omp parallel for schedule(dynamic, 8) if (W->nnz * kx > 65536)
    for (int64_t r = 0; r < W->rows; r++) {
        double *y = Y + r * ky;
        for (int64_t e = W->ptr[r]; e < W->ptr[r + 1]; e++) {
            const double *x = X + W->idx[e] * kx;
            double w = W->val[e];
            for (int64_t c = 0; c < kx; c++) y[c] += w * x[c];
        }
    }
    return NM_OK;
}

/* Whether no column of W has two non-zeros: then W diag(d2) Wᵀ is diagonal. */
static int one_per_column(nm_ctx *ctx, const csr *W, int *ok)
{
    unsigned char *seen = nm_alloc_zero(ctx, (size_t)(W->cols ? W->cols : 1), 1);
    if (!seen) return 0;
    *ok = 1;
    for (int64_t e = 0; *ok && e < W->nnz; e++) *ok = !seen[W->idx[e]]++;
    nm_free(ctx, seen);
    return 1;
}

/* out's private part += W P Wᵀ for input state x (whose private part may be turned into columns first). */
static nm_status map_private(nm_prop *pr, const csr *W, nm_gauss *x, nm_gauss *out)
{
    nm_ctx *ctx = pr->ctx;
    int64_t n = W->rows, m = W->cols;
    if (!x->d2 && !x->R) return NM_OK;
    int diag = 0;
    if (x->d2 && !one_per_column(ctx, W, &diag)) return NM_ERR_NOMEM;
    if (x->d2 && diag && !out->R) {
        if (!out->d2 && !(out->d2 = nm_alloc_zero(ctx, (size_t)n, sizeof(double)))) return NM_ERR_NOMEM;
        for (int64_t r = 0; r < n; r++)
            for (int64_t e = W->ptr[r]; e < W->ptr[r + 1]; e++) out->d2[r] += (double)W->val[e] * W->val[e] * x->d2[W->idx[e]];
        return NM_OK;
    }
    if (n > pr->dense_max || out->d2) return nm_gauss_share(pr, x); /* the columns carry it */
    if (!out->R && !(out->R = nm_alloc_zero(ctx, (size_t)(n * n), sizeof(double)))) return NM_ERR_NOMEM;
    /* X = W P (n × m), then W Xᵀ = W P Wᵀ */
    double *X = nm_alloc_zero(ctx, (size_t)n, (size_t)m * sizeof(double)), *Xt = nm_alloc(ctx, (size_t)m, (size_t)n * sizeof(double));
    nm_status st = X && Xt ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK && x->d2)
        for (int64_t r = 0; r < n; r++)
            for (int64_t e = W->ptr[r]; e < W->ptr[r + 1]; e++) X[r * m + W->idx[e]] = W->val[e] * x->d2[W->idx[e]];
    else if (st == NM_OK) st = apply(ctx, W, x->R, m, X, m);
    for (int64_t r = 0; st == NM_OK && r < n; r++)
        for (int64_t c = 0; c < m; c++) Xt[c * n + r] = X[r * m + c];
    if (st == NM_OK) st = apply(ctx, W, Xt, n, out->R, n);
    nm_free(ctx, X), nm_free(ctx, Xt);
    return st;
}

/* b = the op's forward with every varying input zero, into out->m. */
static nm_status offset(nm_prop *pr, int k, nm_gauss *out)
{
    const nm_node *nd = &pr->net->node[k];
    float *x[NM_NODE_MAX_IN] = {0}, *y = nm_alloc(pr->ctx, (size_t)out->n, sizeof(float));
    nm_status st = y ? tangents(pr->ctx, pr->net, nd, 1, x) : NM_ERR_NOMEM;
    if (st == NM_OK) st = nm_node_forward(pr->ctx, pr->net, k, 1, x, y);
    for (int64_t u = 0; st == NM_OK && u < out->n; u++) out->m[u] = y[u];
    for (int j = 0; j < nd->nin; j++) nm_free(pr->ctx, x[j]);
    nm_free(pr->ctx, y);
    return st;
}

nm_status nm_prop_linear(nm_prop *pr, int k, nm_gauss *const *in, nm_gauss *out)
{
    nm_ctx *ctx = pr->ctx;
    const nm_node *nd = &pr->net->node[k];
    int64_t n = units(NM_OUT(pr->net, nd));
    csr W[NM_NODE_MAX_IN] = {0};
    nm_status st = nm_gauss_new(ctx, n, 0, out);
    if (st == NM_OK) st = offset(pr, k, out);
    /* the matrices, and the private parts (which may widen the inputs' factors) */
    for (int i = 0; st == NM_OK && i < nd->nin; i++) {
        if (!in[i]) continue;
        int diag = nm_op_table[nd->op]->moments == NM_MOMENTS_DIAGONAL && in[i]->n == n;
        if ((st = extract(pr, k, i, diag, &W[i])) == NM_OK) st = map_private(pr, &W[i], in[i], out);
    }
    int64_t k2 = 0;
    for (int i = 0; i < nd->nin; i++)
        if (in[i] && in[i]->k > k2) k2 = in[i]->k;
    int64_t nk;
    if (st == NM_OK && k2 > 0 && !nm_mul_ok(n, k2, &nk)) st = nm_fail(ctx, NM_ERR_NOMEM, "a factor of %lld × %lld overflows", (long long)n, (long long)k2);
    if (st == NM_OK && k2 > 0 && (out->T = nm_alloc_zero(ctx, (size_t)nk, sizeof(double)))) out->k = k2;
    else if (st == NM_OK && k2 > 0) st = NM_ERR_NOMEM;
    for (int i = 0; st == NM_OK && i < nd->nin; i++) {
        if (!in[i]) continue;
        if ((st = apply(ctx, &W[i], in[i]->m, 1, out->m, 1)) == NM_OK) st = apply(ctx, &W[i], in[i]->T, in[i]->k, out->T, out->k);
    }
    for (int i = 0; i < nd->nin; i++) csr_free(ctx, &W[i]);
    if (st != NM_OK) nm_gauss_free(ctx, out);
    return st;
}
