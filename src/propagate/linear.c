/*
 * linear.c — a linear (affine) op in method propagate: y = Σ_i W_i x_i + b
 * over its varying inputs x_i. b is the op's float32 forward at zero, W_i
 * comes from the op's matrix hook (Conv, Gemm) or is read off its float32
 * jvp of unit tangents (every entry of W_i e_j is one product, so exact),
 * as groups of rows that read the same inputs (nm_wmat: a conv's channels
 * at one position), and the state is mapped in double:
 * m ← Σ W_i m_i + b, T ← Σ W_i T_i, and the private parts by
 * W_i P_i W_iᵀ: a diagonal stays one where no input reaches two outputs,
 * becomes dense where the output is small, and sparse private columns
 * (tiles.c) otherwise.
 *
 * Shapes: W_i rows = the output's units, cols = input i's (per sample).
 */
#include "prop.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>


/* Rows with their columns (increasing) and values: the entries jvp passes found, before they are grouped. */
typedef struct {
    int64_t rows, cols, nnz;
    int64_t *ptr, *idx;
    float *val;
} csr;

static void csr_free(nm_ctx *ctx, csr *W)
{
    nm_free(ctx, W->ptr), nm_free(ctx, W->idx), nm_free(ctx, W->val);
    memset(W, 0, sizeof *W);
}

/* Entries of W gathered from one pass of unit tangents: exactly as many as it found. */
typedef struct {
    int64_t n;
    int64_t *row, *col;
    float *val;
} block;

/* The non-zeros of y (c samples × len), sample s being unit first + s: columns of W (by_rows 0:
 * jvp, y holds W e_j) or rows (1: vjp, y holds Wᵀ e_r), into a new block. */
static nm_status gather(nm_ctx *ctx, const float *y, int64_t c, int64_t len, int64_t first, int by_rows, block *b)
{
    int64_t nz = 0;
    for (int64_t i = 0; i < c * len; i++) nz += y[i] != 0;
    b->n = nz;
    b->row = nm_alloc(ctx, (size_t)(nz ? nz : 1), sizeof(int64_t));
    b->col = nm_alloc(ctx, (size_t)(nz ? nz : 1), sizeof(int64_t));
    b->val = nm_alloc(ctx, (size_t)(nz ? nz : 1), sizeof(float));
    if (!b->row || !b->col || !b->val) return NM_ERR_NOMEM;
    for (int64_t s = 0, e = 0; s < c; s++)
        for (int64_t o = 0; o < len; o++) {
            float w = y[s * len + o];
            if (w == 0) continue;
            b->row[e] = by_rows ? first + s : o, b->col[e] = by_rows ? o : first + s, b->val[e] = w;
            e++;
        }
    return NM_OK;
}

/* The blocks sorted into rows (a counting sort; blocks come in order of their units, so the columns of
 * a row stay increasing). */
static nm_status to_csr(nm_ctx *ctx, const block *bl, int64_t nb, int64_t rows, int64_t cols, csr *W)
{
    int64_t nnz = 0;
    for (int64_t j = 0; j < nb; j++) nnz += bl[j].n;
    *W = (csr){rows, cols, nnz, NULL, NULL, NULL};
    W->ptr = nm_alloc_zero(ctx, (size_t)(rows + 1), sizeof(int64_t));
    W->idx = nm_alloc(ctx, (size_t)(nnz ? nnz : 1), sizeof(int64_t));
    W->val = nm_alloc(ctx, (size_t)(nnz ? nnz : 1), sizeof(float));
    int64_t *fill = nm_alloc(ctx, (size_t)(rows ? rows : 1), sizeof(int64_t));
    if (!W->ptr || !W->idx || !W->val || !fill) {
        nm_free(ctx, fill), csr_free(ctx, W);
        return NM_ERR_NOMEM;
    }
    for (int64_t j = 0; j < nb; j++)
        for (int64_t e = 0; e < bl[j].n; e++) W->ptr[bl[j].row[e] + 1]++;
    for (int64_t r = 0; r < rows; r++) W->ptr[r + 1] += W->ptr[r];
    memcpy(fill, W->ptr, (size_t)rows * sizeof(int64_t));
    for (int64_t j = 0; j < nb; j++)
        for (int64_t e = 0; e < bl[j].n; e++) {
            int64_t at = fill[bl[j].row[e]]++;
            W->idx[at] = bl[j].col[e], W->val[at] = bl[j].val[e];
        }
    nm_free(ctx, fill);
    return NM_OK;
}

