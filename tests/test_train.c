/*
 * test_train.c — training. (1) The parameter gradients the vjp passes
 * accumulate (Conv weight and bias with padding, stride and groups; Gemm B
 * and broadcast C; MatMul B; Add's constant; PRelu's slope) against central
 * differences of L = Σ u·f(x) in double over a batch of 3 samples, each with
 * its own cotangent; the nets are linear in each parameter (no ReLU), so
 * the differences are exact up to rounding. (2) One epoch of the MLP on the
 * MNIST training digits lifts held-out accuracy from chance to far above
 * it, and the test recounts nm_evaluate's accuracy from its own forward
 * passes. (3) Two runs with one seed give bit-identical weights; another
 * seed does not; the same for the moment regularisers (--reg amr, var),
 * which move the weights away from plain training.
 */
#include "netbuild.h"
#include "check.h"

#define TOL_COUNT 1e-12 /* an accuracy recounted from the same predictions */

#define TOL_GRAD 2e-3 /* float forward passes: relative to the largest |gradient| */

/* Σ u·f(x) in double for the primal batch x. */
static double loss(nm_net *net, const float *x, int64_t bsz, const float *u)
{
    if (nm_net_run(ctx, net, 0, net->nn - 1, bsz, x) != NM_OK) return NAN;
    const nm_value *o = &net->v[net->output];
    int64_t n = nm_shape_numel(&o->xs);
    double l = 0;
    for (int64_t i = 0; i < n; i++) l += (double)u[i] * o->x[i];
    return l;
}

static void check_param_grads(const char *name, nm_net *net)
{
    const int64_t B = 3;
    nm_shape s = net->v[net->input].shape;
    int64_t n = nm_shape_numel(&s) * B;
    float *x = fill_rand(n, 1.0);
    loss(net, x, B, x); /* shapes */
    int64_t ny = nm_shape_numel(&net->v[net->output].xs);
    float *u = fill_rand(ny, 1.0);
    /* gradients by vjp */
    for (int v = 0; v < net->nv; v++)
        if (!net->v[v].varying && net->v[v].cdata) net->v[v].pg = calloc((size_t)nm_shape_numel(&net->v[v].shape), sizeof(float));
    loss(net, x, B, u);
    if (!check_true(name, nm_net_run_vjp(ctx, net, 0, net->nn - 1, B, u, NM_VJP_PARAMS) == NM_OK)) return;
    int checked = 0;
    double worst = 0;
    for (int k = 0; k < net->nn; k++) {
        const nm_node *nd = &net->node[k];
        for (int i = 0; i < nd->nin; i++) {
            int v = nd->in[i];
            if (v < 0 || !nm_op_table[nd->op]->trainable[i] || net->v[v].varying) continue;
            float *w = net->v[v].cdata, *g = net->v[v].pg;
            int64_t m = nm_shape_numel(&net->v[v].shape);
            double gmax = 1e-6;
            for (int64_t j = 0; j < m; j++) gmax = fmax(gmax, fabs(g[j]));
            for (int r = 0; r < 12; r++) { /* a dozen random entries of each parameter */
                int64_t j = (int64_t)(urand() * (double)m);
                float keep = w[j];
                double h = 0.05;
                w[j] = keep + (float)h;
                double lp = loss(net, x, B, u);
                w[j] = keep - (float)h;
                double lm = loss(net, x, B, u);
                w[j] = keep;
                double fd = (lp - lm) / (2 * h);
                char what[200];
                snprintf(what, sizeof what, "%s: d/d %s[%lld] by vjp vs central difference", name, net->v[v].name, (long long)j);
                check_close(what, g[j], fd, TOL_GRAD * gmax, 0);
                worst = fmax(worst, fabs(g[j] - fd) / gmax);
                checked++;
            }
        }
    }
    printf("  %-34s %3d parameter entries, worst %.2e of the largest gradient\n", name, checked, worst);
    free(x);
    free(u);
    nm_net_free(ctx, net);
}

