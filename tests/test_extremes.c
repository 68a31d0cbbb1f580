/*
 * test_extremes.c — limits the kernels must honour: |m/s| up to 1e8, s = 0
 * and s = 1e-300 give finite values equal to their closed-form limits
 * (relu(m), 0, s², ρ s_u s_v); an ARA network whose units are all firmly on
 * or off is linear, so its variance is the linear one computed here.
 */
#include "netmoments.h"
#include "check.h"

#include <string.h>

#define TOL_LIMIT 1e-12
#define EXACT 0        /* equality: the limit is taken in closed form */
#define TOL_ULP 1e-15  /* a few units in the last place, relative */
#define TINY 1e-300    /* an absolute floor for quantities that are 0 */
#define TOL_LINEAR 1e-10 /* the linear regime's variance, relative */

static void kernels(void)
{
    const double ss[] = {1, 1e-8, 1e-300};
    for (int i = 0; i < 3; i++) {
        double s = ss[i];
        for (int sign = -1; sign <= 1; sign += 2) {
            double m = sign * 1e8 * s; /* |m/s| = 1e8 */
            double on = sign > 0;
            check_close("mean at |m/s|=1e8", nm_relu_mean(m, s), on * m, 0, TOL_LIMIT);
            check_close("m2 at |m/s|=1e8", nm_relu_m2(m, s), on * (m * m + s * s), 0, TOL_LIMIT);
            check_close("var at |m/s|=1e8", nm_relu_var(m, s), on * s * s, 1e-300, TOL_LIMIT);
            for (double rho = -1; rho <= 1; rho += 0.25) {
                double c = nm_relu_pair_cov(m, m, s, s, rho), e = nm_relu_pair(m, m, s, s, rho);
                check_close("pair cov at |m/s|=1e8", c, on * rho * s * s, 1e-300, TOL_LIMIT);
                check_true("pair finite", isfinite(e));
                check_close("pair cov mixed on/off", nm_relu_pair_cov(m, -m, s, s, rho), 0, 1e-300 + TOL_LIMIT * s * s, 0);
            }
        }
    }
    /* s = 0: deterministic */
    check_close("mean s=0", nm_relu_mean(2.5, 0), 2.5, EXACT, EXACT);
    check_close("mean s=0 neg", nm_relu_mean(-2.5, 0), 0, EXACT, EXACT);
    check_close("var s=0", nm_relu_var(2.5, 0), 0, EXACT, EXACT);
    check_close("pair s=0", nm_relu_pair(2, 3, 0, 0, 0.5), 6, EXACT, TOL_ULP);
    check_close("pair cov s=0", nm_relu_pair_cov(2, 3, 0, 1, 0.5), 0, EXACT, EXACT);
    check_close("pair m=0 s=0", nm_relu_pair(0, 0, 0, 0, 1), 0, EXACT, EXACT);
    /* s = 1e-300 with m = 1: the variance underflows to its limit, no NaN */
    check_close("var s=1e-300", nm_relu_var(1, 1e-300), 0, TINY, EXACT);
    check_close("mean s=1e-300", nm_relu_mean(1, 1e-300), 1, EXACT, TOL_ULP);
    check_true("Phi2 finite at large args", isfinite(nm_bvn_cdf(1e300, -1e300, 0.5)) && isfinite(nm_bvn_cdf(NAN, 0, 0)) == 0);
    check_close("Phi2(+inf,+inf)", nm_bvn_cdf(INFINITY, INFINITY, 0.3), 1, EXACT, EXACT);
    check_close("Phi2(-inf,k)", nm_bvn_cdf(-INFINITY, 2, 0.3), 0, EXACT, EXACT);
}

/* Units firmly on (c1 ≫ σ) or off (c1 ≪ −σ): g is linear over the noise and
 * its variance is B D A Σ Aᵀ D Bᵀ with D the on/off mask. */
static void linear_regime(nm_ctx *ctx)
{
    enum { N = 4, P = 3, D = 2 };
    double A[P * N] = {1, 2, 0, -1, 0.5, 0, 1, 1, -1, 1, 1, 0};
    double c1[P] = {1e8, -1e8, 3e7}, B[D * P] = {1, 2, 3, -1, 0.5, 2}, c2[D] = {0.1, 0.2}, mu[N] = {0};
    int on[P] = {1, 0, 1};
    nm_array a = {NM_F64, 2, {P, N}, A}, b = {NM_F64, 2, {D, P}, B}, e1 = {NM_F64, 1, {P}, c1},
             e2 = {NM_F64, 1, {D}, c2}, m = {NM_F64, 1, {N}, mu};
    nm_ara net = {&a, &e1, &b, &e2};
    for (int k = 0; k < 3; k++) {
        double sigma2 = k == 0 ? 2.0 : k == 1 ? 0 : 1e-300;
        nm_cov *cov;
        nm_cov_isotropic(ctx, N, sigma2, &cov);
        for (int meth = NM_METHOD_EXACT; meth <= NM_METHOD_DELTA; meth++) {
            nm_ara_options o = {meth, NM_PREC_DOUBLE, 0, 0};
            nm_moments mom;
            if (!check_true("moments ok", nm_ara_moments(ctx, &net, &m, cov, &o, &mom) == NM_OK)) continue;
            for (int i = 0; i < D; i++) {
                double mean = c2[i], var = 0;
                for (int u = 0; u < P; u++) mean += B[i * P + u] * (on[u] ? c1[u] : 0);
                for (int j = 0; j < N; j++) { /* (B D A)_ij */
                    double w = 0;
                    for (int u = 0; u < P; u++) w += B[i * P + u] * on[u] * A[u * N + j];
                    var += w * w * sigma2;
                }
                check_close("linear regime mean", mom.mean[i], mean, EXACT, TOL_ULP);
                check_close("linear regime var", mom.var[i], var, TINY, TOL_LINEAR);
                check_true("finite", isfinite(mom.mean[i]) && isfinite(mom.var[i]));
            }
            nm_moments_free(ctx, &mom);
        }
        nm_cov_free(ctx, cov);
    }
}

int main(void)
{
    nm_ctx *ctx = nm_ctx_create();
    kernels();
    linear_regime(ctx);
    nm_ctx_free(ctx);
    return check_finish("test_extremes");
}
