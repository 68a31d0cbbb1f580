/*
 * test_tightness.c — the experiment machinery of issue 6: the least-squares
 * lines (through the origin and free) against exact lines and hand-computed
 * fits; random covariances whose largest variance is the regime's (read
 * back from the factor); FC-A, exactly (Affine, ReLU, Affine), where method
 * exact must match the Monte Carlo of every run (variance ratios near 1
 * across runs, slopes within a few standard errors of 1); and runs identical
 * on 1 thread and on all.
 */
#include "netbuild.h"
#include "check.h"

#include <omp.h>

#define TOL_FIT 1e-12   /* least-squares fits of exact lines and hand sums, absolute */
#define TOL_KMEANS 1e-4 /* a k-means centre (float sums) against the blob mean, absolute */

/* Every result array of a and b, bit for bit. */
static int same_results(const nm_tightness *a, const nm_tightness *b)
{
    size_t rd = (size_t)(a->runs * a->d) * sizeof(double), r = (size_t)a->runs * sizeof(double);
    int same = !memcmp(a->mc_mean, b->mc_mean, rd) && !memcmp(a->mc_var, b->mc_var, rd) &&
               !memcmp(a->relu_bottom, b->relu_bottom, r) && !memcmp(a->relu_top, b->relu_top, r);
    for (int m = 0; m < NM_METHOD_MAX; m++)
        if (a->mean[m]) same &= !memcmp(a->mean[m], b->mean[m], rd) && !memcmp(a->var[m], b->var[m], rd);
    return same;
}