static void param_grad_tests(void)
{
    int x, y;
    nm_net *net;
    nm_attrs a;

    net = start(SHAPE(1, 4, 7, 7), &x);
    a = nm_attrs_default(NM_OP_CONV);
    a.stride[0] = a.stride[1] = 2;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    a.group = 2;
    y = NODE(net, NM_OP_CONV, &a, x, rconst(net, SHAPE(6, 2, 3, 3), 0.3, 0), rconst(net, SHAPE(6), 0.3, 0));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    a = nm_attrs_default(NM_OP_GEMM);
    a.trans_b = 1;
    finish(net, NODE(net, NM_OP_GEMM, &a, y, rconst(net, SHAPE(5, 96), 0.1, 0), rconst(net, SHAPE(1, 5), 0.3, 0)));
    check_param_grads("Conv (strided, padded, grouped), Gemm", net);

    net = start(SHAPE(1, 3, 5, 5), &x);
    y = NODE(net, NM_OP_CONV, NULL, x, rconst(net, SHAPE(4, 3, 1, 1), 0.3, 0), rconst(net, SHAPE(4), 0.3, 0));
    y = NODE(net, NM_OP_ADD, NULL, y, rconst(net, SHAPE(4, 1, 1), 0.5, 0));
    finish(net, NODE(net, NM_OP_MATMUL, NULL, y, rconst(net, SHAPE(5, 2), 0.3, 0)));
    check_param_grads("Conv 1x1, Add constant, MatMul", net);

    net = start(SHAPE(1, 3, 4, 4), &x);
    y = NODE(net, NM_OP_PRELU, NULL, x, rconst(net, SHAPE(3, 1, 1), 0.3, 0.2));
    finish(net, NODE(net, NM_OP_FLATTEN, NULL, y));
    check_param_grads("PRelu slope", net);
}

static double recount(nm_net *net, const nm_dataset *ds)
{
    int64_t per = ds->rows * ds->cols, correct = 0;
    nm_scale sc = nm_net_get_input_scale(net);
    float *x = malloc((size_t)(ds->n * per) * sizeof(float));
    nm_dataset_images(ctx, ds, NULL, ds->n, sc, x);
    nm_array xa = {NM_F32, 4, {ds->n, 1, ds->rows, ds->cols}, x}, y;
    if (nm_net_forward(ctx, net, 0, -1, &xa, &y) != NM_OK) return -1;
    const float *z = y.data;
    for (int64_t i = 0; i < ds->n; i++) {
        int arg = 0;
        for (int k = 1; k < 10; k++)
            if (z[i * 10 + k] > z[i * 10 + arg]) arg = k;
        correct += arg == ds->labels[i];
    }
    nm_array_free(ctx, &y);
    free(x);
    return (double)correct / (double)ds->n;
}

static double std_of(const nm_dataset *ds, nm_scale sc)
{
    double s = 0, s2 = 0;
    int64_t n = ds->n * ds->rows * ds->cols;
    for (int64_t i = 0; i < n; i++) {
        double v = sc.a * ds->pixels[i] / 255.0 + sc.b;
        s += v, s2 += v * v;
    }
    return sqrt(s2 / (double)n - (s / (double)n) * (s / (double)n));
}

/* The last layer's weights after 10 steps of the MLP on 640 digits with k folds of noise variance S. */
static float *mlp_reg_after(const nm_dataset *small, nm_scale sc, int folds, double S, uint64_t seed, nm_regularizer reg, int64_t *nw)
{
    nm_train_options d = nm_train_options_default();
    d.epochs = 1, d.batch = 64, d.folds = folds, d.noise_sigma2 = S, d.seed = seed, d.scale = sc;
    d.reg = reg, d.reg_sigma2 = 400, d.reg_lambda = 1;
    nm_net *net;
    nm_net_create(ctx, NM_ARCH_MLP, 5, 80.0, &net);
    if (nm_train(ctx, net, small, &d) != NM_OK) {
        nm_net_free(ctx, net);
        return NULL;
    }
    int v = net->node[net->nn - 1].in[1];
    *nw = nm_shape_numel(&net->v[v].shape);
    float *w = malloc((size_t)*nw * sizeof(float));
    memcpy(w, net->v[v].cdata, (size_t)*nw * sizeof(float));
    nm_net_free(ctx, net);
    return w;
}

