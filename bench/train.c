/*
 * bench/train.c — prints the paper's LeNet training throughput (images/s)
 * at batch 64 (and Caffe's LeNet and the MLP beside it): one epoch of
 * nm_train (forward, softmax cross-entropy, vjp with parameter gradients,
 * Adam) over 4,096 random 28×28 images, after a warm-up epoch of 256.
 * Usage: bench/train
 */
#define BENCH_NAME "bench/train"
#include "bench.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void)
{
    nm_ctx *ctx = nm_ctx_create();
    const int64_t n = 4096;
    nm_dataset ds = {n, 28, 28, 10, malloc((size_t)(n * 784)), malloc((size_t)n)};
    uint32_t key[2] = {3, 0}, out[4];
    for (int64_t i = 0; i < n * 784; i += 4) {
        nm_philox4x32((uint32_t[4]){(uint32_t)i, 0, 0, 0}, key, out);
        for (int k = 0; k < 4 && i + k < n * 784; k++) ds.pixels[i + k] = (uint8_t)out[k];
    }
    for (int64_t i = 0; i < n; i++) ds.labels[i] = (uint8_t)(i % 10);
    printf("bench/train: %d OpenMP threads, batch 64, Adam, %lld random images per epoch\n", omp_get_max_threads(), (long long)n);
    nm_arch archs[3] = {NM_ARCH_LENET, NM_ARCH_LENET_SMALL, NM_ARCH_MLP};
    for (int a = 0; a < 3; a++) {
        nm_net *net;
        if (nm_net_create(ctx, archs[a], 1, 80.0, &net) != NM_OK) return 1;
        nm_train_options o = nm_train_options_default();
        o.epochs = 1;
        o.scale = (nm_scale){255.0, -127.5};
        nm_dataset warm = ds;
        warm.n = 256;
        if (nm_train(ctx, net, &warm, &o) != NM_OK) {
            fprintf(stderr, "bench/train: %s\n", nm_ctx_message(ctx));
            return 1;
        }
        double t0 = now();
        nm_train(ctx, net, &ds, &o);
        double dt = now() - t0;
        printf("  train %-12s %8.0f images/s (%.2f s per epoch of %lld)\n", nm_arch_str(archs[a]), (double)n / dt, dt, (long long)n);
        nm_net_free(ctx, net);
    }
    nm_dataset_free(ctx, &ds);
    nm_ctx_free(ctx);
    return 0;
}
