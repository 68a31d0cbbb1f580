/*
 * ara.c — moments of the Affine–ReLU–Affine network
 * g(x) = B relu(A x + c1) + c2 for x ~ N(μ, Σ) (DESIGN §1.2–1.5, 1.7):
 * z = A x + c1 ~ N(m, S) with S = (A L)(A L)ᵀ by one SYRK, the ReLU
 * covariance C from relu_cov.c, then mean = B E[relu z] + c2 and
 * Var[g_i] = B_i C B_iᵀ through one SYMM; the method's rules come from the
 * method table (src/methods). The network moments reuse everything from S
 * on (src/moments.c).
 */
#include "methods/method.h"

#include <math.h>
#include <string.h>

nm_ara_options nm_ara_options_default(void)
{
    nm_ara_options o = {NM_METHOD_EXACT, NM_PREC_DOUBLE, 0, 0};
    return o;
}

/* Length of a vector given as shape (n), (n,1) or (1,n); −1 otherwise. */
static int64_t vec_len(const nm_array *a)
{
    if (a->ndim == 1) return a->shape[0];
    if (a->ndim == 2 && a->shape[1] == 1) return a->shape[0];
    if (a->ndim == 2 && a->shape[0] == 1) return a->shape[1];
    return -1;
}

static nm_status convert(nm_ctx *ctx, const char *name, const nm_array *a, double **out)
{
    nm_status st = nm_array_to_f64(ctx, a, out);
    if (st != NM_OK) {
        char msg[sizeof ctx->message];
        memcpy(msg, ctx->message, sizeof msg);
        nm_fail(ctx, st, "%s: %s", name, msg);
    }
    return st;
}

void nm_ara_data_free(nm_ctx *ctx, nm_ara_data *a)
{
    nm_free(ctx, a->A);
    nm_free(ctx, a->c1);
    nm_free(ctx, a->B);
    nm_free(ctx, a->c2);
    nm_free(ctx, a->mu);
    nm_free(ctx, a->m);
    memset(a, 0, sizeof *a);
}

nm_status nm_ara_load(nm_ctx *ctx, const nm_ara *net, const nm_array *mu, const nm_cov *sigma,
                      nm_ara_data *out)
{
    memset(out, 0, sizeof *out);
    if (!net || !net->A || !net->c1 || !net->B || !net->c2 || !mu || !sigma)
        return nm_fail(ctx, NM_ERR_ARG, "ARA network, mean and covariance must all be given");
    if (net->A->ndim != 2) return nm_fail(ctx, NM_ERR_SHAPE, "A must be a matrix (p x n), got rank %d", net->A->ndim);
    if (net->B->ndim != 2) return nm_fail(ctx, NM_ERR_SHAPE, "B must be a matrix (d x p), got rank %d", net->B->ndim);
    int64_t p = net->A->shape[0], n = net->A->shape[1], d = net->B->shape[0];
    if (net->B->shape[1] != p)
        return nm_fail(ctx, NM_ERR_SHAPE, "B has %lld columns but A has %lld rows", (long long)net->B->shape[1], (long long)p);
    if (vec_len(net->c1) != p) return nm_fail(ctx, NM_ERR_SHAPE, "c1 must be a vector of length p = %lld", (long long)p);
    if (vec_len(net->c2) != d) return nm_fail(ctx, NM_ERR_SHAPE, "c2 must be a vector of length d = %lld", (long long)d);
    if (vec_len(mu) != n) return nm_fail(ctx, NM_ERR_SHAPE, "mu must be a vector of length n = %lld", (long long)n);
    if (nm_cov_dim(sigma) != n)
        return nm_fail(ctx, NM_ERR_SHAPE, "covariance is %lld x %lld but the input has n = %lld",
                       (long long)nm_cov_dim(sigma), (long long)nm_cov_dim(sigma), (long long)n);
    if (p <= 0 || n <= 0 || d <= 0) return nm_fail(ctx, NM_ERR_SHAPE, "empty network");
    out->n = n;
    out->p = p;
    out->d = d;
    nm_status st;
    if ((st = convert(ctx, "A", net->A, &out->A)) || (st = convert(ctx, "c1", net->c1, &out->c1)) ||
        (st = convert(ctx, "B", net->B, &out->B)) || (st = convert(ctx, "c2", net->c2, &out->c2)) ||
        (st = convert(ctx, "mu", mu, &out->mu))) {
        nm_ara_data_free(ctx, out);
        return st;
    }
    out->m = nm_alloc(ctx, (size_t)p, sizeof(double));
    if (!out->m) {
        nm_ara_data_free(ctx, out);
        return NM_ERR_NOMEM;
    }
    memcpy(out->m, out->c1, (size_t)p * sizeof(double));
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, p, 1, n, 1.0, out->A, n, out->mu, 1, 1.0, out->m, 1);
    return NM_OK;
}

