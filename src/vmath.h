/*
 * vmath.h — exp and sin on four doubles at once, through GCC's vector
 * extensions (the compiler picks the instructions: SSE2 pairs by default,
 * AVX where the caller is built for it), for the pair kernel's Gauss–Legendre
 * loop (gauss.c). Both are accurate to about an ulp (tests/test_gauss.c
 * measures them against libm):
 *  - exp: Cody–Waite reduction x = k ln 2 + r, |r| ≤ ln 2 / 2, Taylor to r¹³
 *    (truncation below 5e-18 relative), 2^k put into the exponent bits;
 *    x < −708 (where 2^k would leave the normal range) gives 0 and a flag;
 *  - sin: for |x| ≤ π/2 only (the kernel's angles asin(ρ)·t, t ∈ [0, 1]),
 *    the odd Taylor polynomial to x²¹ (truncation below 2e-18).
 */
#ifndef NM_VMATH_H
#define NM_VMATH_H

#include <stdint.h>

/* Four doubles are passed in two SSE registers where AVX is not enabled: GCC notes that this ABI changed in
 * 4.6, which matters only across separately compiled functions; these are all static inline. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef double nm_vd __attribute__((vector_size(32)));
typedef int64_t nm_vi __attribute__((vector_size(32)));

#define NM_V(x) ((nm_vd){(x), (x), (x), (x)})

/* Lanes of a where mask (all ones) is set, else b's. */
static inline __attribute__((always_inline)) nm_vd nm_vblend(nm_vi mask, nm_vd a, nm_vd b)
{
    return (nm_vd)(((nm_vi)a & mask) | ((nm_vi)b & ~mask));
}

/* exp(x) per lane; lanes below −708 give 0 and set *under (the caller recomputes them). */
static inline __attribute__((always_inline)) nm_vd nm_vexp(nm_vd x, int *under)
{
    const nm_vd shift = NM_V(0x1.8p52), lo = NM_V(-708.0);
    nm_vi small = x < lo;
    *under = (small[0] | small[1] | small[2] | small[3]) != 0;
    x = nm_vblend(small, lo, x);
    nm_vd t = x * NM_V(0x1.71547652b82fep0) + shift; /* round(x / ln 2) in the low bits of t */
    nm_vd k = t - shift;
    nm_vd r = x - k * NM_V(0x1.62e42fee00000p-1) - k * NM_V(0x1.a39ef35793c76p-33);
    nm_vd p = NM_V(1.0 / 6227020800.0);
    p = p * r + NM_V(1.0 / 479001600.0);
    p = p * r + NM_V(1.0 / 39916800.0);
    p = p * r + NM_V(1.0 / 3628800.0);
    p = p * r + NM_V(1.0 / 362880.0);
    p = p * r + NM_V(1.0 / 40320.0);
    p = p * r + NM_V(1.0 / 5040.0);
    p = p * r + NM_V(1.0 / 720.0);
    p = p * r + NM_V(1.0 / 120.0);
    p = p * r + NM_V(1.0 / 24.0);
    p = p * r + NM_V(1.0 / 6.0);
    p = p * r + NM_V(0.5);
    p = p * r + NM_V(1.0);
    p = p * r + NM_V(1.0);
    nm_vi e = ((nm_vi)t - (nm_vi)shift + 1023) << 52; /* 2^k: k ≥ −1022 here */
    return nm_vblend(small, NM_V(0.0), p * (nm_vd)e);
}

/* sin(x) per lane, |x| ≤ π/2. */
static inline __attribute__((always_inline)) nm_vd nm_vsin(nm_vd x)
{
    nm_vd z = x * x;
    nm_vd p = NM_V(1.0 / 51090942171709440000.0); /* 1/21!, then down to −1/3! */
    p = p * z + NM_V(-1.0 / 121645100408832000.0);
    p = p * z + NM_V(1.0 / 355687428096000.0);
    p = p * z + NM_V(-1.0 / 1307674368000.0);
    p = p * z + NM_V(1.0 / 6227020800.0);
    p = p * z + NM_V(-1.0 / 39916800.0);
    p = p * z + NM_V(1.0 / 362880.0);
    p = p * z + NM_V(-1.0 / 5040.0);
    p = p * z + NM_V(1.0 / 120.0);
    p = p * z + NM_V(-1.0 / 6.0);
    return x + x * z * p;
}

#endif