static float *mlp_after(const nm_dataset *small, nm_scale sc, int folds, double S, uint64_t seed, int64_t *nw)
{
    return mlp_reg_after(small, sc, folds, S, seed, NM_REG_NONE, nw);
}

/* The moment regularisers: deterministic for a seed, and they change the weights; bad options refused. */
static void reg_tests(const nm_dataset *small, nm_scale sc)
{
    int64_t nw = 0;
    float *plain = mlp_after(small, sc, 1, 0, 7, &nw);
    for (int r = NM_REG_AMR; r <= NM_REG_VAR; r++) {
        float *a = mlp_reg_after(small, sc, 1, 0, 7, (nm_regularizer)r, &nw), *b = mlp_reg_after(small, sc, 1, 0, 7, (nm_regularizer)r, &nw);
        const char *name = r == NM_REG_AMR ? "AMR" : "var";
        char what[128];
        snprintf(what, sizeof what, "--reg %s trains", name);
        if (!check_true(what, plain && a && b)) continue;
        snprintf(what, sizeof what, "--reg %s: the same seed gives bit-identical weights", name);
        check_true(what, memcmp(a, b, (size_t)nw * sizeof(float)) == 0);
        snprintf(what, sizeof what, "--reg %s: other weights than plain training", name);
        check_true(what, memcmp(a, plain, (size_t)nw * sizeof(float)) != 0);
        free(a), free(b);
    }
    free(plain);
    nm_train_options d = nm_train_options_default();
    nm_net *net;
    nm_net_create(ctx, NM_ARCH_MLP, 5, 80.0, &net);
    d.epochs = 1, d.reg = NM_REG_AMR, d.reg_sigma2 = 0, d.reg_lambda = 1;
    check_true("--reg with noise variance 0 refused", nm_train(ctx, net, small, &d) == NM_ERR_ARG);
    d.reg_sigma2 = 1, d.reg_lambda = NAN;
    check_true("--reg with a NaN weight refused", nm_train(ctx, net, small, &d) == NM_ERR_ARG);
    nm_net_free(ctx, net);
}

/* Gaussian noise augmentation: k noise-free copies are the plain step (the mean loss over duplicated rows has the
 * same gradient, up to rounding); noisy copies are a function of the seed; bad options refused. */
static void noise_tests(const nm_dataset *small, nm_scale sc)
{
    int64_t nw = 0;
    float *plain = mlp_after(small, sc, 1, 0, 7, &nw), *dup = mlp_after(small, sc, 3, 0, 7, &nw);
    float *n1 = mlp_after(small, sc, 2, 400, 7, &nw), *n2 = mlp_after(small, sc, 2, 400, 7, &nw), *n3 = mlp_after(small, sc, 2, 400, 8, &nw);
    if (!check_true("noise augmentation trains", plain && dup && n1 && n2 && n3)) return;
    double big = 0, diff = 0, moved = 0;
    for (int64_t i = 0; i < nw; i++)
        big = fmax(big, fabs(plain[i])), diff = fmax(diff, fabs(plain[i] - dup[i])), moved = fmax(moved, fabs(plain[i] - n1[i]));
    printf("  noise augmentation, 10 steps: 3 noise-free folds vs plain %.2e of the largest weight; 2 noisy folds (S 400) vs plain %.2e\n",
           diff / big, moved / big);
    check_true("3 noise-free folds: the plain steps (to rounding, 1e-4 of the largest weight)", diff <= 1e-4 * big);
    check_true("noisy folds: the same seed gives bit-identical weights", memcmp(n1, n2, (size_t)nw * sizeof(float)) == 0);
    check_true("noisy folds: another seed, other weights; and not the plain ones",
               memcmp(n1, n3, (size_t)nw * sizeof(float)) != 0 && moved > 1e-3 * big);
    free(plain), free(dup), free(n1), free(n2), free(n3);
    nm_train_options d = nm_train_options_default();
    nm_net *net;
    nm_net_create(ctx, NM_ARCH_MLP, 5, 80.0, &net);
    d.epochs = 1, d.folds = 0;
    check_true("0 folds refused", nm_train(ctx, net, small, &d) == NM_ERR_ARG);
    d.folds = 65;
    check_true("65 folds refused", nm_train(ctx, net, small, &d) == NM_ERR_ARG);
    d.folds = 2, d.noise_sigma2 = -1;
    check_true("a negative noise variance refused", nm_train(ctx, net, small, &d) == NM_ERR_ARG);
    d.noise_sigma2 = NAN;
    check_true("a NaN noise variance refused", nm_train(ctx, net, small, &d) == NM_ERR_ARG);
    nm_net_free(ctx, net);
}

