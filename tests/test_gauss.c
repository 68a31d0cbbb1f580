/*
 * test_gauss.c — the scalar Gaussian kernels against independent
 * computations: the Gauss–Legendre tables against exact polynomial
 * integrals; Φ against quadrature of φ and its tail series; Φ₂ against
 * adaptive quadrature (1-D conditional form on the full grid, nested 2-D on
 * a sub-grid) and the closed forms at ρ = ±1 and infinite limits; the ReLU
 * pair moments and covariances against nested 2-D adaptive quadrature, the
 * batched Price kernel too; its vector exp and sin against libm.
 */
#include "netmoments.h"
#include "../src/gauss.h"
#include "../src/vmath.h"
#include "check.h"
#include "quad.h"

#include <float.h>
#include <time.h>

#define TOL_GL 1e-15        /* Gauss–Legendre exactness */
#define TOL_PHI 1e-15       /* Φ, absolute */
#define TOL_BVN 1e-14       /* Φ₂, absolute (the target) */
#define TOL_PAIR_REL 1e-9   /* pair moments, relative (DESIGN §1.5) */
#define TOL_SERIES 1e-8     /* Φ's far tail against its asymptotic series (truncated), relative */
#define TOL_QUAD_REL 1e-12  /* one-ReLU moments against 1-D quadrature, relative */
#define TOL_QUAD_M2 1e-14   /* ... absolute floors: mean TOL_PHI, second moment this, variance 10x */

/* ---- Gauss–Legendre tables ---- */
static void test_gl_tables(void)
{
    for (int r = 0; r < 3; r++) {
        const nm_gl_rule *g = &nm_gl_rules[r];
        for (int j = 0; j <= 4 * g->n - 1; j++) {
            double s = 0;
            for (int i = 0; i < g->n; i++) s += g->w[i] * (pow(g->x[i], j) + pow(-g->x[i], j));
            double want = j % 2 ? 0 : 2.0 / (j + 1);
            char what[64];
            snprintf(what, sizeof what, "GL%d exact on x^%d", 2 * g->n, j);
            check_close(what, s, want, TOL_GL, 0);
        }
    }
}

/* ---- Φ ---- */
static double pdf(double x, void *c)
{
    (void)c;
    return exp(-0.5 * x * x) / sqrt(2 * M_PI);
}

static void test_phi(void)
{
    const double xs[] = {-8, -3, -1, -0.2, 0, 0.5, 1.7, 4};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        double want = quad_adapt(pdf, NULL, -40, xs[i], 1e-18);
        check_close("Phi vs quadrature", nm_normal_cdf(xs[i]), want, TOL_PHI, 1e-13);
    }
    /* tails: Φ(−x) = φ(x)/x · (1 − 1/x² + 3/x⁴ − 15/x⁶ + 105/x⁸ − …) */
    const double ts[] = {12, 20, 37};
    for (size_t i = 0; i < 3; i++) {
        double x = ts[i], x2 = x * x;
        double series = pdf(x, NULL) / x * (1 - 1 / x2 + 3 / (x2 * x2) - 15 / (x2 * x2 * x2) +
                                            105 / (x2 * x2 * x2 * x2) - 945 / pow(x2, 5));
        check_close("Phi tail vs series", nm_normal_cdf(-x), series, 0, TOL_SERIES);
    }
}

/* ---- Φ₂ ---- */
typedef struct {
    double k, rho, q;
} cond_ctx;

static double bvn_cond_integrand(double x, void *c)
{
    cond_ctx *p = c;
    return pdf(x, NULL) * 0.5 * erfc(-((p->k - p->rho * x) / p->q) / sqrt(2));
}

static double bvn_ref_1d(double h, double k, double rho)
{
    if (h == -INFINITY || k == -INFINITY) return 0;
    if (h == INFINITY) return 0.5 * erfc(-k / sqrt(2));
    if (k == INFINITY) return 0.5 * erfc(-h / sqrt(2));
    if (rho == 1) return 0.5 * erfc(-fmin(h, k) / sqrt(2));
    if (rho == -1) return fmax(0, 0.5 * erfc(-h / sqrt(2)) - 0.5 * erfc(k / sqrt(2)));
    cond_ctx c = {k, rho, sqrt((1 - rho) * (1 + rho))};
    double lo = -40, hi = fmin(h, 40);
    if (rho == 0) return quad_adapt(bvn_cond_integrand, &c, lo, hi, 1e-18);
    /* the inner Φ steps at x = k/ρ over a width q/|ρ| */
    return quad_adapt_near(bvn_cond_integrand, &c, lo, hi, k / rho, c.q / fabs(rho), 1e-18);
}

