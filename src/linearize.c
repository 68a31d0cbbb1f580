/*
 * linearize.c — the two-stage linearization of DESIGN §1.6 and the network
 * moments built on it. The net is split at its l-th ReLU: R_bot (nodes
 * before it) is linearized at x₀, A = ∂R_bot/∂x and c1 = R_bot(x₀) − A x₀;
 * R_top (nodes after it, up to the logits) at y₀, B = ∂R_top/∂y and
 * c2 = R_top(y₀) − B y₀. A and B are formed by jvp columns or vjp rows,
 * whichever takes fewer passes, in chunks of tangents. When A exceeds the
 * memory budget it is never formed: S = A Σ Aᵀ is accumulated from jvp
 * passes of the columns of Σ's factor, chunk by chunk, and m = A μ + c1 is
 * one more jvp. The moments then follow from (m, S, B, c2) exactly as for
 * an Affine–ReLU–Affine network (src/ara.c).
 */
#include "net.h"

#include <math.h>
#include <string.h>

#define NM_LIN_CHUNK 256              /* tangents per jvp/vjp pass */
#define NM_LIN_BUDGET ((size_t)2 << 30) /* default bytes for A */

nm_net_moments_options nm_net_moments_options_default(void)
{
    nm_net_moments_options o;
    memset(&o, 0, sizeof o);
    o.mem_budget = NM_LIN_BUDGET;
    o.method = NM_METHOD_EXACT;
    o.precision = NM_PREC_DOUBLE;
    return o;
}

/* What both stages share: split and logits nodes, sizes, x₀ and R_bot(x₀),
 * and the top part's B and c2 (always matrices: d×p). */
typedef struct {
    int k, last;
    int64_t n, p, d;
    nm_shape in_shape, mid_shape; /* batch 1 */
    float *x0, *r0;               /* n, p */
    double *B, *c2;               /* d×p, d */
} lin;

static void lin_free(nm_ctx *ctx, lin *L)
{
    nm_free(ctx, L->x0);
    nm_free(ctx, L->r0);
    nm_free(ctx, L->B);
    nm_free(ctx, L->c2);
    memset(L, 0, sizeof *L);
}

/* Copies a (F32/F64) of exactly n finite elements into a new float buffer. */
static nm_status to_float(nm_ctx *ctx, const nm_array *a, int64_t n, const char *what, float **out)
{
    *out = NULL;
    if (a && a->data && nm_array_numel(a) != n)
        return nm_fail(ctx, NM_ERR_SHAPE, "%s has %lld elements, the model expects %lld", what, (long long)nm_array_numel(a),
                       (long long)n);
    return nm_array_to_f32(ctx, a, what, out);
}

/* Rows (by vjp) or columns (by jvp) of the Jacobian of nodes first..last at
 * the recorded primal (batch 1), written as the (rows_out × cols_out)
 * matrix J (float, row-major): J is out_dim × in_dim. */
static nm_status jacobian(nm_ctx *ctx, nm_net *net, int first, int last, int64_t in_dim, int64_t out_dim, float *J)
{
    int by_rows = out_dim <= in_dim;
    int64_t count = by_rows ? out_dim : in_dim, width = by_rows ? out_dim : in_dim;
    float *E = nm_alloc_zero(ctx, (size_t)(NM_LIN_CHUNK * width), sizeof(float));
    if (!E) return NM_ERR_NOMEM;
    nm_status st = NM_OK;
    for (int64_t c0 = 0; st == NM_OK && c0 < count; c0 += NM_LIN_CHUNK) {
        int64_t c = count - c0 < NM_LIN_CHUNK ? count - c0 : NM_LIN_CHUNK;
        memset(E, 0, (size_t)(c * width) * sizeof(float));
        for (int64_t i = 0; i < c; i++) E[i * width + c0 + i] = 1.0f;
        if (by_rows) { /* cotangent e_i → row i of J (in_dim) */
            if ((st = nm_net_run_vjp(ctx, net, first, last, c, E, 0)) != NM_OK) break;
            const float *g = net->v[nm_net_range_input(net, first)].g;
            memcpy(J + c0 * in_dim, g, (size_t)(c * in_dim) * sizeof(float));
        } else { /* tangent e_j → column j of J (out_dim) */
            if ((st = nm_net_run_jvp(ctx, net, first, last, c, E)) != NM_OK) break;
            const float *g = net->v[net->node[last].out].g;
            for (int64_t j = 0; j < c; j++)
                for (int64_t i = 0; i < out_dim; i++) J[i * in_dim + c0 + j] = g[j * out_dim + i];
        }
    }
    nm_free(ctx, E);
    return st;
}

