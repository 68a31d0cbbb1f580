/*
 * test_moment_grad.c — the gradients of the logits' mean with respect to the
 * noise (DESIGN §1.11) against central finite differences, in double, of an
 * independent computation of the same moments: the net's linearization
 * written out by nm_net_linearize and its Affine–ReLU–Affine moments by
 * nm_ara_moments (src/ara.c) under nm_cov_diagonal / nm_cov_isotropic; and
 * the mean itself against the same; the variances (method exact) and their
 * gradients likewise. Bad input refused.
 */
#include "netbuild.h"
#include "check.h"

#define TOL_MEAN 1e-6  /* the mean, relative to the largest |logit| (A from float32 passes in both) */
#define TOL_GRAD 1e-5  /* gradients vs central differences, relative to the largest |entry| of the row */
#define STEP 1e-4      /* finite-difference step, relative */
#define N_IN 64        /* 1×8×8 inputs */

static nm_net *small_net(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 1, 8, 8), &x);
    int y = conv(net, x, 1, 3, 3, 1, 1);
    y = NODE(net, NM_OP_RELU, NULL, pool(net, y, 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 48, 20));
    finish(net, linear(net, y, 20, 4));
    return net;
}

/* The reference: the ARA moments of the written-out linearization at mu, diag(v) (or σ² I when v is NULL);
 * the mean, or with var set method exact's variances. */
static void ref_moment(const nm_ara *ara, const double *mu, const double *v, double sigma2, int var, double *out)
{
    nm_array mua = {NM_F64, 1, {N_IN}, (void *)mu};
    nm_cov *cov;
    nm_moments m;
    nm_status st = v ? nm_cov_diagonal(ctx, N_IN, v, &cov) : nm_cov_isotropic(ctx, N_IN, sigma2, &cov);
    nm_ara_options o = nm_ara_options_default();
    o.mean_only = !var;
    if (st == NM_OK) st = nm_ara_moments(ctx, ara, &mua, cov, &o, &m);
    if (st != NM_OK) {
        fprintf(stderr, "reference: %s\n", nm_ctx_message(ctx));
        exit(2);
    }
    memcpy(out, var ? m.var : m.mean, (size_t)m.d * sizeof(double));
    nm_moments_free(ctx, &m);
    nm_cov_free(ctx, cov);
}

/* The mean (var = 0) or method exact's variances (var = 1) and their three gradients. */
static nm_status eval_grad(const nm_linearized *l, int var, const double *mu, const double *v, nm_moment_grad *g)
{
    return var ? nm_linearized_var_grad(ctx, l, mu, v, g) : nm_linearized_mean_grad(ctx, l, mu, v, g);
}

/* The largest |entry| of row i of a d×N_IN Jacobian. */
static double row_scale(const double *J, int i)
{
    double rs = 0;
    for (int t = 0; t < N_IN; t++) rs = fmax(rs, fabs(J[i * N_IN + t]));
    return rs;
}

/* The mean (var = 0) or the variances (var = 1) and their gradients against the reference's central differences. */
static void test_grads(int var)
{
    const char *what = var ? "variance" : "mean";
    nm_net *net = small_net();
    float *x0 = fill_rand(N_IN, 1.0);
    nm_array xa = {NM_F32, 4, {1, 1, 8, 8}, x0}, A, c1, B, c2;
    nm_linearized *l;
    check_true("linearized", nm_linearized_create(ctx, net, &xa, NULL, &l) == NM_OK);
    check_true("written out", nm_net_linearize(ctx, net, &xa, NULL, &A, &c1, &B, &c2) == NM_OK);
    nm_ara ara = {&A, &c1, &B, &c2};
    int64_t d = nm_linearized_outputs(l);
    check_true("sizes", nm_linearized_inputs(l) == N_IN && d == 4);
    for (int trial = 0; trial < 3 - var; trial++) {
        double mu[N_IN], v[N_IN], ref[4], hi[4], lo[4];
        for (int k = 0; k < N_IN; k++) mu[k] = x0[k] + 0.3 * nrand(), v[k] = 0.05 + (trial + 1) * (0.3 + 0.1 * var) * urand();
        nm_moment_grad g;
        check_true(what, eval_grad(l, var, mu, v, &g) == NM_OK);
        ref_moment(&ara, mu, v, 0, var, ref);
        double scale = 0;
        for (int i = 0; i < d; i++) scale = fmax(scale, fabs(ref[i]));
        for (int i = 0; i < d; i++) check_close(var ? "var = method exact's of the linearization" : "mean = the ARA moments of the linearization", g.value[i], ref[i], TOL_MEAN * (var ? ref[i] : scale), 0);
        for (int k = 0; k < N_IN; k++) {
            double save = mu[k], h = STEP * (1 + fabs(save));
            mu[k] = save + h, ref_moment(&ara, mu, v, 0, var, hi);
            mu[k] = save - h, ref_moment(&ara, mu, v, 0, var, lo);
            mu[k] = save;
            for (int i = 0; i < d; i++)
                check_close(var ? "dVar/dmu vs central differences" : "dE/dmu vs central differences", g.d_mu[i * N_IN + k], (hi[i] - lo[i]) / (2 * h), TOL_GRAD * row_scale(g.d_mu, i), 0);
            save = v[k], h = STEP * save;
            v[k] = save + h, ref_moment(&ara, mu, v, 0, var, hi);
            v[k] = save - h, ref_moment(&ara, mu, v, 0, var, lo);
            v[k] = save;
            for (int i = 0; i < d; i++)
                check_close(var ? "dVar/dv vs central differences" : "dE/dv vs central differences", g.d_v[i * N_IN + k], (hi[i] - lo[i]) / (2 * h), TOL_GRAD * row_scale(g.d_v, i), 0);
        }
        /* isotropic: v = σ² 1 */
        double s2 = (0.4 + 0.1 * var) * (trial + 1), h = STEP * s2, vi[N_IN];
        for (int k = 0; k < N_IN; k++) vi[k] = s2;
        nm_moment_grad gi;
        check_true("isotropic gradients", eval_grad(l, var, mu, vi, &gi) == NM_OK);
        ref_moment(&ara, mu, NULL, s2 + h, var, hi), ref_moment(&ara, mu, NULL, s2 - h, var, lo);
        for (int i = 0; i < d; i++)
            check_close(var ? "dVar/dsigma2 vs central differences" : "dE/dsigma2 vs central differences", gi.d_sigma2[i], (hi[i] - lo[i]) / (2 * h), TOL_GRAD * fabs(gi.d_sigma2[i]) + 1e-9, 0);
        nm_moment_grad_free(ctx, &gi);
        nm_moment_grad_free(ctx, &g);
    }
    /* bad input */
    double mu[N_IN] = {0}, v[N_IN];
    for (int k = 0; k < N_IN; k++) v[k] = 1;
    nm_moment_grad g;
    v[3] = -1;
    check_true("negative variance refused", eval_grad(l, var, mu, v, &g) == NM_ERR_NOT_PSD);
    v[3] = NAN;
    check_true("NaN variance refused", eval_grad(l, var, mu, v, &g) == NM_ERR_NONFINITE);
    nm_array_free(ctx, &A), nm_array_free(ctx, &c1), nm_array_free(ctx, &B), nm_array_free(ctx, &c2);
    nm_linearized_free(ctx, l);
    free(x0);
    nm_net_free(ctx, net);
}

int main(void)
{
    ctx = nm_ctx_create();
    test_grads(0);
    test_grads(1);
    nm_ctx_free(ctx);
    return check_finish("test_moment_grad");
}
