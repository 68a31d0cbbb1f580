/*
 * bench/ara.c — prints, in one run: analytic mean+variance (exact and
 * paper) vs a 75,000-sample Monte Carlo of the same ARA network for
 * (n, p, d) = (784, 1024, 10) with isotropic and full Σ and
 * (9216, 4096, 1000) with diagonal Σ; and the GFLOP/s of the BLAS-bound
 * steps (SYRK for S, SYMM for B C) next to SGEMM/DGEMM peak measured here.
 * Usage: bench/ara [--quick]  (--quick skips the large Monte Carlo)
 */
#define BENCH_NAME "bench/ara"
#include "bench.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MC_SAMPLES 75000

static void fill(float *x, int64_t n, double scale, uint64_t stream)
{
    nm_rng rng = {42};
    nm_rng_normals(&rng, stream, 0, n, x);
    for (int64_t i = 0; i < n; i++) x[i] *= (float)scale;
}

/* Best of 3 GFLOP/s for an m×m×m GEMM. */
static void gemm_peak(int m, double *sgf, double *dgf)
{
    float *a = malloc(sizeof(float) * 3 * m * m);
    double *d = malloc(sizeof(double) * 3 * m * m);
    fill(a, 3LL * m * m, 1, 99);
    for (int64_t i = 0; i < 3LL * m * m; i++) d[i] = a[i];
    double best_s = 1e30, best_d = 1e30;
    for (int r = 0; r < 3; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1, a, m, a + m * m, m, 0, a + 2 * m * m, m);
        best_s = fmin(best_s, now() - t);
        t = now();
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1, d, m, d + m * m, m, 0, d + 2 * m * m, m);
        best_d = fmin(best_d, now() - t);
    }
    *sgf = 2.0 * m * m * m / best_s / 1e9;
    *dgf = 2.0 * m * m * m / best_d / 1e9;
    free(a);
    free(d);
}

/* SYRK p×p from p×k and SYMM d×p by p×p, as the library calls them. */
static void blas_steps(int p, int k, int d, double sgemm, double dgemm)
{
    float *A = malloc(sizeof(float) * ((size_t)p * k + (size_t)p * p + 2 * (size_t)d * p));
    fill(A, (int64_t)p * k, 0.01, 7);
    float *S = A + (size_t)p * k, *B = S + (size_t)p * p, *T = B + (size_t)d * p;
    fill(B, (int64_t)d * p, 0.01, 8);
    double t = now();
    cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, p, k, 1, A, k, 0, S, p);
    double ts = now() - t;
    t = now();
    cblas_ssymm(CblasRowMajor, CblasRight, CblasLower, d, p, 1, S, p, B, p, 0, T, p);
    double tm = now() - t;
    double fs = (double)p * p * k / ts / 1e9, fm = 2.0 * d * p * p / tm / 1e9;
    printf("  SSYRK  p=%d k=%d: %.3f s, %.0f GFLOP/s = %.0f%% of SGEMM peak\n", p, k, ts, fs, 100 * fs / sgemm);
    printf("  SSYMM  d=%d p=%d: %.3f s, %.0f GFLOP/s = %.0f%% of SGEMM peak\n", d, p, tm, fm, 100 * fm / sgemm);
    double *Ad = malloc(sizeof(double) * ((size_t)p * k + (size_t)p * p));
    for (size_t i = 0; i < (size_t)p * k; i++) Ad[i] = A[i];
    t = now();
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, p, k, 1, Ad, k, 0, Ad + (size_t)p * k, p);
    ts = now() - t;
    fs = (double)p * p * k / ts / 1e9;
    printf("  DSYRK  p=%d k=%d: %.3f s, %.0f GFLOP/s = %.0f%% of DGEMM peak\n", p, k, ts, fs, 100 * fs / dgemm);
    free(Ad);
    free(A);
}