/* Many tangents (or samples) at one primal need every node up to `last` to
 * keep samples apart along the first axis. */
static nm_status require_batchable(nm_ctx *ctx, const nm_net *net, int last, const char *what)
{
    for (int i = 0; i <= last; i++)
        if (!net->v[net->node[i].out].batched)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' mixes samples along the first axis; %s a batchable net",
                           net->node[i].name, what);
    return NM_OK;
}

/* The split and its sizes, x₀ and R_bot(x₀): what every use of the
 * linearization point shares. */
static nm_status lin_point(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *o, lin *L)
{
    memset(L, 0, sizeof *L);
    int nr = nm_net_relu_count(net);
    if (nr == 0) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "the model has no ReLU to split at");
    if (o->split_relu < 0 || o->split_relu > nr)
        return nm_fail(ctx, NM_ERR_ARG, "split ReLU %d is out of range: the model has ReLUs 1..%d", o->split_relu, nr);
    L->k = nm_net_relu_node(net, o->split_relu ? o->split_relu : nr);
    L->last = nm_net_logits_node(net);
    if (L->k > L->last)
        return nm_fail(ctx, NM_ERR_ARG, "ReLU %d comes after the logits", o->split_relu ? o->split_relu : nr);
    if (net->node[L->k].in[0] != nm_net_range_input(net, L->k))
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "ReLU node '%s' does not read the output of the node before it",
                       net->node[L->k].name);
    nm_status st = require_batchable(ctx, net, L->last, "moments need");
    if (st != NM_OK) return st;
    L->in_shape = net->v[net->input].shape;
    L->in_shape.d[0] = 1;
    L->n = nm_shape_numel(&L->in_shape);
    L->mid_shape = net->v[net->node[L->k].out].shape;
    L->mid_shape.d[0] = 1;
    L->p = nm_shape_numel(&L->mid_shape);
    nm_shape out = net->v[net->node[L->last].out].shape;
    out.d[0] = 1;
    L->d = nm_shape_numel(&out);
    st = to_float(ctx, o->x0 ? o->x0 : mu, L->n, o->x0 ? "x0" : "the input mean", &L->x0);
    if (st != NM_OK) return st;
    /* R_bot(x₀) */
    if (!(L->r0 = nm_alloc(ctx, (size_t)L->p, sizeof(float)))) return NM_ERR_NOMEM;
    if (L->k == 0) {
        memcpy(L->r0, L->x0, (size_t)L->p * sizeof(float));
    } else {
        if ((st = nm_net_run(ctx, net, 0, L->k - 1, 1, L->x0)) != NM_OK) return st;
        memcpy(L->r0, net->v[net->node[L->k - 1].out].x, (size_t)L->p * sizeof(float));
    }
    return NM_OK;
}

/* y₀, where the top part is linearized: the given one, or relu(R_bot(x₀)). */
static nm_status top_point(nm_ctx *ctx, const lin *L, const nm_net_moments_options *o, float **y0)
{
    if (o->y0) return to_float(ctx, o->y0, L->p, "y0", y0);
    if (!(*y0 = nm_alloc(ctx, (size_t)L->p, sizeof(float)))) return NM_ERR_NOMEM;
    for (int64_t i = 0; i < L->p; i++) (*y0)[i] = L->r0[i] > 0 ? L->r0[i] : 0.0f;
    return NM_OK;
}

