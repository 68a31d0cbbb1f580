/*
 * tiles_dense.c — a small layer's product with sparse private columns
 * (prop.h, tiles.c), dense: Yᵀ += (W S)ᵀ, one GEMM per group of S over the
 * output units that read it, its rows added where its columns are. Method
 * propagate's W S Sᵀ Wᵀ at a layer small enough to hold its covariance
 * (linear.c) is one transposed SYRK of this.
 */
#include "prop.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Where W is one group of every row in order over every column (a Gemm), W[r, j] is read from its values straight;
 * otherwise Wᵀ is formed by rows (cp, ci, cv: for each input unit, the output units that read it). */
typedef struct {
    const nm_wmat *W;
    int dense;
    int64_t *cp, *ci;
    double *cv;
} by_cols;

static void by_cols_free(nm_ctx *ctx, by_cols *B)
{
    nm_free(ctx, B->cp), nm_free(ctx, B->ci), nm_free(ctx, B->cv);
}

static nm_status by_cols_of(nm_ctx *ctx, const nm_wmat *W, by_cols *B)
{
    int64_t n = W->rows, m = W->cols, nnz = 0;
    *B = (by_cols){W, W->ng == 1 && W->gp[1] == n && W->ip[1] == m, NULL, NULL, NULL};
    for (int64_t a = 0; B->dense && a < n; a++) B->dense = W->row[a] == a;
    for (int64_t e = 0; B->dense && e < m; e++) B->dense = W->idx[e] == e;
    if (B->dense) return NM_OK;
    for (int64_t g = 0; g < W->ng; g++) nnz += (W->gp[g + 1] - W->gp[g]) * (W->ip[g + 1] - W->ip[g]);
    B->cp = nm_alloc_zero(ctx, (size_t)(m + 1), sizeof(int64_t)), B->ci = nm_alloc(ctx, (size_t)(nnz ? nnz : 1), sizeof(int64_t));
    B->cv = nm_alloc(ctx, (size_t)(nnz ? nnz : 1), sizeof(double));
    int64_t *fill = nm_alloc(ctx, (size_t)(m ? m : 1), sizeof(int64_t));
    nm_status st = B->cp && B->ci && B->cv && fill ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK) {
        for (int64_t g = 0; g < W->ng; g++)
            for (int64_t e = W->ip[g]; e < W->ip[g + 1]; e++) B->cp[W->idx[e] + 1] += W->gp[g + 1] - W->gp[g];
        for (int64_t j = 0; j < m; j++) B->cp[j + 1] += B->cp[j];
        memcpy(fill, B->cp, (size_t)m * sizeof(int64_t));
        for (int64_t g = 0; g < W->ng; g++) /* a group's rows go into one column's list together */
            for (int64_t e = 0; e < W->ip[g + 1] - W->ip[g]; e++)
                for (int64_t a = 0; a < W->gp[g + 1] - W->gp[g]; a++) {
                    int64_t at = fill[W->idx[W->ip[g] + e]]++;
                    B->ci[at] = W->row[W->gp[g] + a], B->cv[at] = nm_wmat_at(W, g, a, e);
                }
    }
    nm_free(ctx, fill);
    if (st != NM_OK) by_cols_free(ctx, B);
    return st;
}

/* The output units that read any of units rows[0..nu) into outs (increasing), their count returned, and mark[o] their
 * places (mark: −1 everywhere before; the caller sets it back). */
static int64_t readers(const by_cols *B, const int64_t *rows, int64_t nu, int64_t *mark, int64_t *outs)
{
    const nm_wmat *W = B->W;
    int64_t no = 0;
    if (B->dense) {
        for (int64_t r = 0; r < W->rows; r++) outs[r] = r, mark[r] = r;
        return W->rows;
    }
    for (int64_t a = 0; a < nu; a++)
        for (int64_t e = B->cp[rows[a]]; e < B->cp[rows[a] + 1]; e++)
            if (mark[B->ci[e]] < 0) mark[B->ci[e]] = 0, outs[no++] = B->ci[e];
    qsort(outs, (size_t)no, sizeof *outs, nm_cmp_i64);
    for (int64_t i = 0; i < no; i++) mark[outs[i]] = i;
    return no;
}

