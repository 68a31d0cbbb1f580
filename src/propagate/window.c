/*
 * window.c — the max of each window (MaxPool, GlobalMaxPool) in method
 * propagate. Per output, the window's inputs z ~ N(m_w, C_w) (C_w from the
 * columns and the private part) give the max's mean and variance and the
 * Stein weights w_i ≈ P(z_i is the max) by Clark's tree (gauss_max.c); the
 * columns map as T_o ← Σ_i w_i T_i and the private part as G P Gᵀ with
 * each output's variance exact on the diagonal. When windows share inputs
 * and the output is too big to hold G P Gᵀ densely, a private diagonal is
 * turned into columns first, so that the shared inputs' correlation is kept.
 *
 * Shapes: per sample, input units in->n, output units out->n, windows of at
 * most K inputs (the op's window hook).
 */
#include "prop.h"
#include "../gauss.h"

#include <omp.h>
#include <string.h>

/* The windows (idx, n × K, count per output), and whether an input sits in two of them. */
static nm_status windows(nm_prop *pr, int k, int64_t n, int64_t K, int64_t nin, int64_t *idx, int64_t *cnt, int *overlap)
{
    const nm_node *nd = &pr->net->node[k];
    const nm_op_def *def = nm_op_table[nd->op];
    const nm_value *X = NM_IN(pr->net, nd, 0), *Y = NM_OUT(pr->net, nd);
    unsigned char *seen = nm_alloc_zero(pr->ctx, (size_t)nin, 1);
    if (!seen) return NM_ERR_NOMEM;
    *overlap = 0;
    nm_status st = NM_OK;
    for (int64_t o = 0; o < n && st == NM_OK; o++) {
        cnt[o] = def->window(nd, &X->xs, &Y->xs, o, idx + o * K);
        if (cnt[o] < 1) st = nm_fail(pr->ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s): window %lld lies wholly in the padding", nd->name,
                                     nm_op_name(nd->op), (long long)o);
        for (int64_t j = 0; j < cnt[o]; j++) *overlap |= seen[idx[o * K + j]]++ > 0;
    }
    nm_free(pr->ctx, seen);
    return st;
}

/* P_ij of the input's private part. */
static double priv(const nm_gauss *g, int64_t i, int64_t j)
{
    return g->R ? g->R[i * g->n + j] : g->d2 && i == j ? g->d2[i] : 0;
}

/* The input's sparse private columns mapped by the Stein weights: out->S = G S, each output its own group of G. */
static nm_status map_tiles(nm_ctx *ctx, const nm_gauss *in, int64_t n, int64_t K, const int64_t *idx, const int64_t *cnt,
                           const double *wt, nm_gauss *out)
{
    nm_wmat G;
    int64_t nidx = 0;
    for (int64_t o = 0; o < n; o++) nidx += cnt[o];
    nm_status st = nm_wmat_alloc(ctx, n, in->n, n, n, nidx, 0, &G);
    if (st == NM_OK && !(G.vd = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(double *)))) st = NM_ERR_NOMEM;
    if (st == NM_OK) {
        nm_free(ctx, (void *)G.v), G.v = NULL;
        for (int64_t o = 0; o < n; o++) {
            memcpy(G.idx + G.ip[o], idx + o * K, (size_t)cnt[o] * sizeof(int64_t));
            G.row[o] = o, G.gp[o + 1] = o + 1, G.ip[o + 1] = G.ip[o] + cnt[o], G.ld[o] = K, G.vd[o] = wt + o * K;
        }
        st = nm_tiles_map(ctx, &G, in->S, NULL, &out->S);
    }
    nm_wmat_free(ctx, &G);
    return st;
}

