/*
 * test_experiments.c — the fooling and sensitivity experiments against
 * independent computations: each sensitivity position's analytic mean
 * against nm_net_moments with the same window covariance (nm_cov_window,
 * the general path: A applied through jvp); the fooling run's real labels
 * against forward passes done here; with vanishing noise the prediction and
 * the top-k orders equal the net's own; results identical for one and two
 * threads; bad input refused.
 */
#include "netbuild.h"
#include "check.h"

#include <omp.h>

#define TOL_MEAN 2e-4 /* window means, relative to the largest |logit| (float32 jvp path vs double A) */
#define IMAGES 3

static nm_net *small_net(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 1, 12, 12), &x);
    int y = conv(net, x, 1, 4, 3, 1, 1);
    y = NODE(net, NM_OP_RELU, NULL, pool(net, y, 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 144, 32));
    finish(net, linear(net, y, 32, 5));
    return net;
}

static void test_sensitivity_vs_moments(nm_net *net, const float *X)
{
    nm_sensitivity_options o = nm_sensitivity_options_default();
    o.h = 4, o.w = 3, o.stride = 2, o.sigma2 = 2.0, o.want_means = 1, o.flip = 1;
    nm_sensitivity s;
    check_true("sensitivity runs", nm_sensitivity_run(ctx, net, X, NULL, IMAGES, &o, &s) == NM_OK);
    check_true("positions", s.P == 5 && s.Q == 5);
    int64_t PQ = s.P * s.Q, d = s.d;
    for (int64_t i = 0; i < IMAGES; i++)
        for (int64_t q = 0; q < PQ; q++) {
            nm_cov *cov;
            nm_moments m;
            nm_array mu = {NM_F32, 4, {1, 1, 12, 12}, (void *)(X + i * 144)};
            nm_net_moments_options mo = nm_net_moments_options_default();
            mo.path = NM_PATH_OPERATOR;
            check_true("window covariance", nm_cov_window(ctx, 1, 12, 12, (q / s.Q) * 2, (q % s.Q) * 2, 4, 3, 2.0, &cov) == NM_OK);
            check_true("window moments", nm_net_moments(ctx, net, &mu, cov, &mo, &m) == NM_OK);
            double scale = 0;
            for (int64_t k = 0; k < d; k++) scale = fmax(scale, fabs(m.mean[k]));
            for (int64_t k = 0; k < d; k++)
                check_close("map's mean = moments --window's", s.mean[(i * PQ + q) * d + k], m.mean[k], TOL_MEAN * scale, 0);
            int arg = 0;
            for (int64_t k = 1; k < d; k++)
                if (m.mean[k] > m.mean[arg]) arg = (int)k;
            if (fabs(m.mean[arg] - m.mean[s.clean[i]]) > 1e-3 * scale || arg == s.clean[i])
                check_true("fooled in expectation as the moments say", s.map[i * PQ + q] == (arg != s.clean[i]));
            check_true("flip probability in [0, 1]", s.flip[i * PQ + q] >= 0 && s.flip[i * PQ + q] <= 1);
            nm_moments_free(ctx, &m);
            nm_cov_free(ctx, cov);
        }
    /* the class maps average the images of each clean label */
    for (int k = 0; k < s.classes; k++) {
        double want = 0;
        int64_t n = 0;
        for (int64_t i = 0; i < IMAGES; i++)
            if (s.clean[i] == k) want += s.map[i * PQ + 3], n++;
        if (n) check_close("class map is the mean over its images", s.class_map[k * PQ + 3], want / n, 1e-15, 0);
        check_true("class counts", s.class_count[k] == n);
    }
    /* thread count independence */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    nm_sensitivity s1;
    check_true("sensitivity on one thread", nm_sensitivity_run(ctx, net, X, NULL, IMAGES, &o, &s1) == NM_OK);
    omp_set_num_threads(threads > 1 ? threads : 2);
    check_true("maps identical on 1 and several threads", !memcmp(s.map, s1.map, (size_t)(IMAGES * PQ) * sizeof(double)) &&
                                                              !memcmp(s.flip, s1.flip, (size_t)(IMAGES * PQ) * sizeof(double)) &&
                                                              !memcmp(s.mean, s1.mean, (size_t)(IMAGES * PQ * d) * sizeof(double)));
    omp_set_num_threads(threads);
    nm_sensitivity_free(ctx, &s1);
    nm_sensitivity_free(ctx, &s);
}

