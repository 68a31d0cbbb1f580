/*
 * test_propagate.c — method propagate (DESIGN §1.12), against independent
 * computations:
 *  - an (Affine, ReLU, Affine) net: mean, variances and covariance equal the
 *    ARA kernels' method exact on its weights (nm_ara_moments, §1.5) to 1e-12,
 *    for a full and an isotropic Σ;
 *  - one-op nets (ReLU, LeakyReLU, Clip, Sigmoid, Tanh, MaxPool 2×1 and 2×2,
 *    overlapping 3×3/2, GlobalMaxPool, AveragePool, BatchNorm, Conv, Add of two
 *    varying branches, Concat) under a correlated Σ: every output's mean and
 *    variance against a seeded Monte Carlo of the real net within 5 standard
 *    errors (exact rules: hinges, smooth ops, maxima of up to 4 inputs, linear
 *    ops), or within the measured tolerance of the tree above four (3×3 windows);
 *  - a 4-layer MLP and a conv net with max-pool at high noise against Monte
 *    Carlo: ratios printed and bounded by what the Gaussian approximation of
 *    the hidden layers loses on such narrow nets (up to 32 % of a variance);
 *  - the same results on 1 and 2 threads; a memory limit refused with
 *    NM_ERR_NOMEM and respected; an op without a rule refused by name;
 *  - rank compression: exact when the noise has no more rank than kept (a
 *    linear net's covariance unchanged), else every unit's variance kept;
 *  - the residuals held as sparse private columns (tiles.c, isotropic noise,
 *    a small --dense-max): the same moments to 1e-12 as with every residual in
 *    shared dense columns, on nets with convs (strided, dilated, grouped),
 *    pools, BatchNorm, branches and an MLP; a conv, max-pool net against
 *    Monte Carlo within 5 standard errors (exact: one window max of four); the
 *    ARA nets above equal to method exact to 1e-12 again; 1 and 2 threads;
 *    the memory budget.
 */
#include "netbuild.h"
#include "check.h"
#include "../src/propagate/prop.h"

#include <omp.h>

#define Z_MAX 5.0
#if defined(__SANITIZE_ADDRESS__) /* ASan/UBSan checks memory: a quarter of the samples (tolerances are in SE) */
#define MC_N 50000
#else
#define MC_N 200000
#endif
#define TOL_ARA 1e-12

static nm_net *net_of(int x, nm_net *net, int y)
{
    (void)x;
    finish(net, y);
    return net;
}

/* A random PSD covariance over n inputs with correlations: L (n × n) scaled. */
static nm_cov *random_cov(int64_t n, double scale)
{
    double *L = malloc((size_t)(n * n) * sizeof(double));
    for (int64_t i = 0; i < n * n; i++) L[i] = scale * nrand() / sqrt((double)n);
    for (int64_t i = 0; i < n; i++) L[i * n + i] += scale;
    nm_cov *c = NULL;
    if (nm_cov_factor(ctx, n, n, L, &c) != NM_OK) {
        fprintf(stderr, "cov: %s\n", nm_ctx_message(ctx));
        exit(2);
    }
    free(L);
    return c;
}

static nm_array view_f32(float *x, int64_t n)
{
    nm_array a = {NM_F32, 2, {1, n}, x};
    return a;
}

static int64_t dense_max = NM_DENSE_MAX_DEFAULT; /* what propagate() asks for */

static nm_status propagate_rank(nm_net *net, float *mu, int64_t n, const nm_cov *S, int want_cov, int64_t rank, nm_moments *out)
{
    nm_net_moments_options o = nm_net_moments_options_default();
    o.method = NM_METHOD_PROPAGATE;
    o.want_cov = want_cov;
    o.rank = rank;
    o.dense_max = dense_max;
    nm_array a = view_f32(mu, n);
    a.ndim = 1, a.shape[0] = n;
    return nm_net_moments(ctx, net, &a, S, &o, out);
}

