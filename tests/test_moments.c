/*
 * test_moments.c — network moments (DESIGN §1.6–1.8).
 *  - A, c1, B, c2 of random nets: for a fully connected net against the
 *    explicit product of its layer Jacobians (W₂ D₁ W₁, masks read off the
 *    test's own double forward pass), at each split; for a conv net with
 *    max-pool against central differences of the forward pass inside the
 *    linear region (the step is halved until the jvp at x₀ ± h e_j equals
 *    the one at x₀).
 *  - A net that is exactly (Linear, ReLU, Linear): network moments equal the
 *    ARA kernels' on its weights, to rounding, for paper, exact and delta.
 *  - Noise tiny against the distance to the kinks: method exact matches a
 *    Monte Carlo of the real network within 5 standard errors.
 *  - Windowed Σ equals the full Σ with zeros outside the window; the
 *    operator path (A never formed) equals the matrix path.
 *  - Monte Carlo identical on 1 and 2 threads.
 *  - Bad input: split out of range, wrong input shape, wrong Σ size, NaN.
 */
#include "netbuild.h"
#include "check.h"

#include <omp.h>

#define TOL_JAC 1e-5    /* float passes vs double products, relative to the largest entry */
#define TOL_FD 2e-3     /* float forward differences */
#define TOL_ARA 1e-5    /* network path (float c1) vs ARA kernels */
#define TOL_SAME 1e-6   /* operator vs matrix path, window vs full */
#define Z_MAX 5.0       /* Monte Carlo agreement in standard errors */
#define FD_STEP_MIN 1e-4 /* the central-difference step fd_column found inside the linear region */

static double maxabs(const double *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* ---------------------------------------------------------------- FC net vs explicit Jacobians */

static int linear_layer(nm_net *net, int x, int64_t in, int64_t out, const float **W, const float **b)
{
    int w = rconst(net, SHAPE(out, in), 1.0 / sqrt((double)in), 0), bb = rconst(net, SHAPE(out), 0.5, 0);
    *W = net->v[w].cdata;
    *b = net->v[bb].cdata;
    return gemm_node(net, x, w, bb);
}

/* y = W x + b, then relu when r (double). */
static void layer(const float *W, const float *b, const double *x, int64_t in, int64_t out, int r, double *y, int *mask)
{
    for (int64_t i = 0; i < out; i++) {
        double s = b[i];
        for (int64_t j = 0; j < in; j++) s += (double)W[i * in + j] * x[j];
        if (mask) mask[i] = s > 0;
        y[i] = r && s < 0 ? 0 : s;
    }
}

static void compare(const char *what, const double *got, const double *want, int64_t n, double tol)
{
    double scale = maxabs(want, n) + 1e-30;
    char w[200];
    for (int64_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "%s[%lld]", what, (long long)i);
        check_close(w, got[i], want[i], tol * scale, 0);
    }
}

static void as_double(const nm_array *a, double *out)
{
    int64_t n = nm_array_numel(a);
    for (int64_t i = 0; i < n; i++) out[i] = a->dtype == NM_F64 ? ((double *)a->data)[i] : ((float *)a->data)[i];
}

