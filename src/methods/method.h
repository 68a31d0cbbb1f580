/*
 * method.h — what a moment method is to the library: the rules for the
 * moments of relu(z), z ~ N(m, S), at the split of the two-stage
 * linearization (DESIGN §1.2–1.7). One file per method under src/methods,
 * registered by one line of methods/list.h; ara.c and relu_cov.c call the
 * rules through the table and know no method by name.
 */
#ifndef NM_METHOD_H
#define NM_METHOD_H

#include "../internal.h"

/* One unit z_u of the split: mean, standard deviation, α = m/s (±∞ when
 * s = 0) and Φ(α), computed once per unit. */
typedef struct {
    double m, s, a, Pa;
} nm_unit;

typedef struct {
    const char *name;
    const char *summary;  /* one line for help texts */
    int at_mean;          /* 1: the whole net is linearized at μ (x₀ and y₀ ignored) */
    double (*mean)(const nm_unit *u);                                  /* E[relu z_u] */
    double (*var)(const nm_unit *u);                                   /* Var[relu z_u] */
    /* Cov[relu z_u, relu z_v] for s_u s_v > 0, S_uv and ρ = S_uv/(s_u s_v) ∈ [−1, 1] */
    double (*cov)(const nm_unit *u, const nm_unit *v, double S_uv, double rho);
    /* E[relu'(z_u)], for Cov[relu z_u, z_v] = E[relu'(z_u)] S_uv (Stein's lemma) */
    double (*slope)(const nm_unit *u);
    /* optional: cov for the pairs (u, v[j]), j < n, at once into c[j] (0 where s_u s_v = 0), S_uv[j] as above */
    void (*cov_row)(const nm_unit *u, const nm_unit *v, const double *S_uv, int64_t n, double *c);
    /* optional: the network moments without the two-stage linearization (method propagate); the four
     * rules above then serve an Affine–ReLU–Affine net, for which the method is exact */
    nm_status (*net_moments)(nm_ctx *ctx, struct nm_net *net, const nm_array *mu, const nm_cov *sigma,
                             const nm_net_moments_options *opt, nm_moments *out);
} nm_method_def;

/* The definition of method m (a valid index: nm_method_count()). */
const nm_method_def *nm_method_def_of(nm_method m);
/* The unit of mean m and variance suu (≤ 0 reads as 0). */
nm_unit nm_unit_of(double m, double suu);

/* E[f_u(z_u)] of the split activation act (NULL: ReLU) for u < p, z_u ~ N(m_u, suu[u·stride]), by def's mean rule (§1.2). */
void nm_act_means(const nm_act *act, const nm_method_def *def, int64_t p, const double *m, const double *suu, int64_t stride, double *r);

/* Method exact's rules (exact.c), which method propagate shares for an Affine–ReLU–Affine net. */
double nm_exact_mean(const nm_unit *u);
double nm_exact_var(const nm_unit *u);
double nm_exact_cov(const nm_unit *u, const nm_unit *v, double S_uv, double rho);
void nm_exact_cov_row(const nm_unit *u, const nm_unit *v, const double *S_uv, int64_t n, double *c);
double nm_exact_slope(const nm_unit *u);

#define NM_METHOD(ENUM, def) extern const nm_method_def def;
#include "list.h"
#undef NM_METHOD

#endif
