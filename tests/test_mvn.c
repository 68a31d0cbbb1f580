/*
 * test_mvn.c — the normal quantile and the orthant / flip probabilities
 * (DESIGN §1.10) against independent computations: Φ⁻¹ against Φ (round
 * trips in both tails); dimension 1 against Φ exactly; dimension 2 against
 * Φ₂ (Genz 2004's bivariate code, tested in test_gauss); independent
 * components against the product of Φ; the exchangeable closed form (d iid
 * logits: P(argmax = c) = 1/d); a rank-one covariance against the interval
 * of its one normal; and random 10-logit Gaussians against seeded sampling,
 * within standard errors. Bad input is refused.
 */
#include "netmoments.h"
#include "check.h"

#define TOL_QUANTILE 4e-15  /* Φ(Φ⁻¹(p)) = p, relative */
#define TOL_EXACT 1e-15     /* dimension 1, absolute */
#define SE_K 4.5            /* agreement within this many standard errors */
#define TOL_FLOOR 2e-6      /* ... plus this absolute floor (the lattice's se can be tiny) */
#define SAMPLES 400000      /* draws of the sampled reference */

static nm_ctx *ctx;

static void test_quantile(void)
{
    for (double lp = -300; lp <= -0.0001; lp += 0.37) { /* p = 10^lp and 1 − p */
        double p = pow(10, lp), x = nm_normal_quantile(p);
        /* Φ's relative condition at x is |x φ(x)/Φ(x)| ≈ x²: an ulp of x moves Φ by x² ulps */
        check_close("Φ(Φ⁻¹(p)) lower tail", nm_normal_cdf(x), p, 0, TOL_QUANTILE * (1 + x * x));
        if (p > 1e-12) check_close("Φ⁻¹ odd", nm_normal_quantile(1 - p), -nm_normal_quantile(1 - (1 - p)), 0, 1e-12 / p);
    }
    /* x ≤ 1: above it Φ(x) as a double near 1 holds x only to 1e-16/φ(x) */
    for (double x = -8; x <= 1; x += 0.01) check_close("Φ⁻¹(Φ(x))", nm_normal_quantile(nm_normal_cdf(x)), x, 2e-15, 1e-13);
    check_true("Φ⁻¹(0) = −∞", isinf(nm_normal_quantile(0)) && nm_normal_quantile(0) < 0);
    check_true("Φ⁻¹(1) = ∞", isinf(nm_normal_quantile(1)) && nm_normal_quantile(1) > 0);
    check_true("Φ⁻¹ outside [0,1] is NaN", isnan(nm_normal_quantile(-0.1)) && isnan(nm_normal_quantile(1.5)));
}

static void expect_close_se(const char *what, double got, double se, double want, double want_se)
{
    double tol = SE_K * sqrt(se * se + want_se * want_se) + TOL_FLOOR;
    check_close(what, got, want, tol, 0);
}

static void test_low_dimensions(void)
{
    nm_mvn_options o = nm_mvn_options_default();
    double p, se;
    /* two logits: flip = Φ((m_j − m_c)/√(C_cc + C_jj − 2C_cj)) */
    double m2[2] = {1.3, 0.4}, C2[4] = {2.0, 0.7, 0.7, 1.1};
    check_true("d = 2 runs", nm_flip_probability(ctx, 2, m2, C2, 0, &o, &p, &se) == NM_OK);
    check_close("d = 2 flip is Φ", p, nm_normal_cdf((0.4 - 1.3) / sqrt(2.0 + 1.1 - 1.4)), TOL_EXACT, 0);
    check_true("d = 2 error estimate is 0", se == 0);
    /* three logits: the orthant of two differences is Φ₂ */
    double m3[3] = {0.5, -0.2, 0.9}, C3[9] = {1.0, 0.3, -0.2, 0.3, 2.0, 0.5, -0.2, 0.5, 1.5};
    for (int c = 0; c < 3; c++) {
        int j = (c + 1) % 3, k = (c + 2) % 3;
        double vj = C3[c * 3 + c] + C3[j * 3 + j] - 2 * C3[c * 3 + j], vk = C3[c * 3 + c] + C3[k * 3 + k] - 2 * C3[c * 3 + k];
        double cjk = C3[c * 3 + c] - C3[c * 3 + j] - C3[c * 3 + k] + C3[j * 3 + k];
        double want = 1 - nm_bvn_cdf((m3[c] - m3[j]) / sqrt(vj), (m3[c] - m3[k]) / sqrt(vk), cjk / sqrt(vj * vk));
        check_true("d = 3 runs", nm_flip_probability(ctx, 3, m3, C3, c, &o, &p, &se) == NM_OK);
        expect_close_se("d = 3 flip is 1 − Φ₂", p, se, want, 0);
        check_true("d = 3 error estimate within the tolerance asked", se <= o.abs_tol);
    }
    /* independent components: the product of Φ */
    double mi[5] = {0.3, -0.5, 1.2, 0.0, 2.0}, Ci[25] = {0}, want = 1;
    for (int i = 0; i < 5; i++) Ci[i * 5 + i] = 0.5 + i, want *= nm_normal_cdf(mi[i] / sqrt(0.5 + i));
    check_true("independent runs", nm_mvn_orthant(ctx, 5, mi, Ci, &o, &p, &se) == NM_OK);
    expect_close_se("independent components: product", p, se, want, 0);
    /* d iid logits of equal mean: P(argmax = c) = 1/d */
    for (int d = 2; d <= 12; d += 5) {
        double m[12] = {0}, C[144] = {0};
        for (int i = 0; i < d; i++) C[i * d + i] = 3.0;
        check_true("exchangeable runs", nm_flip_probability(ctx, d, m, C, d - 1, &o, &p, &se) == NM_OK);
        expect_close_se("iid logits: flip = 1 − 1/d", p, se, 1 - 1.0 / d, 0);
    }
    /* zero noise: an indicator */
    double C0[9] = {0};
    check_true("zero noise runs", nm_flip_probability(ctx, 3, m3, C0, 2, &o, &p, &se) == NM_OK);
    check_close("zero noise, c the argmax: no flip", p, 0, 0, 0);
    check_true("zero noise runs", nm_flip_probability(ctx, 3, m3, C0, 0, &o, &p, &se) == NM_OK);
    check_close("zero noise, c not the argmax: flip", p, 1, 0, 0);
}

