/*
 * bench.h — what every benchmark program needs: a monotonic clock, the
 * library's message on failure (prefixed by BENCH_NAME, defined before
 * including this), and an order on doubles for medians.
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

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