static nm_status propagate(nm_net *net, float *mu, int64_t n, const nm_cov *S, int want_cov, nm_moments *out)
{
    return propagate_rank(net, mu, n, S, want_cov, 0, out);
}

/* ---------------------------------------------------------------- ARA = method exact */

static void test_ara(void)
{
    int64_t n = 20, p = 30, d = 5;
    for (int full = 0; full < 2; full++) {
        int x;
        nm_net *net = start(SHAPE(1, n), &x);
        int w1 = rconst(net, SHAPE(p, n), 1.0 / sqrt((double)n), 0), b1 = rconst(net, SHAPE(p), 0.5, 0);
        int y = NODE(net, NM_OP_RELU, NULL, gemm_node(net, x, w1, b1));
        int w2 = rconst(net, SHAPE(d, p), 1.0 / sqrt((double)p), 0), b2 = rconst(net, SHAPE(d), 0.5, 0);
        net_of(x, net, gemm_node(net, y, w2, b2));
        float *mu = fill_rand(n, 1.0);
        nm_cov *S = NULL;
        if (full) S = random_cov(n, 0.7);
        else nm_cov_isotropic(ctx, n, 0.8, &S);
        nm_moments got, want;
        check_true("ara: propagate runs", propagate(net, mu, n, S, 1, &got) == NM_OK);
        nm_array A = {NM_F32, 2, {p, n}, net->v[w1].cdata}, c1 = {NM_F32, 1, {p}, net->v[b1].cdata};
        nm_array B = {NM_F32, 2, {d, p}, net->v[w2].cdata}, c2 = {NM_F32, 1, {d}, net->v[b2].cdata};
        nm_ara ara = {&A, &c1, &B, &c2};
        nm_ara_options ao = nm_ara_options_default();
        ao.want_cov = 1;
        nm_array m = {NM_F32, 1, {n}, mu};
        check_true("ara: exact runs", nm_ara_moments(ctx, &ara, &m, S, &ao, &want) == NM_OK);
        double scale = 0;
        for (int64_t i = 0; i < d * d; i++) scale = fmax(scale, fabs(want.cov[i]));
        for (int64_t i = 0; i < d; i++) {
            check_close("ara: mean = exact", got.mean[i], want.mean[i], TOL_ARA * fmax(1, fabs(want.mean[i])), 0);
            check_close("ara: var = exact", got.var[i], want.var[i], TOL_ARA * scale, 0);
        }
        for (int64_t i = 0; i < d * d; i++) check_close("ara: cov = exact", got.cov[i], want.cov[i], TOL_ARA * scale, 0);
        nm_moments_free(ctx, &got), nm_moments_free(ctx, &want);
        nm_cov_free(ctx, S);
        free(mu);
        nm_net_free(ctx, net);
    }
}

/* ---------------------------------------------------------------- against Monte Carlo */

/* Propagate vs the real net's Monte Carlo: |Δmean| ≤ Z_MAX SE + rel_mean·sd, |Δvar| ≤ Z_MAX SE + rel_var·var.
 * Prints the worst standardized errors. */