static void fc_jacobians(void)
{
    enum { N = 6, H1 = 8, H2 = 5, D = 3 };
    int x;
    const float *W1, *b1, *W2, *b2, *W3, *b3;
    nm_net *net = start(SHAPE(1, N), &x);
    int y = NODE(net, NM_OP_RELU, NULL, linear_layer(net, x, N, H1, &W1, &b1));
    y = NODE(net, NM_OP_RELU, NULL, linear_layer(net, y, H1, H2, &W2, &b2));
    finish(net, linear_layer(net, y, H2, D, &W3, &b3));
    float x0[N];
    double xd[N], h1[H1], h2[H2];
    int m1[H1], m2[H2];
    for (int j = 0; j < N; j++) xd[j] = x0[j] = (float)nrand();
    layer(W1, b1, xd, N, H1, 1, h1, m1);
    layer(W2, b2, h1, H1, H2, 1, h2, m2);
    nm_array mu = {NM_F32, 2, {1, N}, x0};
    for (int l = 1; l <= 2; l++) {
        nm_net_moments_options o = nm_net_moments_options_default();
        o.split_relu = l;
        nm_array A, c1, B, c2;
        if (!check_true("linearize FC net", nm_net_linearize(ctx, net, &mu, &o, &A, &c1, &B, &c2) == NM_OK)) continue;
        double Ag[H1 * N], c1g[H1], Bg[D * H1], c2g[D], Aw[H1 * N], c1w[H1], Bw[D * H1], c2w[D];
        int64_t p = l == 1 ? H1 : H2;
        as_double(&A, Ag), as_double(&c1, c1g), as_double(&B, Bg), as_double(&c2, c2g);
        if (l == 1) { /* A = W1, c1 = b1; B = W3 D2 W2, c2 = W3 (D2 b2) + b3 (D2 at y0 = relu(W1 x0 + b1)) */
            for (int i = 0; i < H1 * N; i++) Aw[i] = W1[i];
            for (int i = 0; i < H1; i++) c1w[i] = b1[i];
            for (int i = 0; i < D; i++) {
                for (int j = 0; j < H1; j++) {
                    double s = 0;
                    for (int k = 0; k < H2; k++) s += (double)W3[i * H2 + k] * m2[k] * W2[k * H1 + j];
                    Bw[i * H1 + j] = s;
                }
                double s = b3[i];
                for (int k = 0; k < H2; k++) s += (double)W3[i * H2 + k] * m2[k] * b2[k];
                c2w[i] = s;
            }
        } else { /* A = W2 D1 W1, c1 = W2 (D1 b1) + b2; B = W3, c2 = b3 */
            for (int i = 0; i < H2; i++) {
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < H1; k++) s += (double)W2[i * H1 + k] * m1[k] * W1[k * N + j];
                    Aw[i * N + j] = s;
                }
                double s = b2[i];
                for (int k = 0; k < H1; k++) s += (double)W2[i * H1 + k] * m1[k] * b1[k];
                c1w[i] = s;
            }
            for (int i = 0; i < D * H2; i++) Bw[i] = W3[i];
            for (int i = 0; i < D; i++) c2w[i] = b3[i];
        }
        char w[64];
        snprintf(w, sizeof w, "FC split %d: A", l), compare(w, Ag, Aw, p * N, TOL_JAC);
        snprintf(w, sizeof w, "FC split %d: c1", l), compare(w, c1g, c1w, p, TOL_JAC);
        snprintf(w, sizeof w, "FC split %d: B", l), compare(w, Bg, Bw, D * p, TOL_JAC);
        snprintf(w, sizeof w, "FC split %d: c2", l), compare(w, c2g, c2w, D, TOL_JAC);
        nm_array_free(ctx, &A), nm_array_free(ctx, &c1), nm_array_free(ctx, &B), nm_array_free(ctx, &c2);
    }
    printf("  FC net: A, c1, B, c2 at both splits equal the explicit products of layer Jacobians\n");
    nm_net_free(ctx, net);
}

/* ---------------------------------------------------------------- conv net vs finite differences */

static nm_net *conv_net(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 2, 6, 6), &x);
    int y = conv(net, x, 2, 3, 3, 1, 1);
    y = NODE(net, NM_OP_RELU, NULL, pool(net, y, 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 27, 12));
    finish(net, linear(net, y, 12, 4));
    return net;
}

/* Central difference of nodes first..last along unit vector j, inside the
 * linear region of x (n floats): returns the step used, 0 if none found. */
