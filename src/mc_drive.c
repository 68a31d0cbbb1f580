/*
 * mc_drive.c — the sampling driver every Monte Carlo runs through
 * (mc_drive.h): batches of NM_MC_BATCH draws evaluated by a callback, their
 * streaming statistics (Chan/Pébay updates for mean, M2, M3, M4 and the
 * co-moment matrix) merged in batch order; over several processes
 * (nm_dist), rounds of one batch per process whose statistics are exchanged
 * and merged in the same order.
 */
#include "mc_drive.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- streaming statistics */

typedef struct {
    int64_t d, n;
    double *mean, *M2, *M3, *M4, *C; /* C: co-moment d×d or NULL */
} stats;

/* Merges batch statistics b into s (Pébay 2008, pairwise update). */
static void stats_merge(stats *s, const stats *b)
{
    double na = (double)s->n, nb = (double)b->n, n = na + nb;
    for (int64_t i = 0; i < s->d; i++) {
        double delta = b->mean[i] - s->mean[i], d2 = delta * delta;
        double M2a = s->M2[i], M3a = s->M3[i];
        s->M4[i] += b->M4[i] + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n) +
                    6 * d2 * (na * na * b->M2[i] + nb * nb * M2a) / (n * n) +
                    4 * delta * (na * b->M3[i] - nb * M3a) / n;
        s->M3[i] += b->M3[i] + d2 * delta * na * nb * (na - nb) / (n * n) +
                    3 * delta * (na * b->M2[i] - nb * M2a) / n;
        s->M2[i] += b->M2[i] + d2 * na * nb / n;
    }
    if (s->C)
        for (int64_t i = 0; i < s->d; i++)
            for (int64_t j = 0; j < s->d; j++)
                s->C[i * s->d + j] += b->C[i * s->d + j] + (b->mean[i] - s->mean[i]) *
                                                               (b->mean[j] - s->mean[j]) * na * nb / n;
    for (int64_t i = 0; i < s->d; i++) s->mean[i] += (b->mean[i] - s->mean[i]) * nb / n;
    s->n += b->n;
}

/* Statistics of one batch Y (rows × d, float) by two passes in double. */
static void stats_of_batch(stats *b, const float *Y, int64_t rows, double *centered)
{
    int64_t d = b->d;
    b->n = rows;
    #pragma omp parallel for
    for (int64_t i = 0; i < d; i++) {
        double s = 0;
        for (int64_t r = 0; r < rows; r++) s += Y[r * d + i];
        double mean = s / rows, m2 = 0, m3 = 0, m4 = 0;
        for (int64_t r = 0; r < rows; r++) {
            double x = Y[r * d + i] - mean, x2 = x * x;
            m2 += x2;
            m3 += x2 * x;
            m4 += x2 * x2;
            if (centered) centered[r * d + i] = x;
        }
        b->mean[i] = mean;
        b->M2[i] = m2;
        b->M3[i] = m3;
        b->M4[i] = m4;
    }
    if (b->C) {
        memset(b->C, 0, (size_t)(d * d) * sizeof(double));
        nm_gemm_f64(NM_TRANS, NM_NOTRANS, d, d, rows, 1.0, centered, d, centered, d, 0.0, b->C, d);
    }
}

/* The streaming accumulator of the sampling driver: batch statistics merged
 * into the total in the order batches arrive. */
typedef struct {
    stats tot, bat;
    double *buf, *centered;
} mc_accum;

