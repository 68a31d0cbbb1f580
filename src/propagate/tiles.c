/*
 * tiles.c — a private factor S (n units × kc columns) held sparse, so that
 * the residual columns a layer appends stay sparse through the convs and
 * pools that spread them (prop.h). The units are in groups; every unit of
 * a group is non-zero only on the group's columns, and the group's values
 * are one dense block. Mapping by a sparse W puts the output units that
 * read the same input groups (and, for new columns, the same inputs) into
 * one group: a conv's output channels at one position, a pool's channels
 * at one window. Units with one W pattern go through one GEMM.
 */
#include "prop.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define GEMM_MIN 4 /* units sharing a W pattern that go through one GEMM */

void nm_tiles_free(nm_ctx *ctx, nm_tiles *S)
{
    if (!S) return;
    nm_free(ctx, S->grp), nm_free(ctx, S->at), nm_free(ctx, S->rptr), nm_free(ctx, S->rows), nm_free(ctx, S->cptr);
    nm_free(ctx, S->cols), nm_free(ctx, S->vptr), nm_free(ctx, S->val), nm_free(ctx, S);
}

/* Unit u's columns (*c) and values (return), *nc of them; NULL where u is in no group. */
static const double *row_of(const nm_tiles *S, int64_t u, const int64_t **c, int64_t *nc)
{
    int64_t g = S->grp[u];
    if (g < 0) return *nc = 0, NULL;
    *nc = S->cptr[g + 1] - S->cptr[g], *c = S->cols + S->cptr[g];
    return S->val + S->vptr[g] + S->at[u] * *nc;
}

double nm_tiles_dot(const nm_tiles *S, int64_t u, int64_t v)
{
    const int64_t *cu = NULL, *cv = NULL;
    int64_t nu, nv;
    const double *a = row_of(S, u, &cu, &nu), *b = row_of(S, v, &cv, &nv);
    double s = 0;
    if (!a || !b) return 0;
    if (S->grp[u] == S->grp[v]) {
        for (int64_t c = 0; c < nu; c++) s += a[c] * b[c];
        return s;
    }
    for (int64_t i = 0, j = 0; i < nu && j < nv;) { /* both column lists increase */
        if (cu[i] < cv[j]) i++;
        else if (cu[i] > cv[j]) j++;
        else s += a[i++] * b[j++];
    }
    return s;
}

void nm_tiles_norms(const nm_tiles *S, double *v)
{
    #pragma omp parallel for schedule(static) if (S->n > 4096)
    for (int64_t u = 0; u < S->n; u++) v[u] += nm_tiles_dot(S, u, u);
}

void nm_tiles_scale(nm_tiles *S, const double *g)
{
    #pragma omp parallel for schedule(static) if (S->n > 4096)
    for (int64_t u = 0; u < S->n; u++) {
        const int64_t *c;
        int64_t nc;
        double *x = (double *)row_of(S, u, &c, &nc);
        for (int64_t j = 0; j < nc; j++) x[j] *= g[u];
    }
}

void nm_tiles_put(const nm_tiles *S, double *T, int64_t ldt, int64_t off)
{
    #pragma omp parallel for schedule(static) if (S->n > 4096)
    for (int64_t u = 0; u < S->n; u++) {
        const int64_t *c;
        int64_t nc;
        const double *x = row_of(S, u, &c, &nc);
        for (int64_t j = 0; j < nc; j++) T[u * ldt + off + c[j]] = x[j];
    }
}

/* An empty structure for n units, kc columns, ng groups holding nr units in all (the index arrays; val later). */
static nm_tiles *tiles_new(nm_ctx *ctx, int64_t n, int64_t kc, int64_t ng, int64_t nr)
{
    nm_tiles *S = nm_alloc_zero(ctx, 1, sizeof *S);
    if (!S) return NULL;
    S->n = n, S->kc = kc, S->ng = ng;
    S->grp = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(int64_t));
    S->at = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(int64_t));
    S->rptr = nm_alloc_zero(ctx, (size_t)(ng + 1), sizeof(int64_t));
    S->rows = nm_alloc(ctx, (size_t)(nr ? nr : 1), sizeof(int64_t));
    S->cptr = nm_alloc_zero(ctx, (size_t)(ng + 1), sizeof(int64_t));
    S->vptr = nm_alloc_zero(ctx, (size_t)(ng + 1), sizeof(int64_t));
    if (!S->grp || !S->at || !S->rptr || !S->rows || !S->cptr || !S->vptr) {
        nm_tiles_free(ctx, S);
        return NULL;
    }
    for (int64_t u = 0; u < n; u++) S->grp[u] = -1, S->at[u] = 0;
    return S;
}

