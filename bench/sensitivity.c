/*
 * bench/sensitivity.c — the speed of the spatial sensitivity maps (Fig 3)
 * against sampling, in one run, on the shipped LeNet and the first K
 * held-out digits (default 40, spread over the classes): positions per
 * second of nm_sensitivity_run (7×7 window, stride 1, σ² = 200: 484
 * positions an image), and the Monte Carlo's samples per second on the
 * same machine (one position, nm_net_montecarlo with the window's
 * covariance), from which the time the Monte Carlo would take for the map
 * over all 1,996 digits at 75,000 samples a position (the paper's count)
 * and at 20,000 follows. Run from the repository root after scripts/setup.sh.
 * Usage: bench/sensitivity [--images K] [--mc N] [--flip]
 */
#define BENCH_NAME "bench/sensitivity"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    int64_t K = 40, mc = 20000;
    int flip = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--images") && i + 1 < argc) K = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--mc") && i + 1 < argc) mc = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--flip")) flip = 1;
        else return fprintf(stderr, "usage: bench/sensitivity [--images K] [--mc N] [--flip]\n"), 2;
    }
    if (K < 1 || mc < 2) return fprintf(stderr, "bench/sensitivity: --images >= 1, --mc >= 2\n"), 2;
    nm_ctx *ctx = nm_ctx_create();
    nm_net *net;
    nm_dataset ds;
    bench_lenet(ctx, &net, &ds);
    if (K > ds.n) K = ds.n;
    int64_t *idx = malloc((size_t)K * sizeof(int64_t));
    float *X = malloc((size_t)(K * 784) * sizeof(float));
    for (int64_t i = 0; i < K; i++) idx[i] = (int64_t)((double)i * (double)ds.n / (double)K);
    if (nm_dataset_images(ctx, &ds, idx, K, nm_net_get_input_scale(net), X) != NM_OK) die(ctx, "images");
    nm_sensitivity_options o = nm_sensitivity_options_default();
    o.flip = flip;
    nm_sensitivity s;
    double t0 = now();
    if (nm_sensitivity_run(ctx, net, X, NULL, K, &o, &s) != NM_OK) die(ctx, "sensitivity");
    double t_map = now() - t0, positions = (double)(K * s.P * s.Q), rate = positions / t_map;
    nm_cov *cov;
    nm_mc_result r;
    nm_rng rng = {1};
    nm_array mu = {NM_F32, 4, {1, 1, 28, 28}, X};
    if (nm_cov_window(ctx, 1, 28, 28, 10, 10, 7, 7, o.sigma2, &cov) != NM_OK) die(ctx, "window");
    t0 = now();
    if (nm_net_montecarlo(ctx, net, &mu, cov, mc, &rng, 0, NULL, NULL, &r) != NM_OK) die(ctx, "monte carlo");
    double t_mc = now() - t0, sps = (double)mc / t_mc, all = 1996.0 * (double)(s.P * s.Q);
    printf("sensitivity map (7x7 window, stride 1, sigma2 %g%s): %lld digits x %lld positions in %.2f s: %.0f positions/s\n", o.sigma2,
           flip ? ", with flip probabilities" : "", (long long)K, (long long)(s.P * s.Q), t_map, rate);
    printf("  all 1,996 held-out digits: %.1f min analytic\n", all / rate / 60);
    printf("Monte Carlo of the real net, one position: %lld samples in %.2f s: %.0f samples/s\n", (long long)mc, t_mc, sps);
    printf("  the same map by sampling: %.1f days at 75,000 samples a position, %.1f days at 20,000 (%.3g x and %.3g x the analytic time)\n",
           all * 75000 / sps / 86400, all * 20000 / sps / 86400, all * 75000 / sps / (all / rate), all * 20000 / sps / (all / rate));
    nm_mc_result_free(ctx, &r);
    nm_cov_free(ctx, cov);
    nm_sensitivity_free(ctx, &s);
    free(idx), free(X);
    nm_dataset_free(ctx, &ds);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return 0;
}
