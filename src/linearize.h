/*
 * linearize.h — the two-stage linearization (DESIGN §1.6) as the network
 * moments, the Monte Carlo's ReLU-change count and the public
 * nm_net_linearize use it: the split, the linearization points and the top
 * part's B and c2 (nm_lin_prepare), and A, c1 as matrices (nm_lin_form_A).
 */
#ifndef NM_LINEARIZE_H
#define NM_LINEARIZE_H

#include "net.h"

#define NM_LIN_CHUNK 256 /* tangents per jvp/vjp pass */
#define NM_LIN_CHUNK_SPATIAL 32 /* unit tangents per jvp pass below a flat top (linearize.c) */

/* The split ReLU node k and the logits node, sizes, x₀ and R_bot(x₀), and
 * (after nm_lin_prepare) the top part's B and c2 (always matrices: d×p). */
typedef struct {
    int k, last;
    int64_t n, p, d;
    nm_shape in_shape, mid_shape; /* batch 1 */
    float *x0, *r0;               /* n, p */
    double *B, *c2;               /* d×p, d */
    nm_act act;                   /* the split activation as hinges (its g, alpha owned) */
} nm_lin;

void nm_lin_free(nm_ctx *ctx, nm_lin *L);
/* The split and its sizes, x₀ (opt->x0, else mu) and R_bot(x₀), whose
 * pass leaves the bottom part's primal recorded in the net. */
nm_status nm_lin_point(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *opt, nm_lin *L);
/* y₀, where the top part is linearized: opt->y0, or relu(R_bot(x₀)); newly allocated (p). */
nm_status nm_lin_top_point(nm_ctx *ctx, const nm_lin *L, const nm_net_moments_options *opt, float **y0);
/* nm_lin_point and the top part: B = ∂R_top/∂y (y₀), c2 = R_top(y₀) − B y₀. */
nm_status nm_lin_prepare(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *opt, nm_lin *L);
/* A = ∂R_bot/∂x (x₀) (p×n) and c1 = R_bot(x₀) − A x₀ (p), newly allocated, in double. */
nm_status nm_lin_form_A(nm_ctx *ctx, nm_net *net, const nm_lin *L, double **A, double **c1);

/* Node k's activation (a split point: ReLU's kin, nm_op_def.split) as hinges, for its p units per
 * sample: ReLU plain; LeakyReLU and PReLU by their slope per unit, read off the node run on −1s (which
 * overwrites its recorded output); Clip and HardSigmoid from their attributes. Free with nm_act_free. */
nm_status nm_act_of_node(nm_ctx *ctx, nm_net *net, int k, int64_t p, nm_act *act);
void nm_act_free(nm_ctx *ctx, nm_act *act);

/* Many tangents (or samples) at one primal need every node up to `last`
 * to keep samples apart along the first axis; `what` starts the message. */
nm_status nm_require_batchable(nm_ctx *ctx, const nm_net *net, int last, const char *what);
/* A float copy of a (F32/F64) of exactly n finite elements. */
nm_status nm_to_float(nm_ctx *ctx, const nm_array *a, int64_t n, const char *what, float **out);

#endif