/* Rows that read the same columns sorted together: by pattern length, then the columns. Each key carries its
 * matrix (no global: experiments run nets on several threads). */
typedef struct {
    const csr *W;
    int64_t row;
} row_key;

static int cmp_pattern(const void *pa, const void *pb)
{
    const csr *W = ((const row_key *)pa)->W;
    int64_t a = ((const row_key *)pa)->row, b = ((const row_key *)pb)->row;
    int64_t la = W->ptr[a + 1] - W->ptr[a], lb = W->ptr[b + 1] - W->ptr[b];
    if (la != lb) return la < lb ? -1 : 1;
    const int64_t *ia = W->idx + W->ptr[a], *ib = W->idx + W->ptr[b];
    for (int64_t e = 0; e < la; e++)
        if (ia[e] != ib[e]) return ia[e] < ib[e] ? -1 : 1;
    return a < b ? -1 : a > b;
}

static int same_pattern(const csr *W, int64_t a, int64_t b)
{
    int64_t la = W->ptr[a + 1] - W->ptr[a];
    return la == W->ptr[b + 1] - W->ptr[b] && memcmp(W->idx + W->ptr[a], W->idx + W->ptr[b], (size_t)la * sizeof(int64_t)) == 0;
}

/* C's non-empty rows as groups of one pattern each (values copied, row by row). */
static nm_status to_groups(nm_ctx *ctx, const csr *C, nm_wmat *W)
{
    int64_t R = C->rows, nr = 0, ng = 0, nidx = 0;
    row_key *key = nm_alloc(ctx, (size_t)(R ? R : 1), sizeof(row_key));
    if (!key) return NM_ERR_NOMEM;
    for (int64_t r = 0; r < R; r++)
        if (C->ptr[r + 1] > C->ptr[r]) key[nr++] = (row_key){C, r};
    qsort(key, (size_t)nr, sizeof *key, cmp_pattern);
    for (int64_t a = 0; a < nr; a++)
        if (a == 0 || !same_pattern(C, key[a].row, key[a - 1].row)) ng++, nidx += C->ptr[key[a].row + 1] - C->ptr[key[a].row];
    nm_status st = nm_wmat_alloc(ctx, R, C->cols, ng, nr, nidx, C->nnz, W);
    for (int64_t a = 0, g = -1, e = 0, o = 0; st == NM_OK && a < nr; a++) {
        int64_t r = key[a].row, L = C->ptr[r + 1] - C->ptr[r];
        if (a == 0 || !same_pattern(C, r, key[a - 1].row)) {
            g++;
            memcpy(W->idx + e, C->idx + C->ptr[r], (size_t)L * sizeof(int64_t));
            e += L;
            W->ip[g + 1] = e, W->ld[g] = L, W->v[g] = W->own + o;
        }
        W->row[a] = r, W->gp[g + 1] = a + 1;
        memcpy(W->own + o, C->val + C->ptr[r], (size_t)L * sizeof(float));
        o += L;
    }
    nm_free(ctx, key);
    return st;
}

/* Tangent buffers for every varying input of node k (t samples each, zeroed), or only input i's (only). */
static nm_status tangents(nm_ctx *ctx, const nm_net *net, const nm_node *nd, int64_t t, int only, float **dx)
{
    for (int j = 0; j < nd->nin; j++) {
        const nm_value *v = NM_IN(net, nd, j);
        if (!v || !v->varying || (only >= 0 && j != only)) continue;
        if (!(dx[j] = nm_alloc_zero(ctx, (size_t)t, (size_t)nm_units(v) * sizeof(float)))) return NM_ERR_NOMEM;
    }
    return NM_OK;
}

