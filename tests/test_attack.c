/*
 * test_attack.c — the targeted Gaussian attack (Eq 3) where its optimum is
 * known in closed form: a net whose ReLUs the noise cannot turn off (large
 * positive biases) is affine in expectation, E = W μ + b with W = B A from
 * its weights, so with two classes min_{μ ∈ [−β, β]ⁿ} E_i − E_j is reached at
 * μ_k = −β sign(W_ik − W_jk), computed here from the weights. Every returned
 * μx and σ² within their bounds and the support; bad input refused. The
 * PGD baseline reaches the same vertex of the real (affine) net; a batch of
 * attacks gives the same rows on one thread as on several, keeps its
 * support, and its verification samples have the noise's spread and the
 * labels the net's own forward pass gives them.
 */
#include "netbuild.h"
#include "check.h"

#include <omp.h>

#define N_IN 6
#define HID 5
#define TOL_VERTEX 1e-3 /* μ at the vertex, relative to β */

static float W1[HID * N_IN], B1[HID], W2[2 * HID], B2[2];

static nm_net *affine_net(void)
{
    int x;
    nm_net *net = start(SHAPE(1, N_IN), &x);
    for (int i = 0; i < HID * N_IN; i++) W1[i] = (float)(0.5 * nrand());
    for (int i = 0; i < HID; i++) B1[i] = 500; /* far above any |W1 μ| + noise: every ReLU stays on */
    for (int i = 0; i < 2 * HID; i++) W2[i] = (float)nrand();
    B2[0] = 0, B2[1] = 0;
    int h = NODE(net, NM_OP_RELU, NULL, gemm_node(net, x, vconst(net, SHAPE(HID, N_IN), W1), vconst(net, SHAPE(HID), B1)));
    finish(net, gemm_node(net, h, vconst(net, SHAPE(2, HID), W2), vconst(net, SHAPE(2), B2)));
    return net;
}

/* The two-class net's label at x, by its forward pass. */
static int label_at(nm_net *net, float *x)
{
    nm_array xa = {NM_F32, 2, {1, N_IN}, x}, y;
    check_true("forward", nm_net_forward(ctx, net, 0, -1, &xa, &y) == NM_OK);
    int c = ((float *)y.data)[1] > ((float *)y.data)[0];
    nm_array_free(ctx, &y);
    return c;
}

static void test_vertex(void)
{
    nm_net *net = affine_net();
    float M[N_IN] = {0}, mu[N_IN];
    int c = label_at(net, M);
    nm_attack_options o = nm_attack_options_default();
    o.target = 1 - c, o.beta = 3, o.margin = 1e9; /* never stop early: run to the optimum */
    o.max_iter = 200;
    nm_attack_result r;
    check_true("attack runs", nm_attack_run(ctx, net, M, &o, mu, &r) == NM_OK);
    for (int k = 0; k < N_IN; k++) {
        double w = 0; /* ∂(E_c − E_target)/∂μ_k = Σ_u (W2_cu − W2_tu) W1_uk */
        for (int u = 0; u < HID; u++) w += ((double)W2[c * HID + u] - W2[o.target * HID + u]) * W1[u * N_IN + k];
        check_close("mu at the closed-form vertex", mu[k], w > 0 ? -o.beta : o.beta, TOL_VERTEX * o.beta, 0);
    }
    check_true("sigma2 within its bounds", r.sigma2 > 0 && r.sigma2 <= o.sigma2_max);
    check_true("labels", r.label == c && r.target == 1 - c && r.support == N_IN);
    nm_attack_result_free(ctx, &r);
    /* a support: μx is 0 off it and within ±β on it */
    uint8_t sup[N_IN] = {1, 0, 1, 0, 0, 1};
    o.support = sup, o.margin = 0.5, o.relinearize = 5;
    check_true("attack on a support runs", nm_attack_run(ctx, net, M, &o, mu, &r) == NM_OK);
    int ok = r.support == 3;
    for (int k = 0; k < N_IN; k++) ok &= sup[k] ? fabs(mu[k]) <= o.beta : mu[k] == 0;
    check_true("support and bounds hold", ok && r.sigma2 > 0 && r.sigma2 <= o.sigma2_max);
    nm_attack_result_free(ctx, &r);
    /* bad input */
    o.support = NULL;
    o.target = c;
    check_true("target = label refused", nm_attack_run(ctx, net, M, &o, mu, &r) == NM_ERR_ARG);
    o.target = 2;
    check_true("target out of range refused", nm_attack_run(ctx, net, M, &o, mu, &r) == NM_ERR_ARG);
    o.target = 1 - c, o.beta = 0;
    check_true("beta 0 refused", nm_attack_run(ctx, net, M, &o, mu, &r) == NM_ERR_ARG);
    nm_net_free(ctx, net);
}