static nm_status accum_new(nm_ctx *ctx, int64_t d, int want_cov, int64_t max_rows, mc_accum **out)
{
    *out = NULL;
    mc_accum *a = nm_alloc_zero(ctx, 1, sizeof *a);
    int64_t per = 4 * d + (want_cov ? d * d : 0);
    if (!a || !(a->buf = nm_alloc_zero(ctx, (size_t)(2 * per + (want_cov ? max_rows * d : 0)), sizeof(double)))) {
        nm_free(ctx, a);
        return NM_ERR_NOMEM;
    }
    double *t = a->buf, *b = a->buf + per;
    a->tot = (stats){d, 0, t, t + d, t + 2 * d, t + 3 * d, want_cov ? t + 4 * d : NULL};
    a->bat = (stats){d, 0, b, b + d, b + 2 * d, b + 3 * d, want_cov ? b + 4 * d : NULL};
    a->centered = want_cov ? a->buf + 2 * per : NULL;
    *out = a;
    return NM_OK;
}

static nm_status accum_result(nm_ctx *ctx, const mc_accum *a, nm_mc_result *out)
{
    memset(out, 0, sizeof *out);
    int64_t d = a->tot.d, n = a->tot.n;
    out->d = d;
    out->samples = n;
    out->mean = nm_alloc(ctx, (size_t)d, sizeof(double));
    out->var = nm_alloc(ctx, (size_t)d, sizeof(double));
    out->mean_se = nm_alloc(ctx, (size_t)d, sizeof(double));
    out->var_se = nm_alloc(ctx, (size_t)d, sizeof(double));
    if (a->tot.C) out->cov = nm_alloc(ctx, (size_t)(d * d), sizeof(double));
    if (!out->mean || !out->var || !out->mean_se || !out->var_se || (a->tot.C && !out->cov)) {
        nm_mc_result_free(ctx, out);
        return NM_ERR_NOMEM;
    }
    double N = (double)n;
    for (int64_t i = 0; i < d; i++) {
        double var = a->tot.M2[i] / (N - 1), m2 = a->tot.M2[i] / N, m4 = a->tot.M4[i] / N;
        out->mean[i] = a->tot.mean[i];
        out->var[i] = var;
        out->mean_se[i] = sqrt(var / N);
        /* Var(s²) = (μ4 − σ⁴ (N − 3)/(N − 1)) / N */
        double vv = (m4 - m2 * m2 * (N - 3) / (N - 1)) / N;
        out->var_se[i] = sqrt(vv > 0 ? vv : 0);
    }
    if (a->tot.C)
        for (int64_t i = 0; i < d * d; i++) out->cov[i] = a->tot.C[i] / (N - 1);
    return NM_OK;
}

static void accum_free(nm_ctx *ctx, mc_accum *a)
{
    if (!a) return;
    nm_free(ctx, a->buf);
    nm_free(ctx, a);
}