static void training_tests(void)
{
    nm_dataset tr, te;
    if (!check_have("data/mnist/train-images-idx3-ubyte.gz") || !check_have("data/mnist/test-images-idx3-ubyte.gz")) return;
    if (!check_true("MNIST read",
                    nm_dataset_read_idx(ctx, "data/mnist/train-images-idx3-ubyte.gz", "data/mnist/train-labels-idx1-ubyte.gz", &tr) == NM_OK &&
                        nm_dataset_read_idx(ctx, "data/mnist/test-images-idx3-ubyte.gz", "data/mnist/test-labels-idx1-ubyte.gz", &te) == NM_OK))
        return;
    nm_train_options o = nm_train_options_default();
    o.epochs = 1;
    o.scale = (nm_scale){255.0, -127.5};
    nm_net *net;
    nm_net_create(ctx, NM_ARCH_MLP, 3, std_of(&tr, o.scale), &net);
    nm_net_set_input_scale(ctx, net, o.scale);
    nm_eval_result before, after;
    nm_evaluate(ctx, net, &te, &before);
    check_true("one epoch of the MLP", nm_train(ctx, net, &tr, &o) == NM_OK);
    check_true("evaluate", nm_evaluate(ctx, net, &te, &after) == NM_OK);
    double mine = recount(net, &te);
    printf("  MLP, one epoch: held-out accuracy %.4f before, %.4f after (recounted %.4f)\n", before.accuracy, after.accuracy, mine);
    check_true("accuracy far above chance (> 0.8) after one epoch", after.accuracy > 0.8);
    check_close("nm_evaluate's accuracy recounted", after.accuracy, mine, TOL_COUNT, 0);
    int64_t diag = 0, total = 0;
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) total += after.confusion[i * 10 + j], diag += i == j ? after.confusion[i * 10 + j] : 0;
    check_true("confusion matrix sums to n, its diagonal to the correct ones", total == te.n && diag == after.correct);
    nm_eval_result_free(ctx, &before);
    nm_eval_result_free(ctx, &after);
    nm_net_free(ctx, net);

    /* determinism: 40 steps of Caffe's LeNet with augmentation, twice with one seed, once with another */
    nm_dataset small = tr;
    small.n = 640;
    float *w[3];
    int64_t nw = 0;
    for (int run = 0; run < 3; run++) {
        nm_train_options d = nm_train_options_default();
        d.epochs = 4, d.batch = 64, d.augment = 2, d.seed = run == 2 ? 8 : 7;
        d.scale = o.scale;
        nm_net_create(ctx, NM_ARCH_LENET_SMALL, 5, 80.0, &net);
        nm_train(ctx, net, &small, &d);
        int v = net->node[net->nn - 1].in[1]; /* the last layer's weight */
        nw = nm_shape_numel(&net->v[v].shape);
        w[run] = malloc((size_t)nw * sizeof(float));
        memcpy(w[run], net->v[v].cdata, (size_t)nw * sizeof(float));
        nm_net_free(ctx, net);
    }
    check_true("same seed: bit-identical weights", memcmp(w[0], w[1], (size_t)nw * sizeof(float)) == 0);
    check_true("other seed: different weights", memcmp(w[0], w[2], (size_t)nw * sizeof(float)) != 0);
    for (int run = 0; run < 3; run++) free(w[run]);
    noise_tests(&small, o.scale);
    reg_tests(&small, o.scale);
    nm_dataset_free(ctx, &tr);
    nm_dataset_free(ctx, &te);
}

int main(void)
{
    ctx = nm_ctx_create();
    printf("parameter gradients:\n");
    param_grad_tests();
    printf("training:\n");
    training_tests();
    nm_ctx_free(ctx);
    return check_finish("test_train");
}
