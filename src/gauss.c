/*
 * gauss.c — scalar Gaussian kernels in double (DESIGN §1.1–1.5): φ, Φ, the
 * bivariate normal cdf Φ₂ (Genz 2004), the mean, second moment and variance
 * of one ReLU, and the product moment and covariance of a pair of ReLUs of
 * jointly Gaussian inputs, with the s → 0 and |ρ| → 1 limits handled by
 * their closed forms.
 */
#include "internal.h"
#include "gauss.h"
#include "vmath.h"

#include <math.h>

#define TWO_PI 6.283185307179586476925286766559
#define INV_SQRT_2PI 0.39894228040143267793994605993438
#define SQRT_2PI 2.5066282746310005024157652848110
/* Beyond |x| = 40, Φ(x) is 0 or 1 to within 1e-349: arguments are clamped
 * there, which changes no result representable in double. */

/* Gauss–Legendre rules on [−1, 1] (non-negative half; the rule is
 * symmetric), 6, 12 and 20 points as in Genz (2004). tests/test_gauss.c
 * checks each is exact on polynomials of degree 2n − 1. */
const nm_gl_rule nm_gl_rules[3] = {
    {3, {0.93246951420315203, 0.66120938646626451, 0.23861918608319691},
     {0.17132449237917034, 0.36076157304813861, 0.46791393457269105}},
    {6, {0.98156063424671925, 0.90411725637047486, 0.76990267419430469,
         0.58731795428661745, 0.36783149899818019, 0.12523340851146892},
     {0.047175336386511827, 0.10693932599531843, 0.16007832854334623,
      0.20316742672306592, 0.23349253653835481, 0.24914704581340278}},
    {10, {0.99312859918509492, 0.96397192727791379, 0.91223442825132591,
          0.83911697182221882, 0.74633190646015079, 0.63605368072651503,
          0.5108670019508271, 0.37370608871541956, 0.22778585114164508,
          0.076526521133497334},
     {0.017614007139152118, 0.040601429800386941, 0.062672048334109064,
      0.083276741576704749, 0.10193011981724044, 0.11819453196151842,
      0.13168863844917663, 0.14209610931838205, 0.14917298647260375,
      0.15275338713072585}},
};

/* Genz's choice of rule by |ρ|. */
static const nm_gl_rule *rule_for(double abs_rho)
{
    return abs_rho < 0.3 ? &nm_gl_rules[0] : abs_rho < 0.75 ? &nm_gl_rules[1] : &nm_gl_rules[2];
}

double nm_normal_pdf(double x)
{
    return INV_SQRT_2PI * exp(-0.5 * x * x);
}

double nm_normal_cdf(double x)
{
    return 0.5 * erfc(-x * M_SQRT1_2);
}

static double clamp_z(double x)
{
    return x > NM_Z_CLAMP ? NM_Z_CLAMP : x < -NM_Z_CLAMP ? -NM_Z_CLAMP : x;
}

static double clamp_rho(double r)
{
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

/* P(X > h, Y > k), corr ρ, |h|, |k| ≤ 40, |ρ| < 1 or = ±1.
 * Genz (2004), "Numerical computation of rectangular bivariate and
 * trivariate normal and t probabilities", §2.2: for |ρ| < 0.925 Gauss–
 * Legendre on the Drezner–Wesolowsky integral in θ = asin r; above it an
 * expansion of the integrand around |ρ| = 1 with the singular part taken out
 * analytically. */
static double bvn_upper(double h, double k, double r)
{
    const nm_gl_rule *g = rule_for(fabs(r));
    double hk = h * k, bvn = 0;
    if (fabs(r) < 0.925) {
        double hs = (h * h + k * k) / 2, asr = asin(r);
        for (int i = 0; i < g->n; i++)
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                double sn = sin(asr * (sgn * g->x[i] + 1) / 2);
                bvn += g->w[i] * exp((sn * hk - hs) / (1 - sn * sn));
            }
        return bvn * asr / (2 * TWO_PI) + nm_normal_cdf(-h) * nm_normal_cdf(-k);
    }
    if (r < 0) {
        k = -k;
        hk = -hk;
    }
    if (fabs(r) < 1) {
        double as = (1 - r) * (1 + r), a = sqrt(as), bs = (h - k) * (h - k);
        double c = (4 - hk) / 8, d = (12 - hk) / 16;
        bvn = a * exp(-(bs / as + hk) / 2) *
              (1 - c * (bs - as) * (1 - d * bs / 5) / 3 + c * d * as * as / 5);
        if (hk > -160) {
            double b = sqrt(bs);
            bvn -= exp(-hk / 2) * SQRT_2PI * nm_normal_cdf(-b / a) * b *
                   (1 - c * bs * (1 - d * bs / 5) / 3);
        }
        a /= 2;
        for (int i = 0; i < g->n; i++)
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                double xs = a * (sgn * g->x[i] + 1);
                xs *= xs;
                double rs = sqrt(1 - xs), e = -(bs / xs + hk) / 2;
                if (e > -100)
                    bvn += a * g->w[i] * exp(e) *
                           (exp(-hk * (1 - rs) / (2 * (1 + rs))) / rs - (1 + c * xs * (1 + d * xs)));
            }
        bvn = -bvn / TWO_PI;
    }
    if (r > 0) return bvn + nm_normal_cdf(-fmax(h, k));
    return -bvn + fmax(0.0, nm_normal_cdf(-h) - nm_normal_cdf(-k));
}

