/*
 * fuzz_moments.c — libFuzzer target for the moment calls on a small net
 * (Fig 2's Conv-B): the input gives the first 36 entries of the mean μ
 * (doubles, any bits), the covariance (kind, σ², a window, a
 * factor), the method, precision, path and split. The rule checked: an
 * error status, or finite means and variances with variances ≥ 0 (and the
 * same of a short Monte Carlo); anything else aborts.
 */
#include "fuzz_util.h"

#include <math.h>
#include <stdlib.h>

#define N 36 /* the mean's entries taken from the input; the rest of the 400 are fixed */

/* Conv-B of Fig 2 (1x20x20, two conv layers with ReLUs, Linear to a scalar): the ops the moments care about. */
static nm_net *small_net(void)
{
    nm_ctx *ctx = nm_ctx_create();
    nm_net *net = NULL;
    if (ctx && nm_synthetic_create(ctx, NM_SYN_CONV_B, 7, 0.5, &net) != NM_OK) net = NULL;
    nm_ctx_free(ctx);
    return net;
}

static void check(const nm_moments *m)
{
    for (int64_t i = 0; i < m->d; i++)
        if (!isfinite(m->mean[i]) || !isfinite(m->var[i]) || m->var[i] < 0) abort();
}

static nm_status make_cov(nm_ctx *ctx, fuzz_in *in, int64_t n, nm_cov **cov)
{
    double s2 = fuzz_double(in);
    switch (fuzz_u64(in, 1) % 4) {
    case 0: return nm_cov_isotropic(ctx, n, s2, cov);
    case 1: {
        double v[400];
        for (int64_t i = 0; i < n; i++) v[i] = i % 7 ? s2 : fuzz_double(in);
        return nm_cov_diagonal(ctx, n, v, cov);
    }
    case 2: {
        int64_t r = (int64_t)fuzz_u64(in, 8), c = (int64_t)fuzz_u64(in, 8), h = (int64_t)fuzz_u64(in, 1), w = (int64_t)fuzz_u64(in, 1);
        return nm_cov_window(ctx, 1, 20, 20, r, c, h, w, s2, cov);
    }
    default: {
        double L[400 * 3];
        for (int64_t i = 0; i < n * 3; i++) L[i] = i % 5 ? s2 * ((double)(i % 11) - 5) : fuzz_double(in);
        return nm_cov_factor(ctx, n, 3, L, cov);
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nm_net *net;
    if (!net && !(net = small_net())) return 0;
    fuzz_in in = {data, size};
    nm_ctx *ctx = fuzz_ctx();
    if (!ctx) return 0;
    const int64_t n = 400;
    double mu[400];
    for (int64_t i = 0; i < n; i++) mu[i] = i < N ? fuzz_double(&in) : 0.25 * (double)(i % 9);
    nm_array mua = {NM_F64, 4, {1, 1, 20, 20}, mu};
    nm_cov *cov = NULL;
    nm_net_moments_options o = nm_net_moments_options_default();
    o.method = (nm_method)(fuzz_u64(&in, 1) % (uint64_t)nm_method_count());
    o.precision = fuzz_u64(&in, 1) & 1 ? NM_PREC_SINGLE : NM_PREC_DOUBLE;
    o.path = (nm_path)(fuzz_u64(&in, 1) % 3);
    o.split_relu = (int)(fuzz_u64(&in, 1) % 4) - 1; /* −1 and 3 are out of range */
    o.want_cov = (int)(fuzz_u64(&in, 1) & 1);
    nm_moments m;
    if (make_cov(ctx, &in, n, &cov) == NM_OK) {
        if (nm_net_moments(ctx, net, &mua, cov, &o, &m) == NM_OK) {
            check(&m);
            nm_moments_free(ctx, &m);
        }
        nm_rng rng = {fuzz_u64(&in, 2)};
        nm_mc_result mc;
        if (nm_net_montecarlo(ctx, net, &mua, cov, 20, &rng, 0, NULL, NULL, &mc) == NM_OK) {
            for (int64_t i = 0; i < mc.d; i++)
                if (!isfinite(mc.mean[i]) || !isfinite(mc.var[i]) || mc.var[i] < 0) abort();
            nm_mc_result_free(ctx, &mc);
        }
        nm_cov_free(ctx, cov);
    }
    nm_ctx_free(ctx);
    return 0;
}
