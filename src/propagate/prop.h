/*
 * prop.h — method propagate (DESIGN §1.12): a Gaussian carried through the
 * net node by node. Every varying value's distribution is held as
 *
 *     mean m (n, double),  covariance T Tᵀ + P,
 *
 * T (n × k, row u: unit u's coefficients on the net's noise columns 0..k−1,
 * columns shared by all values, so that two branches keep their
 * correlation) and P a *private* covariance, independent of every column
 * and of every other live value's: none, a diagonal (d2, per-unit
 * variances: the residuals the nonlinear layers append, one per unit,
 * merged since one-hot columns only add to the diagonal) with sparse
 * private columns S beside it (S Sᵀ: the residuals once a conv or pool has
 * spread them, kept in groups of units that share their columns, tiles.c),
 * or dense (R, n × n: exact pair covariances of a small layer). A value read by more
 * than one node has its private part turned into shared columns first, so
 * private parts of values that meet (Add of two branches) never share a
 * source.
 *
 * The rules (src/propagate/): linear ops by their matrix (nm_wmat: groups
 * of rows that read the same inputs, from the op's hook or read off the
 * float32 jvp of unit tangents, exact: every entry is one product), in
 * double (linear.c); ReLU's kin, smooth elementwise ops and window maxima
 * by their exact or Gauss–Hermite per-unit moments, Stein weights for the
 * columns and the residual variance on the diagonal, or exact pairs when
 * the layer is dense (unit.c, window.c); the walk over the nodes
 * (driver.c).
 */
#ifndef NM_PROP_H
#define NM_PROP_H

#include "../linearize.h"

/* A private factor held sparse (tiles.c): n units × kc columns, the units in groups, each group's units non-zero only
 * on the group's columns (increasing), its values one dense block (units × columns, row-major). */
typedef struct {
    int64_t n, kc, ng;
    int64_t *grp, *at;    /* n: a unit's group (−1: none, the unit's row is zero) and its row in the group's block */
    int64_t *rptr, *rows; /* group g's units: rows[rptr[g] .. rptr[g+1]) */
    int64_t *cptr, *cols; /* its columns: cols[cptr[g] .. cptr[g+1]) */
    int64_t *vptr;        /* its block at val + vptr[g] */
    double *val;
} nm_tiles;

typedef struct {
    int64_t n, k;
    double *m;  /* n */
    double *T;  /* n × k, or NULL when k = 0 */
    double *d2; /* n, or NULL */
    double *R;  /* n × n, or NULL (never with d2 or S) */
    nm_tiles *S; /* NULL, or private columns held sparse: the private part is S Sᵀ + diag(d2) */
} nm_gauss;

/* qsort's comparison of int64_t. */
static inline int nm_cmp_i64(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return a < b ? -1 : a > b;
}

void nm_tiles_free(nm_ctx *ctx, nm_tiles *S);
nm_status nm_tiles_copy(nm_ctx *ctx, const nm_tiles *S, nm_tiles **out);
/* Row u of S times row v. */
double nm_tiles_dot(const nm_tiles *S, int64_t u, int64_t v);
/* v[u] += ‖row u‖² for every unit. */
void nm_tiles_norms(const nm_tiles *S, double *v);
/* Row u scaled by g[u]. */
void nm_tiles_scale(nm_tiles *S, const double *g);
/* T[u, off + c] = S[u, c] (T n × ldt). */
void nm_tiles_put(const nm_tiles *S, double *T, int64_t ldt, int64_t off);
/* *out = W [S | diag(√d2)]: W S, then one new column per input with d2 > 0 (S or d2 may be NULL). */
nm_status nm_tiles_map(nm_ctx *ctx, const nm_wmat *W, const nm_tiles *S, const double *d2, nm_tiles **out);
/* Yt (S->kc × ldy) += (W S)ᵀ, dense (tiles_dense.c). */
nm_status nm_tiles_times_t(nm_ctx *ctx, const nm_wmat *W, const nm_tiles *S, double *Yt, int64_t ldy);

#define NM_PROP_CACHE 4 /* big factor buffers kept for reuse: no page faults and unmapping between layers */