void nm_mc_result_free(nm_ctx *ctx, nm_mc_result *r)
{
    if (!r) return;
    nm_free(ctx, r->mean);
    nm_free(ctx, r->var);
    nm_free(ctx, r->mean_se);
    nm_free(ctx, r->var_se);
    nm_free(ctx, r->cov);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- the sampling driver */

/* A batch's statistics as one record of doubles, for the exchange between
 * processes: n, then mean, M2, M3, M4 (d each) and C (d × d, with covariance). */
static size_t stats_record(const stats *s)
{
    return (size_t)(1 + 4 * s->d + (s->C ? s->d * s->d : 0));
}

static void stats_pack(const stats *s, double *r)
{
    int64_t d = s->d;
    r[0] = (double)s->n;
    memcpy(r + 1, s->mean, (size_t)d * sizeof(double)), memcpy(r + 1 + d, s->M2, (size_t)d * sizeof(double));
    memcpy(r + 1 + 2 * d, s->M3, (size_t)d * sizeof(double)), memcpy(r + 1 + 3 * d, s->M4, (size_t)d * sizeof(double));
    if (s->C) memcpy(r + 1 + 4 * d, s->C, (size_t)(d * d) * sizeof(double));
}

static void stats_unpack(stats *s, const double *r)
{
    int64_t d = s->d;
    s->n = (int64_t)r[0];
    memcpy(s->mean, r + 1, (size_t)d * sizeof(double)), memcpy(s->M2, r + 1 + d, (size_t)d * sizeof(double));
    memcpy(s->M3, r + 1 + 2 * d, (size_t)d * sizeof(double)), memcpy(s->M4, r + 1 + 3 * d, (size_t)d * sizeof(double));
    if (s->C) memcpy(s->C, r + 1 + 4 * d, (size_t)(d * d) * sizeof(double));
}

/* The statistics of the batches, in rounds of one batch per process (one
 * process: a batch per round), batch b on the process with b mod size ==
 * rank; each round's batch statistics are exchanged and merged by every
 * process in batch order, so the arithmetic is one process's for any count. */
static nm_status drive_stats(nm_ctx *ctx, int64_t n_samples, int64_t d, nm_mc_batch_fn fn, void *user, int want_cov, nm_progress_fn progress,
                             void *puser, nm_mc_result *out)
{
    int P = nm_dist_size(ctx), me = nm_dist_rank(ctx);
    int64_t nb = (n_samples + NM_MC_BATCH - 1) / NM_MC_BATCH;
    mc_accum *acc = NULL;
    nm_status st = accum_new(ctx, d, want_cov, NM_MC_BATCH, &acc);
    size_t rec = st == NM_OK ? stats_record(&acc->bat) : 0;
    double *mine = st == NM_OK ? nm_alloc_zero(ctx, rec, sizeof(double)) : NULL, *all = mine ? nm_alloc(ctx, rec * (size_t)P, sizeof(double)) : NULL;
    if (st == NM_OK && !all) st = NM_ERR_NOMEM;
    for (int64_t b0 = 0; st == NM_OK && b0 < nb; b0 += P) {
        int64_t b = b0 + me, first = b * NM_MC_BATCH, rows = b < nb ? (n_samples - first < NM_MC_BATCH ? n_samples - first : NM_MC_BATCH) : 0;
        const float *Y = NULL;
        int64_t dy = d;
        nm_status bs = rows ? fn(user, ctx, first, rows, &Y, &dy) : NM_OK;
        if (bs == NM_OK && dy != d) bs = nm_fail(ctx, NM_ERR_SHAPE, "the sampled outputs have %lld values, not %lld", (long long)dy, (long long)d);
        if (bs == NM_OK && rows) stats_of_batch(&acc->bat, Y, rows, acc->centered), stats_pack(&acc->bat, mine);
        if ((st = nm_dist_exchange(ctx, bs, mine, rec * sizeof(double), all)) != NM_OK) break;
        for (int q = 0; q < P && b0 + q < nb; q++) {
            if (acc->tot.n == 0) {
                stats_unpack(&acc->tot, all + (size_t)q * rec);
                continue;
            }
            stats_unpack(&acc->bat, all + (size_t)q * rec);
            stats_merge(&acc->tot, &acc->bat);
        }
        if (progress) progress(puser, acc->tot.n, n_samples);
    }
    if (st == NM_OK) st = accum_result(ctx, acc, out);
    nm_free(ctx, mine), nm_free(ctx, all);
    accum_free(ctx, acc);
    return st;
}

nm_status nm_mc_drive(nm_ctx *ctx, int64_t n_samples, int64_t d, nm_mc_batch_fn fn, void *user, int want_cov, nm_progress_fn progress,
                     void *puser, nm_mc_result *out)
{
    if (out) return drive_stats(ctx, n_samples, d, fn, user, want_cov, progress, puser, out);
    nm_status st = NM_OK;
    for (int64_t first = 0; st == NM_OK && first < n_samples; first += NM_MC_BATCH) {
        int64_t rows = n_samples - first < NM_MC_BATCH ? n_samples - first : NM_MC_BATCH, dy = 0;
        const float *Y = NULL;
        st = fn(user, ctx, first, rows, &Y, &dy);
        if (st == NM_OK && progress) progress(puser, first + rows, n_samples);
    }
    return st;
}