nm_status nm_tiles_copy(nm_ctx *ctx, const nm_tiles *S, nm_tiles **out)
{
    int64_t ng = S->ng, nr = S->rptr[ng];
    nm_tiles *D = tiles_new(ctx, S->n, S->kc, ng, nr);
    if (D) D->cols = nm_alloc(ctx, (size_t)(S->cptr[ng] ? S->cptr[ng] : 1), sizeof(int64_t));
    if (D && D->cols) D->val = nm_alloc(ctx, (size_t)(S->vptr[ng] ? S->vptr[ng] : 1), sizeof(double));
    if (!D || !D->val) {
        nm_tiles_free(ctx, D);
        return NM_ERR_NOMEM;
    }
    memcpy(D->grp, S->grp, (size_t)S->n * sizeof(int64_t)), memcpy(D->at, S->at, (size_t)S->n * sizeof(int64_t));
    memcpy(D->rptr, S->rptr, (size_t)(ng + 1) * sizeof(int64_t)), memcpy(D->rows, S->rows, (size_t)nr * sizeof(int64_t));
    memcpy(D->cptr, S->cptr, (size_t)(ng + 1) * sizeof(int64_t)), memcpy(D->vptr, S->vptr, (size_t)(ng + 1) * sizeof(int64_t));
    memcpy(D->cols, S->cols, (size_t)S->cptr[ng] * sizeof(int64_t)), memcpy(D->val, S->val, (size_t)S->vptr[ng] * sizeof(double));
    *out = D;
    return NM_OK;
}

/* ---------------------------------------------------------------- S ← W S (and new columns) */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* An output unit's place in the sort: its group key, its W pattern's hash, itself. */
typedef struct {
    uint64_t key, pat;
    int64_t r;
} unit_key;

static int cmp_unit(const void *pa, const void *pb)
{
    const unit_key *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    if (a->pat != b->pat) return a->pat < b->pat ? -1 : 1;
    return a->r < b->r ? -1 : a->r > b->r;
}

static int cmp_i64(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return a < b ? -1 : a > b;
}

static int same_row(const nm_rowmat *W, int64_t a, int64_t b)
{
    int64_t la = W->ptr[a + 1] - W->ptr[a];
    return la == W->ptr[b + 1] - W->ptr[b] && memcmp(W->idx + W->ptr[a], W->idx + W->ptr[b], (size_t)la * sizeof(int64_t)) == 0;
}

/* What the map reads: W, the input's tiles (or NULL) and the inputs' new columns (newcol[j] ≥ 0 with scale sd[j]). */
typedef struct {
    const nm_rowmat *W;
    const nm_tiles *S;
    const int64_t *newcol;
    const double *sd;
    int64_t kin; /* the input's columns: new ones follow them */
} map_in;

/* Output group G's columns (the union of its units' input groups' and new columns), increasing, into cols (NULL:
 * only counted); stamps: sg (input groups) and sc (columns), both holding no value `stamp` yet. */
static int64_t union_cols(const map_in *in, const nm_tiles *O, int64_t G, int64_t stamp, int64_t *sg, int64_t *sc, int64_t *cols)
{
    const nm_rowmat *W = in->W;
    int64_t nc = 0;
    for (int64_t a = O->rptr[G]; a < O->rptr[G + 1]; a++) {
        int64_t r = O->rows[a];
        if (a > O->rptr[G] && same_row(W, r, O->rows[a - 1])) continue;
        for (int64_t e = W->ptr[r]; e < W->ptr[r + 1]; e++) {
            int64_t j = W->idx[e], g = in->S ? in->S->grp[j] : -1;
            if (g >= 0 && sg[g] != stamp) {
                sg[g] = stamp;
                for (int64_t c = in->S->cptr[g]; c < in->S->cptr[g + 1]; c++) {
                    int64_t col = in->S->cols[c];
                    if (sc[col] != stamp) sc[col] = stamp, cols ? cols[nc] = col : 0, nc++;
                }
            }
            int64_t col = in->newcol ? in->newcol[j] : -1;
            if (col >= 0 && sc[in->kin + col] != stamp) sc[in->kin + col] = stamp, cols ? cols[nc] = in->kin + col : 0, nc++;
        }
    }
    if (cols) qsort(cols, (size_t)nc, sizeof *cols, cmp_i64);
    return nc;
}

/* Group G's block: its units' rows of W S and of the new columns. pos: a column's place in the group; V, X: room for
 * a GEMM's W rows and gathered input. */
