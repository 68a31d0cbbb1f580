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

/* A group of W's place in the sort: the key of the output group it joins, itself. */
typedef struct {
    uint64_t key;
    int64_t g;
} group_key;

static int cmp_group(const void *pa, const void *pb)
{
    const group_key *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->g < b->g ? -1 : a->g > b->g;
}

/* What the map reads: W, the input's tiles (or NULL) and the inputs' new columns (newcol[j] ≥ 0 with scale sd[j]);
 * output group G holds W's groups wg[run0[G] .. run0[G+1]), the i-th of them at places rs[i] .. rs[i+1] of O->rows. */
typedef struct {
    const nm_wmat *W;
    const nm_tiles *S;
    const int64_t *newcol;
    const double *sd;
    int64_t kin; /* the input's columns: new ones follow them */
    const int64_t *wg, *rs, *run0;
} map_in;

/* Output group G's columns (the union of its units' input groups' and new columns), increasing, into cols (NULL:
 * only counted); stamps: sg (input groups) and sc (columns), both holding no value `stamp` yet. */
static int64_t union_cols(const map_in *in, int64_t G, int64_t stamp, int64_t *sg, int64_t *sc, int64_t *cols)
{
    const nm_wmat *W = in->W;
    int64_t nc = 0;
    for (int64_t i = in->run0[G]; i < in->run0[G + 1]; i++)
        for (int64_t e = W->ip[in->wg[i]]; e < W->ip[in->wg[i] + 1]; e++) {
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
    if (cols) qsort(cols, (size_t)nc, sizeof *cols, nm_cmp_i64);
    return nc;
}

/* A pattern's entry and the input group its unit is in. */
typedef struct {
    int64_t g, e;
} entry;

static int cmp_entry(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    return a->g != b->g ? (a->g < b->g ? -1 : 1) : (a->e < b->e ? -1 : a->e > b->e);
}

/* Rows y (nr, stride ldy) += V (nr × L) times the input's S rows of pattern P (L), by GEMMs: one over all the S
 * columns (ns) of the group where the gathered rows fill them densely, else one per input group (a conv's inputs
 * at one position share their columns). pos: a column's place in y; X, Z, E: room. */
static void times_pattern(const nm_tiles *S, const int64_t *P, int64_t L, int64_t nr, const double *V, int64_t ns, const int64_t *pos,
                          double *y, int64_t ldy, double *X, double *Z, entry *E)
{
    int64_t q = 0, filled = 0;
    for (int64_t e = 0; e < L; e++)
        if (S->grp[P[e]] >= 0) E[q++] = (entry){S->grp[P[e]], e}, filled += S->cptr[S->grp[P[e]] + 1] - S->cptr[S->grp[P[e]]];
    if (2 * filled >= L * ns) { /* dense enough: X (L × ns) = the rows laid out on the group's columns */
        memset(X, 0, (size_t)(L * ns) * sizeof(double));
        for (int64_t e = 0; e < L; e++) {
            const int64_t *c;
            int64_t m;
            const double *x = row_of(S, P[e], &c, &m);
            for (int64_t i = 0; i < m; i++) X[e * ns + pos[c[i]]] = x[i];
        }
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, nr, ns, L, 1.0, V, L, X, ns, 1.0, y, ldy);
        return;
    }
    qsort(E, (size_t)q, sizeof *E, cmp_entry);
    for (int64_t a = 0; a < q;) {
        int64_t b = a + 1, g = E[a].g, nc = S->cptr[g + 1] - S->cptr[g];
        while (b < q && E[b].g == g) b++;
        double *Vg = X, *Xg = X + nr * (b - a); /* V's columns of these entries (nr × (b − a)), their rows ((b − a) × nc) */
        for (int64_t u = 0; u < nr; u++)
            for (int64_t t = a; t < b; t++) Vg[u * (b - a) + t - a] = V[u * L + E[t].e];
        for (int64_t t = a; t < b; t++)
            memcpy(Xg + (t - a) * nc, S->val + S->vptr[g] + S->at[P[E[t].e]] * nc, (size_t)nc * sizeof(double));
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, nr, nc, b - a, 1.0, Vg, b - a, Xg, nc, 0.0, Z, nc);
        const int64_t *cols = S->cols + S->cptr[g];
        for (int64_t u = 0; u < nr; u++)
            for (int64_t c = 0; c < nc; c++) y[u * ldy + pos[cols[c]]] += Z[u * nc + c];
        a = b;
    }
}