double nm_bvn_cdf(double h, double k, double rho)
{
    if (isnan(h) || isnan(k) || isnan(rho)) return NAN;
    h = clamp_z(h);
    k = clamp_z(k);
    rho = clamp_rho(rho);
    double p = bvn_upper(-h, -k, rho);
    return p < 0 ? 0 : p > 1 ? 1 : p;
}

/* ---------------------------------------------------------------- one ReLU (§1.1) */

double nm_relu_mean(double m, double s)
{
    if (!(s > 0)) return m > 0 ? m : 0;
    double a = m / s;
    if (a < -NM_Z_CLAMP) return 0;
    if (a > NM_Z_CLAMP) return m;
    return m * nm_normal_cdf(a) + s * nm_normal_pdf(a);
}

/* (α² + 1) Φ(α) + α φ(α) = E[relu(α + ξ)²], for α ≤ 0 (no overflow). */
static double relu_m2_std(double a)
{
    if (a < -NM_Z_CLAMP) return 0;
    return (a * a + 1) * nm_normal_cdf(a) + a * nm_normal_pdf(a);
}

double nm_relu_m2(double m, double s)
{
    if (!(s > 0)) return m > 0 ? m * m : 0;
    double a = m / s;
    if (a <= 0) return s * s * relu_m2_std(a);
    if (a > NM_Z_CLAMP) return m * m + s * s;
    return (m * m + s * s) * nm_normal_cdf(a) + m * s * nm_normal_pdf(a);
}

/* Var[relu(α + ξ)] for ξ ~ N(0, 1). For α > 0 we use relu z = z + relu(−z)
 * and Cov(z, relu(−z)) = −Φ(−α) (Stein's lemma), so the variance is
 * 1 − 2Φ(−α) + v(−α): no cancellation of the O(α²) terms. */
double nm_relu_var_std(double a)
{
    if (a > 0) return 1 - 2 * nm_normal_cdf(-a) + nm_relu_var_std(-a);
    if (a < -NM_Z_CLAMP) return 0;
    double e = a * nm_normal_cdf(a) + nm_normal_pdf(a);
    double v = relu_m2_std(a) - e * e;
    return v > 0 ? v : 0;
}

double nm_relu_var(double m, double s)
{
    if (!(s > 0)) return 0;
    return s * s * nm_relu_var_std(m / s);
}

/* ---------------------------------------------------------------- pairs of ReLUs (§1.3, §1.5) */

double nm_relu_pair_m0(double s_u, double s_v, double rho)
{
    rho = clamp_rho(rho);
    return s_u * s_v / TWO_PI * (sqrt((1 - rho) * (1 + rho)) + rho * (M_PI - acos(rho)));
}

/* E[relu z_u relu z_v] at ρ = ±1, where z_v is an affine function of z_u:
 * a one-dimensional integral over ξ ~ N(0,1) of (m_u + s_u ξ)(m_v ± s_v ξ)
 * on the interval where both factors are positive. */
