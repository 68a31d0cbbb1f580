/*
 * arch.c — the built-in architectures, freshly initialized: the paper's
 * LeNet (DESIGN §2: conv 32@5×5 pad 2 → maxpool 2 → ReLU → conv 64@5×5
 * pad 2 → maxpool 2 → ReLU → Linear 3136→1024 → ReLU → Linear 1024→10),
 * Caffe's smaller LeNet (conv 20@5×5 → maxpool → conv 50@5×5 → maxpool →
 * Linear 800→500 → ReLU → Linear 500→10, the usual PyTorch benchmark
 * model), an MLP 784→1024→10, all on (N, 1, 28, 28) inputs, and
 * torchvision's AlexNet layout on (N, 3, 224, 224) (5 conv, 3 Linear,
 * 7 ReLU; for AlexNet-size runs, not trained here). Weights He-normal
 * (std √(2/fan_in), divided by the inputs' standard deviation in the first
 * layer, so that inputs on the paper's [−127.5, 127.5] scale start the
 * layers at unit size) from the counter-based RNG, biases zero, so a seed
 * gives the same net on every machine.
 */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const arch_names[NM_ARCH_COUNT] = {"lenet", "lenet-small", "mlp", "alexnet"};
_Static_assert(sizeof arch_names / sizeof arch_names[0] == NM_ARCH_COUNT, "one name per architecture");

const char *nm_arch_str(nm_arch a)
{
    return a >= 0 && a < NM_ARCH_COUNT ? arch_names[a] : "?";
}

typedef struct {
    nm_ctx *ctx;
    nm_net *net;
    nm_rng rng;
    uint64_t stream;
    int layer;
    double input_std; /* the first layer's weights are divided by it */
    nm_status st;
} builder;

/* A constant of shape s: He-normal with fan_in, or zeros when fan_in = 0. */
static int param(builder *b, const char *what, nm_shape s, int64_t fan_in)
{
    if (b->st != NM_OK) return -1;
    int64_t n = nm_shape_numel(&s);
    float *f = nm_alloc_zero(b->ctx, (size_t)n, sizeof(float));
    if (!f) {
        b->st = NM_ERR_NOMEM;
        return -1;
    }
    if (fan_in) {
        nm_rng_normals(&b->rng, b->stream++, 0, n, f);
        float sd = (float)(sqrt(2.0 / (double)fan_in) / (b->layer == 1 ? b->input_std : 1.0));
        for (int64_t i = 0; i < n; i++) f[i] *= sd;
    }
    char name[64];
    snprintf(name, sizeof name, "layer%d.%s", b->layer, what);
    int v = nm_net_add_const(b->ctx, b->net, name, &s, f, NULL);
    if (v < 0) b->st = (nm_status)v;
    return v;
}

static int add(builder *b, nm_op op, const char *name, int nin, const int *in, const nm_attrs *a)
{
    if (b->st != NM_OK) return -1;
    char out[64];
    snprintf(out, sizeof out, "%s.out", name);
    int v = nm_net_add_node(b->ctx, b->net, op, name, out, nin, in, a);
    if (v < 0) b->st = (nm_status)v;
    return v;
}

static int conv(builder *b, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad)
{
    b->layer++;
    int in[3] = {x, param(b, "weight", (nm_shape){4, {cout, cin, k, k}}, cin * k * k),
                 param(b, "bias", (nm_shape){1, {cout}}, 0)};
    nm_attrs a = nm_attrs_default(NM_OP_CONV);
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = pad;
    a.stride[0] = a.stride[1] = stride;
    char name[32];
    snprintf(name, sizeof name, "conv%d", b->layer);
    return add(b, NM_OP_CONV, name, 3, in, &a);
}

static int linear(builder *b, int x, int64_t in_f, int64_t out_f)
{
    b->layer++;
    int in[3] = {x, param(b, "weight", (nm_shape){2, {out_f, in_f}}, in_f), param(b, "bias", (nm_shape){1, {out_f}}, 0)};
    nm_attrs a = nm_attrs_default(NM_OP_GEMM);
    a.trans_b = 1; /* PyTorch's Linear layout: weight (out, in) */
    char name[32];
    snprintf(name, sizeof name, "fc%d", b->layer);
    return add(b, NM_OP_GEMM, name, 3, in, &a);
}

