/*
 * mc_drive.h — the sampling driver (src/mc_drive.c) that the Monte Carlos of
 * src/montecarlo.c run through.
 */
#ifndef NM_MC_DRIVE_H
#define NM_MC_DRIVE_H

#include "internal.h"

#define NM_MC_BATCH 500 /* draws evaluated and merged at once */

/* Evaluates draws first .. first+rows−1: their outputs (rows × d) in *Y, or
 * *Y = NULL when the batch is only counted. */
typedef nm_status (*nm_mc_batch_fn)(void *user, nm_ctx *ctx, int64_t first, int64_t rows, const float **Y, int64_t *d);

/* n_samples draws in batches of NM_MC_BATCH through fn (whose outputs have
 * d values each); with out, their statistics (merged in batch order) into
 * *out (with want_cov their covariance too), the batches shared among the
 * processes of ctx's distribution. Without out the batches are only
 * evaluated, all of them here. */
nm_status nm_mc_drive(nm_ctx *ctx, int64_t n_samples, int64_t d, nm_mc_batch_fn fn, void *user, int want_cov, nm_progress_fn progress,
                      void *puser, nm_mc_result *out);

#endif