static double pair_degenerate(double mu, double mv, double su, double sv, double rho)
{
    double a = clamp_z(mu / su), b = clamp_z(mv / sv);
    /* ∫_l^h φ = Φ(h) − Φ(l); ∫ ξφ = φ(l) − φ(h); ∫ ξ²φ = lφ(l) − hφ(h) + Φ(h) − Φ(l) */
    if (rho > 0) {
        double t = fmax(-a, -b), P = nm_normal_cdf(-t), f = nm_normal_pdf(t);
        return mu * mv * P + (mu * sv + mv * su) * f + su * sv * (t * f + P);
    }
    double l = -a, hi = b;
    if (hi <= l) return 0;
    double P = nm_normal_cdf(hi) - nm_normal_cdf(l);
    double F1 = nm_normal_pdf(l) - nm_normal_pdf(hi);
    double F2 = l * nm_normal_pdf(l) - hi * nm_normal_pdf(hi) + P;
    return mu * mv * P + (mv * su - mu * sv) * F1 - su * sv * F2;
}

double nm_relu_pair(double mu, double mv, double su, double sv, double rho)
{
    if (!(su > 0)) return (mu > 0 ? mu : 0) * nm_relu_mean(mv, sv);
    if (!(sv > 0)) return (mv > 0 ? mv : 0) * nm_relu_mean(mu, su);
    rho = clamp_rho(rho);
    if (fabs(rho) == 1) return pair_degenerate(mu, mv, su, sv, rho);
    double au = clamp_z(mu / su), av = clamp_z(mv / sv), q = sqrt((1 - rho) * (1 + rho));
    double tu = (au - rho * av) / q, tv = (av - rho * au) / q;
    return (mu * mv + rho * su * sv) * nm_bvn_cdf(au, av, rho) +
           mu * sv * nm_normal_pdf(av) * nm_normal_cdf(tu) +
           mv * su * nm_normal_pdf(au) * nm_normal_cdf(tv) +
           su * sv * q * nm_normal_pdf(av) * nm_normal_pdf(tu);
}

/* Cov[relu z_u, relu z_v] / (s_u s_v) for |ρ| < 0.925, by Price's theorem:
 * ∂²E/∂ρ² = s_u s_v φ₂(a, b; ρ), so
 *   Cov = s_u s_v [ ρ Φ(a)Φ(b) + ∫₀^ρ (ρ − r) φ₂(a, b; r) dr ],
 * integrated in θ = asin r (as in Genz) with the same Gauss–Legendre rules.
 * No term is of order m²: the covariance keeps its relative accuracy for
 * any |a|, |b|. Pa, Pb are Φ(a), Φ(b). */
double nm_relu_cov_std_price(double a, double b, double Pa, double Pb, double rho)
{
    double base = rho * Pa * Pb;
    /* The integrand is below exp(−(a² + b²)/4) ≤ e^−400 beyond |a| or |b| = 40. */
    if (fabs(a) > NM_Z_CLAMP || fabs(b) > NM_Z_CLAMP || rho == 0) return base;
    const nm_gl_rule *g = rule_for(fabs(rho));
    double hs = (a * a + b * b) / 2, ab = a * b, asr = asin(rho), acc = 0;
    for (int i = 0; i < g->n; i++)
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            double sn = sin(asr * (sgn * g->x[i] + 1) / 2);
            acc += g->w[i] * (rho - sn) * exp((sn * ab - hs) / (1 - sn * sn));
        }
    return base + acc * asr / (2 * TWO_PI);
}

/* The Gauss–Legendre sum of nm_relu_cov_std_price for four pairs of one rule, in the same order of terms, with
 * vmath.h's exp and sin; a lane whose exponent falls below −708 is summed again by libm's exp. */
static inline __attribute__((always_inline)) nm_vd price4(const nm_gl_rule *g, nm_vd a, nm_vd b, nm_vd rho, nm_vd asr)
{
    nm_vd hs = (a * a + b * b) / 2, ab = a * b, acc = NM_V(0.0);
    int under = 0;
    for (int i = 0; i < g->n; i++) { /* both signs' terms side by side (two chains for the pipelines), added in order */
        nm_vd sm = nm_vsin(asr * NM_V(1 - g->x[i]) / 2), sp = nm_vsin(asr * NM_V(1 + g->x[i]) / 2);
        int um, up;
        nm_vd em = nm_vexp((sm * ab - hs) / (1 - sm * sm), &um), ep = nm_vexp((sp * ab - hs) / (1 - sp * sp), &up);
        under |= um | up;
        acc += NM_V(g->w[i]) * (rho - sm) * em;
        acc += NM_V(g->w[i]) * (rho - sp) * ep;
    }
    for (int l = 0; under && l < 4; l++) {
        double s = 0;
        for (int i = 0; i < g->n; i++)
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                double sn = sin(asr[l] * (sgn * g->x[i] + 1) / 2);
                s += g->w[i] * (rho[l] - sn) * exp((sn * ab[l] - hs[l]) / (1 - sn * sn));
            }
        acc[l] = s;
    }
    return acc;
}