static double fd_column(nm_net *net, int first, int last, const float *x, int64_t n, int64_t j, double *col, int64_t m)
{
    nm_shape s = net->v[nm_net_range_input(net, first)].shape;
    s.d[0] = 1;
    nm_array xa = {NM_F32, s.ndim, {0}, NULL}, y, e = {NM_F32, s.ndim, {0}, NULL}, J0, Jh;
    memcpy(xa.shape, s.d, sizeof(int64_t) * (size_t)s.ndim);
    memcpy(e.shape, s.d, sizeof(int64_t) * (size_t)s.ndim);
    float *xs = malloc((size_t)n * sizeof(float)), *ej = calloc((size_t)n, sizeof(float));
    ej[j] = 1;
    e.data = ej;
    xa.data = (void *)x;
    nm_net_forward(ctx, net, first, last, &xa, &y);
    nm_array_free(ctx, &y);
    nm_net_jvp(ctx, net, first, last, &e, &J0);
    double h = 0.05;
    for (int tries = 0; tries < 12; tries++, h /= 2) {
        int same = 1;
        float *yv[2] = {0};
        for (int sgn = 0; sgn < 2 && same; sgn++) {
            memcpy(xs, x, (size_t)n * sizeof(float));
            xs[j] += (float)(sgn ? h : -h);
            xa.data = xs;
            nm_net_forward(ctx, net, first, last, &xa, &y);
            yv[sgn] = y.data;
            nm_net_jvp(ctx, net, first, last, &e, &Jh);
            same = !memcmp(Jh.data, J0.data, (size_t)m * sizeof(float));
            nm_array_free(ctx, &Jh);
        }
        if (same)
            for (int64_t i = 0; i < m; i++) col[i] = ((double)yv[1][i] - yv[0][i]) / (2 * h);
        free(yv[0]), free(yv[1]);
        if (same) break;
    }
    nm_array_free(ctx, &J0);
    free(xs), free(ej);
    return h;
}

static void conv_fd(void)
{
    nm_net *net = conv_net();
    int64_t n = 72, p = 12, d = 4;
    float *x0 = fill_rand(n, 1.0);
    nm_array mu = {NM_F32, 4, {1, 2, 6, 6}, x0}, A, c1, B, c2;
    nm_net_moments_options o = nm_net_moments_options_default();
    if (!check_true("linearize conv net", nm_net_linearize(ctx, net, &mu, &o, &A, &c1, &B, &c2) == NM_OK)) return;
    int k = nm_net_relu_node(net, 2), last = net->nn - 1;
    double *col = malloc((size_t)p * sizeof(double)), Ad[12 * 72], Bd[4 * 12];
    as_double(&A, Ad), as_double(&B, Bd);
    double amax = maxabs(Ad, p * n), bmax = maxabs(Bd, d * p);
    int found = 1;
    for (int64_t j = 0; j < n; j++) {
        found &= fd_column(net, 0, k - 1, x0, n, j, col, p) > FD_STEP_MIN;
        for (int64_t i = 0; i < p; i++) check_close("conv A vs central difference", Ad[i * n + j], col[i], TOL_FD * amax, 0);
    }
    /* B at y0 = relu(R_bot(x0)), c1 and c2 from their definitions */
    nm_array y0;
    nm_net_forward(ctx, net, 0, k, &mu, &y0);
    float *y0f = y0.data;
    for (int64_t j = 0; j < p; j++) {
        fd_column(net, k + 1, last, y0f, p, j, col, d);
        for (int64_t i = 0; i < d; i++) check_close("conv B vs central difference", Bd[i * p + j], col[i], TOL_FD * bmax, 0);
    }
    nm_array rb, rt;
    nm_net_forward(ctx, net, 0, k - 1, &mu, &rb);
    nm_net_forward(ctx, net, k + 1, last, &y0, &rt);
    for (int64_t i = 0; i < p; i++) {
        double s = ((float *)rb.data)[i];
        for (int64_t j = 0; j < n; j++) s -= Ad[i * n + j] * x0[j];
        check_close("c1 = R_bot(x0) - A x0", ((double *)c1.data)[i], s, 1e-5 * (1 + fabs(s)), 0);
    }
    for (int64_t i = 0; i < d; i++) {
        double s = ((float *)rt.data)[i];
        for (int64_t j = 0; j < p; j++) s -= Bd[i * p + j] * y0f[j];
        check_close("c2 = R_top(y0) - B y0", ((double *)c2.data)[i], s, 1e-5 * (1 + fabs(s)), 0);
    }
    check_true("conv net: every FD column inside its linear region", found);
    printf("  conv net with max-pool: A (12x72) and B (4x12) equal central differences inside the linear region\n");
    nm_array_free(ctx, &rb), nm_array_free(ctx, &rt), nm_array_free(ctx, &y0);
    nm_array_free(ctx, &A), nm_array_free(ctx, &c1), nm_array_free(ctx, &B), nm_array_free(ctx, &c2);
    free(col), free(x0);
    nm_net_free(ctx, net);
}