/* Rank one: w = a + b ε, ε ~ N(0, 1); P(w > 0) is Φ(hi) − Φ(lo) over the ε interval. */
static void test_rank_one(void)
{
    double a[4] = {0.4, -0.3, 1.0, 0.2}, b[4] = {1.0, 2.0, -0.5, 0.3}, C[16], lo = -INFINITY, hi = INFINITY;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) C[i * 4 + j] = b[i] * b[j];
        double t = -a[i] / b[i];
        if (b[i] > 0) lo = fmax(lo, t);
        else hi = fmin(hi, t);
    }
    double want = hi > lo ? nm_normal_cdf(hi) - nm_normal_cdf(lo) : 0, p, se;
    nm_mvn_options o = nm_mvn_options_default();
    check_true("rank one runs", nm_mvn_orthant(ctx, 4, a, C, &o, &p, &se) == NM_OK);
    expect_close_se("rank-one covariance: an interval of one normal", p, se, want, 0);
}

/* Random 10-logit Gaussians y = m + L ε against the sampled frequency of argmax ≠ c. */
static void test_against_sampling(void)
{
    const int d = 10;
    nm_rng rng = {42};
    float e[10 * 11];
    for (int trial = 0; trial < 4; trial++) {
        double m[10], L[100] = {0}, C[100] = {0};
        nm_rng_normals(&rng, 1000 + trial, 0, d * 11, e);
        for (int i = 0; i < d; i++) {
            m[i] = 0.4 * e[i] + (i == 3 ? 1.0 + 0.5 * trial : 0);
            for (int j = 0; j <= i; j++) L[i * d + j] = 0.6 * e[d + i * d + j] + (i == j ? 0.5 : 0);
        }
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                for (int k = 0; k < d; k++) C[i * d + j] += L[i * d + k] * L[j * d + k];
        int64_t flips = 0;
        float z[10];
        for (int64_t s = 0; s < SAMPLES; s++) {
            nm_rng_normals(&rng, trial, (uint64_t)s * d, d, z);
            int arg = 0;
            double best = -INFINITY;
            for (int i = 0; i < d; i++) {
                double y = m[i];
                for (int k = 0; k <= i; k++) y += L[i * d + k] * z[k];
                if (y > best) best = y, arg = i;
            }
            flips += arg != 3;
        }
        double f = (double)flips / SAMPLES, f_se = sqrt(f * (1 - f) / SAMPLES), p, se;
        nm_mvn_options o = nm_mvn_options_default();
        check_true("random logits run", nm_flip_probability(ctx, d, m, C, 3, &o, &p, &se) == NM_OK);
        printf("trial %d: flip %.5f ± %.1e (Genz) vs %.5f ± %.1e (sampled)\n", trial, p, se, f, f_se);
        expect_close_se("flip probability vs sampling", p, se, f, f_se);
        /* the seed of the shifts changes the estimate only within its error */
        o.seed = 7;
        double p2, se2;
        check_true("another seed runs", nm_flip_probability(ctx, d, m, C, 3, &o, &p2, &se2) == NM_OK);
        expect_close_se("another seed agrees", p2, se2, p, se);
    }
}

static void test_bad_input(void)
{
    double m[2] = {0, NAN}, C[4] = {1, 0, 0, 1}, p;
    check_true("NaN mean refused", nm_flip_probability(ctx, 2, m, C, 0, NULL, &p, NULL) == NM_ERR_NONFINITE);
    m[1] = 0;
    check_true("class out of range refused", nm_flip_probability(ctx, 2, m, C, 2, NULL, &p, NULL) == NM_ERR_ARG);
    double bad[4] = {1, 2, 2, 1};
    check_true("correlation beyond 1 refused", nm_mvn_orthant(ctx, 2, m, bad, NULL, &p, NULL) == NM_ERR_NOT_PSD);
    double neg[4] = {-1, 0, 0, 1};
    check_true("negative variance refused", nm_mvn_orthant(ctx, 2, m, neg, NULL, &p, NULL) == NM_ERR_NOT_PSD);
    nm_mvn_options o = nm_mvn_options_default();
    o.shifts = 1;
    check_true("one shift refused", nm_mvn_orthant(ctx, 2, m, C, &o, &p, NULL) == NM_ERR_ARG);
    check_true("dimension 0 is certain", nm_mvn_orthant(ctx, 0, NULL, NULL, NULL, &p, NULL) == NM_OK && p == 1);
}

int main(void)
{
    ctx = nm_ctx_create();
    test_quantile();
    test_low_dimensions();
    test_rank_one();
    test_against_sampling();
    test_bad_input();
    nm_ctx_free(ctx);
    return check_finish("test_mvn");
}
