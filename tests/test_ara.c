/*
 * test_ara.c — Affine–ReLU–Affine moments against Monte Carlo written here
 * (its own generator and plain loops, 1e6 samples): method exact within 5
 * standard errors for random non-zero μ and c1 under isotropic, diagonal,
 * full and factor Σ, in double and single precision; method paper outside
 * them; the library's own sampler against the analytic moments and
 * bit-identical for 1 and 2 threads; the batched ReLU covariance against the
 * scalar kernels.
 */
#include "netmoments.h"
#include "check.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#define TOL_SAME_SUM 1e-12 /* one quantity by two roundings of the same sums, relative */
#define TOL_MC_SAME 1e-9   /* the MC covariance's diagonal vs its variance (other merge order), relative */
#define TOL_KERNEL_ABS 1e-14 /* the batched kernel vs the scalar one: absolute, and TOL_SAME_SUM relative */

#define N_MC 1000000
#define Z_MAX 5.0         /* standard errors */
#define TOL_SINGLE 1e-5   /* single vs double precision products, relative */

enum { N = 12, P = 10, D = 3 };

/* splitmix64 + Box–Muller: deliberately not the library's Philox */
static uint64_t sm_state;
static uint64_t splitmix(void)
{
    uint64_t z = (sm_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double gauss(void)
{
    double u1 = ((splitmix() >> 11) + 0.5) * 0x1p-53, u2 = (splitmix() >> 11) * 0x1p-53;
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

static double A[P * N], c1[P], B[D * P], c2[D], mu[N], L[N * N];

static nm_array arr(double *x, int ndim, int64_t r, int64_t c)
{
    nm_array a = {NM_F64, ndim, {r, c}, x};
    return a;
}

/* MC of g(x), x = μ + L ε with L given as n×n (row-major). */
static void reference_mc(double *mean, double *var, double *mean_se, double *var_se)
{
    double s1[D] = {0}, s2[D] = {0}, s3[D] = {0}, s4[D] = {0}, x[N], e[N], r[P];
    double shift[D]; /* centre on a rough mean to keep sums well conditioned */
    for (int i = 0; i < D; i++) shift[i] = c2[i];
    sm_state = 12345;
    for (long s = 0; s < N_MC; s++) {
        for (int j = 0; j < N; j++) e[j] = gauss();
        for (int j = 0; j < N; j++) {
            x[j] = mu[j];
            for (int l = 0; l < N; l++) x[j] += L[j * N + l] * e[l];
        }
        for (int u = 0; u < P; u++) {
            double z = c1[u];
            for (int j = 0; j < N; j++) z += A[u * N + j] * x[j];
            r[u] = z > 0 ? z : 0;
        }
        for (int i = 0; i < D; i++) {
            double g = c2[i] - shift[i];
            for (int u = 0; u < P; u++) g += B[i * P + u] * r[u];
            s1[i] += g;
            s2[i] += g * g;
            s3[i] += g * g * g;
            s4[i] += g * g * g * g;
        }
    }
    for (int i = 0; i < D; i++) {
        double n = N_MC, m = s1[i] / n, m2 = s2[i] / n - m * m;
        double c4 = s4[i] / n - 4 * m * s3[i] / n + 6 * m * m * s2[i] / n - 3 * m * m * m * m;
        mean[i] = m + shift[i];
        var[i] = m2 * n / (n - 1);
        mean_se[i] = sqrt(var[i] / n);
        var_se[i] = sqrt((c4 - m2 * m2) / n);
    }
}

static void random_net(void)
{
    sm_state = 777;
    for (int i = 0; i < P * N; i++) A[i] = gauss() / sqrt(N);
    for (int i = 0; i < P; i++) c1[i] = 0.8 * gauss();
    for (int i = 0; i < D * P; i++) B[i] = gauss() / sqrt(P);
    for (int i = 0; i < D; i++) c2[i] = gauss();
    for (int i = 0; i < N; i++) mu[i] = gauss();
}

/* One covariance form: compare both methods with the reference sampler. */
static void check_form(nm_ctx *ctx, const char *name, nm_cov *cov)
{
    double mean[D], var[D], mse[D], vse[D];
    reference_mc(mean, var, mse, vse);
    nm_array a = arr(A, 2, P, N), b = arr(B, 2, D, P), e1 = arr(c1, 1, P, 0), e2 = arr(c2, 1, D, 0),
             m = arr(mu, 1, N, 0);
    nm_ara net = {&a, &e1, &b, &e2};
    double worst_paper = 0;
    for (int prec = 0; prec < 2; prec++)
        for (int meth = 0; meth < 2; meth++) {
            nm_ara_options o = {meth ? NM_METHOD_EXACT : NM_METHOD_PAPER, prec ? NM_PREC_SINGLE : NM_PREC_DOUBLE, 1, 0};
            nm_moments mom;
            nm_status st = nm_ara_moments(ctx, &net, &m, cov, &o, &mom);
            if (!check_true("nm_ara_moments succeeds", st == NM_OK)) {
                fprintf(stderr, "  %s\n", nm_ctx_message(ctx));
                continue;
            }
            for (int i = 0; i < D; i++) {
                double zm = (mom.mean[i] - mean[i]) / mse[i], zv = (mom.var[i] - var[i]) / vse[i];
                char what[128];
                snprintf(what, sizeof what, "%s %s %s: mean z=%.2f", name, meth ? "exact" : "paper",
                         prec ? "single" : "double", zm);
                check_true(what, fabs(zm) < Z_MAX); /* the mean is exact for both methods */
                check_close("var(i) equals cov(i,i)", mom.var[i], mom.cov[i * D + i], 0, TOL_SAME_SUM);
                if (meth) {
                    snprintf(what, sizeof what, "%s exact %s: var z=%.2f", name, prec ? "single" : "double", zv);
                    check_true(what, fabs(zv) < Z_MAX);
                } else if (fabs(zv) > worst_paper) {
                    worst_paper = fabs(zv);
                }
            }
            nm_moments_free(ctx, &mom);
        }
    char what[128];
    snprintf(what, sizeof what, "%s: paper's variance is off by %.0f standard errors (must be > %g)", name,
             worst_paper, Z_MAX);
    printf("  %s\n", what);
    check_true(what, worst_paper > Z_MAX);
}

static void test_forms(nm_ctx *ctx)
{
    nm_cov *cov;
    /* isotropic σ² = 0.7 */
    memset(L, 0, sizeof L);
    for (int i = 0; i < N; i++) L[i * N + i] = sqrt(0.7);
    nm_cov_isotropic(ctx, N, 0.7, &cov);
    check_form(ctx, "isotropic", cov);
    nm_cov_free(ctx, cov);
    /* diagonal */
    double v[N];
    for (int i = 0; i < N; i++) v[i] = 0.2 + 0.1 * i;
    memset(L, 0, sizeof L);
    for (int i = 0; i < N; i++) L[i * N + i] = sqrt(v[i]);
    nm_cov_diagonal(ctx, N, v, &cov);
    check_form(ctx, "diagonal", cov);
    nm_cov_free(ctx, cov);
    /* factor (random, rank N) and the full matrix it gives */
    sm_state = 99;
    for (int i = 0; i < N * N; i++) L[i] = 0.35 * gauss();
    nm_cov_factor(ctx, N, N, L, &cov);
    check_form(ctx, "factor", cov);
    nm_cov_free(ctx, cov);
    double C[N * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int l = 0; l < N; l++) s += L[i * N + l] * L[j * N + l];
            C[i * N + j] = s;
        }
    check_true("full covariance accepted", nm_cov_full(ctx, N, C, &cov) == NM_OK);
    check_form(ctx, "full", cov);
    nm_cov_free(ctx, cov);
}

/* The library's sampler agrees with the analytic moments and does not
 * depend on the thread count. */
static void test_library_mc(nm_ctx *ctx)
{
    nm_array a = arr(A, 2, P, N), b = arr(B, 2, D, P), e1 = arr(c1, 1, P, 0), e2 = arr(c2, 1, D, 0),
             m = arr(mu, 1, N, 0);
    nm_ara net = {&a, &e1, &b, &e2};
    nm_cov *cov;
    nm_cov_isotropic(ctx, N, 0.5, &cov);
    nm_rng rng = {2024};
    nm_mc_result r1, r2;
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    check_true("MC 1 thread", nm_ara_montecarlo(ctx, &net, &m, cov, 300001, &rng, 1, &r1) == NM_OK);
    omp_set_num_threads(2);
    openblas_set_num_threads(2);
    check_true("MC 2 threads", nm_ara_montecarlo(ctx, &net, &m, cov, 300001, &rng, 1, &r2) == NM_OK);
    check_true("MC identical for 1 and 2 threads",
               !memcmp(r1.mean, r2.mean, D * sizeof(double)) && !memcmp(r1.var, r2.var, D * sizeof(double)) &&
                   !memcmp(r1.cov, r2.cov, D * D * sizeof(double)));
    nm_moments mom;
    nm_ara_options o = {NM_METHOD_EXACT, NM_PREC_DOUBLE, 1, 0};
    nm_ara_moments(ctx, &net, &m, cov, &o, &mom);
    for (int i = 0; i < D; i++) {
        char what[96];
        double zm = (r1.mean[i] - mom.mean[i]) / r1.mean_se[i], zv = (r1.var[i] - mom.var[i]) / r1.var_se[i];
        snprintf(what, sizeof what, "library MC vs exact: mean z=%.2f var z=%.2f", zm, zv);
        check_true(what, fabs(zm) < Z_MAX && fabs(zv) < Z_MAX);
        check_close("MC cov diagonal = MC var", r1.cov[i * D + i], r1.var[i], 0, TOL_MC_SAME);
    }
    nm_moments_free(ctx, &mom);
    nm_mc_result_free(ctx, &r1);
    nm_mc_result_free(ctx, &r2);
    nm_cov_free(ctx, cov);
}

/* The batched matrix equals the scalar kernels entry by entry. */
static void test_matrix(nm_ctx *ctx)
{
    enum { Q = 7 };
    double S[Q * Q], C[Q * Q], m[Q], F[Q * Q];
    sm_state = 5;
    for (int i = 0; i < Q * Q; i++) F[i] = gauss();
    for (int i = 0; i < Q; i++) m[i] = 2 * gauss();
    for (int i = 0; i < Q; i++)
        for (int j = 0; j < Q; j++) {
            double s = 0;
            for (int l = 0; l < Q; l++) s += F[i * Q + l] * F[j * Q + l];
            S[i * Q + j] = s;
        }
    S[3 * Q + 1] = S[1 * Q + 3] = 0.97 * sqrt(S[3 * Q + 3] * S[1 * Q + 1]); /* a high-correlation pair */
    for (int meth = 0; meth < 2; meth++) {
        nm_relu_cov_matrix(ctx, Q, m, S, meth ? NM_METHOD_EXACT : NM_METHOD_PAPER, C);
        for (int u = 0; u < Q; u++)
            for (int v = 0; v < Q; v++) {
                double su = sqrt(S[u * Q + u]), sv = sqrt(S[v * Q + v]), rho = u == v ? 1 : S[u * Q + v] / (su * sv);
                double want = meth ? (u == v ? nm_relu_var(m[u], su) : nm_relu_pair_cov(m[u], m[v], su, sv, rho))
                                   : nm_relu_pair_m0(su, sv, rho) - su * sv / (2 * M_PI);
                check_close("relu_cov_matrix entry", C[u * Q + v], want, TOL_KERNEL_ABS, TOL_SAME_SUM);
            }
    }
}

int main(void)
{
    nm_ctx *ctx = nm_ctx_create();
    random_net();
    test_matrix(ctx);
    test_forms(ctx);
    test_library_mc(ctx);
    nm_ctx_free(ctx);
    return check_finish("test_ara");
}