/* The part of the linearization that does not depend on forming A. */
static nm_status lin_prepare(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *o, lin *L)
{
    float *y0;
    nm_status st = lin_point(ctx, net, mu, o, L);
    if (st != NM_OK || (st = top_point(ctx, L, o, &y0)) != NM_OK) return st;
    /* the top part: B (d×p) and c2 */
    L->B = nm_alloc_zero(ctx, (size_t)(L->d * L->p), sizeof(double));
    L->c2 = nm_alloc(ctx, (size_t)L->d, sizeof(double));
    float *Bf = nm_alloc(ctx, (size_t)(L->d * L->p), sizeof(float));
    if (!L->B || !L->c2 || !Bf) st = NM_ERR_NOMEM;
    if (st == NM_OK && L->k == L->last) { /* the logits are the split ReLU's output: B = I, c2 = 0 */
        for (int64_t i = 0; i < L->p; i++) L->B[i * L->p + i] = 1.0;
        memset(L->c2, 0, (size_t)L->d * sizeof(double));
    } else if (st == NM_OK && (st = nm_net_run(ctx, net, L->k + 1, L->last, 1, y0)) == NM_OK) {
        const float *t0 = net->v[net->node[L->last].out].x;
        for (int64_t i = 0; i < L->d; i++) L->c2[i] = t0[i];
        if ((st = jacobian(ctx, net, L->k + 1, L->last, L->p, L->d, Bf)) == NM_OK)
            for (int64_t i = 0; i < L->d; i++)
                for (int64_t j = 0; j < L->p; j++) {
                    L->B[i * L->p + j] = Bf[i * L->p + j];
                    L->c2[i] -= (double)Bf[i * L->p + j] * y0[j];
                }
    }
    nm_free(ctx, Bf);
    nm_free(ctx, y0);
    return st;
}

/* A (p×n, float) and c1 = R_bot(x₀) − A x₀ (double) as matrices. */
static nm_status form_A(nm_ctx *ctx, nm_net *net, const lin *L, size_t budget, float **A, double **c1)
{
    *A = NULL;
    *c1 = NULL;
    if ((double)L->p * (double)L->n * sizeof(double) > (double)budget)
        return nm_fail(ctx, NM_ERR_NOMEM, "A (%lld x %lld) needs %.2f GiB as a matrix, over the %.2f GiB budget", (long long)L->p,
                       (long long)L->n, (double)L->p * (double)L->n * 8 / (1 << 30), (double)budget / (1 << 30));
    float *a = nm_alloc_zero(ctx, (size_t)(L->p * L->n), sizeof(float));
    double *c = nm_alloc(ctx, (size_t)L->p, sizeof(double));
    nm_status st = a && c ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK && L->k == 0) {
        for (int64_t i = 0; i < L->p; i++) a[i * L->n + i] = 1.0f;
    } else if (st == NM_OK && (st = nm_net_run(ctx, net, 0, L->k - 1, 1, L->x0)) == NM_OK) {
        st = jacobian(ctx, net, 0, L->k - 1, L->n, L->p, a);
    }
    for (int64_t i = 0; st == NM_OK && i < L->p; i++) {
        double s = L->r0[i];
        for (int64_t j = 0; j < L->n; j++) s -= (double)a[i * L->n + j] * L->x0[j];
        c[i] = s;
    }
    if (st != NM_OK) {
        nm_free(ctx, a);
        nm_free(ctx, c);
        return st;
    }
    *A = a;
    *c1 = c;
    return NM_OK;
}