/* The batch, inlined into one function per target: the default one, and AVX2 with FMA where GCC can make it
 * (chosen at run time by the CPU). */
static inline __attribute__((always_inline)) void price_n(int64_t n, const double *a, const double *b, const double *Pa, const double *Pb,
                                                          const double *rho, double *out)
{
    int64_t at[3][64], m[3];
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
        int64_t j1 = n - j0 < 64 ? n : j0 + 64;
        m[0] = m[1] = m[2] = 0;
        for (int64_t j = j0; j < j1; j++) {
            out[j] = rho[j] * Pa[j] * Pb[j];
            if (fabs(a[j]) > NM_Z_CLAMP || fabs(b[j]) > NM_Z_CLAMP || rho[j] == 0) continue;
            int r = (int)(rule_for(fabs(rho[j])) - nm_gl_rules);
            at[r][m[r]++] = j;
        }
        for (int r = 0; r < 3; r++)
            for (int64_t q = 0; q < m[r]; q += 4) {
                nm_vd va, vb, vr, vs;
                int64_t ix[4];
                for (int l = 0; l < 4; l++) { /* the last lanes repeat the last pair */
                    ix[l] = at[r][q + l < m[r] ? q + l : m[r] - 1];
                    va[l] = a[ix[l]], vb[l] = b[ix[l]], vr[l] = rho[ix[l]], vs[l] = asin(rho[ix[l]]);
                }
                nm_vd acc = price4(&nm_gl_rules[r], va, vb, vr, vs);
                for (int l = 0; l < 4 && q + l < m[r]; l++) out[ix[l]] += acc[l] * vs[l] / (2 * TWO_PI);
            }
    }
}

typedef void price_n_fn(int64_t n, const double *a, const double *b, const double *Pa, const double *Pb, const double *rho, double *out);

static void price_n_default(int64_t n, const double *a, const double *b, const double *Pa, const double *Pb, const double *rho, double *out)
{
    price_n(n, a, b, Pa, Pb, rho, out);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("arch=x86-64-v3"))) static void price_n_avx2(int64_t n, const double *a, const double *b, const double *Pa,
                                                                     const double *Pb, const double *rho, double *out)
{
    price_n(n, a, b, Pa, Pb, rho, out);
}
#endif

void nm_relu_cov_std_price_n(int64_t n, const double *a, const double *b, const double *Pa, const double *Pb, const double *rho,
                             double *out)
{
    price_n_fn *f = price_n_default;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f = price_n_avx2;
#endif
    f(n, a, b, Pa, Pb, rho, out);
}
/* Cov[relu w_u, relu w_v] for means ≤ 0 (both "mostly off"): the product
 * moment and the product of means are both O(s_u s_v), so their difference
 * loses nothing that matters at that scale. */
static double cov_nonpositive_means(double mu, double mv, double su, double sv, double rho)
{
    return nm_relu_pair(mu, mv, su, sv, rho) - nm_relu_mean(mu, su) * nm_relu_mean(mv, sv);
}

double nm_relu_pair_cov(double mu, double mv, double su, double sv, double rho)
{
    if (!(su > 0) || !(sv > 0)) return 0;
    rho = clamp_rho(rho);
    double a = mu / su, b = mv / sv;
    if (fabs(rho) < 0.925)
        return su * sv * nm_relu_cov_std_price(a, b, nm_normal_cdf(a), nm_normal_cdf(b), rho);
    /* Near |ρ| = 1 the θ-integrand is too sharp for a fixed rule. Reflect each
     * unit with a positive mean, relu z = z + relu(−z), so what remains is a
     * pair with non-positive means (computed by §1.5 and Genz's Φ₂) plus
     * terms from Stein's lemma, Cov(z_u, relu w_v) = Cov(z_u, w_v) P(w_v > 0). */
    int ru = a > 0, rv = b > 0;
    double gu = ru ? -1 : 1, gv = rv ? -1 : 1;
    double c = cov_nonpositive_means(-fabs(mu), -fabs(mv), su, sv, gu * gv * rho);
    if (ru && rv) c += rho * su * sv;
    if (ru) c += gv * rho * su * sv * nm_normal_cdf(-fabs(b));
    if (rv) c += gu * rho * su * sv * nm_normal_cdf(-fabs(a));
    return c;
}