/* A random LeNet: the attack towards each other class keeps its bounds; report how many it fools. */
static void test_lenet(void)
{
    nm_net *net = lenet();
    float *M = fill_rand(784, 1.0), mu[784];
    int fooled = 0, tried = 0;
    for (int t = 0; t < 10; t++) {
        nm_attack_options o = nm_attack_options_default();
        o.target = t, o.beta = 1, o.max_iter = 60;
        nm_attack_result r;
        nm_status st = nm_attack_run(ctx, net, M, &o, mu, &r);
        if (st == NM_ERR_ARG) continue; /* the label itself */
        check_true("LeNet attack runs", st == NM_OK);
        if (st != NM_OK) continue;
        tried++;
        float mx = 0;
        for (int k = 0; k < 784; k++) mx = fmaxf(mx, fabsf(mu[k]));
        check_true("LeNet attack within beta and sigma2", mx <= o.beta && r.sigma2 > 0 && r.sigma2 <= o.sigma2_max);
        fooled += r.fooled_analytic;
        nm_attack_result_free(ctx, &r);
    }
    printf("random LeNet, beta 1: fooled in expectation towards %d of %d targets\n", fooled, tried);
    check_true("nine targets tried", tried == 9);
    free(M);
    nm_net_free(ctx, net);
}

/* Eq 4's support: exactly round(α n / 100) inputs, a function of the seed; untargeted = towards the other class on two. */
static void test_sparse(void)
{
    enum { NN = 784 };
    static uint8_t m1[NN], m2[NN];
    int64_t k1, k2;
    check_true("support drawn", nm_attack_support(ctx, NN, 4, 1, m1, &k1) == NM_OK && nm_attack_support(ctx, NN, 4, 2, m2, &k2) == NM_OK);
    int64_t s1 = 0, s2 = 0, same = 0;
    for (int i = 0; i < NN; i++) s1 += m1[i], s2 += m2[i], same += m1[i] && m2[i];
    check_true("support is 4 % of 784 = 31 inputs", k1 == 31 && s1 == 31 && k2 == 31 && s2 == 31);
    check_true("another seed, another support", same < 31);
    check_true("alpha 0 refused", nm_attack_support(ctx, NN, 0, 1, m1, NULL) == NM_ERR_ARG);
    check_true("alpha above 100 refused", nm_attack_support(ctx, NN, 100.5, 1, m1, NULL) == NM_ERR_ARG);
    nm_net *net = affine_net();
    float M[N_IN] = {0}, mu[N_IN], mu2[N_IN];
    nm_attack_options o = nm_attack_options_default();
    o.target = NM_ATTACK_UNTARGETED, o.beta = 3, o.margin = 1e9, o.max_iter = 200;
    nm_attack_result r, r2;
    check_true("untargeted runs", nm_attack_run(ctx, net, M, &o, mu, &r) == NM_OK);
    o.target = r.target;
    check_true("targeted towards the class it reached", r.target != r.label && nm_attack_run(ctx, net, M, &o, mu2, &r2) == NM_OK);
    check_true("two classes: untargeted = targeted towards the other", !memcmp(mu, mu2, sizeof mu) && r.sigma2 == r2.sigma2);
    nm_attack_result_free(ctx, &r), nm_attack_result_free(ctx, &r2);
    nm_net_free(ctx, net);
}