static void fill_group(const map_in *in, nm_tiles *O, int64_t G, int64_t *pos, double *V, double *X)
{
    const nm_rowmat *W = in->W;
    const nm_tiles *S = in->S;
    int64_t nc = O->cptr[G + 1] - O->cptr[G], ns = 0;
    const int64_t *cols = O->cols + O->cptr[G];
    for (int64_t c = 0; c < nc; c++) pos[cols[c]] = c, ns += cols[c] < in->kin;
    double *blk = O->val + O->vptr[G];
    for (int64_t a = O->rptr[G]; a < O->rptr[G + 1];) {
        int64_t b = a + 1, r0 = O->rows[a], L = W->ptr[r0 + 1] - W->ptr[r0];
        const int64_t *P = W->idx + W->ptr[r0];
        while (b < O->rptr[G + 1] && same_row(W, r0, O->rows[b])) b++;
        int gemm = S && b - a >= GEMM_MIN && ns > 0;
        if (gemm) { /* block rows a..b (S part) = V (units × L) X (L × ns) */
            memset(X, 0, (size_t)(L * ns) * sizeof(double));
            for (int64_t e = 0; e < L; e++) {
                const int64_t *c;
                int64_t m;
                const double *x = row_of(S, P[e], &c, &m);
                for (int64_t i = 0; i < m; i++) X[e * ns + pos[c[i]]] = x[i];
            }
            for (int64_t u = a; u < b; u++)
                for (int64_t e = 0; e < L; e++) V[(u - a) * L + e] = nm_rowmat_val(W, W->ptr[O->rows[u]] + e);
            nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, b - a, ns, L, 1.0, V, L, X, ns, 0.0, blk + (a - O->rptr[G]) * nc, nc);
        }
        for (int64_t u = a; u < b; u++) {
            int64_t r = O->rows[u];
            double *y = blk + (u - O->rptr[G]) * nc;
            for (int64_t e = W->ptr[r]; e < W->ptr[r + 1]; e++) {
                int64_t j = W->idx[e];
                double w = nm_rowmat_val(W, e);
                if (in->newcol && in->newcol[j] >= 0) y[pos[in->kin + in->newcol[j]]] += w * in->sd[j];
                if (gemm || !S) continue;
                const int64_t *c;
                int64_t m;
                const double *x = row_of(S, j, &c, &m);
                for (int64_t i = 0; i < m; i++) y[pos[c[i]]] += w * x[i];
            }
        }
        a = b;
    }
}

