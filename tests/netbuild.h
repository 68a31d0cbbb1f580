/*
 * netbuild.h — building test nets through the library's internal builder
 * (src/net.h): random constants from a seeded splitmix64, nodes with
 * default attributes, and the paper's LeNet layout (DESIGN §2). Tests that
 * include it define nothing else named ctx.
 */
#ifndef NM_NETBUILD_H
#define NM_NETBUILD_H

#include "netmoments.h"
#include "../src/net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nm_ctx *ctx;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static inline double urand(void) /* splitmix64 → [0, 1) */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static inline double nrand(void)
{
    double u = urand(), v = urand();
    return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* ---------------------------------------------------------------- building test nets */

static inline float *fill_rand(int64_t n, double scale)
{
    float *f = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) f[i] = (float)(scale * nrand());
    return f;
}

static inline nm_shape shp(int n, const int64_t *d)
{
    nm_shape s = {n, {0}};
    memcpy(s.d, d, sizeof(int64_t) * (size_t)n);
    return s;
}
#define SHAPE(...) shp((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

static int cnum;
/* A float constant that takes ownership of f (numel(s) values). */
static inline int fconst(nm_net *net, nm_shape s, float *f)
{
    char name[32];
    snprintf(name, sizeof name, "c%d", cnum++);
    return nm_net_add_const(ctx, net, name, &s, f, NULL);
}

static inline int rconst(nm_net *net, nm_shape s, double scale, double offset)
{
    int64_t n = nm_shape_numel(&s);
    float *f = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) f[i] = (float)(offset + scale * nrand());
    return fconst(net, s, f);
}

/* A constant of the given values (copied). */
static inline int vconst(nm_net *net, nm_shape s, const float *v)
{
    int64_t n = nm_shape_numel(&s);
    float *f = malloc((size_t)n * sizeof(float));
    memcpy(f, v, (size_t)n * sizeof(float));
    return fconst(net, s, f);
}

static inline int iconst(nm_net *net, int n, const int64_t *v)
{
    int64_t *d = malloc((size_t)n * sizeof(int64_t));
    memcpy(d, v, (size_t)n * sizeof(int64_t));
    char name[32];
    snprintf(name, sizeof name, "i%d", cnum++);
    nm_shape s = {1, {n}};
    return nm_net_add_const(ctx, net, name, &s, NULL, d);
}

static inline int node(nm_net *net, nm_op op, int nin, const int *in, const nm_attrs *a)
{
    char name[32], out[32];
    snprintf(name, sizeof name, "n%d", net->nn);
    snprintf(out, sizeof out, "v%d", net->nv);
    nm_attrs d = nm_attrs_default(op);
    int v = nm_net_add_node(ctx, net, op, name, out, nin, in, a ? a : &d);
    if (v < 0) {
        fprintf(stderr, "building: %s\n", nm_ctx_message(ctx));
        exit(2);
    }
    return v;
}
#define NODE(net, op, a, ...) node(net, op, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]){__VA_ARGS__}, a)

static inline nm_net *start(nm_shape in, int *x)
{
    nm_net *net = nm_net_new(ctx);
    *x = nm_net_add_input(ctx, net, "x", &in);
    return net;
}

static inline void finish(nm_net *net, int v)
{
    if (nm_net_set_output(ctx, net, v) != NM_OK) {
        fprintf(stderr, "output: %s\n", nm_ctx_message(ctx));
        exit(2);
    }
}

static inline int conv(nm_net *net, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad)
{
    nm_attrs a = nm_attrs_default(NM_OP_CONV);
    a.stride[0] = a.stride[1] = stride;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = pad;
    double sc = 1.0 / sqrt((double)(cin * k * k));
    return NODE(net, NM_OP_CONV, &a, x, rconst(net, SHAPE(cout, cin, k, k), sc, 0), rconst(net, SHAPE(cout), 0.1, 0));
}

static inline int pool(nm_net *net, int x, int64_t k, int64_t s)
{
    nm_attrs a = nm_attrs_default(NM_OP_MAXPOOL);
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = s;
    return NODE(net, NM_OP_MAXPOOL, &a, x);
}

/* y = x Wᵀ + b (a Linear layer) with constants w (out×in) and b (out). */
static inline int gemm_node(nm_net *net, int x, int w, int b)
{
    nm_attrs a = nm_attrs_default(NM_OP_GEMM);
    a.trans_b = 1;
    return NODE(net, NM_OP_GEMM, &a, x, w, b);
}

static inline int linear(nm_net *net, int x, int64_t in, int64_t out)
{
    int w = rconst(net, SHAPE(out, in), 1.0 / sqrt((double)in), 0); /* weights drawn before biases */
    return gemm_node(net, x, w, rconst(net, SHAPE(out), 0.1, 0));
}

static inline nm_net *lenet(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 1, 28, 28), &x);
    int y = conv(net, x, 1, 32, 5, 1, 2);
    y = NODE(net, NM_OP_RELU, NULL, pool(net, y, 2, 2));
    y = conv(net, y, 32, 64, 5, 1, 2);
    y = NODE(net, NM_OP_RELU, NULL, pool(net, y, 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 3136, 1024));
    finish(net, linear(net, y, 1024, 10));
    return net;
}

#endif
