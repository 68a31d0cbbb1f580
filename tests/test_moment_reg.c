/*
 * test_moment_reg.c — the moment regularisers of training (src/moment_reg.c).
 * (1) The expected logits of an (Affine, ReLU, Affine) net, where the
 * diagonal rules are exact, against the closed form (§1.1) computed here in
 * double: the AMR loss against the cross-entropy of those, and the margin
 * variance against Σ_u d_u² Var[relu z_u]. (2) Clark's max of two and four
 * independent Gaussians through a MaxPool against 10⁶-sample Monte Carlo
 * (exact for two: within 5 standard errors; for four the fold's error is
 * printed and held to 2 %). (3) The gradients both losses accumulate, for
 * every weight and bias of a conv net with ReLU and max-pool, against
 * central differences of the loss (AMR also with the variance stopped after
 * the first ReLU). (4) Nets outside the rules are refused.
 */
#include "netbuild.h"
#include "check.h"
#include "../src/moment_reg.h"

#define TOL_CLOSED 1e-5 /* float32 forward passes against the double closed form, relative */
#define TOL_GRAD 2e-3   /* central differences of float32 passes, relative to the largest |gradient| */
#define TOL_GRAD_KINKS 5e-3 /* the same with steps of 2e-4, short enough to cross no ReLU or max kink: float rounding */
#define MC_N 1000000

static double Phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double phi(double x) { return exp(-0.5 * x * x) / sqrt(2 * M_PI); }

/* Trainable constants of the net get zeroed gradient buffers. */
static void alloc_pg(nm_net *net)
{
    for (int k = 0; k < net->nn; k++)
        for (int i = 0; i < net->node[k].nin; i++) {
            int v = net->node[k].in[i];
            if (v < 0 || net->v[v].varying || !nm_op_table[net->node[k].op]->trainable[i]) continue;
            free(net->v[v].pg);
            net->v[v].pg = calloc((size_t)nm_shape_numel(&net->v[v].shape), sizeof(float));
        }
}

static int reg_depth; /* 0: to the logits */

static double reg_loss(nm_net *net, int kind, int64_t n, const float *x, double s2, const int *y, const float *clean)
{
    double l = NAN;
    nm_mreg *r;
    if (nm_mreg_new(ctx, net, kind, reg_depth, n, &r) != NM_OK || nm_mreg_step(r, n, x, s2, 1.0, y, clean, &l) != NM_OK) {
        printf("  nm_mreg: %s\n", nm_ctx_message(ctx));
        l = NAN;
    }
    nm_mreg_free(r);
    return l / (double)n;
}

static void clean_logits(nm_net *net, int64_t n, const float *x, float *z, int64_t C)
{
    nm_net_run(ctx, net, 0, nm_net_logits_node(net), n, x);
    memcpy(z, net->v[net->node[nm_net_logits_node(net)].out].x, (size_t)(n * C) * sizeof(float));
}

/* (1) */
static void closed_form_tests(void)
{
    enum { D = 6, H = 9, C = 4, N = 3 };
    int x;
    nm_net *net = start(SHAPE(1, D), &x);
    int w1 = rconst(net, SHAPE(H, D), 0.5, 0), b1 = rconst(net, SHAPE(H), 0.3, 0);
    int y = NODE(net, NM_OP_RELU, NULL, gemm_node(net, x, w1, b1));
    int w2 = rconst(net, SHAPE(C, H), 0.5, 0), b2 = rconst(net, SHAPE(C), 0.3, 0);
    finish(net, gemm_node(net, y, w2, b2));
    const float *W1 = net->v[w1].cdata, *B1 = net->v[b1].cdata, *W2 = net->v[w2].cdata, *B2 = net->v[b2].cdata;
    float *in = fill_rand(N * D, 1.0), z[N * C];
    int lab[N] = {0, 2, 3};
    double s2 = 0.7, ce = 0, mv = 0;
    clean_logits(net, N, in, z, C);
    for (int r = 0; r < N; r++) {
        double ez[C], vr[H];
        for (int c = 0; c < C; c++) ez[c] = B2[c];
        for (int u = 0; u < H; u++) {
            double m = B1[u], v = 0;
            for (int k = 0; k < D; k++) m += (double)W1[u * D + k] * in[r * D + k], v += s2 * W1[u * D + k] * W1[u * D + k];
            double s = sqrt(v), a = m / s, er = m * Phi(a) + s * phi(a);
            vr[u] = (m * m + v) * Phi(a) + m * s * phi(a) - er * er;
            for (int c = 0; c < C; c++) ez[c] += (double)W2[c * H + u] * er;
        }
        double mx = ez[0], se = 0;
        for (int c = 1; c < C; c++) mx = fmax(mx, ez[c]);
        for (int c = 0; c < C; c++) se += exp(ez[c] - mx);
        ce += (mx + log(se) - ez[lab[r]]) / N;
        int j = lab[r] == 0 ? 1 : 0;
        for (int c = 0; c < C; c++)
            if (c != lab[r] && z[r * C + c] > z[r * C + j]) j = c;
        for (int u = 0; u < H; u++) {
            double d = (double)W2[lab[r] * H + u] - W2[j * H + u];
            mv += d * d * vr[u] / N;
        }
    }
    double amr = reg_loss(net, NM_REG_AMR, N, in, s2, lab, z), var = reg_loss(net, NM_REG_VAR, N, in, s2, lab, z);
    printf("  (Affine, ReLU, Affine): AMR loss %.9f vs closed form %.9f; margin variance %.9f vs %.9f\n", amr, ce, var, mv);
    check_close("AMR: cross-entropy of the expected logits, closed form", amr, ce, 0, TOL_CLOSED);
    check_close("var: the margin's variance under the diagonal rules, closed form", var, mv, 0, TOL_CLOSED);
    free(in);
    nm_net_free(ctx, net);
}