static void run_case(nm_ctx *ctx, int64_t n, int64_t p, int64_t d, nm_cov_kind kind, int do_mc)
{
    nm_array A, c1, B, c2, mu;
    int64_t sA[2] = {p, n}, sB[2] = {d, p};
    nm_array_alloc(ctx, &A, NM_F32, 2, sA);
    nm_array_alloc(ctx, &c1, NM_F32, 1, &p);
    nm_array_alloc(ctx, &B, NM_F32, 2, sB);
    nm_array_alloc(ctx, &c2, NM_F32, 1, &d);
    nm_array_alloc(ctx, &mu, NM_F32, 1, &n);
    fill(A.data, p * n, 1 / sqrt((double)n), 1);
    fill(c1.data, p, 0.5, 2);
    fill(B.data, d * p, 1 / sqrt((double)p), 3);
    fill(c2.data, d, 0.5, 4);
    fill(mu.data, n, 1, 5);
    nm_cov *cov = NULL;
    const char *kname = kind == NM_COV_ISOTROPIC ? "isotropic" : kind == NM_COV_DIAGONAL ? "diagonal" : "full";
    double t0 = now();
    if (kind == NM_COV_ISOTROPIC) {
        nm_cov_isotropic(ctx, n, 0.5, &cov);
    } else if (kind == NM_COV_DIAGONAL) {
        double *v = malloc(sizeof(double) * n);
        for (int64_t i = 0; i < n; i++) v[i] = 0.2 + 0.6 * (double)(i % 7) / 6;
        nm_cov_diagonal(ctx, n, v, &cov);
        free(v);
    } else { /* full: Σ = F Fᵀ / n with F random n×n, factored (eigen) by nm_cov_full */
        float *F = malloc(sizeof(float) * n * n);
        double *C = calloc((size_t)(n * n), sizeof(double));
        double *Fd = malloc(sizeof(double) * n * n);
        fill(F, n * n, 1, 6);
        for (int64_t i = 0; i < n * n; i++) Fd[i] = F[i];
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)n, (int)n, 0.5 / n, Fd, (int)n, 0, C, (int)n);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i + 1; j < n; j++) C[i * n + j] = C[j * n + i];
        t0 = now();
        if (nm_cov_full(ctx, n, C, &cov) != NM_OK) printf("full cov failed: %s\n", nm_ctx_message(ctx));
        free(F);
        free(C);
        free(Fd);
    }
    double t_cov = now() - t0;
    printf("\n(n, p, d) = (%lld, %lld, %lld), %s covariance (validation + factor %.3f s)\n", (long long)n,
           (long long)p, (long long)d, kname, t_cov);
    nm_ara net = {&A, &c1, &B, &c2};
    nm_moments mom[4];
    double t[4];
    const char *label[4] = {"exact double", "exact single", "paper double", "paper single"};
    for (int i = 0; i < 4; i++) {
        nm_ara_options o = {i < 2 ? NM_METHOD_EXACT : NM_METHOD_PAPER, i % 2 ? NM_PREC_SINGLE : NM_PREC_DOUBLE, 0, 0};
        t0 = now();
        nm_status st = nm_ara_moments(ctx, &net, &mu, cov, &o, &mom[i]);
        t[i] = now() - t0;
        if (st != NM_OK) printf("failed: %s\n", nm_ctx_message(ctx));
    }
    double maxrel = 0;
    for (int64_t i = 0; i < d; i++) maxrel = fmax(maxrel, fabs(mom[1].var[i] - mom[0].var[i]) / mom[0].var[i]);
    for (int i = 0; i < 4; i++) printf("  analytic %-13s %8.3f s\n", label[i], t[i]);
    printf("  single vs double precision: max relative difference in variance %.2e\n", maxrel);
    if (do_mc) {
        nm_rng rng = {1};
        nm_mc_result r;
        t0 = now();
        nm_ara_montecarlo(ctx, &net, &mu, cov, MC_SAMPLES, &rng, 0, &r);
        double tmc = now() - t0;
        double zm = 0, zv = 0, ratio_paper_lo = 1e30, ratio_paper_hi = 0;
        for (int64_t i = 0; i < d; i++) {
            zm = fmax(zm, fabs(mom[0].mean[i] - r.mean[i]) / r.mean_se[i]);
            zv = fmax(zv, fabs(mom[0].var[i] - r.var[i]) / r.var_se[i]);
            double q = r.var[i] / mom[2].var[i];
            ratio_paper_lo = fmin(ratio_paper_lo, q);
            ratio_paper_hi = fmax(ratio_paper_hi, q);
        }
        printf("  Monte Carlo %d samples   %8.3f s  (speed-up of exact double: %.0fx)\n", MC_SAMPLES, tmc, tmc / t[0]);
        printf("  exact vs MC: max |z| mean %.2f, var %.2f (standard errors); MC/paper variance ratio %.3f..%.3f\n", zm,
               zv, ratio_paper_lo, ratio_paper_hi);
        nm_mc_result_free(ctx, &r);
    }
    for (int i = 0; i < 4; i++) nm_moments_free(ctx, &mom[i]);
    nm_cov_free(ctx, cov);
    nm_array_free(ctx, &A);
    nm_array_free(ctx, &c1);
    nm_array_free(ctx, &B);
    nm_array_free(ctx, &c2);
    nm_array_free(ctx, &mu);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    nm_ctx *ctx = nm_ctx_create();
    double sg, dg;
    gemm_peak(2048, &sg, &dg);
    printf("threads %d; SGEMM peak %.0f GFLOP/s, DGEMM peak %.0f GFLOP/s (2048^3, best of 3)\n", omp_get_max_threads(),
           sg, dg);
    blas_steps(4096, 9216, 1000, sg, dg);
    run_case(ctx, 784, 1024, 10, NM_COV_ISOTROPIC, 1);
    run_case(ctx, 784, 1024, 10, NM_COV_FULL, 1);
    run_case(ctx, 9216, 4096, 1000, NM_COV_DIAGONAL, !quick);
    nm_ctx_free(ctx);
    return 0;
}