/* ---------------------------------------------------------------- (Linear, ReLU, Linear) vs ARA */

static void ara_equivalence(void)
{
    enum { N = 20, P = 30, D = 4 };
    int x;
    const float *W1, *b1, *W2, *b2;
    nm_net *net = start(SHAPE(1, N), &x);
    int y = NODE(net, NM_OP_RELU, NULL, linear_layer(net, x, N, P, &W1, &b1));
    finish(net, linear_layer(net, y, P, D, &W2, &b2));
    float *mu = fill_rand(N, 1.0);
    nm_array mua = {NM_F32, 2, {1, N}, mu}, A = {NM_F32, 2, {P, N}, (void *)W1}, C1 = {NM_F32, 1, {P}, (void *)b1},
             B = {NM_F32, 2, {D, P}, (void *)W2}, C2 = {NM_F32, 1, {D}, (void *)b2}, mu1 = {NM_F32, 1, {N}, mu};
    nm_ara ara = {&A, &C1, &B, &C2};
    nm_cov *cov;
    nm_cov_isotropic(ctx, N, 0.7, &cov);
    double worst = 0;
    for (int m = 0; m < nm_method_count(); m++) {
        nm_net_moments_options o = nm_net_moments_options_default();
        o.method = (nm_method)m;
        nm_ara_options ao = {(nm_method)m, NM_PREC_DOUBLE, 0, 0};
        nm_moments a, b;
        if (!check_true("network moments", nm_net_moments(ctx, net, &mua, cov, &o, &a) == NM_OK)) continue;
        nm_ara_moments(ctx, &ara, &mu1, cov, &ao, &b);
        for (int i = 0; i < D; i++) {
            check_close("(Linear, ReLU, Linear) mean = ARA", a.mean[i], b.mean[i], TOL_ARA * (1 + fabs(b.mean[i])), 0);
            check_close("(Linear, ReLU, Linear) var = ARA", a.var[i], b.var[i], TOL_ARA * b.var[i], 0);
            worst = fmax(worst, fabs(a.var[i] - b.var[i]) / b.var[i]);
        }
        nm_moments_free(ctx, &a), nm_moments_free(ctx, &b);
    }
    printf("  (Linear, ReLU, Linear): network moments = ARA kernels, worst variance rel diff %.1e\n", worst);
    nm_cov_free(ctx, cov);
    free(mu);
    nm_net_free(ctx, net);
}

/* ---------------------------------------------------------------- vs Monte Carlo, window, operator path */

