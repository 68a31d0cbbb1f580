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

static const char *const arch_names[NM_ARCH_COUNT] = {"lenet", "lenet-small", "mlp", "alexnet"};
_Static_assert(sizeof arch_names / sizeof arch_names[0] == NM_ARCH_COUNT, "one name per architecture");

const char *nm_arch_str(nm_arch a)
{
    return a >= 0 && a < NM_ARCH_COUNT ? arch_names[a] : "?";
}

/* He-normal std √(2/fan_in) of the next layer; the first one's is divided
 * by the inputs' standard deviation. Biases are zero. */
static double he_sd(const nm_builder *b, int64_t fan_in, double input_std)
{
    return sqrt(2.0 / (double)fan_in) / (b->layer == 0 ? input_std : 1.0);
}

static int conv(nm_builder *b, double input_std, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad)
{
    return nm_build_conv(b, x, cin, cout, k, stride, pad, he_sd(b, cin * k * k, input_std), 0);
}

static int linear(nm_builder *b, double input_std, int x, int64_t in_f, int64_t out_f)
{
    return nm_build_linear(b, x, in_f, out_f, he_sd(b, in_f, input_std), 0);
}

nm_status nm_net_create(nm_ctx *ctx, nm_arch arch, uint64_t seed, double input_std, nm_net **out)
{
    if (!ctx || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    *out = NULL;
    if (arch < 0 || arch >= NM_ARCH_COUNT) return nm_fail(ctx, NM_ERR_ARG, "unknown architecture %d", (int)arch);
    if (!(input_std > 0) || !isfinite(input_std)) return nm_fail(ctx, NM_ERR_ARG, "input_std must be positive");
    nm_shape in = arch == NM_ARCH_ALEXNET ? (nm_shape){4, {1, 3, 224, 224}} : (nm_shape){4, {1, 1, 28, 28}};
    nm_builder b;
    int y;
    nm_status st = nm_build_start(ctx, seed, "input", &in, &b, &y);
    if (st != NM_OK) return st;
    switch (arch) {
    case NM_ARCH_LENET: /* the paper's order: pool before ReLU */
        y = nm_build_unary(&b, NM_OP_RELU, nm_build_pool(&b, conv(&b, input_std, y, 1, 32, 5, 1, 2), 2, 2), "relu", NULL);
        y = nm_build_unary(&b, NM_OP_RELU, nm_build_pool(&b, conv(&b, input_std, y, 32, 64, 5, 1, 2), 2, 2), "relu", NULL);
        y = nm_build_unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = nm_build_unary(&b, NM_OP_RELU, linear(&b, input_std, y, 3136, 1024), "relu", NULL);
        y = linear(&b, input_std, y, 1024, 10);
        break;
    case NM_ARCH_LENET_SMALL:
        y = nm_build_pool(&b, conv(&b, input_std, y, 1, 20, 5, 1, 0), 2, 2);
        y = nm_build_pool(&b, conv(&b, input_std, y, 20, 50, 5, 1, 0), 2, 2);
        y = nm_build_unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = nm_build_unary(&b, NM_OP_RELU, linear(&b, input_std, y, 800, 500), "relu", NULL);
        y = linear(&b, input_std, y, 500, 10);
        break;
    case NM_ARCH_ALEXNET: /* torchvision's layout; its 6×6 adaptive pool is the identity at 224×224 */
        y = nm_build_pool(&b, nm_build_unary(&b, NM_OP_RELU, conv(&b, input_std, y, 3, 64, 11, 4, 2), "relu", NULL), 3, 2);
        y = nm_build_pool(&b, nm_build_unary(&b, NM_OP_RELU, conv(&b, input_std, y, 64, 192, 5, 1, 2), "relu", NULL), 3, 2);
        y = nm_build_unary(&b, NM_OP_RELU, conv(&b, input_std, y, 192, 384, 3, 1, 1), "relu", NULL);
        y = nm_build_unary(&b, NM_OP_RELU, conv(&b, input_std, y, 384, 256, 3, 1, 1), "relu", NULL);
        y = nm_build_pool(&b, nm_build_unary(&b, NM_OP_RELU, conv(&b, input_std, y, 256, 256, 3, 1, 1), "relu", NULL), 3, 2);
        y = nm_build_unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = nm_build_unary(&b, NM_OP_RELU, linear(&b, input_std, y, 9216, 4096), "relu", NULL);
        y = nm_build_unary(&b, NM_OP_RELU, linear(&b, input_std, y, 4096, 4096), "relu", NULL);
        y = linear(&b, input_std, y, 4096, 1000);
        break;
    default: /* NM_ARCH_MLP */
        y = nm_build_unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = nm_build_unary(&b, NM_OP_RELU, linear(&b, input_std, y, 784, 1024), "relu", NULL);
        y = linear(&b, input_std, y, 1024, 10);
        break;
    }
    return nm_build_finish(&b, y, out);
}