/* The doubles times_pattern needs for nr units over L entries and ns columns: X (the first L ns + nr L), then Z. */
static int64_t room_x(int64_t nr, int64_t L, int64_t ns)
{
    return L * ns + nr * L + nr * ns;
}

/* Group G's block: its units' rows of W S and of the new columns. pos: a column's place in the group; V, X: room for
 * a GEMM's W rows and gathered input, E for the entries. */
static void fill_group(const map_in *in, nm_tiles *O, int64_t G, int64_t *pos, double *V, double *X, entry *E)
{
    const nm_wmat *W = in->W;
    const nm_tiles *S = in->S;
    int64_t nc = O->cptr[G + 1] - O->cptr[G], ns = 0;
    const int64_t *cols = O->cols + O->cptr[G];
    for (int64_t c = 0; c < nc; c++) pos[cols[c]] = c, ns += cols[c] < in->kin;
    double *blk = O->val + O->vptr[G];
    for (int64_t i = in->run0[G]; i < in->run0[G + 1]; i++) {
        int64_t g = in->wg[i], a = in->rs[i], nu = in->rs[i + 1] - a, L = W->ip[g + 1] - W->ip[g];
        const int64_t *P = W->idx + W->ip[g];
        double *y0 = blk + (a - O->rptr[G]) * nc;
        int gemm = S && nu >= GEMM_MIN && ns > 0 && L > 0;
        if (gemm) { /* the S part of these rows = V (units × L) times the pattern's S rows */
            for (int64_t u = 0; u < nu; u++)
                for (int64_t e = 0; e < L; e++) V[u * L + e] = nm_wmat_at(W, g, u, e);
            times_pattern(S, P, L, nu, V, ns, pos, y0, nc, X, X + L * ns + nu * L, E);
        }
        for (int64_t e = 0; e < L; e++) {
            int64_t j = P[e], nw = in->newcol ? in->newcol[j] : -1;
            const int64_t *c = NULL;
            int64_t m = 0;
            const double *x = gemm || !S ? NULL : row_of(S, j, &c, &m);
            if (nw < 0 && !x) continue;
            int64_t at = nw >= 0 ? pos[in->kin + nw] : 0;
            for (int64_t u = 0; u < nu; u++) {
                double w = nm_wmat_at(W, g, u, e), *y = y0 + u * nc;
                if (nw >= 0) y[at] += w * in->sd[j];
                for (int64_t t = 0; t < m; t++) y[pos[c[t]]] += w * x[t];
            }
        }
    }
}

/* Each group of W's key into key[g]: the set of input groups it reads and (with new columns) its pattern; g −1
 * where it reads nothing that maps. Hash keys: a collision only puts two groups of W into one output group. mark:
 * nth × (S's groups + 1), any values. */
static void keys_of(const nm_wmat *W, const nm_tiles *S, const int64_t *newcol, int64_t nth, int64_t *mark, group_key *key)
{
    int64_t sng = S ? S->ng : 0;
    for (int64_t i = 0; i < nth * (sng + 1); i++) mark[i] = -1;
    #pragma omp parallel for schedule(dynamic, 16) num_threads((int)nth) if (W->ip[W->ng] > 65536)
    for (int64_t g = 0; g < W->ng; g++) {
        int64_t *mk = mark + omp_get_thread_num() * (sng + 1);
        uint64_t set = 0, pat = 0;
        int any = 0;
        for (int64_t e = W->ip[g]; e < W->ip[g + 1]; e++) {
            int64_t j = W->idx[e], h = S ? S->grp[j] : -1;
            if (h >= 0 && mk[h] != g) mk[h] = g, set += mix((uint64_t)h), any = 1;
            if (newcol && newcol[j] >= 0) pat = pat * 0x100000001b3u + (uint64_t)j + 1, any = 1;
        }
        key[g] = (group_key){any ? mix(set ^ mix(pat)) : 0, any && W->gp[g + 1] > W->gp[g] ? g : -1};
    }
}

