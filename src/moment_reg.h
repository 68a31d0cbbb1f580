/*
 * moment_reg.h — the moment regularisers of training (moment_reg.c): the
 * diagonal Gaussian moments of a chain net under x + N(0, S I) and the exact
 * gradient of a loss on them.
 */
#ifndef NM_MOMENT_REG_H
#define NM_MOMENT_REG_H

#include "net.h"

/* Whether nodes 0..last form a chain the rules run (Conv, Gemm, MatMul, Relu, MaxPool, reshapes), for
 * this kind (NM_REG_AMR or NM_REG_VAR); a message on ctx else. */
nm_status nm_mreg_supported(nm_ctx *ctx, const nm_net *net, int last, int kind);

/* A regulariser of this kind for net's logits (nm_net_logits_node) in steps of up to batch samples: its
 * buffers, reused step after step (the net's weights may change between steps, not its shapes). The
 * variance is carried up to and through the depth-th ReLU and is zero above it, where the net runs on the
 * means (depth 1: AMR's first layer); depth 0 carries it to the logits. */
typedef struct nm_mreg nm_mreg;
nm_status nm_mreg_new(nm_ctx *ctx, nm_net *net, int kind, int depth, int64_t batch, nm_mreg **out);
void nm_mreg_free(nm_mreg *r);

/* One batch of n inputs x (the net input's layout) with labels y: the regulariser's loss summed over the
 * samples into *loss — NM_REG_AMR: the cross-entropy of the expected logits; NM_REG_VAR: the variance of
 * z_y − z_j, j the runner-up of the clean logits clean (n × C) — and λ/n times the gradient of that sum
 * accumulated into the .pg of the trainable constants (where allocated). */
nm_status nm_mreg_step(nm_mreg *r, int64_t n, const float *x, double sigma2, double lambda, const int *y, const float *clean,
                       double *loss);

#endif