static void against_mc(const char *what, nm_net *net, float *mu, int64_t n, const nm_cov *S, double rel_mean, double rel_var)
{
    nm_moments pm;
    nm_mc_result mc;
    nm_rng rng = {7};
    nm_array a = {NM_F32, 1, {n}, mu};
    if (propagate(net, mu, n, S, 0, &pm) != NM_OK || nm_net_montecarlo(ctx, net, &a, S, MC_N, &rng, 0, NULL, NULL, &mc) != NM_OK) {
        check_true(what, 0);
        fprintf(stderr, "%s: %s\n", what, nm_ctx_message(ctx));
        return;
    }
    double zm = 0, zv = 0, worst_ratio = 1;
    char buf[160];
    for (int64_t i = 0; i < pm.d; i++) {
        double sd = sqrt(mc.var[i]);
        snprintf(buf, sizeof buf, "%s: mean of output %lld", what, (long long)i);
        check_close(buf, pm.mean[i], mc.mean[i], Z_MAX * mc.mean_se[i] + rel_mean * sd + 1e-9, 0);
        snprintf(buf, sizeof buf, "%s: variance of output %lld", what, (long long)i);
        check_close(buf, pm.var[i], mc.var[i], Z_MAX * mc.var_se[i] + rel_var * mc.var[i] + 1e-12, 0);
        if (mc.mean_se[i] > 0) zm = fmax(zm, fabs(pm.mean[i] - mc.mean[i]) / mc.mean_se[i]);
        if (mc.var_se[i] > 0) zv = fmax(zv, fabs(pm.var[i] - mc.var[i]) / mc.var_se[i]);
        if (pm.var[i] > 0 && fabs(mc.var[i] / pm.var[i] - 1) > fabs(worst_ratio - 1)) worst_ratio = mc.var[i] / pm.var[i];
    }
    printf("%-34s %3lld outputs: worst |z| mean %5.2f, variance %6.2f; worst MC/propagate variance %.4f\n", what, (long long)pm.d, zm, zv,
           worst_ratio);
    nm_moments_free(ctx, &pm);
    nm_mc_result_free(ctx, &mc);
}

/* Input (1, C, H, W) → one node → output; the mean shifted so units sit near their kinks. */
static void one_op(const char *what, nm_op op, const nm_attrs *a, int64_t C, int64_t H, int64_t W, double rel_mean, double rel_var)
{
    int x;
    nm_net *net = start(SHAPE(1, C, H, W), &x);
    int y;
    if (op == NM_OP_BATCHNORM)
        y = NODE(net, op, a, x, rconst(net, SHAPE(C), 0.5, 1), rconst(net, SHAPE(C), 0.5, 0), rconst(net, SHAPE(C), 0.3, 0),
                 rconst(net, SHAPE(C), 0.1, 1));
    else if (op == NM_OP_CONV) y = conv(net, x, C, 3, 3, 1, 1);
    else y = NODE(net, op, a, x);
    net_of(x, net, NODE(net, NM_OP_FLATTEN, NULL, y));
    int64_t n = C * H * W;
    float *mu = fill_rand(n, 0.6);
    nm_cov *S = random_cov(n, 0.8);
    against_mc(what, net, mu, n, S, rel_mean, rel_var);
    nm_cov_free(ctx, S);
    free(mu);
    nm_net_free(ctx, net);
}