typedef struct {
    double x, rho, q;
} dens_ctx;

static double bvn_density_y(double y, void *c)
{
    dens_ctx *p = c;
    double x = p->x, r = p->rho, q2 = p->q * p->q;
    return exp(-(x * x - 2 * r * x * y + y * y) / (2 * q2)) / (2 * M_PI * p->q);
}

typedef struct {
    double k, rho, q;
} outer_ctx;

static double bvn_outer(double x, void *c)
{
    outer_ctx *o = c;
    dens_ctx d = {x, o->rho, o->q};
    return quad_adapt(bvn_density_y, &d, -40, o->k, 1e-17);
}

/* Nested 2-D adaptive quadrature of the bivariate density. */
static double bvn_ref_2d(double h, double k, double rho)
{
    outer_ctx o = {k, rho, sqrt((1 - rho) * (1 + rho))};
    return quad_adapt(bvn_outer, &o, -40, h, 1e-16);
}

static void test_bvn(void)
{
    const double hk[] = {-INFINITY, -40, -5, -1.5, -0.3, 0, 0.7, 2, 6, 40, INFINITY};
    const double rhos[] = {-1, -(1 - 1e-7), -0.99, -0.93, -0.8, -0.5, -0.2, 0,
                           0.1, 0.35, 0.7, 0.9, 0.95, 0.999, 1 - 1e-7, 1};
    const int nh = sizeof hk / sizeof hk[0], nr = sizeof rhos / sizeof rhos[0];
    for (int i = 0; i < nh; i++)
        for (int j = 0; j < nh; j++)
            for (int r = 0; r < nr; r++) {
                char what[96];
                snprintf(what, sizeof what, "Phi2(%g, %g; %.9g)", hk[i], hk[j], rhos[r]);
                check_close(what, nm_bvn_cdf(hk[i], hk[j], rhos[r]),
                            bvn_ref_1d(hk[i], hk[j], rhos[r]), TOL_BVN, 0);
            }
    /* nested 2-D on a sub-grid of moderate correlations */
    const double h2[] = {-2.5, -0.3, 0.7, 1.9};
    const double r2[] = {-0.9, -0.4, 0, 0.3, 0.8};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            for (int r = 0; r < 5; r++) {
                char what[96];
                snprintf(what, sizeof what, "Phi2 2-D (%g, %g; %g)", h2[i], h2[j], r2[r]);
                check_close(what, nm_bvn_cdf(h2[i], h2[j], r2[r]), bvn_ref_2d(h2[i], h2[j], r2[r]),
                            TOL_BVN, 0);
            }
}

/* ---- ReLU moments by nested quadrature ---- */
typedef struct {
    double mu, mv, su, sv, rho, q, tol;
    double c, t; /* inner: relu(c + t y) */
} pair_ctx;

static double relu(double x) { return x > 0 ? x : 0; }

static double pair_inner(double y, void *c)
{
    pair_ctx *p = c;
    return pdf(y, NULL) * relu(p->c + p->t * y);
}

static double pair_outer(double x, void *c)
{
    pair_ctx *p = c;
    double fu = relu(p->mu + p->su * x);
    if (fu == 0) return 0;
    p->c = p->mv + p->sv * p->rho * x;
    p->t = p->sv * p->q;
    double g;
    if (p->t == 0) {
        g = relu(p->c);
    } else {
        double y0 = fmax(-p->c / p->t, -40);
        g = y0 >= 40 ? 0 : quad_adapt(pair_inner, p, y0, 40, p->tol);
    }
    return pdf(x, NULL) * fu * g;
}