static void test_fooling(nm_net *net, const float *X)
{
    float N[144];
    for (int j = 0; j < 144; j++) N[j] = (float)(1.5 * nrand());
    nm_fooling_options o = nm_fooling_options_default();
    o.sigma2 = 1e-10, o.topk = 3, o.mc = 300, o.flip = 1;
    nm_fooling f;
    check_true("fooling runs", nm_fooling_run(ctx, net, X, NULL, IMAGES, N, &o, &f) == NM_OK);
    for (int64_t i = 0; i < IMAGES; i++) {
        float x[144];
        for (int j = 0; j < 144; j++) x[j] = X[i * 144 + j];
        nm_array xa = {NM_F32, 4, {1, 1, 12, 12}, x}, y0, y1;
        check_true("forward clean", nm_net_forward(ctx, net, 0, -1, &xa, &y0) == NM_OK);
        for (int j = 0; j < 144; j++) x[j] += N[j];
        check_true("forward perturbed", nm_net_forward(ctx, net, 0, -1, &xa, &y1) == NM_OK);
        const float *a = y0.data, *b = y1.data;
        int c0 = 0, c1 = 0;
        for (int k = 1; k < 5; k++) c0 = a[k] > a[c0] ? k : c0, c1 = b[k] > b[c1] ? k : c1;
        check_true("clean label = forward's argmax", f.clean[i] == c0);
        check_true("perturbed label = forward's argmax", f.perturbed[i] == c1);
        check_true("vanishing noise: predicted = real", f.predicted[i] == c1 && f.mc_predicted[i] == c1);
        for (int k = 0; k < 3; k++) check_true("vanishing noise: top-k orders agree", f.topk_match[i * 3 + k] == 1);
        check_true("vanishing noise: flip probability is the indicator", fabs(f.flip[i] - (c1 != c0)) < 1e-9 && f.mc_flip[i] == (c1 != c0));
        nm_array_free(ctx, &y0), nm_array_free(ctx, &y1);
    }
    check_true("no disagreements", f.disagreements == 0);
    nm_fooling g;
    o.flip = 0; /* a Monte Carlo without flip probabilities (a crash before) */
    check_true("fooling with --mc, without --flip", nm_fooling_run(ctx, net, X, NULL, IMAGES, N, &o, &g) == NM_OK && !g.flip && !g.mc_flip && g.mc_predicted);
    nm_fooling_free(ctx, &g);
    o.flip = 1;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    o.sigma2 = 0.5;
    nm_fooling f1, f2;
    check_true("fooling on one thread", nm_fooling_run(ctx, net, X, NULL, IMAGES, N, &o, &f1) == NM_OK);
    omp_set_num_threads(threads > 1 ? threads : 2);
    check_true("fooling on several threads", nm_fooling_run(ctx, net, X, NULL, IMAGES, N, &o, &f2) == NM_OK);
    omp_set_num_threads(threads);
    check_true("fooling identical on 1 and several threads",
               !memcmp(f1.flip, f2.flip, IMAGES * sizeof(double)) && !memcmp(f1.mc_flip, f2.mc_flip, IMAGES * sizeof(double)) &&
                   !memcmp(f1.predicted, f2.predicted, IMAGES * sizeof(int)));
    nm_fooling_free(ctx, &f1), nm_fooling_free(ctx, &f2), nm_fooling_free(ctx, &f);
}

static void test_bad_input(nm_net *net, float *X)
{
    nm_sensitivity s;
    nm_sensitivity_options o = nm_sensitivity_options_default();
    o.h = 13;
    check_true("window larger than the image refused", nm_sensitivity_run(ctx, net, X, NULL, 1, &o, &s) == NM_ERR_SHAPE);
    o.h = 3, o.method = NM_METHOD_DELTA;
    check_true("method delta refused for maps", nm_sensitivity_run(ctx, net, X, NULL, 1, &o, &s) == NM_ERR_ARG);
    o.method = NM_METHOD_EXACT;
    X[5] = NAN;
    check_true("NaN image refused (sensitivity)", nm_sensitivity_run(ctx, net, X, NULL, 1, &o, &s) == NM_ERR_NONFINITE);
    nm_fooling f;
    nm_fooling_options fo = nm_fooling_options_default();
    check_true("NaN image refused (fooling)", nm_fooling_run(ctx, net, X, NULL, 1, NULL, &fo, &f) == NM_ERR_NONFINITE);
    X[5] = 0;
    float N[144] = {0};
    N[7] = INFINITY;
    check_true("non-finite perturbation refused", nm_fooling_run(ctx, net, X, NULL, 1, N, &fo, &f) == NM_ERR_NONFINITE);
    fo.topk = 6;
    check_true("top-k beyond the logits refused", nm_fooling_run(ctx, net, X, NULL, 1, NULL, &fo, &f) == NM_ERR_ARG);
}

int main(void)
{
    ctx = nm_ctx_create();
    nm_net *net = small_net();
    float *X = fill_rand(IMAGES * 144, 1.0);
    test_sensitivity_vs_moments(net, X);
    test_fooling(net, X);
    test_bad_input(net, X);
    free(X);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return check_finish("test_experiments");
}