/* W_i of node k from passes of unit tangents: one tangent of all ones for an elementwise op (diag), else
 * unit tangents in chunks, by jvp (columns) or, when the output is the smaller side, by vjp (rows). */
static nm_status extract(nm_prop *pr, int k, int i, int diag, nm_wmat *W)
{
    nm_ctx *ctx = pr->ctx;
    nm_net *net = pr->net;
    const nm_node *nd = &net->node[k];
    nm_status hst = NM_OK;
    if (nm_op_table[nd->op]->matrix && nm_op_table[nd->op]->matrix(ctx, net, nd, i, W, &hst)) return hst;
    int64_t nin = nm_units(NM_IN(net, nd, i)), nout = nm_units(NM_OUT(net, nd));
    int rows = !diag && nout < nin;
    int64_t from = rows ? nout : nin, to = rows ? nin : nout;
    int64_t C = diag ? 1 : nm_net_batch_fit(ctx, (size_t)(nin + nout) * 2 * sizeof(float), 256);
    if (C > from) C = from;
    int64_t nb = diag ? 1 : (from + C - 1) / C;
    float *dx[NM_NODE_MAX_IN] = {0}, *unit = NULL, *y = NULL;
    block *bl = nm_alloc_zero(ctx, (size_t)(nb ? nb : 1), sizeof(block));
    nm_status st = bl ? tangents(ctx, net, nd, C, rows ? i : -1, dx) : NM_ERR_NOMEM;
    if (st == NM_OK && rows && !(unit = nm_alloc_zero(ctx, (size_t)C, (size_t)nout * sizeof(float)))) st = NM_ERR_NOMEM;
    if (st == NM_OK && !rows && !(y = nm_alloc(ctx, (size_t)C, (size_t)nout * sizeof(float)))) st = NM_ERR_NOMEM;
    if (!rows) unit = dx[i], dx[i] = NULL; /* jvp: the unit tangents are input i's */
    for (int64_t j = 0; st == NM_OK && j < nb; j++) {
        int64_t c0 = j * C, c = diag ? 1 : from - c0 < C ? from - c0 : C;
        for (int64_t s = 0; s < (diag ? nin : c); s++) unit[diag ? s : s * from + c0 + s] = 1.0f;
        if (rows) {
            memset(dx[i], 0, (size_t)(c * nin) * sizeof(float));
            st = nm_node_vjp(ctx, net, k, c, unit, dx);
        } else {
            dx[i] = unit;
            st = nm_node_jvp(ctx, net, k, c, dx, y);
            dx[i] = NULL;
        }
        if (st == NM_OK && diag) {
            st = gather(ctx, y, 1, nout, 0, 0, &bl[0]);
            for (int64_t e = 0; st == NM_OK && e < bl[0].n; e++) bl[0].col[e] = bl[0].row[e];
        } else if (st == NM_OK) st = gather(ctx, rows ? dx[i] : y, c, to, c0, rows, &bl[j]);
        for (int64_t s = 0; s < (diag ? nin : c); s++) unit[diag ? s : s * from + c0 + s] = 0.0f;
    }
    csr E = {0};
    if (st == NM_OK) st = to_csr(ctx, bl, nb, nout, nin, &E);
    if (st == NM_OK) st = to_groups(ctx, &E, W);
    csr_free(ctx, &E);
    for (int64_t j = 0; bl && j < nb; j++) nm_free(ctx, bl[j].row), nm_free(ctx, bl[j].col), nm_free(ctx, bl[j].val);
    nm_free(ctx, bl), nm_free(ctx, unit), nm_free(ctx, y);
    for (int j = 0; j < nd->nin; j++) nm_free(ctx, dx[j]);
    return st;
}