static int unary(builder *b, nm_op op, int x, const char *kind, const nm_attrs *a)
{
    char name[32];
    snprintf(name, sizeof name, "%s%d", kind, b->layer);
    nm_attrs d = nm_attrs_default(op);
    return add(b, op, name, 1, &x, a ? a : &d);
}

static int pool(builder *b, int x, int64_t k, int64_t stride)
{
    nm_attrs a = nm_attrs_default(NM_OP_MAXPOOL);
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = stride;
    return unary(b, NM_OP_MAXPOOL, x, "pool", &a);
}

nm_status nm_net_create(nm_ctx *ctx, nm_arch arch, uint64_t seed, double input_std, nm_net **out)
{
    if (!ctx || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    *out = NULL;
    if (arch < 0 || arch >= NM_ARCH_COUNT) return nm_fail(ctx, NM_ERR_ARG, "unknown architecture %d", (int)arch);
    if (!(input_std > 0) || !isfinite(input_std)) return nm_fail(ctx, NM_ERR_ARG, "input_std must be positive");
    builder b = {ctx, nm_net_new(ctx), {seed}, 0, 0, input_std, NM_OK};
    if (!b.net) return NM_ERR_NOMEM;
    nm_shape in = arch == NM_ARCH_ALEXNET ? (nm_shape){4, {1, 3, 224, 224}} : (nm_shape){4, {1, 1, 28, 28}};
    int y = nm_net_add_input(ctx, b.net, "input", &in);
    if (y < 0) b.st = (nm_status)y;
    switch (arch) {
    case NM_ARCH_LENET: /* the paper's order: pool before ReLU */
        y = unary(&b, NM_OP_RELU, pool(&b, conv(&b, y, 1, 32, 5, 1, 2), 2, 2), "relu", NULL);
        y = unary(&b, NM_OP_RELU, pool(&b, conv(&b, y, 32, 64, 5, 1, 2), 2, 2), "relu", NULL);
        y = unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = unary(&b, NM_OP_RELU, linear(&b, y, 3136, 1024), "relu", NULL);
        y = linear(&b, y, 1024, 10);
        break;
    case NM_ARCH_LENET_SMALL:
        y = pool(&b, conv(&b, y, 1, 20, 5, 1, 0), 2, 2);
        y = pool(&b, conv(&b, y, 20, 50, 5, 1, 0), 2, 2);
        y = unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = unary(&b, NM_OP_RELU, linear(&b, y, 800, 500), "relu", NULL);
        y = linear(&b, y, 500, 10);
        break;
    case NM_ARCH_ALEXNET: /* torchvision's layout; its 6×6 adaptive pool is the identity at 224×224 */
        y = pool(&b, unary(&b, NM_OP_RELU, conv(&b, y, 3, 64, 11, 4, 2), "relu", NULL), 3, 2);
        y = pool(&b, unary(&b, NM_OP_RELU, conv(&b, y, 64, 192, 5, 1, 2), "relu", NULL), 3, 2);
        y = unary(&b, NM_OP_RELU, conv(&b, y, 192, 384, 3, 1, 1), "relu", NULL);
        y = unary(&b, NM_OP_RELU, conv(&b, y, 384, 256, 3, 1, 1), "relu", NULL);
        y = pool(&b, unary(&b, NM_OP_RELU, conv(&b, y, 256, 256, 3, 1, 1), "relu", NULL), 3, 2);
        y = unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = unary(&b, NM_OP_RELU, linear(&b, y, 9216, 4096), "relu", NULL);
        y = unary(&b, NM_OP_RELU, linear(&b, y, 4096, 4096), "relu", NULL);
        y = linear(&b, y, 4096, 1000);
        break;
    default: /* NM_ARCH_MLP */
        y = unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = unary(&b, NM_OP_RELU, linear(&b, y, 784, 1024), "relu", NULL);
        y = linear(&b, y, 1024, 10);
        break;
    }
    if (b.st == NM_OK) b.st = nm_net_set_output(ctx, b.net, y);
    if (b.st != NM_OK) {
        nm_net_free(ctx, b.net);
        return b.st;
    }
    *out = b.net;
    return NM_OK;
}
