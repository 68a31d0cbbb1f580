/*
 * test_torch_models.c — the models PyTorch exports (issue 13), made by
 * tests/models/make.py where python3-torch is installed and committed with
 * torch's own outputs: each loads, its forward matches torch's output on
 * the same inputs (relative to the largest |output|), and `moments`
 * (method exact, σ² = 1e-4 on the inputs) runs; on the piecewise-linear
 * ones whose ReLU states the noise leaves as they are (counted), the means
 * and variances are within 5 % of a 20,000-sample Monte Carlo of the real
 * network (the moments are then exact; where states change, the
 * linearization is not, and the gap is printed). The models in unbatched/
 * have no batch axis: forward runs them whole, the moments are refused.
 */
#include "netmoments.h"
#include "check.h"

#include <dirent.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

static const char *dir_models = "tests/models"; /* argv[1] replaces it (make.py --full's directory) */
#define TOL_TORCH 1e-4   /* float32 forward against torch's, relative to max |y| */
#define TOL_MC 0.05      /* piecewise-linear nets at tiny noise: moments against the Monte Carlo */
#define Z_MAX 5.0        /* ... or within this many standard errors */
#define SIGMA2 1e-4
static long mc_samples = 20000;                /* argv[2] replaces it */

static nm_ctx *ctx;

/* The worst |y − ref| / max |ref| over the batch. */
static double forward_error(nm_net *net, const nm_array *x, const nm_array *ref)
{
    nm_array y;
    if (nm_net_forward(ctx, net, 0, -1, x, &y) != NM_OK) return INFINITY;
    int64_t n = nm_array_numel(&y);
    double worst = 0, big = 0;
    const float *r = ref->data, *g = y.data;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(r[i]));
    for (int64_t i = 0; i < n && n == nm_array_numel(ref); i++) worst = fmax(worst, fabs(g[i] - r[i]) / (big > 0 ? big : 1));
    if (n != nm_array_numel(ref)) worst = INFINITY;
    nm_array_free(ctx, &y);
    return worst;
}

