/*
 * bench.h — what every benchmark program needs: a monotonic clock, the
 * library's message on failure (prefixed by BENCH_NAME, defined before
 * including this), the shipped LeNet with its digits, and an order on
 * doubles for medians.
 */
#ifndef NM_BENCH_H
#define NM_BENCH_H

#include "netmoments.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline void die(nm_ctx *ctx, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", BENCH_NAME, what, nm_ctx_message(ctx));
    exit(1);
}

/* The shipped LeNet and the held-out MNIST digits (run from the repository root after scripts/setup.sh). */
static inline void bench_lenet(nm_ctx *ctx, nm_net **net, nm_dataset *ds)
{
    if (nm_net_read_onnx(ctx, "models/lenet-mnist.onnx", net) != NM_OK) die(ctx, "model");
    if (nm_dataset_read_idx(ctx, "data/mnist/test-images-idx3-ubyte.gz", "data/mnist/test-labels-idx1-ubyte.gz", ds) != NM_OK)
        die(ctx, "data (run scripts/setup.sh)");
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
