/*
 * test_adversarial.c — DeepFool, the ℓp projection and the universal
 * perturbation against hand-computable cases: on a linear classifier
 * DeepFool's one step is the exact distance to the nearest decision
 * boundary (ℓ2: |f|/‖w‖₂ along w; ℓ∞: |f|/‖w‖₁ along sign w), computed here
 * in double from the weights; projections on hand-made vectors; the UAP's
 * reported fooling rates against the labels recomputed here from the
 * weights, its norm within the radius, its determinism for a seed; a LeNet
 * that DeepFool fools; bad input refused.
 */
#include "netbuild.h"
#include "check.h"

#define TOL_STEP 2e-5   /* DeepFool step vs the closed form, relative to its norm (float32 passes) */
#define TOL_PROJ 1e-6   /* projections */
#define D 4             /* classes of the linear classifier */
#define N 6             /* its inputs */

static float W[D * N], Bv[D];

/* y = W x + b as a net (1, N) → (1, D). */
static nm_net *linear_net(void)
{
    int x;
    nm_net *net = start(SHAPE(1, N), &x);
    for (int i = 0; i < D * N; i++) W[i] = (float)nrand();
    for (int i = 0; i < D; i++) Bv[i] = (float)(0.3 * nrand());
    finish(net, gemm_node(net, x, vconst(net, SHAPE(D, N), W), vconst(net, SHAPE(D), Bv)));
    return net;
}

static int label_of(const double *x)
{
    int best = 0;
    double bv = -INFINITY;
    for (int k = 0; k < D; k++) {
        double y = Bv[k];
        for (int j = 0; j < N; j++) y += (double)W[k * N + j] * x[j];
        if (y > bv) bv = y, best = k;
    }
    return best;
}

/* The closed-form step: the boundary of the class l nearest in the dual norm, reached 1e-4 past it. */
static void closed_form(const double *x, int c, nm_norm norm, double overshoot, double *r, int *l_out)
{
    double f[D], best = INFINITY;
    int l = -1;
    for (int k = 0; k < D; k++) {
        f[k] = (double)Bv[k] - Bv[c];
        for (int j = 0; j < N; j++) f[k] += ((double)W[k * N + j] - W[c * N + j]) * x[j];
    }
    for (int k = 0; k < D; k++) {
        if (k == c) continue;
        double q = 0;
        for (int j = 0; j < N; j++) {
            double w = (double)W[k * N + j] - W[c * N + j];
            q += norm == NM_NORM_INF ? fabs(w) : w * w;
        }
        double dist = fabs(f[k]) / (norm == NM_NORM_INF ? q : sqrt(q));
        if (dist < best) best = dist, l = k;
    }
    double q = 0;
    for (int j = 0; j < N; j++) {
        double w = (double)W[l * N + j] - W[c * N + j];
        q += norm == NM_NORM_INF ? fabs(w) : w * w;
    }
    for (int j = 0; j < N; j++) {
        double w = (double)W[l * N + j] - W[c * N + j], s = (fabs(f[l]) + 1e-4) / q;
        r[j] = (1 + overshoot) * (norm == NM_NORM_INF ? s * (w > 0 ? 1 : -1) : s * w);
    }
    *l_out = l;
}

static void test_deepfool_linear(void)
{
    nm_net *net = linear_net();
    for (int trial = 0; trial < 40; trial++) {
        double x[N], r_want[N];
        float xf[N], r[N];
        for (int j = 0; j < N; j++) x[j] = xf[j] = (float)nrand(), x[j] = xf[j];
        int c = label_of(x);
        nm_norm norm = trial % 2 ? NM_NORM_INF : NM_NORM_2;
        nm_deepfool_options o = nm_deepfool_options_default();
        o.norm = norm;
        o.overshoot = trial % 4 < 2 ? 0 : 0.02;
        int it, lab, l;
        check_true("DeepFool runs", nm_deepfool(ctx, net, xf, c, &o, r, &it, &lab) == NM_OK);
        closed_form(x, c, norm, o.overshoot, r_want, &l);
        double nr = 0;
        for (int j = 0; j < N; j++) nr = fmax(nr, fabs(r_want[j]));
        for (int j = 0; j < N; j++) check_close("linear DeepFool = the distance to the nearest boundary", r[j], r_want[j], TOL_STEP * nr, 0);
        check_true("one step on a linear classifier", it == 1);
        check_true("lands in the nearest class", lab == l);
        double xr[N];
        for (int j = 0; j < N; j++) xr[j] = x[j] + r[j];
        check_true("the perturbed input is fooled", label_of(xr) != c);
    }
    nm_net_free(ctx, net);
}

static void test_project(void)
{
    float v[4] = {3, -4, 0, 0};
    nm_project_ball(v, 4, NM_NORM_2, 2.5);
    check_close("ℓ2 projection scales", v[0], 1.5, TOL_PROJ, 0);
    check_close("ℓ2 projection scales", v[1], -2.0, TOL_PROJ, 0);
    float u[4] = {0.3f, -0.4f, 0, 0};
    nm_project_ball(u, 4, NM_NORM_2, 2.5);
    check_close("ℓ2 inside the ball unchanged", u[1], -0.4, TOL_PROJ, 0);
    float w[4] = {3, -4, 0.5f, -0.2f};
    nm_project_ball(w, 4, NM_NORM_INF, 1);
    check_true("ℓ∞ projection clips", w[0] == 1 && w[1] == -1 && w[2] == 0.5f && w[3] == -0.2f);
}