/* The output's groups from the sorted keys (nw of them): the groups of W with one key together, their rows in order
 * (in->wg, rs, run0 filled). */
static void place_groups(const nm_wmat *W, const group_key *key, int64_t nw, nm_tiles *O, int64_t *wg, int64_t *rs, int64_t *run0)
{
    int64_t G = -1, at = 0;
    for (int64_t a = 0; a < nw; a++) {
        if (a == 0 || key[a].key != key[a - 1].key) O->rptr[++G] = at, run0[G] = a;
        int64_t g = key[a].g;
        wg[a] = g, rs[a] = at;
        for (int64_t u = W->gp[g]; u < W->gp[g + 1]; u++, at++) {
            int64_t r = W->row[u];
            O->rows[at] = r, O->grp[r] = G, O->at[r] = at - O->rptr[G];
        }
    }
    O->rptr[O->ng] = at, run0[O->ng] = nw, rs[nw] = at;
}

/* The output groups' columns, counted and then listed, and their blocks zeroed. sg, sc: nth stamps over S's groups + 1
 * and over the output's columns + 1. */
static nm_status list_columns(nm_ctx *ctx, const map_in *in, nm_tiles *O, int64_t nth, int64_t *sg, int64_t *sc)
{
    int64_t ng = O->ng, ls = (in->S ? in->S->ng : 0) + 1, lc = O->kc + 1;
    for (int64_t i = 0; i < nth * ls; i++) sg[i] = -1;
    for (int64_t i = 0; i < nth * lc; i++) sc[i] = -1;
    #pragma omp parallel for schedule(dynamic, 4) num_threads((int)nth)
    for (int64_t G = 0; G < ng; G++) O->cptr[G + 1] = union_cols(in, G, G, sg + omp_get_thread_num() * ls, sc + omp_get_thread_num() * lc, NULL);
    for (int64_t G = 0; G < ng; G++) {
        int64_t units = O->rptr[G + 1] - O->rptr[G], nc = O->cptr[G + 1];
        O->cptr[G + 1] += O->cptr[G], O->vptr[G + 1] = O->vptr[G] + units * nc;
    }
    O->cols = nm_alloc(ctx, (size_t)(O->cptr[ng] ? O->cptr[ng] : 1), sizeof(int64_t));
    O->val = nm_prop_zeros(ctx, O->vptr[ng]);
    if (!O->cols || !O->val) return NM_ERR_NOMEM;
    #pragma omp parallel for schedule(dynamic, 4) num_threads((int)nth)
    for (int64_t G = 0; G < ng; G++)
        union_cols(in, G, ng + G, sg + omp_get_thread_num() * ls, sc + omp_get_thread_num() * lc, O->cols + O->cptr[G]);
    return NM_OK;
}

/* Every output group's block (fill_group), with room for the largest group of W's GEMM. pos: nth × (columns + 1). */
static nm_status fill_groups(nm_ctx *ctx, const map_in *in, nm_tiles *O, int64_t nth, int64_t *pos)
{
    const nm_wmat *W = in->W;
    int64_t needV = 1, needX = 1, needE = 1, lc = O->kc + 1;
    for (int64_t G = 0; G < O->ng; G++) {
        int64_t ns = 0;
        for (int64_t c = O->cptr[G]; c < O->cptr[G + 1]; c++) ns += O->cols[c] < in->kin;
        for (int64_t i = in->run0[G]; i < in->run0[G + 1]; i++) {
            int64_t nu = in->rs[i + 1] - in->rs[i], L = W->ip[in->wg[i] + 1] - W->ip[in->wg[i]];
            if (nu < GEMM_MIN) continue;
            needV = needV > nu * L ? needV : nu * L, needE = needE > L ? needE : L;
            needX = needX > room_x(nu, L, ns) ? needX : room_x(nu, L, ns);
        }
    }
    int64_t need = needV + needX;
    double *V = nm_alloc(ctx, (size_t)nth, (size_t)need * sizeof(double));
    entry *E = nm_alloc(ctx, (size_t)nth, (size_t)needE * sizeof(entry));
    if (V && E) {
        nm_blas_serial_begin();
        #pragma omp parallel for schedule(dynamic, 1) num_threads((int)nth)
        for (int64_t G = 0; G < O->ng; G++) {
            int th = omp_get_thread_num();
            fill_group(in, O, G, pos + th * lc, V + th * need, V + th * need + needV, E + th * needE);
        }
        nm_blas_serial_end();
    }
    nm_status st = V && E ? NM_OK : NM_ERR_NOMEM;
    nm_free(ctx, V), nm_free(ctx, E);
    return st;
}