static void monte_carlo_and_paths(void)
{
    nm_net *net = conv_net();
    int64_t n = 72;
    float *mu = fill_rand(n, 1.0);
    nm_array mua = {NM_F32, 4, {1, 2, 6, 6}, mu};
    nm_cov *tiny;
    nm_cov_isotropic(ctx, n, 1e-8, &tiny);
    nm_moments ex;
    nm_net_moments_options o = nm_net_moments_options_default();
    nm_net_moments(ctx, net, &mua, tiny, &o, &ex);
    nm_rng rng = {11};
    nm_mc_result mc, mc1;
    nm_net_montecarlo(ctx, net, &mua, tiny, 20000, &rng, 0, NULL, NULL, &mc);
    double zm = 0, zv = 0;
    for (int i = 0; i < 4; i++) {
        /* float forward passes carry rounding of ~1e-7 relative in the mean, so the mean's z is against SE plus that */
        double se_m = mc.mean_se[i] + 1e-6 * fabs(ex.mean[i]);
        zm = fmax(zm, fabs(mc.mean[i] - ex.mean[i]) / se_m);
        zv = fmax(zv, fabs(mc.var[i] - ex.var[i]) / mc.var_se[i]);
    }
    printf("  tiny noise (sigma^2 = 1e-8), 20,000 samples: exact vs MC, max |z| mean %.2f, var %.2f\n", zm, zv);
    check_true("exact vs MC of the real net: means within 5 SE", zm < Z_MAX);
    check_true("exact vs MC of the real net: variances within 5 SE", zv < Z_MAX);
    /* identical on 1 thread */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    nm_net_montecarlo(ctx, net, &mua, tiny, 20000, &rng, 0, NULL, NULL, &mc1);
    omp_set_num_threads(threads);
    check_true("Monte Carlo identical on 1 and on all threads",
               !memcmp(mc.mean, mc1.mean, 4 * sizeof(double)) && !memcmp(mc.var, mc1.var, 4 * sizeof(double)));
    nm_mc_result_free(ctx, &mc), nm_mc_result_free(ctx, &mc1), nm_moments_free(ctx, &ex);
    nm_cov_free(ctx, tiny);

    /* window vs full Σ with zeros outside, and the operator path vs the matrix path */
    nm_cov *win, *full, *iso;
    nm_cov_window(ctx, 2, 6, 6, 1, 2, 3, 2, 0.5, &win);
    double *C = calloc((size_t)(n * n), sizeof(double));
    for (int ch = 0; ch < 2; ch++)
        for (int r = 1; r < 4; r++)
            for (int c = 2; c < 4; c++) C[((ch * 6 + r) * 6 + c) * (n + 1)] = 0.5;
    nm_cov_full(ctx, n, C, &full);
    nm_cov_isotropic(ctx, n, 0.3, &iso);
    for (int m = 0; m < nm_method_count(); m++) {
        nm_net_moments_options om = o, op = o;
        om.method = op.method = (nm_method)m;
        op.mem_budget = 1; /* A never fits: the operator path */
        nm_moments a, b, c, e;
        nm_net_moments(ctx, net, &mua, win, &om, &a);
        nm_net_moments(ctx, net, &mua, full, &om, &b);
        nm_net_moments(ctx, net, &mua, iso, &om, &c);
        check_true("operator path runs", nm_net_moments(ctx, net, &mua, iso, &op, &e) == NM_OK);
        for (int i = 0; i < 4; i++) {
            check_close("windowed = full with zeros outside: mean", a.mean[i], b.mean[i], TOL_SAME * (1 + fabs(b.mean[i])), 0);
            check_close("windowed = full with zeros outside: var", a.var[i], b.var[i], TOL_SAME * (b.var[i] + 1e-12), 0);
            check_close("operator path = matrix path: mean", e.mean[i], c.mean[i], TOL_SAME * (1 + fabs(c.mean[i])), 0);
            check_close("operator path = matrix path: var", e.var[i], c.var[i], TOL_SAME * (c.var[i] + 1e-12), 0);
        }
        nm_moments_free(ctx, &a), nm_moments_free(ctx, &b), nm_moments_free(ctx, &c), nm_moments_free(ctx, &e);
    }
    printf("  windowed = full Sigma with zeros outside; operator path = matrix path (all three methods)\n");

    /* bad input */
    nm_moments r;
    nm_net_moments_options bad = o;
    bad.split_relu = 3;
    check_true("split ReLU out of range: NM_ERR_ARG", nm_net_moments(ctx, net, &mua, iso, &bad, &r) == NM_ERR_ARG &&
                                                            strstr(nm_ctx_message(ctx), "1..2"));
    nm_array wrong = {NM_F32, 4, {1, 2, 6, 5}, mu};
    check_true("input shape not the model's: NM_ERR_SHAPE", nm_net_moments(ctx, net, &wrong, iso, &o, &r) == NM_ERR_SHAPE);
    nm_cov *small;
    nm_cov_isotropic(ctx, 60, 1, &small);
    check_true("covariance of the wrong size: NM_ERR_SHAPE", nm_net_moments(ctx, net, &mua, small, &o, &r) == NM_ERR_SHAPE);
    nm_cov *neg;
    check_true("negative sigma^2: NM_ERR_NOT_PSD", nm_cov_isotropic(ctx, n, -1, &neg) == NM_ERR_NOT_PSD);
    mu[3] = NAN;
    check_true("NaN in the mean: NM_ERR_NONFINITE", nm_net_moments(ctx, net, &mua, iso, &o, &r) == NM_ERR_NONFINITE);
    check_true("window outside the image: NM_ERR_ARG", nm_cov_window(ctx, 2, 6, 6, 4, 4, 3, 3, 1, &neg) == NM_ERR_ARG);
    nm_cov_free(ctx, small), nm_cov_free(ctx, win), nm_cov_free(ctx, full), nm_cov_free(ctx, iso);
    free(C), free(mu);
    nm_net_free(ctx, net);
}