nm_status nm_net_linearize(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *opt, nm_array *A,
                           nm_array *c1, nm_array *B, nm_array *c2)
{
    if (!ctx || !net || !mu || !A || !c1 || !B || !c2) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(A, 0, sizeof *A), memset(c1, 0, sizeof *c1), memset(B, 0, sizeof *B), memset(c2, 0, sizeof *c2);
    nm_net_moments_options o = opt ? *opt : nm_net_moments_options_default();
    lin L;
    float *a = NULL;
    double *c = NULL;
    nm_status st = lin_prepare(ctx, net, mu, &o, &L);
    if (st == NM_OK) st = form_A(ctx, net, &L, o.mem_budget, &a, &c);
    int64_t sa[2] = {L.p, L.n}, sc1[1] = {L.p}, sb[2] = {L.d, L.p}, sc2[1] = {L.d};
    if (st == NM_OK && (st = nm_array_alloc(ctx, A, NM_F32, 2, sa)) == NM_OK &&
        (st = nm_array_alloc(ctx, c1, NM_F64, 1, sc1)) == NM_OK && (st = nm_array_alloc(ctx, B, NM_F64, 2, sb)) == NM_OK &&
        (st = nm_array_alloc(ctx, c2, NM_F64, 1, sc2)) == NM_OK) {
        memcpy(A->data, a, (size_t)(L.p * L.n) * sizeof(float));
        memcpy(c1->data, c, (size_t)L.p * sizeof(double));
        memcpy(B->data, L.B, (size_t)(L.d * L.p) * sizeof(double));
        memcpy(c2->data, L.c2, (size_t)L.d * sizeof(double));
    }
    if (st != NM_OK) {
        nm_array_free(ctx, A), nm_array_free(ctx, c1), nm_array_free(ctx, B), nm_array_free(ctx, c2);
    }
    nm_free(ctx, a);
    nm_free(ctx, c);
    lin_free(ctx, &L);
    return st;
}

/* Operator path: m = R_bot(x₀) + A (μ − x₀) and S = (A L)(A L)ᵀ from jvp
 * passes over the columns of Σ's factor L, accumulated chunk by chunk. */
static nm_status operator_m_S(nm_ctx *ctx, nm_net *net, const lin *L, const float *mu, const nm_cov *sigma, double **m_out,
                              double **S_out)
{
    int64_t n = L->n, p = L->p;
    nm_cov_factor_view v;
    nm_cov_view(sigma, &v);
    double *m = nm_alloc(ctx, (size_t)p, sizeof(double)), *S = nm_alloc_zero(ctx, (size_t)(p * p), sizeof(double));
    float *T = nm_alloc_zero(ctx, (size_t)(NM_LIN_CHUNK * n), sizeof(float));
    double *G = nm_alloc(ctx, (size_t)(NM_LIN_CHUNK * p), sizeof(double));
    nm_status st = m && S && T && G ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK) st = nm_net_run(ctx, net, 0, L->k - 1, 1, L->x0);
    if (st == NM_OK) { /* m */
        for (int64_t j = 0; j < n; j++) T[j] = mu[j] - L->x0[j];
        if ((st = nm_net_run_jvp(ctx, net, 0, L->k - 1, 1, T)) == NM_OK)
            for (int64_t i = 0; i < p; i++) m[i] = (double)L->r0[i] + net->v[net->node[L->k - 1].out].g[i];
    }
    for (int64_t c0 = 0; st == NM_OK && c0 < v.k; c0 += NM_LIN_CHUNK) {
        int64_t c = v.k - c0 < NM_LIN_CHUNK ? v.k - c0 : NM_LIN_CHUNK;
        memset(T, 0, (size_t)(c * n) * sizeof(float));
        for (int64_t t = 0; t < c; t++) { /* tangent t: column c0 + t of L */
            int64_t col = c0 + t;
            if (v.L)
                for (int64_t j = 0; j < n; j++) T[t * n + j] = (float)v.L[j * v.k + col];
            else
                T[t * n + col] = (float)(v.diag ? v.diag[col] : v.sigma);
        }
        if ((st = nm_net_run_jvp(ctx, net, 0, L->k - 1, c, T)) != NM_OK) break;
        const float *g = net->v[net->node[L->k - 1].out].g; /* (c × p): rows are columns of A L */
        for (int64_t i = 0; i < c * p; i++) G[i] = g[i];
        nm_gemm_f64(NM_TRANS, NM_NOTRANS, p, p, c, 1.0, G, p, G, p, 1.0, S, p);
    }
    nm_free(ctx, T);
    nm_free(ctx, G);
    if (st != NM_OK) {
        nm_free(ctx, m);
        nm_free(ctx, S);
        return st;
    }
    *m_out = m;
    *S_out = S;
    return NM_OK;
}

