/*
 * bench/moments.c — prints, in one run, on the shipped LeNet
 * (models/lenet-mnist.onnx) and held-out digit 0 with sigma^2 = 1:
 * method exact (10 means and variances, linearization included; best of 5)
 * against a 75,000-sample Monte Carlo of the same network, and the
 * speed-up; the time to form A (1024 x 784, the bottom part up to the last
 * ReLU) by 784 jvp columns and by 1024 vjp rows; and the peak resident
 * memory. With --alexnet, also an AlexNet-size split (torchvision's
 * layout, random weights, p = 4096, n = 150,528) under 7×7 windowed noise:
 * A (4.9 GB in double) exceeds the 2 GiB budget, so S is accumulated from
 * jvp passes; its time and the peak memory are printed.
 * Run from the repository root after scripts/setup.sh.
 * Usage: bench/moments [--mc N] [--alexnet]
 */
#include "netmoments.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(nm_ctx *ctx, const char *what)
{
    fprintf(stderr, "bench/moments: %s: %s\n", what, nm_ctx_message(ctx));
    exit(1);
}

int main(int argc, char **argv)
{
    long mc = 75000;
    int alexnet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mc") && i + 1 < argc) mc = atol(argv[++i]);
        else if (!strcmp(argv[i], "--alexnet")) alexnet = 1;
        else {
            fprintf(stderr, "usage: bench/moments [--mc N] [--alexnet]\n");
            return 2;
        }
    }
    nm_ctx *ctx = nm_ctx_create();
    nm_net *net;
    nm_dataset ds;
    if (nm_net_read_onnx(ctx, "models/lenet-mnist.onnx", &net) != NM_OK) die(ctx, "model");
    if (nm_dataset_read_idx(ctx, "data/mnist/test-images-idx3-ubyte.gz", "data/mnist/test-labels-idx1-ubyte.gz", &ds) != NM_OK)
        die(ctx, "data (run scripts/setup.sh)");
    float x[784];
    nm_dataset_images(ctx, &ds, NULL, 1, nm_net_get_input_scale(net), x);
    nm_array mu = {NM_F32, 4, {1, 1, 28, 28}, x};
    nm_cov *cov;
    nm_cov_isotropic(ctx, 784, 1.0, &cov);
    printf("bench/moments: shipped LeNet, held-out digit 0, sigma^2 = 1, %d OpenMP threads\n", omp_get_max_threads());

    nm_net_moments_options o = nm_net_moments_options_default();
    nm_moments m;
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        if (nm_net_moments(ctx, net, &mu, cov, &o, &m) != NM_OK) die(ctx, "moments");
        best = fmin(best, now() - t0);
        if (r < 4) nm_moments_free(ctx, &m);
    }
    nm_rng rng = {1};
    nm_mc_result r;
    double t0 = now();
    if (nm_net_montecarlo(ctx, net, &mu, cov, mc, &rng, 0, NULL, NULL, &r) != NM_OK) die(ctx, "monte carlo");
    double tmc = now() - t0, rm0 = 1e30, rm1 = -1e30, rv0 = 1e30, rv1 = -1e30;
    for (int i = 0; i < 10; i++) {
        rm0 = fmin(rm0, r.mean[i] / m.mean[i]), rm1 = fmax(rm1, r.mean[i] / m.mean[i]);
        rv0 = fmin(rv0, r.var[i] / m.var[i]), rv1 = fmax(rv1, r.var[i] / m.var[i]);
    }
    printf("  exact, 10 means and variances:   %.4f s (best of 5, linearization included)\n", best);
    printf("  Monte Carlo, %ld samples:     %.3f s  ->  analytic is %.0fx faster\n", mc, tmc, tmc / best);
    printf("  MC / exact over the 10 logits: means %.4f..%.4f, variances %.4f..%.4f\n", rm0, rm1, rv0, rv1);

    /* A by columns and by rows */
    int k = nm_net_relu_node(net, nm_net_relu_count(net));
    nm_array y, out;
    if (nm_net_forward(ctx, net, 0, k - 1, &mu, &y) != NM_OK) die(ctx, "forward");
    int64_t p = nm_array_numel(&y);
    nm_array E, U;
    int64_t es[4] = {784, 1, 28, 28}, us[2] = {p, p};
    nm_array_alloc(ctx, &E, NM_F32, 4, es);
    nm_array_alloc(ctx, &U, NM_F32, 2, us);
    for (int j = 0; j < 784; j++) ((float *)E.data)[j * 784 + j] = 1;
    for (int64_t j = 0; j < p; j++) ((float *)U.data)[j * p + j] = 1;
    double tj = 1e30, tv = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        t0 = now();
        if (nm_net_jvp(ctx, net, 0, k - 1, &E, &out) != NM_OK) die(ctx, "jvp");
        tj = fmin(tj, now() - t0);
        nm_array_free(ctx, &out);
        t0 = now();
        if (nm_net_vjp(ctx, net, 0, k - 1, &U, &out) != NM_OK) die(ctx, "vjp");
        tv = fmin(tv, now() - t0);
        nm_array_free(ctx, &out);
    }
    printf("  A (%lld x 784): 784 jvp columns %.3f s, %lld vjp rows %.3f s (best of 3)\n", (long long)p, tj, (long long)p, tv);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  peak resident memory: %.0f MiB\n", ru.ru_maxrss / 1024.0);
    nm_array_free(ctx, &E), nm_array_free(ctx, &U), nm_array_free(ctx, &y);
    if (alexnet) {
        nm_net *ax;
        if (nm_net_create(ctx, NM_ARCH_ALEXNET, 1, 1.0, &ax) != NM_OK) die(ctx, "alexnet");
        nm_array xa;
        int64_t xs[4] = {1, 3, 224, 224};
        nm_array_alloc(ctx, &xa, NM_F32, 4, xs);
        nm_rng_normals(&rng, 77, 0, 3 * 224 * 224, xa.data);
        nm_cov *win;
        nm_cov_window(ctx, 3, 224, 224, 100, 100, 7, 7, 1.0, &win);
        nm_moments am;
        t0 = now();
        if (nm_net_moments(ctx, ax, &xa, win, &o, &am) != NM_OK) die(ctx, "alexnet moments");
        double ta = now() - t0;
        getrusage(RUSAGE_SELF, &ru);
        printf("  AlexNet layout (p 4096, n 150528, d 1000), 7x7 window: exact in %.2f s through the operator path;"
               " peak resident memory now %.0f MiB\n", ta, ru.ru_maxrss / 1024.0);
        nm_moments_free(ctx, &am);
        nm_cov_free(ctx, win);
        nm_array_free(ctx, &xa);
        nm_net_free(ctx, ax);
    }
    nm_moments_free(ctx, &m);
    nm_mc_result_free(ctx, &r);
    nm_cov_free(ctx, cov);
    nm_dataset_free(ctx, &ds);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return 0;
}