static void test_one_ops(void)
{
    nm_attrs a = nm_attrs_default(NM_OP_RELU);
    one_op("Relu", NM_OP_RELU, &a, 2, 3, 3, 0, 0);
    a = nm_attrs_default(NM_OP_LEAKYRELU), a.alpha = 0.2f;
    one_op("LeakyRelu 0.2", NM_OP_LEAKYRELU, &a, 2, 3, 3, 0, 0);
    a = nm_attrs_default(NM_OP_CLIP), a.lo = -0.3f, a.hi = 0.5f;
    one_op("Clip [-0.3, 0.5]", NM_OP_CLIP, &a, 2, 3, 3, 0, 0);
    one_op("Sigmoid", NM_OP_SIGMOID, NULL, 2, 3, 3, 0, 0);
    one_op("Tanh", NM_OP_TANH, NULL, 2, 3, 3, 0, 0);
    a = nm_attrs_default(NM_OP_MAXPOOL), a.kernel[0] = 2, a.kernel[1] = 1, a.stride[0] = 2, a.stride[1] = 1;
    one_op("MaxPool 2x1 (exact: Clark, k = 2)", NM_OP_MAXPOOL, &a, 2, 4, 3, 0, 0);
    a.kernel[1] = 2, a.stride[1] = 2;
    one_op("MaxPool 2x2 (exact, k = 4)", NM_OP_MAXPOOL, &a, 2, 4, 4, 0, 0);
    a.kernel[0] = a.kernel[1] = 3;
    /* nine inputs: a tree of exact maxima of at most four, each partial max taken as Gaussian (Clark); on
     * these strongly and randomly correlated windows with close means (the hard case; test_gauss_max
     * measures it) it misses up to 0.2 sd in the mean and 30 % in the variance */
    one_op("MaxPool 3x3/2, overlapping (tree)", NM_OP_MAXPOOL, &a, 1, 5, 5, 0.2, 0.4);
    one_op("GlobalMaxPool over 4 (exact)", NM_OP_GLOBALMAXPOOL, NULL, 3, 2, 2, 0, 0);
    /* a window 100,001 wide, mostly padding, over a 2x2 plane: each output the max of the 4 inputs; the
     * window's size must cost only the plane (the fuzzer's AveragePool of this kind took minutes) */
    a = nm_attrs_default(NM_OP_MAXPOOL), a.kernel[0] = a.kernel[1] = 100001;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 50000;
    one_op("MaxPool 100001x100001 pad 50000 (exact)", NM_OP_MAXPOOL, &a, 2, 2, 2, 0, 0);
    a = nm_attrs_default(NM_OP_AVERAGEPOOL), a.kernel[0] = a.kernel[1] = 2, a.stride[0] = a.stride[1] = 1;
    one_op("AveragePool 2x2/1", NM_OP_AVERAGEPOOL, &a, 2, 3, 3, 0, 0);
    a = nm_attrs_default(NM_OP_BATCHNORM), a.epsilon = 1e-5f;
    one_op("BatchNormalization", NM_OP_BATCHNORM, &a, 2, 3, 3, 0, 0);
    one_op("Conv 3x3 pad 1", NM_OP_CONV, NULL, 2, 3, 3, 0, 0);
}

/* Two varying branches, conv_a x and conv_b x, added or concatenated and rectified: exact (the sum of
 * jointly Gaussian branches is Gaussian, the last ReLU's pairs exact) only if the branches' correlation
 * is kept. */
static void test_branches(void)
{
    for (int cat = 0; cat < 2; cat++) {
        int x;
        nm_net *net = start(SHAPE(1, 2, 4, 4), &x);
        int a = conv(net, x, 2, 2, 3, 1, 1), b = conv(net, x, 2, 2, 3, 1, 1);
        nm_attrs ca = nm_attrs_default(NM_OP_CONCAT);
        ca.axis = 1;
        int y = cat ? NODE(net, NM_OP_CONCAT, &ca, a, b) : NODE(net, NM_OP_ADD, NULL, a, b);
        y = NODE(net, NM_OP_RELU, NULL, y);
        net_of(x, net, NODE(net, NM_OP_FLATTEN, NULL, y));
        float *mu = fill_rand(32, 0.6);
        nm_cov *S = random_cov(32, 0.8);
        against_mc(cat ? "Concat of two branches, ReLU" : "Add of two branches, ReLU", net, mu, 32, S, 0, 0);
        nm_cov_free(ctx, S);
        free(mu);
        nm_net_free(ctx, net);
    }
}

/* ---------------------------------------------------------------- deeper nets at high noise */

static nm_net *mlp4(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 30), &x);
    int y = NODE(net, NM_OP_RELU, NULL, linear(net, x, 30, 40));
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 40, 40));
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 40, 30));
    net_of(x, net, linear(net, y, 30, 3));
    return net;
}

static nm_net *convpool(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 1, 12, 12), &x);
    int y = NODE(net, NM_OP_RELU, NULL, pool(net, conv(net, x, 1, 6, 3, 1, 1), 2, 2));
    y = NODE(net, NM_OP_RELU, NULL, pool(net, conv(net, y, 6, 8, 3, 1, 1), 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 72, 20));
    net_of(x, net, linear(net, y, 20, 4));
    return net;
}