/* (2) E[max] of k independent N(m_i, v_i) through MaxPool(1 x k) -> Gemm [1; 0]: the AMR loss with label 1
 * is log(1 + exp(E max)), so E max = log(exp(L) − 1). */
static void max_test(int k, const double *m, const double *v, int exact)
{
    int x;
    nm_net *net = start(SHAPE(1, 1, 1, k), &x);
    nm_attrs a = nm_attrs_default(NM_OP_MAXPOOL);
    a.kernel[0] = 1, a.kernel[1] = k, a.stride[0] = a.stride[1] = 1;
    int y = NODE(net, NM_OP_FLATTEN, NULL, NODE(net, NM_OP_MAXPOOL, &a, x));
    finish(net, gemm_node(net, y, vconst(net, SHAPE(2, 1), (float[]){1, 0}), vconst(net, SHAPE(2), (float[]){0, 0})));
    /* the regulariser's noise is N(0, v I): distinct means, one variance v[0] */
    float in[8];
    for (int i = 0; i < k; i++) in[i] = (float)m[i];
    int lab = 1;
    float z[2];
    clean_logits(net, 1, in, z, 2);
    double L = reg_loss(net, NM_REG_AMR, 1, in, v[0], &lab, z), emax = log(expm1(L));
    nm_rng rng = {99};
    double s = 0, ss = 0, buf[8];
    float zz[8];
    for (int64_t t = 0; t < MC_N; t++) {
        nm_rng_normals(&rng, (uint64_t)t, 0, k, zz);
        double mx = -INFINITY;
        for (int i = 0; i < k; i++) buf[i] = m[i] + sqrt(v[0]) * zz[i], mx = fmax(mx, buf[i]);
        s += mx, ss += mx * mx;
    }
    double mean = s / MC_N, se = sqrt((ss / MC_N - mean * mean) / MC_N);
    printf("  max of %d independent Gaussians: Clark's fold %.6f, Monte Carlo %.6f +- %.6f (%.2f SE, %.3f %%)\n", k, emax, mean, se,
           (emax - mean) / se, 100 * fabs(emax - mean) / fabs(mean));
    char what[96];
    snprintf(what, sizeof what, "E[max] of %d independent Gaussians %s", k, exact ? "within 5 SE" : "within 2 %");
    if (exact) check_close(what, emax, mean, 5 * se, 0);
    else check_close(what, emax, mean, 0, 0.02);
    nm_net_free(ctx, net);
}