nm_status nm_net_moments_methods(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                                 const nm_net_moments_options *opt, int count, const nm_method *methods, nm_moments *out)
{
    if (!ctx || !net || !mu || !sigma || !out || !methods || count < 1) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    for (int i = 0; i < count; i++) memset(&out[i], 0, sizeof out[i]);
    nm_net_moments_options o = opt ? *opt : nm_net_moments_options_default();
    for (int i = 0; i < count; i++)
        if (methods[i] == NM_METHOD_DELTA) o.x0 = o.y0 = NULL; /* §1.7: the whole net linearized at μ */
    lin L;
    nm_status st = lin_prepare(ctx, net, mu, &o, &L);
    if (st == NM_OK && nm_cov_dim(sigma) != L.n)
        st = nm_fail(ctx, NM_ERR_SHAPE, "the covariance is over %lld inputs but the model has %lld", (long long)nm_cov_dim(sigma),
                     (long long)L.n);
    float *muf = NULL;
    if (st == NM_OK) st = to_float(ctx, mu, L.n, "the input mean", &muf);
    int fits = (double)L.p * (double)L.n * sizeof(double) <= (double)o.mem_budget;
    if (st == NM_OK && (fits || L.k == 0)) { /* A as a matrix: the ARA kernels do the rest */
        float *a;
        double *c1;
        if ((st = form_A(ctx, net, &L, (size_t)-1, &a, &c1)) == NM_OK) {
            nm_array A = {NM_F32, 2, {L.p, L.n}, a}, C1 = {NM_F64, 1, {L.p}, c1}, B = {NM_F64, 2, {L.d, L.p}, L.B},
                     C2 = {NM_F64, 1, {L.d}, L.c2}, MU = {NM_F32, 1, {L.n}, muf};
            nm_ara ara = {&A, &C1, &B, &C2};
            for (int i = 0; st == NM_OK && i < count; i++) {
                nm_ara_options ao = {methods[i], o.precision, o.want_cov};
                st = nm_ara_moments(ctx, &ara, &MU, sigma, &ao, &out[i]);
            }
            nm_free(ctx, a);
            nm_free(ctx, c1);
        }
    } else if (st == NM_OK) { /* A as an operator: m and S once, S copied for all but the last method */
        double *m, *S, *Si = NULL;
        if ((st = operator_m_S(ctx, net, &L, muf, sigma, &m, &S)) == NM_OK) {
            if (count > 1 && !(Si = nm_alloc(ctx, (size_t)(L.p * L.p), sizeof(double)))) st = NM_ERR_NOMEM;
            for (int i = 0; st == NM_OK && i < count; i++) {
                nm_ara_options ao = {methods[i], o.precision, o.want_cov};
                if (i + 1 < count) memcpy(Si, S, (size_t)(L.p * L.p) * sizeof(double)); /* from_S overwrites S */
                st = nm_ara_moments_from_S(ctx, L.p, L.d, m, i + 1 < count ? Si : S, L.B, L.c2, &ao, &out[i]);
            }
            nm_free(ctx, Si);
            nm_free(ctx, m);
            nm_free(ctx, S);
        }
    }
    if (st != NM_OK)
        for (int i = 0; i < count; i++) nm_moments_free(ctx, &out[i]);
    nm_free(ctx, muf);
    lin_free(ctx, &L);
    return st;
}

nm_status nm_net_moments(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                         const nm_net_moments_options *opt, nm_moments *out)
{
    nm_method m = opt ? opt->method : NM_METHOD_EXACT;
    return nm_net_moments_methods(ctx, net, mu, sigma, opt, 1, &m, out);
}

/* ---------------------------------------------------------------- Monte Carlo of the real network */

#define NM_NET_MC_BATCH 500

/* Draws of x = μ + L ε for the Monte Carlo, in batches of NM_NET_MC_BATCH;
 * ε from the counter-based RNG by sample index. */
typedef struct {
    nm_cov_factor_view v;
    int64_t n, k;
    float *mu, *E, *X, *L; /* n, NB×k, NB×n, n×k (NULL for a diagonal Σ) */
} sampler;