#define GROUP_MIN 4         /* rows sharing a pattern that go through one GEMM */
#define GATHER_DOUBLES (1 << 22) /* a gathered block of X holds at most this many doubles (32 MiB) */

/* Y (rows × ky) += W X for group g's rows, X n × kx (kx ≤ ky), row by row. */
static void apply_rows(const nm_wmat *W, int64_t g, const double *X, int64_t kx, double *Y, int64_t ky)
{
    const int64_t *P = W->idx + W->ip[g];
    int64_t L = W->ip[g + 1] - W->ip[g];
    for (int64_t a = 0; a < W->gp[g + 1] - W->gp[g]; a++) {
        double *y = Y + W->row[W->gp[g] + a] * ky;
        for (int64_t e = 0; e < L; e++) {
            const double *x = X + P[e] * kx;
            double w = nm_wmat_at(W, g, a, e);
            for (int64_t c = 0; c < kx; c++) y[c] += w * x[c];
        }
    }
}

/* Group g (ng rows, pattern of L columns): Y_g += V X_P by column chunks, buffers in buf. */
static void apply_group(const nm_wmat *W, int64_t g, const double *X, int64_t kx, double *Y, int64_t ky, double *buf)
{
    int64_t L = W->ip[g + 1] - W->ip[g], ng = W->gp[g + 1] - W->gp[g];
    const int64_t *P = W->idx + W->ip[g], *rows = W->row + W->gp[g];
    int contiguous = P[L - 1] - P[0] == L - 1, consecutive = 1;
    for (int64_t a = 1; consecutive && a < ng; a++) consecutive = rows[a] == rows[0] + a;
    int64_t kc = GATHER_DOUBLES / (L > ng ? L : ng);
    kc = kc < 16 ? 16 : kc > kx ? kx : kc;
    double *V = buf, *B = V + ng * L, *Z = B + (contiguous ? 0 : L * kc);
    for (int64_t a = 0; a < ng; a++)
        for (int64_t e = 0; e < L; e++) V[a * L + e] = nm_wmat_at(W, g, a, e);
    if (contiguous && consecutive) { /* a dense block of W on a block of X (a Gemm): straight into Y */
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, ng, kx, L, 1.0, V, L, X + P[0] * kx, kx, 1.0, Y + rows[0] * ky, ky);
        return;
    }
    for (int64_t c0 = 0; c0 < kx; c0 += kc) {
        int64_t c = kx - c0 < kc ? kx - c0 : kc;
        const double *Bx = X + P[0] * kx + c0;
        int64_t ldb = kx;
        if (!contiguous) {
            for (int64_t e = 0; e < L; e++) memcpy(B + e * c, X + P[e] * kx + c0, (size_t)c * sizeof(double));
            Bx = B, ldb = c;
        }
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, ng, c, L, 1.0, V, L, Bx, ldb, 0.0, Z, c);
        for (int64_t a = 0; a < ng; a++)
            for (int64_t j = 0; j < c; j++) Y[rows[a] * ky + c0 + j] += Z[a * c + j];
    }
}

/* The doubles apply_group needs for group g and X of kx columns; 0 where the group goes row by row. */
static int64_t group_buffer(const nm_wmat *W, int64_t g, int64_t kx)
{
    int64_t ng = W->gp[g + 1] - W->gp[g], L = W->ip[g + 1] - W->ip[g];
    if (ng < GROUP_MIN || L == 0 || kx < 16) return 0;
    int64_t kc = GATHER_DOUBLES / (L > ng ? L : ng);
    kc = kc < 16 ? 16 : kc > kx ? kx : kc;
    return ng * L + L * kc + ng * kc;
}

/* Y (rows × ky) += W X, X n × kx (kx ≤ ky): a group of rows by one GEMM, or row by row where small; the groups on
 * the threads where there are many (a row is in one group: no two threads write it). */