nm_status nm_prop_window(nm_prop *pr, int k, nm_gauss *in, nm_gauss *out)
{
    nm_ctx *ctx = pr->ctx;
    const nm_node *nd = &pr->net->node[k];
    const nm_value *X = NM_IN(pr->net, nd, 0), *Y = NM_OUT(pr->net, nd);
    int64_t n = nm_units(Y), K = nm_op_table[nd->op]->window(nd, &X->xs, &Y->xs, 0, NULL);
    int64_t *idx = nm_alloc(ctx, (size_t)n, (size_t)K * sizeof(int64_t)), *cnt = nm_alloc(ctx, (size_t)n, sizeof(int64_t));
    double *wt = nm_alloc(ctx, (size_t)n, (size_t)K * sizeof(double)), *var = nm_alloc(ctx, (size_t)n, sizeof(double));
    int overlap = 0;
    nm_status st = idx && cnt && wt && var ? windows(pr, k, n, K, in->n, idx, cnt, &overlap) : NM_ERR_NOMEM;
    int dense = (in->R || (in->d2 && overlap)) && n <= pr->dense_max;
    if (st == NM_OK && (in->R || (in->d2 && overlap)) && !dense) st = nm_gauss_share(pr, in);
    if (st == NM_OK && dense) st = nm_gauss_share_tiles(pr, in);
    if (st == NM_OK) st = nm_gauss_new(pr, n, in->k, out);
    int nth = nm_threads();
    double *mb = st == NM_OK ? nm_alloc(ctx, (size_t)nth, (size_t)(K + K * K) * sizeof(double)) : NULL;
    int *lb = st == NM_OK ? nm_alloc(ctx, (size_t)nth, (size_t)K * sizeof(int)) : NULL;
    if (st == NM_OK && (!mb || !lb)) st = NM_ERR_NOMEM;
    if (st == NM_OK) {
        #pragma omp parallel for schedule(dynamic, 16) num_threads(nth)
        for (int64_t o = 0; o < n; o++) {
            int th = omp_get_thread_num();
            double *m = mb + th * (K + K * K), *C = m + K;
            int *loc = lb + th * K;
            int64_t c = cnt[o], kk = in->k;
            const int64_t *ix = idx + o * K;
            for (int64_t a = 0; a < c; a++) {
                loc[a] = (int)a, m[a] = in->m[ix[a]];
                for (int64_t b = 0; b <= a; b++) {
                    double s = priv(in, ix[a], ix[b]) + (in->S ? nm_tiles_dot(in->S, ix[a], ix[b]) : 0);
                    for (int64_t j = 0; j < kk; j++) s += in->T[ix[a] * kk + j] * in->T[ix[b] * kk + j];
                    C[a * c + b] = C[b * c + a] = s;
                }
            }
            nm_maxk_moments((int)c, loc, m, C, c, &out->m[o], &var[o], wt + o * K);
            double *t = out->T ? out->T + o * kk : NULL;
            for (int64_t a = 0; t && a < c; a++)
                for (int64_t j = 0; j < kk; j++) t[j] += wt[o * K + a] * in->T[ix[a] * kk + j];
        }
    }
    nm_free(ctx, mb), nm_free(ctx, lb);
    if (st == NM_OK && in->S) st = map_tiles(ctx, in, n, K, idx, cnt, wt, out);
    /* the private part: what the columns leave of each variance, and G P Gᵀ off the diagonal when dense */
    double *P = st == NM_OK ? nm_alloc_zero(ctx, (size_t)(dense ? n * n : n), sizeof(double)) : NULL;
    if (st == NM_OK && !P) st = NM_ERR_NOMEM;
    if (st == NM_OK) {
        #pragma omp parallel for schedule(dynamic, 16)
        for (int64_t o = 0; o < n; o++) {
            double cols = out->S ? nm_tiles_dot(out->S, o, o) : 0;
            for (int64_t j = 0; j < out->k; j++) cols += out->T[o * out->k + j] * out->T[o * out->k + j];
            for (int64_t q = 0; dense && q < n; q++) {
                double s = 0;
                for (int64_t a = 0; a < cnt[o]; a++)
                    for (int64_t b = 0; b < cnt[q]; b++) s += wt[o * K + a] * wt[q * K + b] * priv(in, idx[o * K + a], idx[q * K + b]);
                P[o * n + q] = s;
            }
            double r = var[o] - cols;
            P[dense ? o * n + o : o] = r > 0 ? r : 0;
        }
        if (dense) out->R = P;
        else out->d2 = P;
    }
    nm_free(ctx, idx), nm_free(ctx, cnt), nm_free(ctx, wt), nm_free(ctx, var);
    if (st != NM_OK) nm_gauss_free(pr, out);
    return st;
}