/* Exact moments at x[0] against the Monte Carlo; the worst relative gaps of means and variances. */
static void moments_check(const char *name, nm_net *net, const nm_array *x, int pl)
{
    nm_array mu = *x;
    mu.shape[0] = 1;
    int64_t n = nm_array_numel(&mu);
    nm_cov *cov;
    nm_cov_isotropic(ctx, n, SIGMA2, &cov);
    nm_moments m;
    nm_mc_result mc;
    nm_rng rng = {11};
    char what[1024];
    snprintf(what, sizeof what, "%.100s: moments (%.400s)", name, nm_ctx_message(ctx));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nm_net_moments_options o = nm_net_moments_options_default();
    nm_status st = nm_net_moments(ctx, net, &mu, cov, &o, &m);
    if (st == NM_ERR_NOMEM && strstr(nm_ctx_message(ctx), "or none")) { /* googlenet: its split points are all in the stem */
        printf("  %-22s %s: not split\n", name, nm_ctx_message(ctx));
        o.split_relu = -1;
        st = nm_net_moments(ctx, net, &mu, cov, &o, &m);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double t_exact = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    snprintf(what, sizeof what, "%.100s: exact moments run (%.400s)", name, st == NM_OK ? "ok" : nm_ctx_message(ctx));
    if (!check_true(what, st == NM_OK) || !check_true("and its Monte Carlo", nm_net_montecarlo(ctx, net, &mu, cov, mc_samples, &rng, 0, NULL,
                                                                                                NULL, &mc) == NM_OK)) {
        nm_cov_free(ctx, cov);
        return;
    }
    double dm = 0, dv = 0;
    int ok = 1;
    for (int64_t i = 0; i < m.d; i++) {
        double em = fabs(mc.mean[i] - m.mean[i]), ev = fabs(mc.var[i] - m.var[i]);
        dm = fmax(dm, em / fmax(fabs(m.mean[i]), 1e-30)), dv = fmax(dv, ev / fmax(m.var[i], 1e-30));
        ok &= (em <= TOL_MC * fabs(m.mean[i]) || em <= Z_MAX * mc.mean_se[i]) && (ev <= TOL_MC * m.var[i] || ev <= Z_MAX * mc.var_se[i]);
    }
    /* exact only where the noise leaves the linearization's masks alone: count the decisions it changes */
    nm_decision_changes chg = {0};
    nm_rng rng2 = {11};
    check_true("its decisions' changes counted", nm_net_decision_changes(ctx, net, &mu, cov, &o, 2000, &rng2, &chg) == NM_OK);
    int frozen = chg.kinks_below == 0 && chg.kinks_above == 0 && chg.argmax_below == 0 && chg.argmax_above == 0;
    printf("  %-22s exact (%.2f s) vs %ld-sample MC: means within %.3g, variances within %.3g (relative, or %g SE: %s); kinks "
           "changed %.2g %% / %.2g %%, pool argmaxes %.2g %% / %.2g %% (below / above the split)%s\n",
           name, t_exact, mc_samples, dm, dv, Z_MAX, ok ? "all" : "not all", 100 * chg.kinks_below, 100 * chg.kinks_above,
           100 * chg.argmax_below, 100 * chg.argmax_above,
           !pl ? "  [not piecewise linear: not checked]" : !frozen ? "  [the noise changes decisions: not checked]" : "");
    snprintf(what, sizeof what, "%.100s: piecewise linear, so exact within 5 %% (or 5 SE) of the Monte Carlo", name);
    if (pl && frozen) check_true(what, ok);
    nm_moments_free(ctx, &m), nm_mc_result_free(ctx, &mc), nm_cov_free(ctx, cov);
}

/* Loads dir_models/sub/name.onnx with its input and torch's output; 1 when all three read (checked). */
static int load_case(const char *sub, const char *name, nm_net **net, nm_array *x, nm_array *y)
{
    char path[512], in[512], out[512], what[1024];
    snprintf(path, sizeof path, "%.200s%s/%.128s.onnx", dir_models, sub, name);
    snprintf(in, sizeof in, "%.200s%s/%.128s.input.npy", dir_models, sub, name);
    snprintf(out, sizeof out, "%.200s%s/%.128s.output.npy", dir_models, sub, name);
    nm_status st = nm_net_read_onnx(ctx, path, net);
    snprintf(what, sizeof what, "%.100s loads (%.400s)", path, st == NM_OK ? "ok" : nm_ctx_message(ctx));
    return check_true(what, st == NM_OK) &&
           check_true("its input and torch's output read", nm_npy_read(ctx, in, x) == NM_OK && nm_npy_read(ctx, out, y) == NM_OK);
}

static void one_model(const char *name)
{
    char what[1024];
    nm_net *net = NULL;
    nm_array x = {0}, y = {0};
    if (load_case("", name, &net, &x, &y)) {
        double e = forward_error(net, &x, &y);
        snprintf(what, sizeof what, "%.100s: forward within %g of torch (worst %.3g)", name, TOL_TORCH, e);
        check_true(what, e <= TOL_TORCH);
        printf("  %-22s forward vs torch: worst %.3g relative to max |y|\n", name, e);
        moments_check(name, net, &x, nm_net_piecewise_linear(net));
    }
    nm_array_free(ctx, &x), nm_array_free(ctx, &y);
    nm_net_free(ctx, net);
}

/* An unbatched export (the input has no batch axis): forward runs it whole and matches torch;
 * the moments are refused, naming the missing batch axis. */
static void one_unbatched(const char *name)
{
    char what[1024];
    nm_net *net = NULL;
    nm_array x = {0}, y = {0};
    if (load_case("/unbatched", name, &net, &x, &y)) {
        double e = forward_error(net, &x, &y);
        snprintf(what, sizeof what, "unbatched %.100s: forward on the whole input within %g of torch (worst %.3g)", name, TOL_TORCH, e);
        check_true(what, e <= TOL_TORCH);
        check_true("it is not batchable", !nm_net_batchable(net));
        nm_cov *cov;
        nm_moments m;
        nm_cov_isotropic(ctx, nm_array_numel(&x), SIGMA2, &cov);
        nm_status st = nm_net_moments(ctx, net, &x, cov, NULL, &m);
        snprintf(what, sizeof what, "unbatched %.100s: moments refused, naming the batch axis (%.400s)", name, nm_ctx_message(ctx));
        check_true(what, st == NM_ERR_UNSUPPORTED && strstr(nm_ctx_message(ctx), "no batch axis"));
        if (st == NM_OK) nm_moments_free(ctx, &m);
        nm_cov_free(ctx, cov);
    }
    nm_array_free(ctx, &x), nm_array_free(ctx, &y);
    nm_net_free(ctx, net);
}

int main(int argc, char **argv)
{
    ctx = nm_ctx_create();
    if (argc > 1) dir_models = argv[1];
    if (argc > 2) mc_samples = atol(argv[2]);
    DIR *d = opendir(dir_models);
    if (!d) {
        printf("skip: %s is absent\n", dir_models);
        return CHECK_SKIP;
    }
    struct dirent *e;
    char names[64][128];
    int n = 0;
    while ((e = readdir(d)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".onnx")) snprintf(names[n++], sizeof names[0], "%.*s", (int)(len - 5), e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++) one_model(names[i]);
    if (argc == 1) {
        one_unbatched("linear_1d");
        one_unbatched("conv_chw");
        check_true("the models are there", n >= 10);
    }
    nm_ctx_free(ctx);
    return check_finish("test_torch_models");
}