static double pair_ref(double mu, double mv, double su, double sv, double rho)
{
    double scale = (fabs(mu) + su) * (fabs(mv) + sv);
    pair_ctx p = {mu, mv, su, sv, rho, sqrt(fmax(0, (1 - rho) * (1 + rho))), 1e-15 * scale, 0, 0};
    double lo = fmax(-mu / su, -40), hi = 40;
    if (rho == 0) return quad_adapt(pair_outer, &p, lo, hi, 1e-14 * scale);
    /* the inner integral vanishes unless m_v + s_v(ρx + 40q) > 0, and has a
     * kink where m_v + s_v ρ x = 0, of width q/|ρ| */
    double edge = (-mv / sv - 40 * p.q) / rho;
    if (rho > 0) lo = fmax(lo, edge);
    else hi = fmin(hi, edge);
    return quad_adapt_near(pair_outer, &p, lo, hi, -mv / (sv * rho), p.q / fabs(rho) + 1e-300,
                           1e-14 * scale);
}

static double mean_integrand(double x, void *c)
{
    double *ms = c;
    return pdf(x, NULL) * relu(ms[0] + ms[1] * x);
}

static double mean_ref(double m, double s)
{
    double ms[2] = {m, s};
    return quad_adapt(mean_integrand, ms, fmax(-m / s, -40), 40, 1e-15 * (fabs(m) + s));
}

static double m2_integrand(double x, void *c)
{
    double *ms = c, r = relu(ms[0] + ms[1] * x);
    return pdf(x, NULL) * r * r;
}

static void test_relu_pairs(void)
{
    const double alphas[] = {-3, -0.5, 0, 0.7, 2.5};
    const double rhos[] = {-1, -0.9999999, -0.95, -0.6, -0.2, 0, 0.1, 0.5, 0.93, 0.9999999, 1};
    const double su = 1.3, sv = 0.7;
    for (int i = 0; i < 5; i++) {
        double m = alphas[i] * su;
        double ms[2] = {m, su};
        check_close("relu mean vs quadrature", nm_relu_mean(m, su), mean_ref(m, su), TOL_PHI, TOL_QUAD_REL);
        double m2 = quad_adapt(m2_integrand, ms, fmax(-m / su, -40), 40, 1e-15);
        check_close("relu m2 vs quadrature", nm_relu_m2(m, su), m2, TOL_QUAD_M2, TOL_QUAD_REL);
        double mr = mean_ref(m, su);
        check_close("relu var vs quadrature", nm_relu_var(m, su), m2 - mr * mr, 10 * TOL_QUAD_M2, 100 * TOL_QUAD_REL);
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            for (int r = 0; r < 11; r++) {
                double mu = alphas[i] * su, mv = alphas[j] * sv, rho = rhos[r];
                double want = pair_ref(mu, mv, su, sv, rho);
                char what[96];
                snprintf(what, sizeof what, "pair(%g,%g; rho %.8g)", alphas[i], alphas[j], rho);
                check_close(what, nm_relu_pair(mu, mv, su, sv, rho), want, 1e-13, TOL_PAIR_REL);
                double cov_want = want - mean_ref(mu, su) * mean_ref(mv, sv);
                snprintf(what, sizeof what, "pair cov(%g,%g; rho %.8g)", alphas[i], alphas[j], rho);
                check_close(what, nm_relu_pair_cov(mu, mv, su, sv, rho), cov_want,
                            TOL_PAIR_REL * su * sv, 0);
                if (fabs(rho) < 0.925) { /* the batched kernel (one pair) against the same quadrature */
                    double a = mu / su, b = mv / sv, Pa = nm_normal_cdf(a), Pb = nm_normal_cdf(b), c;
                    nm_relu_cov_std_price_n(1, &a, &b, &Pa, &Pb, &rho, &c);
                    snprintf(what, sizeof what, "batched pair cov(%g,%g; rho %.8g)", alphas[i], alphas[j], rho);
                    check_close(what, su * sv * c, cov_want, TOL_PAIR_REL * su * sv, 0);
                }
            }
    /* zero mean: §1.3 closed form, the general §1.5 formula and quadrature agree */
    for (int r = 0; r < 11; r++) {
        double z = nm_relu_pair_m0(su, sv, rhos[r]);
        check_close("pair m0 vs 1.5 at m=0", nm_relu_pair(0, 0, su, sv, rhos[r]), z, TOL_PHI, TOL_QUAD_REL);
        check_close("pair m0 vs quadrature", z, pair_ref(0, 0, su, sv, rhos[r]), 1e-14, TOL_PAIR_REL);
    }
    /* ρ = 0: independence, product of one-ReLU means */
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            double mu = alphas[i] * su, mv = alphas[j] * sv;
            check_close("pair at rho=0 = product of means", nm_relu_pair(mu, mv, su, sv, 0),
                        nm_relu_mean(mu, su) * nm_relu_mean(mv, sv), 1e-15, 1e-13);
            check_close("cov at rho=0 is 0", nm_relu_pair_cov(mu, mv, su, sv, 0), 0, TOL_PHI / 10, 0);
        }
}

