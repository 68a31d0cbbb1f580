/*
 * bench/forward.c — prints, in one run, the network engine's throughput on
 * this machine: forward images/s at batch 1000 for the paper's LeNet and
 * Caffe's smaller LeNet (20/50/500, the model bench/torch_forward.py times
 * in PyTorch); jvp and vjp throughput of the paper's LeNet at one primal
 * (784 tangents through the whole net and through its bottom part up to the
 * last ReLU, i.e. the columns of A in DESIGN §1.6; 1024 cotangents back
 * through that bottom part, its rows; 1000 cotangents from the logits).
 * Best and median of several repetitions; weights random (seeded).
 * Usage: bench/forward [--reps R]
 */
#define BENCH_NAME "bench/forward"
#include "bench.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static nm_array randn(nm_ctx *ctx, int ndim, const int64_t *shape, double scale, uint64_t stream)
{
    nm_array a;
    if (nm_array_alloc(ctx, &a, NM_F32, ndim, shape) != NM_OK) die(ctx, "alloc");
    nm_rng rng = {7};
    int64_t n = nm_array_numel(&a);
    nm_rng_normals(&rng, stream, 0, n, a.data);
    for (int64_t i = 0; i < n; i++) ((float *)a.data)[i] *= (float)scale;
    return a;
}

typedef enum { FWD, JVP, VJP } kind;

/* Times one pass R times; returns items/s of the best run and the median in *med. */
static double timed(nm_ctx *ctx, nm_net *net, kind k, int first, int last, const nm_array *in, int64_t items, int reps,
                    double *med)
{
    double t[32];
    for (int r = 0; r <= reps; r++) { /* the first run warms up */
        nm_array out;
        double t0 = now();
        nm_status st = k == FWD ? nm_net_forward(ctx, net, first, last, in, &out)
                       : k == JVP ? nm_net_jvp(ctx, net, first, last, in, &out)
                                  : nm_net_vjp(ctx, net, first, last, in, &out);
        double dt = now() - t0;
        if (st != NM_OK) die(ctx, "pass");
        nm_array_free(ctx, &out);
        if (r) t[r - 1] = dt;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    *med = (double)items / t[reps / 2];
    return (double)items / t[0];
}

int main(int argc, char **argv)
{
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench/forward [--reps R]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 32) reps = 5;
    nm_ctx *ctx = nm_ctx_create();
    printf("bench/forward: %d OpenMP threads, best (median) of %d runs\n", omp_get_max_threads(), reps);
    const int64_t B = 1000;
    nm_arch archs[2] = {NM_ARCH_LENET, NM_ARCH_LENET_SMALL};
    for (int a = 0; a < 2; a++) {
        nm_net *net;
        if (nm_net_create(ctx, archs[a], 1, 1.0, &net) != NM_OK) die(ctx, "create");
        int64_t shape[4] = {B, 1, 28, 28};
        nm_array x = randn(ctx, 4, shape, 60.0, 1);
        double med, best = timed(ctx, net, FWD, 0, -1, &x, B, reps, &med);
        printf("  forward %-12s batch %lld: %8.0f images/s (%.0f)\n", nm_arch_str(archs[a]), (long long)B, best, med);
        nm_array_free(ctx, &x);
        nm_net_free(ctx, net);
    }
    /* jvp / vjp at one primal of the paper's LeNet */
    nm_net *net;
    if (nm_net_create(ctx, NM_ARCH_LENET, 1, 1.0, &net) != NM_OK) die(ctx, "create");
    int64_t one[4] = {1, 1, 28, 28}, cols[4] = {784, 1, 28, 28};
    nm_array x = randn(ctx, 4, one, 60.0, 2), y, t = randn(ctx, 4, cols, 1.0, 3);
    int relu = nm_net_relu_node(net, nm_net_relu_count(net)), last = nm_net_node_count(net) - 1;
    if (nm_net_forward(ctx, net, 0, -1, &x, &y) != NM_OK) die(ctx, "forward");
    double med, best = timed(ctx, net, JVP, 0, last, &t, 784, reps, &med);
    printf("  jvp  784 tangents, whole net:           %8.0f tangents/s (%.0f)\n", best, med);
    best = timed(ctx, net, JVP, 0, relu, &t, 784, reps, &med);
    printf("  jvp  784 tangents, to the last ReLU:    %8.0f tangents/s (%.0f), A (1024x784) by columns in %.3f s\n", best,
           med, 784 / med);
    int64_t rows[2] = {1024, 1024}, logit_rows[2] = {1000, 10};
    nm_array u = randn(ctx, 2, rows, 1.0, 4), ul = randn(ctx, 2, logit_rows, 1.0, 5);
    best = timed(ctx, net, VJP, 0, relu, &u, 1024, reps, &med);
    printf("  vjp 1024 cotangents, from the last ReLU: %8.0f cotangents/s (%.0f), A by rows in %.3f s\n", best, med,
           1024 / med);
    best = timed(ctx, net, VJP, 0, last, &ul, 1000, reps, &med);
    printf("  vjp 1000 cotangents, from the logits:   %8.0f cotangents/s (%.0f)\n", best, med);
    nm_array_free(ctx, &x), nm_array_free(ctx, &y), nm_array_free(ctx, &t), nm_array_free(ctx, &u), nm_array_free(ctx, &ul);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return 0;
}