/* PGD on the affine net: the sign steps end at the same vertex, clipped to β on the support. */
static void test_pgd(void)
{
    nm_net *net = affine_net();
    float M[N_IN] = {0}, mu[N_IN];
    int c = label_at(net, M);
    nm_attack_options o = nm_attack_options_default();
    o.target = 1 - c, o.beta = 3, o.margin = 1e9;
    uint8_t sup[N_IN] = {1, 1, 0, 1, 1, 1};
    o.support = sup;
    nm_attack_result r;
    check_true("PGD runs", nm_attack_pgd(ctx, net, M, &o, 50, mu, &r) == NM_OK);
    for (int k = 0; k < N_IN; k++) {
        double w = 0;
        for (int u = 0; u < HID; u++) w += ((double)W2[c * HID + u] - W2[o.target * HID + u]) * W1[u * N_IN + k];
        check_close("PGD ends at the vertex on the support, 0 off it", mu[k], !sup[k] ? 0 : w > 0 ? -o.beta : o.beta, 1e-6, 0);
    }
    check_true("PGD result", r.label == c && r.target == 1 - c && r.sigma2 == 0 && r.support == 5 && r.iterations <= 50);
    nm_attack_result_free(ctx, &r);
    o.support = NULL, o.target = c;
    check_true("PGD: target = label refused", nm_attack_pgd(ctx, net, M, &o, 50, mu, &r) == NM_ERR_ARG);
    o.target = 1 - c, o.beta = -1;
    check_true("PGD: beta < 0 refused", nm_attack_pgd(ctx, net, M, &o, 50, mu, &r) == NM_ERR_ARG);
    o.beta = 3;
    check_true("PGD: no steps refused", nm_attack_pgd(ctx, net, M, &o, 0, mu, &r) == NM_ERR_ARG);
    nm_net_free(ctx, net);
}

/* A small random conv net with ten classes (1×12×12 → conv 4@3×3 → pool → ReLU → 32 → ReLU → 10): a batch's
 * nine targets at a fraction of LeNet's cost. */
static nm_net *mini_net(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 1, 12, 12), &x);
    int y = NODE(net, NM_OP_RELU, NULL, pool(net, conv(net, x, 1, 4, 3, 1, 1), 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 144, 32));
    finish(net, linear(net, y, 32, 10));
    return net;
}

/* A batch on it: (count × 9) rows, the same on one thread as on two, the support kept. */
static void test_batch(void)
{
    enum { COUNT = 2, NN = 144 };
    nm_net *net = mini_net();
    float *X = fill_rand(COUNT * NN, 1.0);
    static uint8_t sup[NN];
    check_true("support", nm_attack_support(ctx, NN, 25, 3, sup, NULL) == NM_OK);
    for (int pgd = 0; pgd <= 1; pgd++) {
        nm_attack_batch_options o = nm_attack_batch_options_default();
        o.attack.beta = 1, o.attack.max_iter = 25, o.attack.support = sup, o.pgd = pgd, o.pgd_steps = 10, o.mc = 200, o.keep_mu = 1;
        nm_attack_table t1, t2;
        omp_set_num_threads(1);
        nm_status s1 = nm_attack_batch(ctx, net, X, COUNT, &o, &t1);
        omp_set_num_threads(2);
        nm_status s2 = nm_attack_batch(ctx, net, X, COUNT, &o, &t2);
        check_true("batch runs on 1 and 2 threads", s1 == NM_OK && s2 == NM_OK);
        if (s1 != NM_OK || s2 != NM_OK) continue;
        check_true("a row per image and other class", t1.count == COUNT * 9 && t2.count == t1.count);
        int same = 1, bounds = 1;
        int64_t succ = 0;
        for (int64_t i = 0; i < t1.count; i++) {
            nm_attack_row a = t1.row[i], b = t2.row[i];
            a.time_s = b.time_s = 0;
            same &= !memcmp(&a, &b, sizeof a);
            bounds &= a.image == i / 9 && a.target != a.label && a.mu_linf <= o.attack.beta && a.support == 36;
            bounds &= pgd ? a.sigma2 == 0 : a.sigma2 > 0 && a.sigma2 <= o.attack.sigma2_max;
            bounds &= a.success == (a.mc_argmax == a.target);
            for (int k = 0; k < NN; k++) bounds &= sup[k] || t1.mu[i * NN + k] == 0;
            succ += a.success;
        }
        check_true(pgd ? "PGD rows identical on 1 and 2 threads" : "Gaussian rows identical on 1 and 2 threads", same);
        check_true("rows: bounds, support, success = (argmax is the target)", bounds && succ == t1.successes);
        check_true("identical mu on 1 and 2 threads", !memcmp(t1.mu, t2.mu, (size_t)(t1.count * NN) * sizeof(float)));
        nm_attack_table_free(ctx, &t1), nm_attack_table_free(ctx, &t2);
    }
    /* untargeted: one row per image */
    nm_attack_batch_options o = nm_attack_batch_options_default();
    o.attack.beta = 1, o.attack.max_iter = 10, o.untargeted = 1, o.mc = 100;
    nm_attack_table t;
    check_true("untargeted batch: a row per image", nm_attack_batch(ctx, net, X, COUNT, &o, &t) == NM_OK && t.count == COUNT && !t.mu);
    nm_attack_table_free(ctx, &t);
    o.mc = 0;
    check_true("mc 0 refused", nm_attack_batch(ctx, net, X, COUNT, &o, &t) == NM_ERR_ARG);
    free(X);
    nm_net_free(ctx, net);
}

