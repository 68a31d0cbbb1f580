/*
 * bench/attack.c — what one step of the Gaussian attacks costs, on the
 * shipped LeNet (models/lenet-mnist.onnx) at held-out digit 0, sigma^2 = 1:
 * forming the linearization once (nm_linearized_create: A by jvp columns,
 * A∘A), then per evaluation the logits' mean with its d×n Jacobians
 * (nm_linearized_mean_grad) and the variances with theirs
 * (nm_linearized_var_grad), each the median of several repetitions; beside
 * them, in the same run, one evaluation of the exact moments
 * (nm_net_moments, linearization included) and what central differences of
 * it would cost for the same gradients (2n + 1 evaluations), and the ratio.
 * Run from the repository root after scripts/setup.sh.
 * Usage: bench/attack [--reps R]
 */
#define BENCH_NAME "bench/attack"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

int main(int argc, char **argv)
{
    int reps = 5;
    if (argc == 3 && !strcmp(argv[1], "--reps")) reps = atoi(argv[2]);
    else if (argc != 1) return fprintf(stderr, "usage: bench/attack [--reps R]\n"), 2;
    if (reps < 1 || reps > 100) return fprintf(stderr, "bench/attack: --reps must be 1..100\n"), 2;
    nm_ctx *ctx = nm_ctx_create();
    nm_net *net;
    nm_dataset ds;
    bench_lenet(ctx, &net, &ds);
    enum { N = 784 };
    static float x[N];
    static double mu[N], v[N];
    nm_dataset_images(ctx, &ds, NULL, 1, nm_net_get_input_scale(net), x);
    for (int k = 0; k < N; k++) mu[k] = x[k], v[k] = 1;
    nm_array xa = {NM_F32, 4, {1, 1, 28, 28}, x};
    double *t_lin = calloc((size_t)reps, sizeof(double)), *t_mean = calloc((size_t)reps, sizeof(double));
    double *t_var = calloc((size_t)reps, sizeof(double)), *t_mom = calloc((size_t)reps, sizeof(double));
    nm_linearized *l = NULL;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        nm_linearized_free(ctx, l);
        if (nm_linearized_create(ctx, net, &xa, NULL, &l) != NM_OK) die(ctx, "linearize");
        t_lin[r] = now() - t0;
        nm_moment_grad g;
        t0 = now();
        if (nm_linearized_mean_grad(ctx, l, mu, v, &g) != NM_OK) die(ctx, "mean gradients");
        t_mean[r] = now() - t0;
        nm_moment_grad_free(ctx, &g);
        nm_moment_grad gv;
        t0 = now();
        if (nm_linearized_var_grad(ctx, l, mu, v, &gv) != NM_OK) die(ctx, "variance gradients");
        t_var[r] = now() - t0;
        nm_moment_grad_free(ctx, &gv);
        nm_cov *cov;
        nm_moments m;
        if (nm_cov_isotropic(ctx, N, 1.0, &cov) != NM_OK) die(ctx, "covariance");
        nm_net_moments_options o = nm_net_moments_options_default();
        t0 = now();
        if (nm_net_moments(ctx, net, &xa, cov, &o, &m) != NM_OK) die(ctx, "moments");
        t_mom[r] = now() - t0;
        nm_moments_free(ctx, &m);
        nm_cov_free(ctx, cov);
    }
    double lin = median(t_lin, reps), mean = median(t_mean, reps), var = median(t_var, reps), mom = median(t_mom, reps);
    int64_t d = nm_linearized_outputs(l);
    printf("shipped LeNet, held-out digit 0, sigma^2 = 1, median of %d (1 linearization, d = %lld logits, n = %d inputs):\n", reps, (long long)d, N);
    printf("  linearize once (A by jvp columns, A.A)        %8.4f s\n", lin);
    printf("  mean + d x n Jacobians in mu and v            %8.4f s\n", mean);
    printf("  variances (exact) + d x n Jacobians           %8.4f s\n", var);
    printf("  one nm_net_moments (exact, linearization in)  %8.4f s\n", mom);
    printf("  central differences of it for mu and v: %d evaluations = %.1f s: %.0fx the mean's analytic gradients, %.0fx the variances'\n",
           2 * 2 * N + 1, (2 * 2 * N + 1) * mom, (2 * 2 * N + 1) * mom / mean, (2 * 2 * N + 1) * mom / var);
    printf("  a 300-evaluation attack, linearized once: %.2f s of moments (%.4f s per evaluation)\n", lin + 300 * mean, mean);
    nm_linearized_free(ctx, l);
    free(t_lin), free(t_mean), free(t_var), free(t_mom);
    nm_dataset_free(ctx, &ds);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return 0;
}