static void sampler_free(nm_ctx *ctx, sampler *s)
{
    nm_free(ctx, s->mu), nm_free(ctx, s->E), nm_free(ctx, s->X), nm_free(ctx, s->L);
    memset(s, 0, sizeof *s);
}

static nm_status sampler_init(nm_ctx *ctx, const nm_net *net, const nm_array *mu, const nm_cov *sigma, sampler *s)
{
    memset(s, 0, sizeof *s);
    nm_shape in = net->v[net->input].shape;
    in.d[0] = 1;
    int64_t n = nm_shape_numel(&in), NB = NM_NET_MC_BATCH;
    if (nm_cov_dim(sigma) != n)
        return nm_fail(ctx, NM_ERR_SHAPE, "the covariance is over %lld inputs but the model has %lld", (long long)nm_cov_dim(sigma),
                       (long long)n);
    nm_cov_view(sigma, &s->v);
    s->n = n, s->k = s->v.k;
    nm_status st = to_float(ctx, mu, n, "the input mean", &s->mu);
    if (st == NM_OK && (!(s->E = nm_alloc(ctx, (size_t)(NB * s->k), sizeof(float))) || !(s->X = nm_alloc(ctx, (size_t)(NB * n), sizeof(float)))))
        st = NM_ERR_NOMEM;
    if (st == NM_OK && s->v.L) {
        if (!(s->L = nm_alloc(ctx, (size_t)(n * s->k), sizeof(float)))) st = NM_ERR_NOMEM;
        else
            for (int64_t i = 0; i < n * s->k; i++) s->L[i] = (float)s->v.L[i];
    }
    if (st != NM_OK) sampler_free(ctx, s);
    return st;
}

/* Samples first .. first+rows−1 into s->X (rows × n). */
static void sampler_draw(sampler *s, const nm_rng *rng, int64_t first, int64_t rows)
{
    int64_t n = s->n, k = s->k;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        nm_rng_normals(rng, (uint64_t)(first + r), 0, k, s->E + r * k);
        float *x = s->X + r * n;
        if (s->L) {
            memcpy(x, s->mu, (size_t)n * sizeof(float));
        } else {
            for (int64_t j = 0; j < n; j++) x[j] = s->mu[j] + (float)(s->v.diag ? s->v.diag[j] : s->v.sigma) * s->E[r * k + j];
        }
    }
    if (s->L) nm_gemm_f32(NM_NOTRANS, NM_TRANS, rows, n, k, 1.0f, s->E, k, s->L, k, 1.0f, s->X, n); /* X = μ + ε Lᵀ */
}