static nm_status apply(nm_ctx *ctx, const nm_wmat *W, const double *X, int64_t kx, double *Y, int64_t ky)
{
    if (kx == 0 || W->ng == 0) return NM_OK;
    int64_t need = 0;
    for (int64_t g = 0; g < W->ng; g++) {
        int64_t q = group_buffer(W, g, kx);
        need = q > need ? q : need;
    }
    int nth = W->ng >= 2 * nm_threads() ? nm_threads() : 1;
    double *buf = need ? nm_alloc(ctx, (size_t)nth, (size_t)need * sizeof(double)) : NULL;
    if (need && !buf) return NM_ERR_NOMEM;
    if (nth > 1) {
        nm_blas_serial_begin();
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
        for (int64_t g = 0; g < W->ng; g++) {
            if (group_buffer(W, g, kx)) apply_group(W, g, X, kx, Y, ky, buf + omp_get_thread_num() * need);
            else apply_rows(W, g, X, kx, Y, ky);
        }
        nm_blas_serial_end();
    } else
        for (int64_t g = 0; g < W->ng; g++) {
            if (group_buffer(W, g, kx)) apply_group(W, g, X, kx, Y, ky, buf);
            else apply_rows(W, g, X, kx, Y, ky);
        }
    nm_free(ctx, buf);
    return NM_OK;
}

/* Whether no column of W has two non-zeros: then W diag(d2) Wᵀ is diagonal. */
static int one_per_column(nm_ctx *ctx, const nm_wmat *W, int *ok)
{
    unsigned char *seen = nm_alloc_zero(ctx, (size_t)(W->cols ? W->cols : 1), 1);
    if (!seen) return 0;
    *ok = 1;
    for (int64_t g = 0; *ok && g < W->ng; g++)
        for (int64_t a = 0; *ok && a < W->gp[g + 1] - W->gp[g]; a++)
            for (int64_t e = 0; *ok && e < W->ip[g + 1] - W->ip[g]; e++)
                if (nm_wmat_at(W, g, a, e) != 0) *ok = !seen[W->idx[W->ip[g] + e]]++;
    nm_free(ctx, seen);
    return 1;
}

/* body for every entry of W: row r, column j, value w. */
#define FOR_ENTRIES(W, r, j, w, body)                                                                                                  \
    for (int64_t g_ = 0; g_ < (W)->ng; g_++)                                                                                           \
        for (int64_t a_ = 0; a_ < (W)->gp[g_ + 1] - (W)->gp[g_]; a_++)                                                                 \
            for (int64_t e_ = 0; e_ < (W)->ip[g_ + 1] - (W)->ip[g_]; e_++) {                                                           \
                int64_t r = (W)->row[(W)->gp[g_] + a_], j = (W)->idx[(W)->ip[g_] + e_];                                                \
                double w = nm_wmat_at(W, g_, a_, e_);                                                                                  \
                body;                                                                                                                  \
            }


/* The lower triangle of R (n × n) += X Xᵀ for X = W diag(√d2) (n × m). */
static nm_status add_diag_square(nm_ctx *ctx, const nm_wmat *W, const double *d2, double *R)
{
    int64_t n = W->rows, m = W->cols;
    double *X = nm_prop_zeros(ctx, n * m), *sd = nm_alloc(ctx, (size_t)(m ? m : 1), sizeof(double));
    if (!X || !sd) {
        nm_free(ctx, X), nm_free(ctx, sd);
        return NM_ERR_NOMEM;
    }
    for (int64_t j = 0; j < m; j++) sd[j] = sqrt(d2[j]);
    for (int64_t g = 0; g < W->ng; g++) {
        int64_t L = W->ip[g + 1] - W->ip[g];
        const int64_t *P = W->idx + W->ip[g];
        #pragma omp parallel for schedule(static) if ((W->gp[g + 1] - W->gp[g]) * L > 65536)
        for (int64_t a = 0; a < W->gp[g + 1] - W->gp[g]; a++) {
            double *x = X + W->row[W->gp[g] + a] * m;
            for (int64_t e = 0; e < L; e++) x[P[e]] = nm_wmat_at(W, g, a, e) * sd[P[e]];
        }
    }
    nm_free(ctx, sd);
    nm_syrk_f64(n, m, 1.0, X, m, 1.0, R, n);
    nm_free(ctx, X);
    return NM_OK;
}