/* What the walk knows: its options, the columns made so far, and freed factor buffers. */
typedef struct {
    nm_ctx *ctx;
    nm_net *net;
    int64_t dense_max; /* layers of at most this many units keep dense pair covariances */
    int64_t cols;      /* noise columns made so far */
    int64_t rank;      /* > 0: a value's columns are compressed to this many when more accrue (rank.c) */
    double moved;      /* the largest share of column variance a compression moved to a private diagonal */
    int sparse;        /* residuals that a linear op spreads kept as sparse private columns (tiles.c) */
    struct {
        double *p;
        size_t n; /* doubles it holds */
    } cache[NM_PROP_CACHE];
} nm_prop;

/* count zeroed doubles, written (not calloc's zero pages, which the kernels' first read-modify-write of each would
 * fault on again, flushing every CPU's TLB); NULL (and a message) when they cannot be had. */
double *nm_prop_zeros(nm_ctx *ctx, int64_t count);
/* count zeroed doubles, from the cache when a block there fits; NULL (and a message) when none can be had. */
double *nm_prop_take(nm_prop *pr, size_t count);
/* Hands a buffer back: big ones to the cache, the rest (and the cache's smallest when full) freed. */
void nm_prop_give(nm_prop *pr, double *p);
/* Frees the cache. */
void nm_prop_drain(nm_prop *pr);

/* Elements of one sample of value v (its batch axis left out). */
static inline int64_t nm_units(const nm_value *v)
{
    return v->batched && v->shape.d[0] ? nm_shape_numel(&v->shape) / v->shape.d[0] : nm_shape_numel(&v->shape);
}

void nm_gauss_free(nm_prop *pr, nm_gauss *g);
/* A state of n units with k zeroed columns, no private part. */
nm_status nm_gauss_new(nm_prop *pr, int64_t n, int64_t k, nm_gauss *g);
/* The variance of every unit (n): ‖T_u‖² + P_uu. */
void nm_gauss_var(const nm_gauss *g, double *v);
/* The private part turned into new shared columns (S: its columns, d2: one-hot, R: its eigenvectors scaled). */
nm_status nm_gauss_share(nm_prop *pr, nm_gauss *g);
/* Only S turned into shared columns. */
nm_status nm_gauss_share_tiles(nm_prop *pr, nm_gauss *g);
/* T Tᵀ + P (n × n, both triangles) into C. */
nm_status nm_gauss_cov(nm_prop *pr, const nm_gauss *g, double *C);
/* Y (rows × k) = X (rows × k) with each row u scaled by s[u]. */
void nm_rows_scale(int64_t rows, int64_t k, const double *s, double *X);

/* g's columns compressed to K ≥ 1 by randomized SVD (rank.c), test matrix from `stream`; each unit's lost variance added to
 * its private part; *moved: the share of the columns' variance so moved. Only for a value no other live value shares
 * columns with. */
nm_status nm_gauss_compress(nm_prop *pr, nm_gauss *g, int64_t K, uint64_t stream, double *moved);

/* Linear op (linear.c): node k's output state from its varying inputs' states in[i] (NULL for
 * constant inputs). */
nm_status nm_prop_linear(nm_prop *pr, int k, nm_gauss *const *in, nm_gauss *out);
/* Elementwise nonlinearity (unit.c): ReLU's kin (act) exactly, smooth ops (act NULL) by Gauss–Hermite; dense pairs for
 * a hinge layer when dense (n ≤ dense_max, or the last nonlinear node). */
nm_status nm_prop_unit(nm_prop *pr, int k, const nm_gauss *in, const nm_act *act, int dense, nm_gauss *out);
/* The max of each window (window.c), Clark's tree with Stein weights. */
nm_status nm_prop_window(nm_prop *pr, int k, nm_gauss *in, nm_gauss *out);

/* The logits' moments by propagation (driver.c): the nm_method_def.net_moments of method propagate. */
nm_status nm_propagate_moments(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, const nm_net_moments_options *opt,
                               nm_moments *out);
/* The same, with each node's wall time in seconds into node_seconds[0 .. logits node] (NULL: not measured;
 * bench/moments prints them); sparse 0 keeps every residual in shared dense columns, as before tiles.c (the tests
 * compare the two). */
nm_status nm_propagate_moments_with(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                                    const nm_net_moments_options *opt, nm_moments *out, double *node_seconds, int sparse);

#endif