nm_status nm_tiles_map(nm_ctx *ctx, const nm_rowmat *W, const nm_tiles *S, const double *d2, nm_tiles **out)
{
    *out = NULL;
    int64_t n = W->rows, m = W->cols, kin = S ? S->kc : 0, knew = 0, nth = nm_threads();
    int64_t sng = S ? S->ng : 0;
    int64_t *newcol = d2 ? nm_alloc(ctx, (size_t)(m ? m : 1), sizeof(int64_t)) : NULL;
    double *sd = d2 ? nm_alloc(ctx, (size_t)(m ? m : 1), sizeof(double)) : NULL;
    unit_key *key = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(unit_key));
    int64_t *sg = nm_alloc(ctx, (size_t)nth, (size_t)(sng + 1) * sizeof(int64_t));
    nm_status st = key && sg && (!d2 || (newcol && sd)) ? NM_OK : NM_ERR_NOMEM;
    for (int64_t j = 0; st == NM_OK && d2 && j < m; j++) newcol[j] = d2[j] > 0 ? knew++ : -1, sd[j] = sqrt(fmax(d2[j], 0));
    int64_t kout = kin + knew, nr = 0;
    /* each output unit's key: the set of input groups it reads, and (with new columns) its pattern */
    if (st == NM_OK) {
        for (int64_t i = 0; i < nth * (sng + 1); i++) sg[i] = -1;
        #pragma omp parallel for schedule(static) num_threads((int)nth) if (W->ptr[n] > 65536)
        for (int64_t r = 0; r < n; r++) {
            int64_t *mark = sg + omp_get_thread_num() * (sng + 1);
            uint64_t set = 0, pat = 0x51ed27u;
            int any = 0;
            for (int64_t e = W->ptr[r]; e < W->ptr[r + 1]; e++) {
                int64_t j = W->idx[e], g = S ? S->grp[j] : -1;
                if (g >= 0 && mark[g] != r) mark[g] = r, set += mix((uint64_t)g), any = 1;
                if (newcol && newcol[j] >= 0) set = mix(set ^ (uint64_t)j), any = 1;
                pat = mix(pat ^ (uint64_t)j);
            }
            key[r] = (unit_key){any ? mix(set) : 0, pat, any ? r : -1};
        }
        int64_t w = 0;
        for (int64_t r = 0; r < n; r++)
            if (key[r].r >= 0) key[w++] = key[r];
        nr = w;
        qsort(key, (size_t)nr, sizeof *key, cmp_unit);
    }
    int64_t ng = 0;
    for (int64_t a = 0; st == NM_OK && a < nr; a++) ng += a == 0 || key[a].key != key[a - 1].key;
    nm_tiles *O = st == NM_OK ? tiles_new(ctx, n, kout, ng, nr) : NULL;
    if (st == NM_OK && !O) st = NM_ERR_NOMEM;
    for (int64_t a = 0, G = -1; st == NM_OK && a < nr; a++) {
        if (a == 0 || key[a].key != key[a - 1].key) O->rptr[++G] = a;
        O->rows[a] = key[a].r, O->grp[key[a].r] = G, O->at[key[a].r] = a - O->rptr[G];
    }
    if (O) O->rptr[ng] = nr;
    nm_free(ctx, key);
    /* the groups' columns: counted, then listed */
    int64_t *sc = st == NM_OK ? nm_alloc(ctx, (size_t)nth, (size_t)(kout + 1) * sizeof(int64_t)) : NULL;
    if (st == NM_OK && !sc) st = NM_ERR_NOMEM;
    map_in in = {W, S, newcol, sd, kin};
    if (st == NM_OK) {
        for (int64_t i = 0; i < nth * (sng + 1); i++) sg[i] = -1;
        for (int64_t i = 0; i < nth * (kout + 1); i++) sc[i] = -1;
        #pragma omp parallel for schedule(dynamic, 4) num_threads((int)nth)
        for (int64_t G = 0; G < ng; G++) {
            int th = omp_get_thread_num();
            O->cptr[G + 1] = union_cols(&in, O, G, G, sg + th * (sng + 1), sc + th * (kout + 1), NULL);
        }
        for (int64_t G = 0; G < ng; G++) {
            int64_t units = O->rptr[G + 1] - O->rptr[G], nc = O->cptr[G + 1];
            O->cptr[G + 1] += O->cptr[G], O->vptr[G + 1] = O->vptr[G] + units * nc;
        }
        O->cols = nm_alloc(ctx, (size_t)(O->cptr[ng] ? O->cptr[ng] : 1), sizeof(int64_t));
        O->val = nm_alloc_zero(ctx, (size_t)(O->vptr[ng] ? O->vptr[ng] : 1), sizeof(double));
        if (!O->cols || !O->val) st = NM_ERR_NOMEM;
    }
    if (st == NM_OK) {
        #pragma omp parallel for schedule(dynamic, 4) num_threads((int)nth)
        for (int64_t G = 0; G < ng; G++) {
            int th = omp_get_thread_num();
            union_cols(&in, O, G, ng + G, sg + th * (sng + 1), sc + th * (kout + 1), O->cols + O->cptr[G]);
        }
    }
    /* the GEMMs' room: the largest run of one pattern */
    int64_t needV = 1, needX = 1;
    for (int64_t G = 0; st == NM_OK && G < ng; G++) {
        int64_t ns = 0;
        for (int64_t c = O->cptr[G]; c < O->cptr[G + 1]; c++) ns += O->cols[c] < kin;
        for (int64_t a = O->rptr[G]; a < O->rptr[G + 1];) {
            int64_t b = a + 1, r0 = O->rows[a], L = W->ptr[r0 + 1] - W->ptr[r0];
            while (b < O->rptr[G + 1] && same_row(W, r0, O->rows[b])) b++;
            if (b - a >= GEMM_MIN) needV = needV > (b - a) * L ? needV : (b - a) * L, needX = needX > L * ns ? needX : L * ns;
            a = b;
        }
    }
    double *V = st == NM_OK ? nm_alloc(ctx, (size_t)nth, (size_t)(needV + needX) * sizeof(double)) : NULL;
    if (st == NM_OK && !V) st = NM_ERR_NOMEM;
    if (st == NM_OK) {
        nm_blas_serial_begin();
        #pragma omp parallel for schedule(dynamic, 1) num_threads((int)nth)
        for (int64_t G = 0; G < ng; G++) {
            int th = omp_get_thread_num();
            double *v = V + th * (needV + needX);
            fill_group(&in, O, G, sc + th * (kout + 1), v, v + needV);
        }
        nm_blas_serial_end();
    }
    nm_free(ctx, V), nm_free(ctx, sc), nm_free(ctx, sg), nm_free(ctx, newcol), nm_free(ctx, sd);
    if (st == NM_OK) *out = O;
    else nm_tiles_free(ctx, O);
    return st;
}