/* (3) */
static void grad_test(const char *name, nm_net *net, int kind)
{
    enum { N = 3 };
    alloc_pg(net);
    int64_t per = nm_shape_numel(&net->v[net->input].shape), C = nm_shape_tail(&net->v[net->node[nm_net_logits_node(net)].out].shape, 1);
    float *x = fill_rand(N * per, 1.0), *z = malloc((size_t)(N * C) * sizeof(float));
    int lab[N] = {1, 0, 2};
    double s2 = 0.5;
    clean_logits(net, N, x, z, C);
    reg_loss(net, kind, N, x, s2, lab, z);
    float **grads = calloc((size_t)net->nv, sizeof(float *)); /* the gradients, before the differences add to .pg */
    for (int v = 0; v < net->nv; v++)
        if (net->v[v].pg) {
            size_t bytes = (size_t)nm_shape_numel(&net->v[v].shape) * sizeof(float);
            memcpy(grads[v] = malloc(bytes), net->v[v].pg, bytes);
        }
    int checked = 0;
    double worst = 0;
    for (int k = 0; k < net->nn; k++)
        for (int i = 0; i < net->node[k].nin; i++) {
            int v = net->node[k].in[i];
            if (v < 0 || net->v[v].varying || !net->v[v].pg) continue;
            float *w = net->v[v].cdata, *g = grads[v];
            int64_t m = nm_shape_numel(&net->v[v].shape);
            double gmax = 1e-6;
            for (int64_t j = 0; j < m; j++) gmax = fmax(gmax, fabs(g[j]));
            for (int r = 0; r < 10; r++) {
                int64_t j = (int64_t)(urand() * (double)m);
                float keep = w[j];
                double h = reg_depth ? 2e-4 : 1e-2; /* above the depth the net is piecewise linear: steps that cross no kink */
                w[j] = keep + (float)h;
                double lp = reg_loss(net, kind, N, x, s2, lab, z);
                w[j] = keep - (float)h;
                double lm = reg_loss(net, kind, N, x, s2, lab, z);
                w[j] = keep;
                double fd = (lp - lm) / (2 * h);
                char what[160];
                snprintf(what, sizeof what, "%s: d/d %s[%lld] vs central difference", name, net->v[v].name, (long long)j);
                check_close(what, g[j], fd, (reg_depth ? TOL_GRAD_KINKS : TOL_GRAD) * gmax, 0);
                worst = fmax(worst, fabs(g[j] - fd) / gmax);
                checked++;
            }
        }
    printf("  %-40s %3d parameter entries, worst %.2e of the largest gradient\n", name, checked, worst);
    for (int v = 0; v < net->nv; v++) free(grads[v]);
    free(grads), free(x), free(z);
    nm_net_free(ctx, net);
}

static nm_net *conv_net(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 1, 8, 8), &x);
    int y = NODE(net, NM_OP_RELU, NULL, conv(net, x, 1, 3, 3, 1, 1));
    y = pool(net, y, 2, 2);
    y = NODE(net, NM_OP_RELU, NULL, conv(net, y, 3, 4, 3, 1, 1));
    y = NODE(net, NM_OP_FLATTEN, NULL, pool(net, y, 3, 1));
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 16, 6));
    finish(net, linear(net, y, 6, 4));
    return net;
}

/* (4) */
static void refusal_tests(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 4), &x);
    int y = NODE(net, NM_OP_SIGMOID, NULL, linear(net, x, 4, 4));
    finish(net, linear(net, y, 4, 3));
    check_true("a Sigmoid is refused", nm_mreg_supported(ctx, net, nm_net_logits_node(net), NM_REG_AMR) == NM_ERR_UNSUPPORTED);
    printf("  refused: %s\n", nm_ctx_message(ctx));
    nm_net_free(ctx, net);
    net = start(SHAPE(1, 4), &x);
    y = linear(net, x, 4, 4);
    finish(net, linear(net, NODE(net, NM_OP_ADD, NULL, y, NODE(net, NM_OP_RELU, NULL, y)), 4, 3));
    check_true("a residual Add is refused", nm_mreg_supported(ctx, net, nm_net_logits_node(net), NM_REG_AMR) == NM_ERR_UNSUPPORTED);
    printf("  refused: %s\n", nm_ctx_message(ctx));
    nm_net_free(ctx, net);
    net = conv_net();
    check_true("the conv net is accepted", nm_mreg_supported(ctx, net, nm_net_logits_node(net), NM_REG_VAR) == NM_OK);
    nm_net_free(ctx, net);
}

int main(void)
{
    ctx = nm_ctx_create();
    closed_form_tests();
    max_test(2, (double[]){0.3, -0.2}, (double[]){1.3}, 1);
    max_test(4, (double[]){0.3, -0.2, 0.9, 0.1}, (double[]){0.8}, 0);
    grad_test("AMR, conv net (ReLU, max-pools, Gemm)", conv_net(), NM_REG_AMR);
    grad_test("var, conv net (ReLU, max-pools, Gemm)", conv_net(), NM_REG_VAR);
    reg_depth = 1; /* AMR's own depth: the variance through the first ReLU only */
    grad_test("AMR, depth 1, conv net", conv_net(), NM_REG_AMR);
    reg_depth = 0;
    refusal_tests();
    nm_ctx_free(ctx);
    return check_finish("moment_reg");
}
