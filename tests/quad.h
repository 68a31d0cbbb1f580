/*
 * quad.h — an adaptive Gauss–Legendre integrator for the tests, independent
 * of the library: its nodes come from Newton's method on Legendre
 * polynomials computed here, and intervals are bisected until two levels
 * agree.
 */
#ifndef NM_QUAD_H
#define NM_QUAD_H

#include <math.h>

#define QUAD_N 10
static double quad_x[QUAD_N], quad_w[QUAD_N];

static void quad_init(void)
{
    for (int i = 0; i < QUAD_N; i++) {
        long double x = cosl(3.14159265358979323846L * (i + 0.75L) / (QUAD_N + 0.5L)), dp = 1;
        for (int it = 0; it < 100; it++) {
            long double p0 = 1, p1 = x;
            for (int k = 2; k <= QUAD_N; k++) {
                long double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            dp = QUAD_N * (x * p1 - p0) / (x * x - 1);
            long double dx = p1 / dp;
            x -= dx;
            if (fabsl(dx) < 1e-25L) break;
        }
        long double p0 = 1, p1 = x;
        for (int k = 2; k <= QUAD_N; k++) {
            long double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
            p0 = p1;
            p1 = p2;
        }
        dp = QUAD_N * (x * p1 - p0) / (x * x - 1);
        quad_x[i] = (double)x;
        quad_w[i] = (double)(2 / ((1 - x * x) * dp * dp));
    }
}

typedef double (*quad_fn)(double x, void *ctx);

static double quad_gl(quad_fn f, void *ctx, double a, double b)
{
    double c = (a + b) / 2, h = (b - a) / 2, s = 0;
    for (int i = 0; i < QUAD_N; i++) s += quad_w[i] * f(c + h * quad_x[i], ctx);
    return s * h;
}

static double quad_rec(quad_fn f, void *ctx, double a, double b, double whole, double tol,
                       int depth)
{
    double m = (a + b) / 2;
    double l = quad_gl(f, ctx, a, m), r = quad_gl(f, ctx, m, b);
    /* stop at the tolerance, or once the two levels agree to rounding */
    double diff = fabs(l + r - whole), floor = 1e-15 * (fabs(l) + fabs(r));
    if (depth > 30 || diff <= tol || diff <= floor) return l + r;
    return quad_rec(f, ctx, a, m, l, tol / 2, depth + 1) +
           quad_rec(f, ctx, m, b, r, tol / 2, depth + 1);
}

/* ∫_a^b f with absolute tolerance tol (a, b finite). Pre-splits into pieces
 * so that narrow features are not missed by the first estimate. */
static double quad_adapt(quad_fn f, void *ctx, double a, double b, double tol)
{
    if (!(b > a)) return 0;
    const int pieces = 16;
    double s = 0, h = (b - a) / pieces;
    for (int i = 0; i < pieces; i++) {
        double lo = a + i * h, hi = i == pieces - 1 ? b : a + (i + 1) * h;
        s += quad_rec(f, ctx, lo, hi, quad_gl(f, ctx, lo, hi), tol / pieces, 0);
    }
    return s;
}

/* ∫_a^b f where f has a feature of width w at x0 (a step or a kink):
 * the range is broken at x0 and at x0 ± w·4^j, so no piece hides it. */
static double quad_adapt_near(quad_fn f, void *ctx, double a, double b, double x0, double w,
                              double tol)
{
    double cuts[16], s = 0, prev = a;
    int nc = 0;
    for (int j = 6; j >= 0; j--) cuts[nc++] = x0 - w * pow(4, j);
    cuts[nc++] = x0;
    for (int j = 0; j <= 6; j++) cuts[nc++] = x0 + w * pow(4, j);
    for (int j = 0; j <= nc; j++) {
        double next = j < nc ? fmin(fmax(cuts[j], a), b) : b;
        if (next > prev) s += quad_adapt(f, ctx, prev, next, tol);
        prev = fmax(prev, next);
    }
    return s;
}

#endif