static void test_deep(void)
{
    nm_net *net = mlp4();
    float *mu = fill_rand(30, 1.0);
    nm_cov *S = NULL;
    nm_cov_isotropic(ctx, 30, 4.0, &S);
    against_mc("4-layer MLP, sigma2 4", net, mu, 30, S, 0.1, 0.4);
    nm_cov_free(ctx, S), free(mu), nm_net_free(ctx, net);

    net = convpool();
    mu = fill_rand(144, 1.0);
    nm_cov_isotropic(ctx, 144, 4.0, &S);
    against_mc("conv, max-pool, conv, max-pool, FC", net, mu, 144, S, 0.1, 0.4);
    nm_cov_free(ctx, S), free(mu), nm_net_free(ctx, net);
}

/* ---------------------------------------------------------------- threads, memory, refusals */

/* Propagate on 1 thread into r[0] and on 2 into r[1]. */
static void on_1_and_2_threads(const char *what, nm_net *net, float *mu, int64_t n, const nm_cov *S, nm_moments r[2])
{
    int nt = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t ? 2 : 1);
        check_true(what, propagate(net, mu, n, S, 1, &r[t]) == NM_OK);
    }
    omp_set_num_threads(nt);
}

static void test_threads_memory(void)
{
    nm_net *net = convpool();
    float *mu = fill_rand(144, 1.0);
    nm_cov *S = random_cov(144, 1.0);
    nm_moments r[2];
    on_1_and_2_threads("threads: runs", net, mu, 144, S, r);
    for (int64_t i = 0; i < 4; i++) {
        check_close("threads: mean on 1 and 2", r[0].mean[i], r[1].mean[i], 1e-12 * fmax(1, fabs(r[0].mean[i])), 0);
        check_close("threads: var on 1 and 2", r[0].var[i], r[1].var[i], 1e-12 * r[0].var[i], 0);
    }
    nm_moments_free(ctx, &r[0]), nm_moments_free(ctx, &r[1]);

    /* a budget below what the factors need: refused, and never exceeded */
    size_t limit = 200 << 10;
    nm_ctx_mem_peak(ctx);
    size_t base = nm_ctx_mem_peak(ctx);
    nm_ctx_set_mem_limit(ctx, base + limit);
    nm_moments m;
    nm_status st = propagate(net, mu, 144, S, 0, &m);
    check_true("memory: a small budget is refused with NM_ERR_NOMEM", st == NM_ERR_NOMEM);
    check_true("memory: the message names propagate", strstr(nm_ctx_message(ctx), "method propagate") != NULL);
    check_true("memory: the budget held", nm_ctx_mem_peak(ctx) <= base + limit);
    nm_ctx_set_mem_limit(ctx, 0);
    nm_cov_free(ctx, S), free(mu), nm_net_free(ctx, net);

    /* the product of two varying values has no rule */
    int x;
    net = start(SHAPE(1, 4), &x);
    net_of(x, net, NODE(net, NM_OP_MUL, NULL, x, NODE(net, NM_OP_RELU, NULL, x)));
    mu = fill_rand(4, 1.0);
    nm_cov_isotropic(ctx, 4, 1.0, &S);
    st = propagate(net, mu, 4, S, 0, &m);
    check_true("refusal: Mul of two varying values", st == NM_ERR_UNSUPPORTED && strstr(nm_ctx_message(ctx), "Mul") != NULL);
    nm_cov_free(ctx, S), free(mu), nm_net_free(ctx, net);
}

/* ---------------------------------------------------------------- --rank */

