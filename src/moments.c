/*
 * moments.c — the network moments (DESIGN §1.6–1.7): the two-stage
 * linearization (linearize.c) turned into z = A x + c1 ~ N(m, S) at the
 * split, whose moments are then exactly those of an Affine–ReLU–Affine
 * network (ara.c, by the method's rules). A is formed as a matrix when
 * what that holds fits the memory budget; otherwise it is never formed:
 * S = A Σ Aᵀ is accumulated from jvp passes of the columns of Σ's factor,
 * chunk by chunk, and m = A μ + c1 is one more jvp.
 */
#include "linearize.h"
#include "methods/method.h"

#include <math.h>
#include <string.h>

/* Bytes the matrix path holds beyond S: A and A·L in double (and A·L in
 * float for a single-precision S). */
static double matrix_bytes(const nm_lin *L, const nm_cov *sigma, nm_precision prec)
{
    double k = (double)nm_cov_rank(sigma);
    return (double)L->p * ((double)L->n * sizeof(double) + k * (sizeof(double) + (prec == NM_PREC_SINGLE ? sizeof(float) : 0)));
}

/* The matrix path when asked for, or (NM_PATH_AUTO) when it takes fewer passes
 * (forming A is min(p, n) vjp or jvp passes, the operator path one jvp per
 * column of Σ's factor and one for m: a window's few columns favour it) and
 * what it holds fits both the options' budget and, with S, what the
 * context's budget has left. */
static int use_matrix(const nm_ctx *ctx, const nm_lin *L, const nm_cov *sigma, const nm_net_moments_options *o)
{
    if (o->path != NM_PATH_AUTO) return o->path == NM_PATH_MATRIX;
    int64_t passes = L->p < L->n ? L->p : L->n;
    if (L->k > 0 && passes > nm_cov_rank(sigma) + 1) return 0;
    double need = matrix_bytes(L, sigma, o->precision), S = (double)L->p * (double)L->p * sizeof(double);
    double left = (double)ctx->mem_limit - (double)ctx->live_bytes;
    return need <= (double)o->mem_budget && need + S <= left;
}

/* Matrix path: A and c1 as matrices, m = A μ + c1 and S = (A L)(A L)ᵀ. */
static nm_status matrix_m_S(nm_ctx *ctx, nm_net *net, const nm_lin *L, const float *mu, const nm_cov *sigma, nm_precision prec,
                            double **m_out, double **S_out)
{
    double *A, *c1, *mu64 = nm_alloc(ctx, (size_t)L->n, sizeof(double));
    if (!mu64) return NM_ERR_NOMEM;
    nm_status st = nm_lin_form_A(ctx, net, L, &A, &c1);
    if (st == NM_OK) {
        for (int64_t j = 0; j < L->n; j++) mu64[j] = mu[j];
        nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, L->p, 1, L->n, 1.0, A, L->n, mu64, 1, 1.0, c1, 1); /* c1 becomes m */
        if ((st = nm_ara_form_S(ctx, L->p, A, sigma, prec, S_out)) == NM_OK) *m_out = c1;
        else nm_free(ctx, c1);
        nm_free(ctx, A);
    }
    nm_free(ctx, mu64);
    return st;
}

/* The bottom part's jvp of t tangents T (t × n) at the recorded primal:
 * its output (t × p), or T itself when the split ReLU is the first node (A = I). */
static nm_status bottom_jvp(nm_ctx *ctx, nm_net *net, const nm_lin *L, int64_t t, const float *T, const float **out)
{
    if (L->k == 0) {
        *out = T;
        return NM_OK;
    }
    nm_status st = nm_net_run_jvp(ctx, net, 0, L->k - 1, t, T);
    *out = net->v[net->node[L->k - 1].out].g;
    return st;
}

/* Operator path: m = R_bot(x₀) + A (μ − x₀) and S = (A L)(A L)ᵀ from jvp
 * passes over the columns of Σ's factor L, accumulated chunk by chunk. */
static nm_status operator_m_S(nm_ctx *ctx, nm_net *net, const nm_lin *L, const float *mu, const nm_cov *sigma, double **m_out,
                              double **S_out)
{
    int64_t n = L->n, p = L->p, k = nm_cov_rank(sigma), C = L->k > 0 ? nm_net_batch_fit(ctx, nm_net_sample_bytes(net, 0, L->k - 1), NM_LIN_CHUNK) : NM_LIN_CHUNK;
    if (C > k) C = k;
    double *m = nm_alloc(ctx, (size_t)p, sizeof(double)), *S = nm_alloc_zero(ctx, (size_t)(p * p), sizeof(double));
    float *T = nm_alloc_zero(ctx, (size_t)(C * n), sizeof(float)), *E = nm_alloc_zero(ctx, (size_t)(C * k), sizeof(float));
    double *G = nm_alloc(ctx, (size_t)(C * p), sizeof(double));
    const float *g;
    nm_status st = m && S && T && E && G ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK && L->k > 0) st = nm_net_run(ctx, net, 0, L->k - 1, 1, L->x0);
    if (st == NM_OK) { /* m */
        for (int64_t j = 0; j < n; j++) T[j] = mu[j] - L->x0[j];
        if ((st = bottom_jvp(ctx, net, L, 1, T, &g)) == NM_OK)
            for (int64_t i = 0; i < p; i++) m[i] = (double)L->r0[i] + g[i];
    }
    for (int64_t c0 = 0; st == NM_OK && c0 < k; c0 += C) {
        int64_t c = k - c0 < C ? k - c0 : C;
        memset(T, 0, (size_t)(c * n) * sizeof(float));
        memset(E, 0, (size_t)(c * k) * sizeof(float));
        for (int64_t t = 0; t < c; t++) E[t * k + c0 + t] = 1.0f;
        nm_cov_add_factor_f32(sigma, c, E, T); /* tangent t: column c0 + t of L */
        if ((st = bottom_jvp(ctx, net, L, c, T, &g)) != NM_OK) break;
        for (int64_t i = 0; i < c * p; i++) G[i] = g[i]; /* (c × p): rows are columns of A L */
        nm_gemm_f64(NM_TRANS, NM_NOTRANS, p, p, c, 1.0, G, p, G, p, 1.0, S, p);
    }
    nm_free(ctx, T), nm_free(ctx, E), nm_free(ctx, G);
    if (st == NM_OK) st = nm_ara_check_S(ctx, p, S, NM_PREC_DOUBLE);
    for (int64_t i = 0; st == NM_OK && i < p; i++)
        if (!isfinite(m[i])) st = nm_fail(ctx, NM_ERR_NONFINITE, "the mean at the split overflows (unit %lld)", (long long)i);
    if (st != NM_OK) {
        nm_free(ctx, m);
        nm_free(ctx, S);
        return st;
    }
    *m_out = m;
    *S_out = S;
    return NM_OK;
}