/* ---------------------------------------------------------------- Y += W S, dense */

nm_status nm_tiles_times(nm_ctx *ctx, const nm_rowmat *W, const nm_tiles *S, double *Y, int64_t ldy)
{
    int64_t n = W->rows, m = W->cols, nnz = W->ptr[n];
    /* Wᵀ by rows: for each input unit, the output units that read it */
    int64_t *cp = nm_alloc_zero(ctx, (size_t)(m + 1), sizeof(int64_t)), *ci = nm_alloc(ctx, (size_t)(nnz ? nnz : 1), sizeof(int64_t));
    double *cv = nm_alloc(ctx, (size_t)(nnz ? nnz : 1), sizeof(double));
    int64_t *fill = nm_alloc(ctx, (size_t)(m ? m : 1), sizeof(int64_t)), *mark = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(int64_t));
    int64_t *outs = nm_alloc(ctx, (size_t)(n ? n : 1), sizeof(int64_t));
    if (!cp || !ci || !cv || !fill || !mark || !outs) {
        nm_free(ctx, cp), nm_free(ctx, ci), nm_free(ctx, cv), nm_free(ctx, fill), nm_free(ctx, mark), nm_free(ctx, outs);
        return NM_ERR_NOMEM;
    }
    for (int64_t e = 0; e < nnz; e++) cp[W->idx[e] + 1]++;
    for (int64_t j = 0; j < m; j++) cp[j + 1] += cp[j];
    memcpy(fill, cp, (size_t)m * sizeof(int64_t));
    for (int64_t r = 0; r < n; r++)
        for (int64_t e = W->ptr[r]; e < W->ptr[r + 1]; e++) {
            int64_t at = fill[W->idx[e]]++;
            ci[at] = r, cv[at] = nm_rowmat_val(W, e);
        }
    /* room: the largest group's output units × (its units + its columns) */
    int64_t need = 1;
    for (int64_t i = 0; i < n; i++) mark[i] = -1;
    for (int64_t g = 0; g < S->ng; g++) {
        int64_t no = 0;
        for (int64_t a = S->rptr[g]; a < S->rptr[g + 1]; a++)
            for (int64_t e = cp[S->rows[a]]; e < cp[S->rows[a] + 1]; e++)
                if (mark[ci[e]] != g) mark[ci[e]] = g, no++;
        int64_t q = no * (S->rptr[g + 1] - S->rptr[g] + S->cptr[g + 1] - S->cptr[g]);
        need = q > need ? q : need;
    }
    double *buf = nm_alloc(ctx, (size_t)need, sizeof(double));
    nm_status st = buf ? NM_OK : NM_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) mark[i] = -1;
    for (int64_t g = 0; st == NM_OK && g < S->ng; g++) {
        int64_t nu = S->rptr[g + 1] - S->rptr[g], nc = S->cptr[g + 1] - S->cptr[g], no = 0;
        for (int64_t a = 0; a < nu; a++)
            for (int64_t e = cp[S->rows[S->rptr[g] + a]]; e < cp[S->rows[S->rptr[g] + a] + 1]; e++)
                if (mark[ci[e]] < 0) mark[ci[e]] = no, outs[no++] = ci[e];
        if (no == 0) continue;
        double *Wg = buf, *Z = buf + no * nu; /* W's columns of the group (no × nu), and Wg B (no × nc) */
        memset(Wg, 0, (size_t)(no * nu) * sizeof(double));
        for (int64_t a = 0; a < nu; a++)
            for (int64_t e = cp[S->rows[S->rptr[g] + a]]; e < cp[S->rows[S->rptr[g] + a] + 1]; e++) Wg[mark[ci[e]] * nu + a] = cv[e];
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, no, nc, nu, 1.0, Wg, nu, S->val + S->vptr[g], nc, 0.0, Z, nc);
        const int64_t *cols = S->cols + S->cptr[g];
        #pragma omp parallel for schedule(static) if (no * nc > 65536)
        for (int64_t i = 0; i < no; i++)
            for (int64_t c = 0; c < nc; c++) Y[outs[i] * ldy + cols[c]] += Z[i * nc + c];
        for (int64_t i = 0; i < no; i++) mark[outs[i]] = -1;
    }
    nm_free(ctx, buf), nm_free(ctx, cp), nm_free(ctx, ci), nm_free(ctx, cv), nm_free(ctx, fill), nm_free(ctx, mark), nm_free(ctx, outs);
    return st;
}