/* The lower triangle of R += Y Yᵀ for Y = W S (n × kc), by Yᵀ. */
static nm_status add_tiles_square(nm_ctx *ctx, const nm_wmat *W, const nm_tiles *S, double *R)
{
    int64_t n = W->rows, kc = S->kc;
    double *Yt = kc ? nm_prop_zeros(ctx, kc * n) : NULL;
    nm_status st = kc == 0 ? NM_OK : Yt ? nm_tiles_times_t(ctx, W, S, Yt, n) : NM_ERR_NOMEM;
    if (st == NM_OK && kc) nm_syrk_t_f64(n, kc, 1.0, Yt, n, 1.0, R, n);
    nm_free(ctx, Yt);
    return st;
}

/* out's private part += W P Wᵀ for input state x (P = S Sᵀ + diag(d2), or R): a diagonal stays one where W keeps it
 * so; where the output is small (and holds no other diagonal or sparse columns) all of it becomes dense; otherwise
 * it becomes sparse columns (tiles.c). Where another input's sparse columns are there already, x's go to its shared
 * columns, a dense R too, and a diagonal is left for spread(): *spread = 1. */
static nm_status map_private(nm_prop *pr, const nm_wmat *W, nm_gauss *x, nm_gauss *out, int *spread)
{
    *spread = 0;
    nm_ctx *ctx = pr->ctx;
    int64_t n = W->rows, m = W->cols;
    if (!x->d2 && !x->R && !x->S) return NM_OK;
    int diag = 0;
    if (x->d2 && !one_per_column(ctx, W, &diag)) return NM_ERR_NOMEM;
    if (x->d2 && diag && !out->R) {
        if (!out->d2 && !(out->d2 = nm_alloc_zero(ctx, (size_t)n, sizeof(double)))) return NM_ERR_NOMEM;
        FOR_ENTRIES(W, r, j, w, out->d2[r] += w * w * x->d2[j])
        if (!x->S) return NM_OK;
    }
    const double *d2 = x->d2 && !(diag && !out->R) ? x->d2 : NULL; /* what is left of the diagonal to map */
    if (n > pr->dense_max || out->d2 || out->S) {
        if (x->R) return nm_gauss_share(pr, x);
        if (out->S || !pr->sparse) { /* sparse columns of another input are there, or none are wanted */
            *spread = d2 != NULL;
            return nm_gauss_share_tiles(pr, x);
        }
        return nm_tiles_map(ctx, W, x->S, d2, &out->S);
    }
    if (!out->R && !(out->R = nm_prop_zeros(ctx, n * n))) return NM_ERR_NOMEM;
    nm_status st = NM_OK;
    if (x->S) st = add_tiles_square(ctx, W, x->S, out->R);
    if (st == NM_OK && d2) st = add_diag_square(ctx, W, d2, out->R);
    if (x->S || d2) {
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = r + 1; c < n; c++) out->R[r * n + c] = out->R[c * n + r];
        return st;
    }
    /* X = W P (n × m), then W Xᵀ = W P Wᵀ */
    double *X = nm_alloc_zero(ctx, (size_t)n, (size_t)m * sizeof(double)), *Xt = nm_alloc(ctx, (size_t)m, (size_t)n * sizeof(double));
    st = X && Xt ? apply(ctx, W, x->R, m, X, m) : NM_ERR_NOMEM;
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
    nm_status st = y ? tangents(pr->ctx, pr->net, nd, 1, -1, x) : NM_ERR_NOMEM;
    if (st == NM_OK) st = nm_node_forward(pr->ctx, pr->net, k, 1, x, y);
    for (int64_t u = 0; st == NM_OK && u < out->n; u++) out->m[u] = y[u];
    for (int j = 0; j < nd->nin; j++) nm_free(pr->ctx, x[j]);
    nm_free(pr->ctx, y);
    return st;
}

