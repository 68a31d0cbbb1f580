/*
 * builder.c — building nets layer by layer for the built-in architectures
 * (arch.c) and the synthetic nets of the tightness experiments: Gaussian
 * constants from the counter-based RNG (one stream per random constant, in
 * creation order), Conv / Linear / pooling / unary layers named
 * conv<l>, fc<l>, <kind><l>, and the first failure kept so that a layer
 * chain can be written without checks in between (net.h).
 */
#include "net.h"

#include <stdio.h>

int nm_build_param(nm_builder *b, const char *what, nm_shape s, double sd)
{
    if (b->st != NM_OK) return -1;
    int64_t n = nm_shape_numel(&s);
    float *f = nm_alloc_zero(b->ctx, (size_t)n, sizeof(float));
    if (!f) {
        b->st = NM_ERR_NOMEM;
        return -1;
    }
    if (sd != 0) {
        nm_rng_normals(&b->rng, b->stream++, 0, n, f);
        for (int64_t i = 0; i < n; i++) f[i] *= (float)sd;
    }
    char name[64];
    snprintf(name, sizeof name, "layer%d.%s", b->layer, what);
    int v = nm_net_add_const(b->ctx, b->net, name, &s, f, NULL);
    if (v < 0) b->st = (nm_status)v;
    return v;
}

static int add(nm_builder *b, nm_op op, const char *name, int nin, const int *in, const nm_attrs *a)
{
    if (b->st != NM_OK) return -1;
    char out[64];
    snprintf(out, sizeof out, "%s.out", name);
    int v = nm_net_add_node(b->ctx, b->net, op, name, out, nin, in, a);
    if (v < 0) b->st = (nm_status)v;
    return v;
}

int nm_build_conv(nm_builder *b, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad, double w_sd,
                  double b_sd)
{
    b->layer++;
    int in[3] = {x, nm_build_param(b, "weight", (nm_shape){4, {cout, cin, k, k}}, w_sd),
                 nm_build_param(b, "bias", (nm_shape){1, {cout}}, b_sd)};
    nm_attrs a = nm_attrs_default(NM_OP_CONV);
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = pad;
    a.stride[0] = a.stride[1] = stride;
    char name[32];
    snprintf(name, sizeof name, "conv%d", b->layer);
    return add(b, NM_OP_CONV, name, 3, in, &a);
}

int nm_build_linear(nm_builder *b, int x, int64_t in_f, int64_t out_f, double w_sd, double b_sd)
{
    b->layer++;
    int in[3] = {x, nm_build_param(b, "weight", (nm_shape){2, {out_f, in_f}}, w_sd),
                 nm_build_param(b, "bias", (nm_shape){1, {out_f}}, b_sd)};
    nm_attrs a = nm_attrs_default(NM_OP_GEMM);
    a.trans_b = 1; /* PyTorch's Linear layout: weight (out, in) */
    char name[32];
    snprintf(name, sizeof name, "fc%d", b->layer);
    return add(b, NM_OP_GEMM, name, 3, in, &a);
}

int nm_build_unary(nm_builder *b, nm_op op, int x, const char *kind, const nm_attrs *a)
{
    char name[32];
    snprintf(name, sizeof name, "%s%d", kind, b->layer);
    nm_attrs d = nm_attrs_default(op);
    return add(b, op, name, 1, &x, a ? a : &d);
}

int nm_build_pool(nm_builder *b, int x, int64_t k, int64_t stride)
{
    nm_attrs a = nm_attrs_default(NM_OP_MAXPOOL);
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = stride;
    return nm_build_unary(b, NM_OP_MAXPOOL, x, "pool", &a);
}

nm_status nm_build_start(nm_ctx *ctx, uint64_t seed, const char *input, const nm_shape *shape, nm_builder *b, int *x)
{
    *b = (nm_builder){ctx, nm_net_new(ctx), {seed}, 0, 0, NM_OK};
    if (!b->net) return NM_ERR_NOMEM;
    *x = nm_net_add_input(ctx, b->net, input, shape);
    if (*x < 0) b->st = (nm_status)*x;
    return NM_OK;
}

nm_status nm_build_finish(nm_builder *b, int y, nm_net **out)
{
    if (b->st == NM_OK) b->st = nm_net_set_output(b->ctx, b->net, y);
    if (b->st != NM_OK) {
        nm_net_free(b->ctx, b->net);
        return b->st;
    }
    *out = b->net;
    return NM_OK;
}