int main(void)
{
    ctx = nm_ctx_create();
    double x[50], y[50];
    for (int i = 0; i < 50; i++) x[i] = i * 0.37 - 3, y[i] = 2.5 * x[i] - 1;
    nm_ls_line l = nm_ls_fit(x, y, 50, 1);
    check_close("free slope of an exact line", l.free_slope, 2.5, TOL_FIT, 0);
    check_close("intercept of an exact line", l.intercept, -1, TOL_FIT, 0);
    for (int i = 0; i < 50; i++) y[i] = 0.75 * x[i];
    check_close("slope of an exact line through 0", nm_ls_fit(x, y, 50, 1).slope, 0.75, TOL_FIT, 0);
    double xs[4] = {0, 1, 2, 3}, ys[4] = {1, 3, 2, 5}; /* by hand: centred sxy = 5.5, sxx = 5; Σxy = 22, Σx² = 14 */
    l = nm_ls_fit(xs, ys, 4, 1);
    check_close("free slope by hand", l.free_slope, 1.1, TOL_FIT, 0);
    check_close("intercept by hand", l.intercept, 1.1, TOL_FIT, 0);
    check_close("slope through 0 by hand", l.slope, 22.0 / 14.0, TOL_FIT, 0);
    /* a constant x: the free line is undefined, the line through 0 is the ratio of the means */
    double xc[3] = {2, 2, 2}, yc[3] = {1.9, 2.2, 2.3};
    l = nm_ls_fit(xc, yc, 3, 1);
    check_true("free slope of a constant x is NaN", isnan(l.free_slope));
    check_close("slope through 0 of a constant x", l.slope, 6.4 / 6.0, TOL_FIT, 0);

    nm_rng rng = {3};
    for (int g = 0; g < 3; g++) {
        double v = (double[]){1e-4, 1, 200}[g];
        nm_cov *c;
        if (!check_true("random covariance", nm_cov_random(ctx, 30, v, &rng, (uint64_t)g, &c) == NM_OK)) continue;
        /* read Σ's diagonal back through a windowless path: moments of the identity are the input's */
        int x0;
        nm_net *id = start(SHAPE(1, 30), &x0);
        finish(id, NODE(id, NM_OP_RELU, NULL, NODE(id, NM_OP_IDENTITY, NULL, x0)));
        float mu[30];
        for (int i = 0; i < 30; i++) mu[i] = 1e6f; /* far above the kink: relu is the identity */
        nm_array ma = {NM_F32, 2, {1, 30}, mu};
        nm_net_moments_options o = nm_net_moments_options_default();
        nm_moments m;
        if (check_true("moments of the identity", nm_net_moments(ctx, id, &ma, c, &o, &m) == NM_OK)) {
            double mx = 0;
            for (int i = 0; i < 30; i++) mx = fmax(mx, m.var[i]);
            check_close("largest variance is the regime's", mx, v, 1e-6 * v, 0);
            nm_moments_free(ctx, &m);
        }
        nm_net_free(ctx, id);
        nm_cov_free(ctx, c);
    }

    /* k-means: three well-separated blobs are found exactly, and the seed fixes the result */
    {
        enum { NP = 90, DIM = 5 };
        float X[NP * DIM], C[3 * DIM], C2[3 * DIM];
        int64_t as[NP], as2[NP];
        for (int i = 0; i < NP; i++)
            for (int t = 0; t < DIM; t++) X[i * DIM + t] = (float)(100.0 * (i % 3) + nrand());
        check_true("k-means runs", nm_kmeans(ctx, X, NP, DIM, 3, 4, 100, as, C) == NM_OK);
        int ok = 1;
        for (int i = 0; i < NP; i++) ok &= as[i] == as[i % 3]; /* same blob, same cluster */
        ok &= as[0] != as[1] && as[1] != as[2] && as[0] != as[2];
        check_true("k-means recovers three separated blobs", ok);
        for (int j = 0; j < 3; j++) { /* each centre is its blob's mean */
            int b = -1;
            for (int i = 0; i < 3; i++)
                if (as[i] == j) b = i;
            double m = 0;
            for (int i = b; i < NP; i += 3) m += X[i * DIM];
            check_close("k-means centre = blob mean", C[j * DIM], m / (NP / 3), TOL_KMEANS, 0);
        }
        nm_kmeans(ctx, X, NP, DIM, 3, 4, 100, as2, C2);
        check_true("k-means: same seed, same result", !memcmp(as, as2, sizeof as) && !memcmp(C, C2, sizeof C));
        check_true("k-means: k > n refused", nm_kmeans(ctx, X, NP, DIM, NP + 1, 4, 100, as, C) == NM_ERR_ARG);
    }

    nm_tightness_options o = nm_tightness_options_default();
    o.runs = 12, o.mc = 20000, o.max_var = 1.0, o.seed = 9;
    nm_tightness a, b;
    nm_net *fca = NULL;
    check_true("FC-A built", nm_synthetic_create(ctx, NM_SYN_FC_A, 5, NM_SYN_BIAS_SD, &fca) == NM_OK);
    if (check_true("FC-A runs", fca && nm_tightness_run(ctx, fca, NULL, (nm_scale){1, 0}, &o, &a) == NM_OK)) {
        double lo = 1e9, hi = 0;
        for (int64_t r = 0; r < a.runs; r++) {
            double q = a.mc_var[r] / a.var[NM_METHOD_EXACT][r];
            lo = fmin(lo, q), hi = fmax(hi, q);
        }
        double se = nm_ls_fit(a.var[NM_METHOD_EXACT], a.mc_var, a.runs, 1).slope, sm = nm_ls_fit(a.mean[NM_METHOD_EXACT], a.mc_mean, a.runs, 1).slope;
        printf("  FC-A, 12 runs x 20,000 samples: MC/exact variance %.4f..%.4f, variance slope %.4f, mean slope %.4f\n", lo, hi, se, sm);
        check_true("FC-A: every run's MC/exact variance within 5% (SE ~1% at 20,000 samples)", lo > 0.95 && hi < 1.05);
        /* each run's variance has a relative SE near 1%, the slope over 12 runs about 0.3% */
        check_true("FC-A: exact variance slope within [0.97, 1.03]", se > 0.97 && se < 1.03);
        check_true("FC-A: mean slope within [0.98, 1.02]", sm > 0.98 && sm < 1.02);
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        nm_status st = nm_tightness_run(ctx, fca, NULL, (nm_scale){1, 0}, &o, &b);
        omp_set_num_threads(nt);
        if (check_true("FC-A on one thread", st == NM_OK)) {
            check_true("identical on 1 thread and on all", same_results(&a, &b));
            nm_tightness_free(ctx, &b);
        }
        nm_tightness_free(ctx, &a);
    }
    nm_net_free(ctx, fca);
    nm_ctx_free(ctx);
    return check_finish("test_tightness");
}