/* Compressing the columns: exact where they have no more rank than kept; otherwise every unit keeps its variance. */
static void test_rank(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 2, 5, 5), &x);
    net_of(x, net, NODE(net, NM_OP_FLATTEN, NULL, conv(net, conv(net, x, 2, 3, 3, 1, 1), 3, 2, 3, 1, 1)));
    int64_t n = 50, r = 3, d = 50;
    double *L = malloc(sizeof(double) * (size_t)(n * r));
    for (int64_t i = 0; i < n * r; i++) L[i] = nrand();
    nm_cov *S = NULL, *F = random_cov(n, 0.8);
    float *mu = fill_rand(n, 0.6);
    nm_moments a, b;
    check_true("rank: a rank-3 input", nm_cov_factor(ctx, n, r, L, &S) == NM_OK);
    check_true("rank: runs with and without", propagate(net, mu, n, S, 1, &a) == NM_OK && propagate_rank(net, mu, n, S, 1, 3, &b) == NM_OK);
    for (int64_t i = 0; i < d * d; i++) check_close("rank 3 of a rank-3 noise on a linear net: the covariance unchanged", b.cov[i], a.cov[i], 1e-9, 1e-9);
    check_close("rank 3 of rank 3: nothing moved", b.rank_moved, 0, 1e-9, 0);
    nm_moments_free(ctx, &a), nm_moments_free(ctx, &b);

    /* one conv under a full-rank Σ, compressed to 2: the output's variances kept, its correlations not */
    nm_net_free(ctx, net);
    net = start(SHAPE(1, 2, 5, 5), &x);
    net_of(x, net, NODE(net, NM_OP_FLATTEN, NULL, conv(net, x, 2, 2, 3, 1, 1)));
    check_true("rank: one conv", propagate(net, mu, n, F, 1, &a) == NM_OK && propagate_rank(net, mu, n, F, 1, 2, &b) == NM_OK);
    double off = 0;
    for (int64_t i = 0; i < d; i++) {
        check_close("rank 2 of a full-rank noise: each variance kept", b.var[i], a.var[i], 0, 1e-12);
        for (int64_t j = 0; j < d; j++) off = fmax(off, fabs(b.cov[i * d + j] - a.cov[i * d + j]));
    }
    check_true("rank 2 of a full-rank noise: correlations dropped, and said", off > 1e-6 && b.rank_moved > 0 && b.rank_moved < 1);
    nm_moments_free(ctx, &a), nm_moments_free(ctx, &b);
    check_true("rank: a negative rank refused", propagate_rank(net, mu, n, F, 0, -1, &b) == NM_ERR_ARG);
    nm_cov_free(ctx, S), nm_cov_free(ctx, F), free(L), free(mu), nm_net_free(ctx, net);
}

/* ---------------------------------------------------------------- sparse private columns */

/* Propagate at dense_max dm with the spread residuals as sparse private columns (sparse 1) or shared dense ones. */
static nm_status propagate_sparse(nm_net *net, float *mu, int64_t n, const nm_cov *S, int64_t dm, int sparse, nm_moments *out)
{
    nm_net_moments_options o = nm_net_moments_options_default();
    o.method = NM_METHOD_PROPAGATE;
    o.want_cov = 1;
    o.dense_max = dm;
    nm_array a = {NM_F32, 1, {n}, mu};
    return nm_propagate_moments_with(ctx, net, &a, S, &o, out, NULL, sparse);
}

/* The moments a and b equal to tol relative (the covariance to tol of its largest entry); the worst printed. */
static void same_moments(const char *what, const nm_moments *a, const nm_moments *b, double tol)
{
    double scale = 0, worst = 0;
    int64_t d = a->d;
    for (int64_t i = 0; i < d * d; i++) scale = fmax(scale, fabs(a->cov[i]));
    char buf[200];
    for (int64_t i = 0; i < d; i++) {
        snprintf(buf, sizeof buf, "%s: mean %lld", what, (long long)i);
        check_close(buf, b->mean[i], a->mean[i], tol * fmax(1, fabs(a->mean[i])), 0);
        snprintf(buf, sizeof buf, "%s: variance %lld", what, (long long)i);
        check_close(buf, b->var[i], a->var[i], tol * scale, 0);
        worst = fmax(worst, fabs(b->var[i] - a->var[i]) / scale);
    }
    snprintf(buf, sizeof buf, "%s: covariance", what);
    for (int64_t i = 0; i < d * d; i++) {
        check_close(buf, b->cov[i], a->cov[i], tol * scale, 0);
        worst = fmax(worst, fabs(b->cov[i] - a->cov[i]) / scale);
    }
    printf("%-52s %3lld outputs: worst covariance difference %.1e of its largest entry\n", what, (long long)d, worst);
}

