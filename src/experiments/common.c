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

nm_status nm_exp_predict(nm_ctx *ctx, nm_net *net, const float *X, int64_t count, const float *add, float *logits, int *labels)
{
    int last = nm_net_logits_node(net);
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    int64_t B = nm_net_batchable(net) ? nm_net_batch_fit(ctx, nm_net_sample_bytes(net, 0, last), 256) : 1;
    if (B > count) B = count;
    float *buf = nm_alloc(ctx, (size_t)(B * n), sizeof(float));
    if (!buf) return NM_ERR_NOMEM;
    nm_status st = NM_OK;
    for (int64_t i0 = 0; st == NM_OK && i0 < count; i0 += B) {
        int64_t b = count - i0 < B ? count - i0 : B;
        memcpy(buf, X + i0 * n, (size_t)(b * n) * sizeof(float));
        if (add)
            for (int64_t s = 0; s < b; s++)
                for (int64_t j = 0; j < n; j++) buf[s * n + j] += add[j];
        if ((st = nm_net_run(ctx, net, 0, last, b, buf)) != NM_OK) break;
        const float *y = net->v[net->node[last].out].x;
        for (int64_t s = 0; s < b; s++) {
            if (logits) memcpy(logits + (i0 + s) * d, y + s * d, (size_t)d * sizeof(float));
            if (labels) labels[i0 + s] = nm_exp_argmax_f32(y + s * d, d);
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
                          nm_progress_fn progress, void *puser)
{
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
        for (int64_t r = 0; r < count; r++) {
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
            if (progress && ts == NM_OK) progress(puser, done, count);
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
    return fail == NM_OK ? NM_OK : nm_fail(ctx, fail, "%s", fail_msg);
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