/* Input x's private diagonal as new columns of out: W diag(√d2) written straight into the columns col[j]
 * (−1: none) without forming the one-hot columns. */
static void spread(const nm_wmat *W, const nm_gauss *x, const int64_t *col, nm_gauss *out)
{
    #pragma omp parallel for schedule(static) if (W->ng > 64)
    for (int64_t g = 0; g < W->ng; g++)
        for (int64_t a = 0; a < W->gp[g + 1] - W->gp[g]; a++)
            for (int64_t e = 0; e < W->ip[g + 1] - W->ip[g]; e++) {
                int64_t r = W->row[W->gp[g] + a], j = W->idx[W->ip[g] + e];
                if (col[j] >= 0) out->T[r * out->k + col[j]] = nm_wmat_at(W, g, a, e) * sqrt(x->d2[j]);
            }
}

/* New columns for the units of x with a private variance: col[j] (−1 where none). */
static int64_t *new_columns(nm_prop *pr, const nm_gauss *x)
{
    int64_t *col = nm_alloc(pr->ctx, (size_t)x->n, sizeof(int64_t));
    for (int64_t j = 0; col && j < x->n; j++) col[j] = x->d2[j] > 0 ? pr->cols++ : -1;
    return col;
}

nm_status nm_prop_linear(nm_prop *pr, int k, nm_gauss *const *in, nm_gauss *out)
{
    nm_ctx *ctx = pr->ctx;
    const nm_node *nd = &pr->net->node[k];
    int64_t n = nm_units(NM_OUT(pr->net, nd)), *col[NM_NODE_MAX_IN] = {0};
    nm_wmat W[NM_NODE_MAX_IN] = {0};
    nm_status st = nm_gauss_new(pr, n, 0, out);
    if (st == NM_OK) st = offset(pr, k, out);
    /* the matrices, and the private parts (which may widen the inputs' factors, or ask for new columns) */
    int64_t k2 = 0;
    for (int i = 0; st == NM_OK && i < nd->nin; i++) {
        if (!in[i]) continue;
        int diag = nm_op_table[nd->op]->moments == NM_MOMENTS_DIAGONAL && in[i]->n == n, spr = 0;
        if ((st = extract(pr, k, i, diag, &W[i])) == NM_OK) st = map_private(pr, &W[i], in[i], out, &spr);
        if (st == NM_OK && spr && !(col[i] = new_columns(pr, in[i]))) st = NM_ERR_NOMEM;
        if (st == NM_OK && spr) k2 = pr->cols;
    }
    for (int i = 0; i < nd->nin; i++)
        if (in[i] && in[i]->k > k2) k2 = in[i]->k;
    int64_t nk;
    if (st == NM_OK && k2 > 0 && !nm_mul_ok(n, k2, &nk)) st = nm_fail(ctx, NM_ERR_NOMEM, "a factor of %lld × %lld overflows", (long long)n, (long long)k2);
    if (st == NM_OK && k2 > 0 && (out->T = nm_prop_take(pr, (size_t)nk))) out->k = k2;
    else if (st == NM_OK && k2 > 0) st = NM_ERR_NOMEM;
    for (int i = 0; st == NM_OK && i < nd->nin; i++) {
        if (!in[i]) continue;
        if ((st = apply(ctx, &W[i], in[i]->m, 1, out->m, 1)) == NM_OK) st = apply(ctx, &W[i], in[i]->T, in[i]->k, out->T, out->k);
        if (st == NM_OK && col[i]) spread(&W[i], in[i], col[i], out);
    }
    for (int i = 0; i < nd->nin; i++) nm_wmat_free(ctx, &W[i]), nm_free(ctx, col[i]);
    if (st != NM_OK) nm_gauss_free(pr, out);
    return st;
}
