/*
 * common.c — the experiments' shared passes (exp.h): logits of many inputs
 * in memory-sized batches, the logit Jacobian at a point by vjp rows, and
 * the per-thread driver over independent items.
 */
#include "exp.h"

#include <omp.h>
#include <stdio.h>
#include <string.h>

int64_t nm_exp_logit_count(const nm_net *net)
{
    return nm_shape_tail(&net->v[net->node[nm_net_logits_node(net)].out].shape, 1);
}

int64_t nm_exp_input_size(const nm_net *net)
{
    return nm_shape_tail(&net->v[net->input].shape, 1);
}

int nm_exp_argmax_f32(const float *y, int64_t d)
{
    int best = 0;
    for (int64_t i = 1; i < d; i++)
        if (y[i] > y[best]) best = (int)i;
    return best;
}

int nm_exp_argmax_f64(const double *y, int64_t d)
{
    int best = 0;
    for (int64_t i = 1; i < d; i++)
        if (y[i] > y[best]) best = (int)i;
    return best;
}

/* Rows i0 .. i0+b−1 of X (plus add) through the net: their logits (b × d) and labels (b), each may be NULL; buf holds b × n floats. */
static nm_status predict_rows(nm_ctx *ctx, nm_net *net, const float *X, int64_t i0, int64_t b, const float *add, float *buf, float *logits,
                              int *labels)
{
    int last = nm_net_logits_node(net);
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    memcpy(buf, X + i0 * n, (size_t)(b * n) * sizeof(float));
    if (add)
        for (int64_t s = 0; s < b; s++)
            for (int64_t j = 0; j < n; j++) buf[s * n + j] += add[j];
    nm_status st = nm_net_run(ctx, net, 0, last, b, buf);
    const float *y = net->v[net->node[last].out].x;
    for (int64_t s = 0; st == NM_OK && s < b; s++) {
        if (logits) memcpy(logits + s * d, y + s * d, (size_t)d * sizeof(float));
        if (labels) labels[s] = nm_exp_argmax_f32(y + s * d, d);
    }
    return st;
}

/* nm_exp_predict over several processes: rounds of one batch per process
 * (batch k on the process with k mod size == rank), the same batches as in
 * one process, exchanged after each round. */
static nm_status predict_dist(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, int64_t B, const float *add, float *buf, float *logits,
                              int *labels)
{
    int P = nm_dist_size(ctx), me = nm_dist_rank(ctx);
    int64_t d = nm_exp_logit_count(net), nb = (count + B - 1) / B;
    size_t lbytes = logits ? (size_t)(B * d) * sizeof(float) : 0, bytes = lbytes + (labels ? (size_t)B * sizeof(int) : 0);
    unsigned char *mine = nm_alloc_zero(ctx, bytes, 1), *all = mine ? nm_alloc(ctx, bytes, (size_t)P) : NULL;
    nm_status st = all ? NM_OK : NM_ERR_NOMEM;
    for (int64_t k0 = 0; st == NM_OK && k0 < nb; k0 += P) {
        int64_t k = k0 + me, i0 = k * B, b = k < nb ? (count - i0 < B ? count - i0 : B) : 0;
        nm_status bs = b ? predict_rows(ctx, net, X, i0, b, add, buf, logits ? (float *)(void *)mine : NULL,
                                        labels ? (int *)(void *)(mine + lbytes) : NULL)
                         : NM_OK;
        if ((st = nm_dist_exchange(ctx, bs, mine, bytes, all)) != NM_OK) break;
        for (int q = 0; q < P && k0 + q < nb; q++) {
            int64_t j0 = (k0 + q) * B, bq = count - j0 < B ? count - j0 : B;
            const unsigned char *r = all + (size_t)q * bytes;
            if (logits) memcpy(logits + j0 * d, r, (size_t)(bq * d) * sizeof(float));
            if (labels) memcpy(labels + j0, r + lbytes, (size_t)bq * sizeof(int));
        }
    }
    nm_free(ctx, mine), nm_free(ctx, all);
    return st;
}

nm_status nm_exp_predict(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, const float *add, float *logits, int *labels)
{
    int last = nm_net_logits_node(net);
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    int64_t B = nm_net_batchable(net) ? nm_net_batch_fit(ctx, nm_net_sample_bytes(net, 0, last), 256) : 1;
    if (B > count) B = count;
    float *buf = nm_alloc(ctx, (size_t)(B * n), sizeof(float));
    if (!buf) return NM_ERR_NOMEM;
    nm_status st = NM_OK;
    if (nm_dist_size(ctx) > 1 && count > B && (logits || labels)) {
        st = predict_dist(ctx, net, X, count, B, add, buf, logits, labels);
    } else {
        for (int64_t i0 = 0; st == NM_OK && i0 < count; i0 += B) {
            int64_t b = count - i0 < B ? count - i0 : B;
            st = predict_rows(ctx, net, X, i0, b, add, buf, logits ? logits + i0 * d : NULL, labels ? labels + i0 : NULL);
        }
    }
    nm_free(ctx, buf);
    return st;
}

nm_status nm_exp_logits_at(nm_ctx *ctx, nm_net *net, const float *x, float *y)
{
    int last = nm_net_logits_node(net);
    nm_status st = nm_require_batchable(ctx, net, last, "the logits' gradients");
    if (st == NM_OK) st = nm_net_run(ctx, net, 0, last, 1, x);
    if (st == NM_OK) memcpy(y, net->v[net->node[last].out].x, (size_t)nm_exp_logit_count(net) * sizeof(float));
    return st;
}