/* The verification's samples: spread sigma around M + mu (within 5 standard errors), labels from the net's forward. */
static void test_samples(void)
{
    enum { K = 100, NN = 144 };
    nm_net *net = mini_net();
    float *M = fill_rand(NN, 1.0), *mu = fill_rand(NN, 0.5), *X = malloc(K * NN * sizeof(float));
    int lab[K];
    double sigma2 = 0.64, ss = 0, sm = 0;
    check_true("samples drawn", nm_attack_samples(ctx, net, M, mu, sigma2, K, 7, 3, X, lab) == NM_OK);
    for (int i = 0; i < K * NN; i++) {
        double e = X[i] - ((double)M[i % NN] + mu[i % NN]);
        sm += e, ss += e * e;
    }
    double N = (double)K * NN, var = ss / N;
    check_close("samples: mean offset 0", sm / N, 0, 5 * sqrt(sigma2 / N), 0);
    check_close("samples: variance sigma2", var, sigma2, 5 * sigma2 * sqrt(2 / N), 0);
    nm_array xa = {NM_F32, 4, {K, 1, 12, 12}, X}, y;
    check_true("forward", nm_net_forward(ctx, net, 0, -1, &xa, &y) == NM_OK);
    int agree = 1;
    for (int i = 0; i < K; i++) {
        const float *yi = (const float *)y.data + i * 10;
        int a = 0;
        for (int k = 1; k < 10; k++)
            if (yi[k] > yi[a]) a = k;
        agree &= a == lab[i];
    }
    check_true("labels = the net's forward", agree);
    nm_array_free(ctx, &y);
    check_true("k 0 refused", nm_attack_samples(ctx, net, M, mu, sigma2, 0, 7, 3, X, lab) == NM_ERR_ARG);
    /* the figure's grid refuses what it cannot draw */
    double px[4] = {0, 1, 2, NAN};
    nm_plot_image im = {"x", px, 2, 2, 0};
    check_true("a NaN pixel refused", nm_plot_images(ctx, NULL, NULL, 1, 1, &im, "t", NULL) == NM_ERR_ARG);
    im.H = 0, px[3] = 3;
    check_true("an empty image refused", nm_plot_images(ctx, NULL, NULL, 1, 1, &im, "t", NULL) == NM_ERR_ARG);
    im.H = 2, im.scale = -1;
    check_true("a negative scale refused", nm_plot_images(ctx, NULL, NULL, 1, 1, &im, "t", NULL) == NM_ERR_ARG);
    im.scale = 0;
    check_true("no columns refused", nm_plot_images(ctx, NULL, NULL, 1, 0, &im, "t", NULL) == NM_ERR_ARG);
    free(M), free(mu), free(X);
    nm_net_free(ctx, net);
}

int main(void)
{
    ctx = nm_ctx_create();
    test_vertex();
    test_lenet();
    test_sparse();
    test_pgd();
    test_batch();
    test_samples();
    nm_ctx_free(ctx);
    return check_finish("test_attack");
}