/* Sparse private columns against shared dense ones on net under isotropic noise s2, at dense_max dm. */
static void sparse_vs_columns(const char *what, nm_net *net, int64_t n, double s2, int64_t dm)
{
    float *mu = fill_rand(n, 1.0);
    nm_cov *S = NULL;
    nm_cov_isotropic(ctx, n, s2, &S);
    nm_moments a, b;
    nm_status sa = propagate_sparse(net, mu, n, S, dm, 0, &a), sb = propagate_sparse(net, mu, n, S, dm, 1, &b);
    if (sa != NM_OK || sb != NM_OK) fprintf(stderr, "%s: %s\n", what, nm_ctx_message(ctx));
    if (check_true(what, sa == NM_OK && sb == NM_OK)) {
        same_moments(what, &a, &b, 1e-12);
        nm_moments_free(ctx, &a), nm_moments_free(ctx, &b);
    }
    nm_cov_free(ctx, S), free(mu);
}

/* Conv (C → M, k × k) with attributes a and random weights. */
static int conv_attrs(nm_net *net, int x, int64_t C, int64_t M, int64_t k, nm_attrs a)
{
    return NODE(net, NM_OP_CONV, &a, x, rconst(net, SHAPE(M, C / a.group, k, k), 0.4, 0), rconst(net, SHAPE(M), 0.3, 0));
}

/* Strided, dilated and grouped convs, BatchNorm, an overlapping AveragePool and an MLP head. */
static nm_net *oddconvs(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 4, 11, 11), &x);
    nm_attrs a = nm_attrs_default(NM_OP_CONV);
    a.stride[0] = 2, a.stride[1] = 1, a.dil[1] = 2, a.group = 2, a.pad[0] = 1, a.pad[1] = 2, a.pad[2] = 0, a.pad[3] = 1;
    int y = conv_attrs(net, x, 4, 6, 3, a);
    nm_attrs bn = nm_attrs_default(NM_OP_BATCHNORM);
    bn.epsilon = 1e-5f;
    y = NODE(net, NM_OP_BATCHNORM, &bn, y, rconst(net, SHAPE(6), 0.5, 1), rconst(net, SHAPE(6), 0.5, 0), rconst(net, SHAPE(6), 0.3, 0),
             rconst(net, SHAPE(6), 0.1, 1));
    y = NODE(net, NM_OP_RELU, NULL, y);
    nm_attrs ap = nm_attrs_default(NM_OP_AVERAGEPOOL);
    ap.kernel[0] = ap.kernel[1] = 2, ap.stride[0] = ap.stride[1] = 1;
    y = NODE(net, NM_OP_RELU, NULL, NODE(net, NM_OP_AVERAGEPOOL, &ap, y));
    a = nm_attrs_default(NM_OP_CONV);
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 2;
    y = NODE(net, NM_OP_RELU, NULL, pool(net, conv_attrs(net, y, 6, 5, 5, a), 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    int64_t f = nm_shape_numel(&net->v[y].shape);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, f, 12));
    net_of(x, net, linear(net, y, 12, 3));
    return net;
}

