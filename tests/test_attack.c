/*
 * test_attack.c — the targeted Gaussian attack (Eq 3) where its optimum is
 * known in closed form: a net whose ReLUs the noise cannot turn off (large
 * positive biases) is affine in expectation, E = W μ + b with W = B A from
 * its weights, so with two classes min_{μ ∈ [−β, β]ⁿ} E_i − E_j is reached at
 * μ_k = −β sign(W_ik − W_jk), computed here from the weights. Every returned
 * μx and σ² within their bounds and the support; bad input refused.
 */
#include "netbuild.h"
#include "check.h"

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

static void test_vertex(void)
{
    nm_net *net = affine_net();
    float M[N_IN] = {0}, mu[N_IN];
    nm_array xa = {NM_F32, 2, {1, N_IN}, M}, y;
    check_true("forward", nm_net_forward(ctx, net, 0, -1, &xa, &y) == NM_OK);
    int c = ((float *)y.data)[1] > ((float *)y.data)[0];
    nm_array_free(ctx, &y);
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

int main(void)
{
    ctx = nm_ctx_create();
    test_vertex();
    test_lenet();
    test_sparse();
    nm_ctx_free(ctx);
    return check_finish("test_attack");
}