/* The methods that share one two-stage linearization. */
static nm_status lin_moments(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, nm_net_moments_options o, int count,
                             const nm_method *methods, nm_moments *out)
{
    for (int i = 0; i < count; i++)
        if (nm_method_def_of(methods[i])->at_mean) o.x0 = o.y0 = NULL; /* §1.7: the whole net linearized at μ */
    nm_lin L;
    nm_status st = nm_lin_prepare(ctx, net, mu, &o, &L);
    if (st == NM_OK && nm_cov_dim(sigma) != L.n)
        st = nm_fail(ctx, NM_ERR_SHAPE, "the covariance is over %lld inputs but the model has %lld", (long long)nm_cov_dim(sigma),
                     (long long)L.n);
    float *muf = NULL;
    double *m = NULL, *S = NULL, *Si = NULL;
    if (st == NM_OK) st = nm_to_float(ctx, mu, L.n, "the input mean", &muf);
    if (st == NM_OK && use_matrix(ctx, &L, sigma, &o)) st = matrix_m_S(ctx, net, &L, muf, sigma, o.precision, &m, &S);
    else if (st == NM_OK) st = operator_m_S(ctx, net, &L, muf, sigma, &m, &S);
    /* the ARA moments from S, copied for all but the last method (from_S overwrites S) */
    if (st == NM_OK && count > 1 && !(Si = nm_alloc(ctx, (size_t)(L.p * L.p), sizeof(double)))) st = NM_ERR_NOMEM;
    for (int i = 0; st == NM_OK && i < count; i++) {
        nm_ara_options ao = {methods[i], o.precision, o.want_cov, o.mean_only};
        if (i + 1 < count) memcpy(Si, S, (size_t)(L.p * L.p) * sizeof(double));
        st = nm_ara_moments_from_S(ctx, L.p, L.d, m, i + 1 < count ? Si : S, L.B, L.c2, &ao, &L.act, &out[i]);
    }
    if (st != NM_OK)
        for (int i = 0; i < count; i++) nm_moments_free(ctx, &out[i]);
    nm_free(ctx, Si), nm_free(ctx, m), nm_free(ctx, S), nm_free(ctx, muf);
    nm_lin_free(ctx, &L);
    return st;
}

nm_status nm_net_moments_methods(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                                 const nm_net_moments_options *opt, int count, const nm_method *methods, nm_moments *out)
{
    if (!ctx || !net || !mu || !sigma || !out || !methods || count < 1) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    for (int i = 0; i < count; i++) memset(&out[i], 0, sizeof out[i]);
    nm_net_moments_options o = opt ? *opt : nm_net_moments_options_default();
    if (o.path != NM_PATH_AUTO && o.path != NM_PATH_MATRIX && o.path != NM_PATH_OPERATOR)
        return nm_fail(ctx, NM_ERR_ARG, "unknown path %d", (int)o.path);
    for (int i = 0; i < count; i++)
        if (methods[i] < 0 || methods[i] >= nm_method_count()) return nm_fail(ctx, NM_ERR_ARG, "unknown method %d", (int)methods[i]);
    /* methods of their own (propagate) one by one, the rest on one linearization */
    int *at = nm_alloc(ctx, (size_t)count, sizeof(int)), nl = 0;
    nm_method *lm = nm_alloc(ctx, (size_t)count, sizeof(nm_method));
    nm_moments *lo = nm_alloc_zero(ctx, (size_t)count, sizeof(nm_moments));
    nm_status st = at && lm && lo ? NM_OK : NM_ERR_NOMEM;
    for (int i = 0; i < count && st == NM_OK; i++) {
        const nm_method_def *def = nm_method_def_of(methods[i]);
        if (def->net_moments) st = def->net_moments(ctx, net, mu, sigma, &o, &out[i]);
        else at[nl] = i, lm[nl++] = methods[i];
    }
    if (st == NM_OK && nl > 0 && (st = lin_moments(ctx, net, mu, sigma, o, nl, lm, lo)) == NM_OK)
        for (int j = 0; j < nl; j++) out[at[j]] = lo[j];
    if (st != NM_OK)
        for (int i = 0; i < count; i++) nm_moments_free(ctx, &out[i]);
    nm_free(ctx, at), nm_free(ctx, lm), nm_free(ctx, lo);
    return st;
}

nm_status nm_net_moments(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma,
                         const nm_net_moments_options *opt, nm_moments *out)
{
    nm_method m = opt ? opt->method : NM_METHOD_EXACT;
    return nm_net_moments_methods(ctx, net, mu, sigma, opt, 1, &m, out);
}