static void test_uap_linear(void)
{
    nm_net *net = linear_net();
    enum { M = 300 };
    static float X[M * N];
    for (int i = 0; i < M * N; i++) X[i] = (float)(1.5 * nrand());
    for (int norm = 0; norm < 2; norm++) {
        nm_uap_options o = nm_uap_options_default();
        o.deepfool.norm = norm ? NM_NORM_INF : NM_NORM_2;
        o.xi = norm ? 0.6 : 1.2;
        o.passes = 4;
        o.target_rate = 1.0; /* run every pass */
        float v[N], v2[N];
        nm_uap_result res, res2;
        check_true("UAP runs", nm_uap_run(ctx, net, X, M, &o, v, &res) == NM_OK);
        check_true("all passes run", res.passes == 4);
        double s = 0, mx = 0;
        for (int j = 0; j < N; j++) s += (double)v[j] * v[j], mx = fmax(mx, fabs(v[j]));
        check_true("within the ball", (norm ? mx : sqrt(s)) <= o.xi * (1 + 1e-6));
        int fooled = 0;
        for (int i = 0; i < M; i++) {
            double x[N], xv[N];
            for (int j = 0; j < N; j++) x[j] = X[i * N + j], xv[j] = x[j] + v[j];
            fooled += label_of(xv) != label_of(x);
        }
        check_close("reported fooling rate = recomputed from the weights", res.rate[res.passes - 1], (double)fooled / M, 1e-12, 0);
        check_true("a universal perturbation fools some", fooled > 0);
        check_true("UAP runs again", nm_uap_run(ctx, net, X, M, &o, v2, &res2) == NM_OK);
        check_true("same seed, same perturbation", !memcmp(v, v2, sizeof v));
        printf("linear UAP (%s, xi %.2g): fooling rates %.3f %.3f %.3f %.3f\n", norm ? "inf" : "2", o.xi, res.rate[0], res.rate[1],
               res.rate[2], res.rate[3]);
        o.target_rate = 0.5 * res.rate[0];
        check_true("UAP with a target runs", nm_uap_run(ctx, net, X, M, &o, v2, &res2) == NM_OK);
        check_true("stops at the target rate", res2.passes == 1);
    }
    nm_net_free(ctx, net);
}

static void test_deepfool_lenet(void)
{
    nm_net *net = lenet();
    float *x = fill_rand(784, 1.0), *r = malloc(784 * sizeof(float));
    nm_array xa = {NM_F32, 4, {1, 1, 28, 28}, x}, y;
    check_true("LeNet forward", nm_net_forward(ctx, net, 0, -1, &xa, &y) == NM_OK);
    int c = 0;
    for (int k = 1; k < 10; k++)
        if (((float *)y.data)[k] > ((float *)y.data)[c]) c = k;
    int it, lab;
    check_true("DeepFool on LeNet runs", nm_deepfool(ctx, net, x, c, NULL, r, &it, &lab) == NM_OK);
    for (int j = 0; j < 784; j++) x[j] += r[j];
    nm_array ya;
    check_true("LeNet forward at x + r", nm_net_forward(ctx, net, 0, -1, &xa, &ya) == NM_OK);
    int k2 = 0;
    for (int k = 1; k < 10; k++)
        if (((float *)ya.data)[k] > ((float *)ya.data)[k2]) k2 = k;
    printf("LeNet DeepFool: %d steps, %d -> %d\n", it, c, k2);
    check_true("DeepFool fools a LeNet", k2 != c && k2 == lab);
    nm_array_free(ctx, &y), nm_array_free(ctx, &ya);
    free(x), free(r);
    nm_net_free(ctx, net);
}

static void test_bad_input(void)
{
    nm_net *net = linear_net();
    float X[2 * N] = {0}, v[N], r[N];
    nm_uap_options o = nm_uap_options_default();
    nm_uap_result res;
    o.xi = 0;
    check_true("xi 0 refused", nm_uap_run(ctx, net, X, 2, &o, v, &res) == NM_ERR_ARG);
    o.xi = 1;
    X[3] = NAN;
    check_true("NaN image refused", nm_uap_run(ctx, net, X, 2, &o, v, &res) == NM_ERR_NONFINITE);
    X[3] = 0;
    check_true("class out of range refused", nm_deepfool(ctx, net, X, D, NULL, r, NULL, NULL) == NM_ERR_ARG);
    o.passes = NM_UAP_MAX_PASSES + 1;
    check_true("too many passes refused", nm_uap_run(ctx, net, X, 2, &o, v, &res) == NM_ERR_ARG);
    nm_net_free(ctx, net);
}

int main(void)
{
    ctx = nm_ctx_create();
    test_deepfool_linear();
    test_project();
    test_uap_linear();
    test_deepfool_lenet();
    test_bad_input();
    nm_ctx_free(ctx);
    return check_finish("test_adversarial");
}