nm_status nm_tiles_map(nm_ctx *ctx, const nm_wmat *W, const nm_tiles *S, const double *d2, nm_tiles **out)
{
    *out = NULL;
    int64_t n = W->rows, m = W->cols, kin = S ? S->kc : 0, knew = 0, nth = nm_threads(), wng = W->ng, sng = S ? S->ng : 0;
    int64_t *newcol = d2 ? nm_alloc(ctx, (size_t)(m ? m : 1), sizeof(int64_t)) : NULL;
    double *sd = d2 ? nm_alloc(ctx, (size_t)(m ? m : 1), sizeof(double)) : NULL;
    group_key *key = nm_alloc(ctx, (size_t)(wng ? wng : 1), sizeof(group_key));
    int64_t *sg = nm_alloc(ctx, (size_t)nth, (size_t)(sng + 1) * sizeof(int64_t));
    nm_status st = key && sg && (!d2 || (newcol && sd)) ? NM_OK : NM_ERR_NOMEM;
    for (int64_t j = 0; st == NM_OK && d2 && j < m; j++) newcol[j] = d2[j] > 0 ? knew++ : -1, sd[j] = sqrt(fmax(d2[j], 0));
    int64_t nw = 0, nr = 0, ng = 0;
    if (st == NM_OK) {
        keys_of(W, S, newcol, nth, sg, key);
        for (int64_t g = 0; g < wng; g++)
            if (key[g].g >= 0) key[nw++] = key[g], nr += W->gp[g + 1] - W->gp[g];
        qsort(key, (size_t)nw, sizeof *key, cmp_group);
        for (int64_t a = 0; a < nw; a++) ng += a == 0 || key[a].key != key[a - 1].key;
    }
    nm_tiles *O = st == NM_OK ? tiles_new(ctx, n, kin + knew, ng, nr) : NULL;
    int64_t *wg = nm_alloc(ctx, (size_t)(nw ? nw : 1), sizeof(int64_t)), *rs = nm_alloc(ctx, (size_t)(nw + 1), sizeof(int64_t));
    int64_t *run0 = nm_alloc(ctx, (size_t)(ng + 1), sizeof(int64_t)), *sc = nm_alloc(ctx, (size_t)nth, (size_t)(kin + knew + 1) * sizeof(int64_t));
    if (st == NM_OK && (!O || !wg || !rs || !run0 || !sc)) st = NM_ERR_NOMEM;
    map_in in = {W, S, newcol, sd, kin, wg, rs, run0};
    if (st == NM_OK) place_groups(W, key, nw, O, wg, rs, run0);
    if (st == NM_OK) st = list_columns(ctx, &in, O, nth, sg, sc);
    if (st == NM_OK) st = fill_groups(ctx, &in, O, nth, sc);
    nm_free(ctx, key), nm_free(ctx, wg), nm_free(ctx, rs), nm_free(ctx, run0);
    nm_free(ctx, sc), nm_free(ctx, sg), nm_free(ctx, newcol), nm_free(ctx, sd);
    if (st == NM_OK) *out = O;
    else nm_tiles_free(ctx, O);
    return st;
}