nm_status nm_exp_logits_vjp(nm_ctx *ctx, nm_net *net, int64_t rows, const float *C, float *G)
{
    nm_status st = nm_net_run_vjp(ctx, net, 0, nm_net_logits_node(net), rows, C, 0);
    if (st == NM_OK) memcpy(G, net->v[net->input].g, (size_t)(rows * nm_exp_input_size(net)) * sizeof(float));
    return st;
}

nm_status nm_exp_logit_jacobian(nm_ctx *ctx, nm_net *net, const float *x, float *y, float *J)
{
    int64_t d = nm_exp_logit_count(net);
    float *E = nm_alloc_zero(ctx, (size_t)(d * d), sizeof(float));
    nm_status st = E ? nm_exp_logits_at(ctx, net, x, y) : NM_ERR_NOMEM;
    for (int64_t k = 0; st == NM_OK && k < d; k++) E[k * d + k] = 1;
    if (st == NM_OK) st = nm_exp_logits_vjp(ctx, net, d, E, J);
    nm_free(ctx, E);
    return st;
}

nm_status nm_exp_parallel(nm_ctx *ctx, const nm_net *net, int64_t count, size_t scratch_bytes, nm_exp_item_fn fn, void *user,
                          nm_progress_fn progress, void *puser, const nm_dist_slab *out, int nout)
{
    int64_t local = nm_dist_items(ctx, count); /* this process's share: all of them without a distribution */
    nm_status fail = NM_OK;
    char fail_msg[sizeof ctx->message] = "";
    int64_t done = 0;
    omp_lock_t lock; /* a lock of its own: named critical sections would be exported symbols */
    omp_init_lock(&lock);
    nm_blas_serial_begin(); /* each item's products stay on its own thread */
    #pragma omp parallel
    {
        nm_ctx *tc = nm_ctx_create(); /* contexts and nets are per thread */
        nm_net *tnet = NULL;
        void *scratch = NULL;
        nm_status ts = tc ? NM_OK : NM_ERR_NOMEM;
        if (ts == NM_OK) nm_ctx_set_mem_limit(tc, (size_t)(nm_ctx_mem_limit(ctx) / (size_t)omp_get_num_threads()));
        if (ts == NM_OK && scratch_bytes && !(scratch = nm_alloc(tc, scratch_bytes, 1))) ts = NM_ERR_NOMEM;
        if (ts == NM_OK) ts = nm_net_copy(tc, net, &tnet);
        #pragma omp for schedule(dynamic, 1)
        for (int64_t jr = 0; jr < local; jr++) {
            int64_t r = nm_dist_item(ctx, jr);
            int stop;
            omp_set_lock(&lock);
            stop = fail != NM_OK;
            omp_unset_lock(&lock);
            if (ts != NM_OK || stop) continue;
            if (scratch) memset(scratch, 0, scratch_bytes);
            ts = fn(tc, tnet, user, r, scratch);
            omp_set_lock(&lock);
            done++;
            if (ts != NM_OK && fail == NM_OK) {
                fail = ts;
                snprintf(fail_msg, sizeof fail_msg, "%s", nm_ctx_message(tc));
            }
            if (progress && ts == NM_OK) progress(puser, done, local);
            omp_unset_lock(&lock);
        }
        omp_set_lock(&lock);
        if (ts != NM_OK && fail == NM_OK) {
            fail = ts;
            snprintf(fail_msg, sizeof fail_msg, "%s", tc ? nm_ctx_message(tc) : "out of memory");
        }
        omp_unset_lock(&lock);
        if (tc) {
            nm_free(tc, scratch);
            nm_net_free(tc, tnet);
        }
        nm_ctx_free(tc);
    }
    nm_blas_serial_end();
    omp_destroy_lock(&lock);
    if (fail != NM_OK) nm_fail(ctx, fail, "%s", fail_msg);
    return nm_dist_gather_items(ctx, fail, count, out, nout);
}

nm_status nm_exp_mc_flip(nm_ctx *ctx, nm_net *net, const float *x, double sigma, const int64_t *support, int64_t ns, int64_t K,
                         uint64_t seed, uint64_t stream, int c, float *buf, double *mean, double *flip)
{
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net), B = NM_FOOLING_MC_BATCH, flips = 0;
    nm_rng rng = {seed};
    float s = (float)sigma, *E = buf, *Y = buf + B * n, *zt = Y + B * d;
    if (!support) ns = n;
    memset(mean, 0, (size_t)d * sizeof(double));
    for (int64_t k0 = 0; k0 < K; k0 += B) {
        int64_t b = K - k0 < B ? K - k0 : B;
        float *Z = E + b * (n - ns); /* the normals, packed at the end of the batch's inputs */
        nm_rng_normals(&rng, stream, (uint64_t)(k0 * ns), b * ns, Z);
        for (int64_t t = 0; t < b; t++) {
            float *xt = E + t * n;
            const float *z = Z + t * ns;
            if (!support) {
                for (int64_t i = 0; i < n; i++) xt[i] = x[i] + s * z[i];
                continue;
            }
            memcpy(zt, z, (size_t)ns * sizeof(float)); /* z may overlap xt's region */
            memcpy(xt, x, (size_t)n * sizeof(float));
            for (int64_t i = 0; i < ns; i++) xt[support[i]] += s * zt[i];
        }
        nm_status st = nm_exp_predict(ctx, net, E, b, NULL, Y, NULL);
        if (st != NM_OK) return st;
        for (int64_t t = 0; t < b; t++) {
            for (int64_t i = 0; i < d; i++) mean[i] += Y[t * d + i];
            flips += nm_exp_argmax_f32(Y + t * d, d) != c;
        }
    }
    for (int64_t i = 0; i < d; i++) mean[i] /= (double)K;
    *flip = (double)flips / (double)K;
    return NM_OK;
}
