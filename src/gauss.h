/*
 * gauss.h — internals of gauss.c shared with the batched kernels and the
 * tests: the Gauss–Legendre tables and the standardised forms.
 */
#ifndef NM_GAUSS_H
#define NM_GAUSS_H

/* |m/s| beyond which Φ is 0 or 1 in double. */
#define NM_Z_CLAMP 40.0

typedef struct {
    int n;        /* half the number of points */
    double x[10]; /* positive nodes on [−1, 1] */
    double w[10]; /* their weights */
} nm_gl_rule;

extern const nm_gl_rule nm_gl_rules[3]; /* 6, 12, 20 points */

/* Var[relu(a + ξ)], ξ ~ N(0,1). */
double nm_relu_var_std(double a);

/* Cov[relu(a + ξ), relu(b + η)] with corr(ξ, η) = ρ, |ρ| < 0.925,
 * given Pa = Φ(a) and Pb = Φ(b). */
double nm_relu_cov_std_price(double a, double b, double Pa, double Pb, double rho);
/* The same for n pairs (a[j], b[j], ρ[j]) into out[j], all |ρ[j]| < 0.925: four at a time through vmath.h's exp and
 * sin (about an ulp from libm's), the pairs of each Gauss–Legendre rule together. */
void nm_relu_cov_std_price_n(int64_t n, const double *a, const double *b, const double *Pa, const double *Pb, const double *rho,
                             double *out);

/* The max of two jointly Gaussian variables (means m1, m2, variances v1, v2, covariance c12), Clark 1961,
 * exact: its mean, variance and P(z1 > z2) (gauss_max.c). */
void nm_max2_moments(double m1, double m2, double v1, double v2, double c12, double *mean, double *var, double *p1);
/* The max of z_idx[0..k) (means m, covariance C with leading dimension ld): mean, variance and the Stein
 * weights w (k; P(z_idx[i] is the max), summing to 1). Exact for k ≤ 4 (to about 1e-12 relative); above
 * it a balanced tree of exact maxima of at most four, each partial max taken as Gaussian (Clark). */
void nm_maxk_moments(int k, const int *idx, const double *m, const double *C, int64_t ld, double *mean, double *var, double *w);

/* Φ₃(h1, h2, h3) = P(X ≤ h) for standard normals with correlations r = (ρ12, ρ13, ρ23) (gauss_tvn.c). */
double nm_tvn_cdf(const double h[3], const double r[3]);

#endif