/* Wg (nu × no, zeroed) ← W's entries of units rows[0..nu) at their readers' places mark[·]. */
static void gather_columns(const by_cols *B, const int64_t *rows, int64_t nu, const int64_t *mark, int64_t no, double *Wg)
{
    const nm_wmat *W = B->W;
    if (B->dense) {
        for (int64_t r = 0; r < W->rows; r++)
            for (int64_t a = 0; a < nu; a++) Wg[a * no + r] = nm_wmat_at(W, 0, r, rows[a]);
        return;
    }
    for (int64_t a = 0; a < nu; a++)
        for (int64_t e = B->cp[rows[a]]; e < B->cp[rows[a] + 1]; e++) Wg[a * no + mark[B->ci[e]]] += B->cv[e];
}

nm_status nm_tiles_times_t(nm_ctx *ctx, const nm_wmat *W, const nm_tiles *S, double *Yt, int64_t ldy)
{
    int64_t n = W->rows;
    by_cols B;
    nm_status st = by_cols_of(ctx, W, &B);
    if (st != NM_OK) return st;
    int64_t *mark = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(int64_t)), *outs = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(int64_t));
    if (!mark || !outs) st = NM_ERR_NOMEM;
    /* room: the largest group's output units × (its units + its columns) */
    int64_t need = 1;
    for (int64_t i = 0; st == NM_OK && i < n; i++) mark[i] = -1;
    for (int64_t g = 0; st == NM_OK && g < S->ng; g++) {
        int64_t nu = S->rptr[g + 1] - S->rptr[g], no = readers(&B, S->rows + S->rptr[g], nu, mark, outs);
        int64_t q = no * (nu + S->cptr[g + 1] - S->cptr[g]);
        need = q > need ? q : need;
        for (int64_t i = 0; i < no; i++) mark[outs[i]] = -1;
    }
    double *buf = st == NM_OK ? nm_alloc(ctx, (size_t)need, sizeof(double)) : NULL;
    if (st == NM_OK && !buf) st = NM_ERR_NOMEM;
    for (int64_t g = 0; st == NM_OK && g < S->ng; g++) {
        int64_t nu = S->rptr[g + 1] - S->rptr[g], nc = S->cptr[g + 1] - S->cptr[g];
        const int64_t *rows = S->rows + S->rptr[g], *cols = S->cols + S->cptr[g];
        int64_t no = readers(&B, rows, nu, mark, outs);
        double *Wg = buf, *Z = buf + no * nu; /* W's columns of the group, transposed (nu × no), and Bᵀ Wg (nc × no) */
        if (no == 0 || nc == 0) {
            for (int64_t i = 0; i < no; i++) mark[outs[i]] = -1;
            continue;
        }
        memset(Wg, 0, (size_t)(no * nu) * sizeof(double));
        gather_columns(&B, rows, nu, mark, no, Wg);
        nm_gemm_f64(NM_TRANS, NM_NOTRANS, nc, no, nu, 1.0, S->val + S->vptr[g], nc, Wg, no, 0.0, Z, no);
        int run = outs[no - 1] - outs[0] == no - 1; /* the output units a range: rows of Z add straight */
        #pragma omp parallel for schedule(static) if (no * nc > 65536)
        for (int64_t c = 0; c < nc; c++) {
            double *y = Yt + cols[c] * ldy;
            const double *z = Z + c * no;
            if (run)
                for (int64_t i = 0; i < no; i++) y[outs[0] + i] += z[i];
            else
                for (int64_t i = 0; i < no; i++) y[outs[i]] += z[i];
        }
        for (int64_t i = 0; i < no; i++) mark[outs[i]] = -1;
    }
    nm_free(ctx, buf), nm_free(ctx, mark), nm_free(ctx, outs);
    by_cols_free(ctx, &B);
    return st;
}