nm_status nm_net_montecarlo(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, int64_t n_samples,
                            const nm_rng *rng, int want_cov, void (*progress)(void *user, int64_t done, int64_t total),
                            void *user, nm_mc_result *out)
{
    if (!ctx || !net || !mu || !sigma || !rng || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    if (n_samples < 2) return nm_fail(ctx, NM_ERR_ARG, "Monte Carlo needs at least 2 samples, got %lld", (long long)n_samples);
    int last = nm_net_logits_node(net);
    int64_t NB = NM_NET_MC_BATCH, d = 0;
    nm_status st = require_batchable(ctx, net, last, "sampling needs");
    sampler sm;
    if (st == NM_OK) st = sampler_init(ctx, net, mu, sigma, &sm);
    if (st != NM_OK) return st;
    nm_mc_accum *acc = NULL;
    for (int64_t first = 0; st == NM_OK && first < n_samples; first += NB) {
        int64_t rows = n_samples - first < NB ? n_samples - first : NB;
        sampler_draw(&sm, rng, first, rows);
        if ((st = nm_net_run(ctx, net, 0, last, rows, sm.X)) != NM_OK) break;
        const nm_value *o = &net->v[net->node[last].out];
        if (!acc) {
            d = nm_shape_numel(&o->xs) / rows;
            if ((st = nm_mc_accum_new(ctx, d, want_cov, NB, &acc)) != NM_OK) break;
        }
        nm_mc_accum_add(acc, o->x, rows);
        if (progress) progress(user, first + rows, n_samples);
    }
    if (st == NM_OK) st = nm_mc_accum_result(ctx, acc, out);
    nm_mc_accum_free(ctx, acc);
    sampler_free(ctx, &sm);
    return st;
}

nm_status nm_net_relu_changes(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, const nm_net_moments_options *opt,
                              int64_t n_samples, const nm_rng *rng, double *bottom, double *top)
{
    if (!ctx || !net || !mu || !sigma || !opt || !rng || !bottom || !top) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    *bottom = *top = 0;
    if (n_samples < 1) return nm_fail(ctx, NM_ERR_ARG, "counting ReLU changes needs at least 1 sample");
    lin L;
    sampler sm = {0};
    float *y0 = NULL;
    unsigned char *ref = NULL;
    int *relu = NULL, nr = 0; /* the counted ReLU nodes: all up to the logits but the split */
    nm_status st = lin_point(ctx, net, mu, opt, &L);
    if (st == NM_OK) st = top_point(ctx, &L, opt, &y0);
    if (st == NM_OK) st = sampler_init(ctx, net, mu, sigma, &sm);
    if (st == NM_OK && !(relu = nm_alloc(ctx, (size_t)nm_net_relu_count(net), sizeof(int)))) st = NM_ERR_NOMEM;
    int64_t units = 0;
    for (int l = 1; st == NM_OK && l <= nm_net_relu_count(net); l++) {
        int j = nm_net_relu_node(net, l);
        if (j == L.k || j > L.last) continue;
        relu[nr++] = j;
        units += nm_shape_numel(&net->v[net->node[j].out].shape) / net->v[net->node[j].out].shape.d[0];
    }
    if (st == NM_OK && !(ref = nm_alloc(ctx, (size_t)(units ? units : 1), 1))) st = NM_ERR_NOMEM;
    /* the states at the linearization points: bottom ReLUs at x₀ (lin_point's
     * pass R_bot(x₀) left them in the net), then top ones at y₀ */
    for (int part = 0; st == NM_OK && part < 2; part++) {
        int first = part ? L.k + 1 : 0, last = part ? L.last : L.k - 1;
        if (first > last || (part && (st = nm_net_run(ctx, net, first, last, 1, y0)) != NM_OK)) continue;
        for (int64_t i = 0, u = 0; i < nr; i++) {
            const nm_value *v = &net->v[net->node[relu[i]].out];
            int64_t m = nm_shape_numel(&v->xs);
            if (relu[i] >= first && relu[i] <= last) /* batch 1 */
                for (int64_t t = 0; t < m; t++) ref[u + t] = v->x[t] > 0;
            u += nm_shape_numel(&v->shape) / v->shape.d[0];
        }
    }
    /* the same states under the noise, sample by sample */
    int64_t changed[2] = {0, 0}, total[2] = {0, 0}, NB = NM_NET_MC_BATCH;
    for (int64_t first = 0; st == NM_OK && first < n_samples; first += NB) {
        int64_t rows = n_samples - first < NB ? n_samples - first : NB;
        sampler_draw(&sm, rng, first, rows);
        if ((st = nm_net_run(ctx, net, 0, L.last, rows, sm.X)) != NM_OK) break;
        for (int64_t i = 0, u = 0; i < nr; i++) {
            const nm_value *v = &net->v[net->node[relu[i]].out];
            int64_t m = nm_shape_numel(&v->xs) / rows, c = 0, part = relu[i] > L.k;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t t = 0; t < m; t++) c += (v->x[r * m + t] > 0) != ref[u + t];
            changed[part] += c, total[part] += rows * m;
            u += m;
        }
    }
    if (st == NM_OK) {
        *bottom = total[0] ? (double)changed[0] / (double)total[0] : 0;
        *top = total[1] ? (double)changed[1] / (double)total[1] : 0;
    }
    nm_free(ctx, relu);
    nm_free(ctx, ref);
    nm_free(ctx, y0);
    sampler_free(ctx, &sm);
    lin_free(ctx, &L);
    return st;
}
