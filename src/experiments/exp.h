/*
 * exp.h — what the experiments share: the logits of many inputs, the
 * logits and their Jacobian at one input, and running independent items
 * (runs, images) on OpenMP threads with a net copy and a context each.
 */
#ifndef NM_EXP_H
#define NM_EXP_H

#include "../linearize.h"

/* Logits (count × d, may be NULL) and argmax labels (count, may be NULL)
 * of the inputs X (count × n) plus add (n; NULL: nothing added), in
 * batches that fit the memory budget (a net that is not batchable runs one
 * sample at a time). */
nm_status nm_exp_predict(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, const float *add, float *logits,
                         int *labels);

/* The index of the largest of y[0..d) (the first among equals). */
int nm_exp_argmax_f32(const float *y, int64_t d);
int nm_exp_argmax_f64(const double *y, int64_t d);

/* At x (n): the logits y (d) and their Jacobian J (d × n, row k the gradient
 * of logit k), by one forward and d vjp rows. */
nm_status nm_exp_logit_jacobian(nm_ctx *ctx, nm_net *net, const float *x, float *y, float *J);
/* Its two halves: the logits y (d) at x, recording the primal; then Cᵀ's rows pulled back, G (rows × n)
 * the gradients at x of the rows (rows × d) of C applied to the logits. */
nm_status nm_exp_logits_at(nm_ctx *ctx, nm_net *net, const float *x, float *y);
nm_status nm_exp_logits_vjp(nm_ctx *ctx, nm_net *net, int64_t rows, const float *C, float *G);

/* Monte Carlo of R(x + σ ε) with ε on the inputs support[0..ns) only (NULL:
 * all n), K samples in batches of NM_FOOLING_MC_BATCH: the mean logits
 * (d) and the share of samples whose argmax is not c. ε is stream `stream`
 * of the seed's generator, ns normals per sample in sample order. buf holds
 * NM_FOOLING_MC_BATCH × (n + d) + n floats. */
nm_status nm_exp_mc_flip(nm_ctx *ctx, nm_net *net, const float *x, double sigma, const int64_t *support, int64_t ns, int64_t K,
                         uint64_t seed, uint64_t stream, int c, float *buf, double *mean, double *flip);

/* One item of a parallel experiment: tc and net are this thread's context
 * and copy of the net, scratch its scratch_bytes of zeroed memory. */
typedef nm_status (*nm_exp_item_fn)(nm_ctx *tc, nm_net *net, void *user, int64_t item, void *scratch);

/* Runs fn for items 0..count−1 on OpenMP threads (dynamic schedule), each
 * thread with its own context and nm_net_copy of net, BLAS serial inside;
 * progress (may be NULL) after each item, under a lock. The first failure
 * stops the remaining items and is returned with its message on ctx.
 * Results are whatever fn writes per item: independent of the thread count
 * when fn depends only on item. With a distribution on ctx (nm_dist) the
 * call is collective: this process runs its share of the items (progress
 * counts that share), and then every process receives every item's results
 * out[0..nout) (item i's out[s].bytes at out[s].base + i × bytes; fn must
 * write nothing else that the caller reads) from the process that made them. */
nm_status nm_exp_parallel(nm_ctx *ctx, const nm_net *net, int64_t count, size_t scratch_bytes, nm_exp_item_fn fn, void *user,
                          nm_progress_fn progress, void *puser, const nm_dist_slab *out, int nout);

/* nm_attack_verify with the Monte Carlo's noise drawn from stream `stream` of the seed (the batch's attack index). */
nm_status nm_attack_verify_stream(nm_ctx *ctx, nm_net *net, const float *M, const float *mu_x, double sigma2, int64_t mc, uint64_t seed,
                                  uint64_t stream, int cls, double *mc_mean, double *share);

/* d, n of a net (its logits' and input's per-sample sizes). */
int64_t nm_exp_logit_count(const nm_net *net);
int64_t nm_exp_input_size(const nm_net *net);

#endif