/* ---------------------------------------------------------------- ReLU states changed by the noise */

/* A Linear layer of the given weights (out×in) and biases. */
static int gemm(nm_net *net, int x, int64_t in, int64_t out, const float *W, const float *b)
{
    int w = vconst(net, SHAPE(out, in), W);
    return gemm_node(net, x, w, vconst(net, SHAPE(out), b));
}

/* x ~ N(0, σ²) through relu(x + c), relu(−x + c) (bottom), their sum (the
 * split ReLU: y = max(2c, c + |x|)), then relu(y − a_i) (top): at x₀ = 0 the
 * bottom units are on and the top ones off (a_i > 2c). A bottom unit turns
 * off with probability Φ(−c/σ); top unit i turns on when |x| > a_i − c,
 * with probability 2Φ(−(a_i − c)/σ). */
static void relu_changes(void)
{
    const double c = 0.5, a[2] = {1.2, 2.0}, sigma = 1.0;
    const int64_t N = 200000;
    int x;
    nm_net *net = start(SHAPE(1, 1), &x);
    int y = NODE(net, NM_OP_RELU, NULL, gemm(net, x, 1, 2, (float[]){1, -1}, (float[]){(float)c, (float)c}));
    y = NODE(net, NM_OP_RELU, NULL, gemm(net, y, 2, 1, (float[]){1, 1}, (float[]){0}));
    y = NODE(net, NM_OP_RELU, NULL, gemm(net, y, 1, 2, (float[]){1, 1}, (float[]){(float)-a[0], (float)-a[1]}));
    finish(net, gemm(net, y, 2, 1, (float[]){1, 1}, (float[]){0}));
    float mu[1] = {0};
    nm_array ma = {NM_F32, 2, {1, 1}, mu};
    nm_cov *cov;
    nm_cov_isotropic(ctx, 1, sigma * sigma, &cov);
    nm_net_moments_options o = nm_net_moments_options_default();
    o.split_relu = 2;
    nm_rng rng = {17};
    double bottom, top;
    if (check_true("ReLU changes", nm_net_relu_changes(ctx, net, &ma, cov, &o, N, &rng, &bottom, &top) == NM_OK)) {
        double pb = 0.5 * erfc(c / sigma / sqrt(2.0)), pt = 0;
        for (int i = 0; i < 2; i++) pt += 0.5 * erfc((a[i] - c) / sigma / sqrt(2.0)); /* mean of 2Φ(−(a_i − c)/σ) */
        /* a share of correlated indicators: its variance is at most the largest indicator's p(1 − p)/N */
        double seb = sqrt(pb * (1 - pb) / N), set = sqrt(0.5 * (1 - 0.5) / N);
        printf("  ReLU changes: bottom %.5f (closed form %.5f), top %.5f (%.5f), %lld samples\n", bottom, pb, top, pt, (long long)N);
        check_close("bottom ReLUs changed = Φ(−c/σ)", bottom, pb, Z_MAX * seb, 0);
        check_close("top ReLUs changed = mean of 2Φ(−(a_i − c)/σ)", top, pt, Z_MAX * set, 0);
    }
    o.split_relu = 1; /* no ReLU below the first: bottom is 0 */
    if (check_true("ReLU changes at split 1", nm_net_relu_changes(ctx, net, &ma, cov, &o, 1000, &rng, &bottom, &top) == NM_OK))
        check_true("no ReLU below the first split: bottom share 0", bottom == 0);
    check_true("ReLU changes: 0 samples refused", nm_net_relu_changes(ctx, net, &ma, cov, &o, 0, &rng, &bottom, &top) == NM_ERR_ARG);
    nm_cov_free(ctx, cov);
    nm_net_free(ctx, net);
}

int main(void)
{
    ctx = nm_ctx_create();
    fc_jacobians();
    conv_fd();
    ara_equivalence();
    monte_carlo_and_paths();
    relu_changes();
    nm_ctx_free(ctx);
    return check_finish("test_moments");
}