/* ---- the batched kernel's exp and sin, and the batch against the scalar kernel ---- */

static void test_vmath(void)
{
    double we = 0, ws = 0;
    int under = 0, flagged = 0;
    for (int i = 0; i <= 400000; i++) {
        double x = -708 + 1408.0 * i / 400000, y = -M_PI / 2 + M_PI * i / 400000;
        nm_vd v = {x, x * 1e-3, -x * 1e-9, x * 0.37}, q = {y, y * 1e-3, y * 1e-9, y * 0.71};
        nm_vd e = nm_vexp(v, &under), sn = nm_vsin(q);
        flagged |= under;
        for (int l = 0; l < 4; l++) {
            if (v[l] >= -708) we = fmax(we, fabs(e[l] - exp(v[l])) / exp(v[l]));
            if (q[l] != 0) ws = fmax(ws, fabs(sn[l] - sin(q[l])) / fabs(sin(q[l])));
        }
    }
    check_close("vector exp on [-708, 700] vs libm, relative", we, 0, 2 * DBL_EPSILON, 0);
    check_close("vector sin on [-pi/2, pi/2] vs libm, relative", ws, 0, 2 * DBL_EPSILON, 0);
    check_true("vector exp: no underflow flagged above -708", !flagged);
    nm_vd v = {-709, -1e300, -708, 0}, e = nm_vexp(v, &under);
    check_true("vector exp: below -708 gives 0 and the flag", under && e[0] == 0 && e[1] == 0 && e[2] > 0 && e[3] == 1);
    printf("vector exp %.2f ulp, sin %.2f ulp from libm at worst\n", we / DBL_EPSILON, ws / DBL_EPSILON);

    /* the batch against the scalar Price kernel: random pairs over the three rules, the clamp, rho = 0, and
     * means far enough out that the exponent underflows (those lanes go through libm again) */
    enum { NP = 4099 };
    static double a[NP], b[NP], Pa[NP], Pb[NP], rho[NP], out[NP];
    uint64_t st = 12345;
    for (int j = 0; j < NP; j++) {
        st = st * 6364136223846793005u + 1442695040888963407u;
        double u1 = (double)(st >> 11) / 9007199254740992.0;
        st = st * 6364136223846793005u + 1442695040888963407u;
        double u2 = (double)(st >> 11) / 9007199254740992.0;
        a[j] = j % 7 == 0 ? 41 * (2 * u1 - 1) : 6 * (2 * u1 - 1), b[j] = j % 11 == 0 ? 45 * (2 * u2 - 1) : 5 * (2 * u2 - 1);
        rho[j] = j % 13 == 0 ? 0 : 0.924 * (2 * u1 * u2 - 1);
        Pa[j] = nm_normal_cdf(a[j]), Pb[j] = nm_normal_cdf(b[j]);
    }
    nm_relu_cov_std_price_n(NP, a, b, Pa, Pb, rho, out);
    double worst = 0;
    for (int j = 0; j < NP; j++) {
        double want = nm_relu_cov_std_price(a[j], b[j], Pa[j], Pb[j], rho[j]);
        check_close("batched Price kernel = scalar", out[j], want, 1e-300, 1e-14);
        if (want != 0) worst = fmax(worst, fabs(out[j] - want) / fabs(want));
    }
    printf("batched Price kernel: %d pairs, worst %.1e relative from the scalar kernel\n", NP, worst);
}

int main(void)
{
    quad_init();
    test_vmath();
    test_gl_tables();
    test_phi();
    clock_t t0 = clock();
    test_bvn();
    clock_t t1 = clock();
    test_relu_pairs();
    printf("bvn %.1fs, pairs %.1fs\n", (double)(t1 - t0) / CLOCKS_PER_SEC, (double)(clock() - t1) / CLOCKS_PER_SEC);
    return check_finish("test_gauss");
}