nm_status nm_ara_form_AL(nm_ctx *ctx, int64_t p, const double *A, const nm_cov *sigma, double **AL)
{
    *AL = nm_alloc(ctx, (size_t)p, (size_t)nm_cov_rank(sigma) * sizeof(double));
    if (!*AL) return NM_ERR_NOMEM;
    nm_cov_times_factor(sigma, p, A, *AL);
    return NM_OK;
}

nm_status nm_ara_check_S(nm_ctx *ctx, int64_t p, const double *S, nm_precision prec)
{
    for (int64_t u = 0; u < p; u++) /* a diagonal entry bounds its row and column (S is PSD) */
        if (!isfinite(S[u * p + u]))
            return nm_fail(ctx, NM_ERR_NONFINITE, "the noise's covariance at the split, S = A Sigma A^T, overflows %s (unit %lld): the noise "
                           "is too large%s", prec == NM_PREC_SINGLE ? "float32" : "double", (long long)u,
                           prec == NM_PREC_SINGLE ? " for single precision (use double)" : "");
    return NM_OK;
}

nm_status nm_ara_form_S(nm_ctx *ctx, int64_t p, const double *A, const nm_cov *sigma, nm_precision prec, double **S_out)
{
    *S_out = NULL;
    int64_t k = nm_cov_rank(sigma);
    double *S = nm_alloc(ctx, (size_t)(p * p), sizeof(double)), *AL = NULL;
    nm_status st = S ? nm_ara_form_AL(ctx, p, A, sigma, &AL) : NM_ERR_NOMEM;
    if (st == NM_OK && prec == NM_PREC_SINGLE) {
        float *AL32 = nm_alloc(ctx, (size_t)p, (size_t)k * sizeof(float)), *S32 = (float *)S; /* float S in the first half */
        if (!AL32) {
            st = NM_ERR_NOMEM;
        } else {
            for (int64_t i = 0; i < p * k; i++) AL32[i] = (float)AL[i];
            nm_syrk_f32(p, k, 1.0f, AL32, k, 0.0f, S32, p);
            for (int64_t i = p * p - 1; i >= 0; i--) S[i] = (double)S32[i]; /* widen in place, back to front */
        }
        nm_free(ctx, AL32);
    } else if (st == NM_OK) {
        nm_syrk_f64(p, k, 1.0, AL, k, 0.0, S, p);
    }
    nm_free(ctx, AL);
    if (st == NM_OK) st = nm_ara_check_S(ctx, p, S, prec);
    if (st != NM_OK) {
        nm_free(ctx, S);
        return st;
    }
    *S_out = S;
    return NM_OK;
}

void nm_moments_free(nm_ctx *ctx, nm_moments *m)
{
    if (!m) return;
    nm_free(ctx, m->mean);
    nm_free(ctx, m->var);
    nm_free(ctx, m->cov);
    memset(m, 0, sizeof *m);
}

/* T = B C (d×p) with C symmetric (lower triangle read), in the chosen precision. */
static nm_status times_sym(nm_ctx *ctx, int64_t p, int64_t d, const double *B, const double *C, nm_precision prec,
                           double *T)
{
    if (prec == NM_PREC_DOUBLE) {
        nm_symm_right_f64(d, p, 1.0, C, p, B, p, 0.0, T, p);
        return NM_OK;
    }
    float *C32 = nm_alloc(ctx, (size_t)(p * p + 2 * d * p), sizeof(float));
    if (!C32) return NM_ERR_NOMEM;
    float *B32 = C32 + p * p, *T32 = B32 + d * p;
    #pragma omp parallel for
    for (int64_t i = 0; i < p * p; i++) C32[i] = (float)C[i];
    for (int64_t i = 0; i < d * p; i++) B32[i] = (float)B[i];
    nm_symm_right_f32(d, p, 1.0f, C32, p, B32, p, 0.0f, T32, p);
    for (int64_t i = 0; i < d * p; i++) T[i] = T32[i];
    nm_free(ctx, C32);
    return NM_OK;
}

/* No result is returned that is not finite (the rule of issue 12). */
static nm_status check_result(nm_ctx *ctx, const nm_moments *m)
{
    for (int64_t i = 0; i < m->d; i++)
        if (!isfinite(m->mean[i]) || (m->var && !isfinite(m->var[i])))
            return nm_fail(ctx, NM_ERR_NONFINITE, "output %lld's %s is not finite (%g): the moments overflow double", (long long)i,
                           isfinite(m->mean[i]) ? "variance" : "mean", isfinite(m->mean[i]) && m->var ? m->var[i] : m->mean[i]);
    for (int64_t i = 0; m->cov && i < m->d * m->d; i++)
        if (!isfinite(m->cov[i]))
            return nm_fail(ctx, NM_ERR_NONFINITE, "the outputs' covariance (%lld, %lld) is not finite: the moments overflow double",
                           (long long)(i / m->d), (long long)(i % m->d));
    return NM_OK;
}