static void test_sparse(void)
{
    nm_net *net = convpool();
    sparse_vs_columns("sparse = dense columns: conv, pool, conv, pool, FC", net, 144, 4.0, 0);
    sparse_vs_columns("sparse = dense columns: the same, dense-max 30", net, 144, 4.0, 30);
    nm_net_free(ctx, net);
    net = mlp4();
    sparse_vs_columns("sparse = dense columns: 4-layer MLP", net, 30, 4.0, 0);
    nm_net_free(ctx, net);
    net = oddconvs();
    sparse_vs_columns("sparse = dense columns: odd convs, BatchNorm, AvgPool", net, 4 * 11 * 11, 1.0, 0);
    sparse_vs_columns("sparse = dense columns: the same, dense-max 200", net, 4 * 11 * 11, 1.0, 200);
    nm_net_free(ctx, net);
    for (int cat = 0; cat < 2; cat++) { /* two branches: their sparse columns meet */
        int x;
        net = start(SHAPE(1, 2, 4, 4), &x);
        int a = NODE(net, NM_OP_RELU, NULL, conv(net, x, 2, 2, 3, 1, 1)), b = NODE(net, NM_OP_RELU, NULL, conv(net, x, 2, 2, 3, 1, 1));
        a = conv(net, a, 2, 2, 3, 1, 1), b = conv(net, b, 2, 2, 3, 1, 1);
        nm_attrs ca = nm_attrs_default(NM_OP_CONCAT);
        ca.axis = 1;
        int y = cat ? NODE(net, NM_OP_CONCAT, &ca, a, b) : NODE(net, NM_OP_ADD, NULL, a, b);
        y = NODE(net, NM_OP_FLATTEN, NULL, conv(net, NODE(net, NM_OP_RELU, NULL, y), cat ? 4 : 2, 2, 3, 1, 1));
        net_of(x, net, NODE(net, NM_OP_RELU, NULL, y));
        sparse_vs_columns(cat ? "sparse = dense columns: Concat of two branches" : "sparse = dense columns: Add of two branches", net, 32, 1.0, 0);
        nm_net_free(ctx, net);
    }

    /* exact cases through the sparse columns: one window max of four after a conv (against Monte Carlo), and
     * an ARA net (the ARA kernels' method exact) */
    dense_max = 0;
    int x;
    net = start(SHAPE(1, 2, 4, 4), &x);
    nm_attrs mp = nm_attrs_default(NM_OP_MAXPOOL);
    mp.kernel[0] = mp.kernel[1] = 2, mp.stride[0] = mp.stride[1] = 2;
    net_of(x, net, NODE(net, NM_OP_FLATTEN, NULL, NODE(net, NM_OP_MAXPOOL, &mp, conv(net, x, 2, 3, 3, 1, 1))));
    float *mu = fill_rand(32, 0.6);
    nm_cov *S = NULL;
    nm_cov_isotropic(ctx, 32, 0.8, &S);
    against_mc("sparse: conv, MaxPool 2x2 (exact)", net, mu, 32, S, 0, 0);
    nm_net_free(ctx, net);
    test_ara(); /* at dense_max 0: the first Gemm's residuals go to sparse columns, shared before the exact pairs */
    nm_cov_free(ctx, S), free(mu);

    /* threads and the memory budget */
    net = convpool();
    mu = fill_rand(144, 1.0);
    nm_cov_isotropic(ctx, 144, 4.0, &S);
    nm_moments r[2];
    on_1_and_2_threads("sparse threads: runs", net, mu, 144, S, r);
    same_moments("sparse: 1 and 2 threads", &r[0], &r[1], 1e-12);
    nm_moments_free(ctx, &r[0]), nm_moments_free(ctx, &r[1]);
    size_t limit = 64 << 10;
    nm_ctx_mem_peak(ctx);
    size_t base = nm_ctx_mem_peak(ctx);
    nm_ctx_set_mem_limit(ctx, base + limit);
    nm_status st = propagate(net, mu, 144, S, 0, &r[0]);
    check_true("sparse memory: a small budget is refused with NM_ERR_NOMEM", st == NM_ERR_NOMEM);
    check_true("sparse memory: the budget held", nm_ctx_mem_peak(ctx) <= base + limit);
    nm_ctx_set_mem_limit(ctx, 0);
    dense_max = NM_DENSE_MAX_DEFAULT;
    nm_cov_free(ctx, S), free(mu), nm_net_free(ctx, net);
}

int main(void)
{
    ctx = nm_ctx_create();
    test_ara();
    test_one_ops();
    test_branches();
    test_deep();
    test_threads_memory();
    test_rank();
    test_sparse();
    nm_ctx_free(ctx);
    return check_finish("test_propagate");
}
