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

#endif