static nm_status check_options(nm_ctx *ctx, const nm_ara_options *o)
{
    if (o->method < 0 || o->method >= nm_method_count()) return nm_fail(ctx, NM_ERR_ARG, "unknown method %d", (int)o->method);
    if (o->precision != NM_PREC_DOUBLE && o->precision != NM_PREC_SINGLE)
        return nm_fail(ctx, NM_ERR_ARG, "unknown precision %d", (int)o->precision);
    return NM_OK;
}

void nm_act_means(const nm_act *act, const nm_method_def *def, int64_t p, const double *m, const double *suu, int64_t stride, double *r)
{
    #pragma omp parallel for
    for (int64_t u = 0; u < p; u++) {
        double v = suu[u * stride];
        if (!act || act->plain) {
            nm_unit un = nm_unit_of(m[u], v);
            r[u] = def->mean(&un);
            continue;
        }
        /* E[f_u(z)] = Σ_k w_k g_u E[relu(z − t_k)] + α_u m_u + β */
        r[u] = act->beta + (act->alpha ? act->alpha[u] * m[u] : 0);
        for (int k = 0; k < act->nh; k++) {
            nm_unit un = nm_unit_of(m[u] - act->t[k], v);
            r[u] += act->w[k] * (act->g ? act->g[u] : 1) * def->mean(&un);
        }
    }
}

nm_status nm_ara_moments_from_S(nm_ctx *ctx, int64_t p, int64_t d, const double *m, double *S, const double *B,
                                const double *c2, const nm_ara_options *opt, const nm_act *act, nm_moments *out)
{
    memset(out, 0, sizeof *out);
    nm_ara_options o = opt ? *opt : nm_ara_options_default();
    nm_status st = check_options(ctx, &o);
    if (st != NM_OK) return st;
    double *T = NULL, *r = NULL;
    out->d = d;
    out->mean = nm_alloc(ctx, (size_t)d, sizeof(double));
    out->var = o.mean_only ? NULL : nm_alloc(ctx, (size_t)d, sizeof(double));
    r = nm_alloc(ctx, (size_t)p, sizeof(double));
    T = o.mean_only ? NULL : nm_alloc(ctx, (size_t)(d * p), sizeof(double));
    if (!out->mean || (!o.mean_only && (!out->var || !T)) || !r) {
        st = NM_ERR_NOMEM;
        goto done;
    }
    if (o.want_cov && !o.mean_only && !(out->cov = nm_alloc(ctx, (size_t)(d * d), sizeof(double)))) {
        st = NM_ERR_NOMEM;
        goto done;
    }
    /* mean (§1.2: B E[relu z] + c2, with the method's E[relu z]) */
    nm_act_means(act, nm_method_def_of(o.method), p, m, S, p + 1, r);
    memcpy(out->mean, c2, (size_t)d * sizeof(double));
    nm_gemm_f64(NM_NOTRANS, NM_NOTRANS, d, 1, p, 1.0, B, p, r, 1, 1.0, out->mean, 1);
    if (o.mean_only) {
        st = check_result(ctx, out);
        goto done;
    }
    /* covariance of relu(z), in place over S, then B C Bᵀ */
    if ((st = nm_act_cov_matrix(ctx, p, m, S, o.method, act, S)) != NM_OK) goto done;
    if ((st = times_sym(ctx, p, d, B, S, o.precision, T)) != NM_OK) goto done;
    for (int64_t i = 0; i < d; i++) {
        double v = 0;
        for (int64_t u = 0; u < p; u++) v += T[i * p + u] * B[i * p + u];
        out->var[i] = v > 0 ? v : 0; /* a PSD quadratic form; rounding may dip below 0 */
    }
    if (out->cov) nm_gemm_f64(NM_NOTRANS, NM_TRANS, d, d, p, 1.0, T, p, B, p, 0.0, out->cov, d);
    st = check_result(ctx, out);
done:
    nm_free(ctx, T);
    nm_free(ctx, r);
    if (st != NM_OK) nm_moments_free(ctx, out);
    return st;
}

nm_status nm_ara_moments(nm_ctx *ctx, const nm_ara *net, const nm_array *mu,
                         const nm_cov *sigma, const nm_ara_options *opt, nm_moments *out)
{
    memset(out, 0, sizeof *out);
    nm_ara_options o = opt ? *opt : nm_ara_options_default();
    nm_status st = check_options(ctx, &o);
    if (st != NM_OK) return st;
    nm_ara_data a;
    if ((st = nm_ara_load(ctx, net, mu, sigma, &a)) != NM_OK) return st;
    double *S = NULL;
    if ((st = nm_ara_form_S(ctx, a.p, a.A, sigma, o.precision, &S)) == NM_OK)
        st = nm_ara_moments_from_S(ctx, a.p, a.d, a.m, S, a.B, a.c2, &o, NULL, out);
    nm_free(ctx, S);
    nm_ara_data_free(ctx, &a);
    return st;
}
