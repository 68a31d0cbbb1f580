/*
 * train.c — training and evaluation of a classifier net on an image data
 * set: softmax cross-entropy on the logits (the node before a final
 * Softmax, if any), gradients by the vjp passes with parameter gradients,
 * SGD with momentum or Adam, L2 weight decay, an optional half-cosine
 * learning-rate decay, random-shift augmentation and Gaussian noise
 * augmentation (k noisy copies of every image per step, issue 19's
 * baseline). The sample order, the shifts and the noise come from the
 * counter-based RNG keyed by the seed, so a seed gives the same net on a
 * given machine and thread count.
 */
#include "moment_reg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NM_SCALE_KEY "netmoments.input_scale"

/* ---------------------------------------------------------------- input scale */

nm_scale nm_net_get_input_scale(const nm_net *net)
{
    nm_scale s = {1.0, 0.0};
    const char *v = nm_net_get_meta(net, NM_SCALE_KEY);
    double ab[2];
    if (v && nm_parse_doubles_c(v, 2, ab) && isfinite(ab[0]) && isfinite(ab[1])) s = (nm_scale){ab[0], ab[1]};
    return s;
}

nm_status nm_net_set_input_scale(nm_ctx *ctx, nm_net *net, nm_scale s)
{
    if (!isfinite(s.a) || !isfinite(s.b)) return nm_fail(ctx, NM_ERR_NONFINITE, "input scale must be finite");
    char buf[64];
    if (nm_format_c(buf, sizeof buf, "%.17g %.17g", s.a, s.b) < 0) return nm_fail(ctx, NM_ERR_NOMEM, "no C locale to write the input scale");
    return nm_net_set_meta(ctx, net, NM_SCALE_KEY, buf);
}

/* ---------------------------------------------------------------- options */

nm_train_options nm_train_options_default(void)
{
    nm_train_options o;
    memset(&o, 0, sizeof o);
    o.epochs = 10;
    o.batch = 64;
    o.lr = 1e-3;
    o.opt = NM_OPT_ADAM;
    o.momentum = 0.9;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.cosine = 1;
    o.seed = 1;
    o.scale = (nm_scale){1.0, 0.0};
    o.folds = 1;
    return o;
}

/* ---------------------------------------------------------------- helpers */

/* Uniform 32-bit word k of stream `stream` for this seed (Philox). */
static uint32_t rand_word(uint64_t seed, uint64_t stream, uint64_t k)
{
    uint32_t ctr[4] = {(uint32_t)(k >> 2), (uint32_t)(k >> 34), (uint32_t)stream, (uint32_t)(stream >> 32) ^ 0x7261696eu};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, out[4];
    nm_philox4x32(ctr, key, out);
    return out[k & 3];
}

/* A permutation of 0..n−1 for this epoch (Fisher–Yates). */
static void shuffle(int64_t *perm, int64_t n, uint64_t seed, int epoch)
{
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t r = (uint64_t)rand_word(seed, (uint64_t)epoch, 2 * (uint64_t)i) << 32 | rand_word(seed, (uint64_t)epoch, 2 * (uint64_t)i + 1);
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* Shifts each image (rows × cols) by (dy, dx) ∈ [−k, k]², filling with the
 * scaled value of a black pixel. */
static void shift_images(float *x, int64_t count, int64_t rows, int64_t cols, int k, float fill, uint64_t seed,
                         int epoch, int64_t first, float *tmp)
{
    int64_t per = rows * cols;
    for (int64_t s = 0; s < count; s++) {
        uint32_t r = rand_word(seed, (uint64_t)1 << 40 | (uint64_t)epoch, (uint64_t)(first + s));
        int dy = (int)(r % (uint32_t)(2 * k + 1)) - k, dx = (int)((r >> 16) % (uint32_t)(2 * k + 1)) - k;
        float *img = x + s * per;
        memcpy(tmp, img, (size_t)per * sizeof(float));
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) {
                int64_t si = i - dy, sj = j - dx;
                img[i * cols + j] = si >= 0 && si < rows && sj >= 0 && sj < cols ? tmp[si * cols + sj] : fill;
            }
    }
}

/* Gaussian noise augmentation: the b images of x (per values each) become b·k rows, image s's fold f at row
 * s·k + f, plus N(0, σ² I) drawn from stream (epoch, first + s) of the seed, fold after fold (so a seed gives
 * the same copies for any thread count); rows (b·k) gets their indices into the data set, z holds k·per
 * floats of scratch, x b·k rows. */
static void noise_folds(float *x, int64_t b, int64_t per, int k, double sigma2, uint64_t seed, int epoch, int64_t first,
                        const int64_t *idx, int64_t *rows, float *z)
{
    float sd = (float)sqrt(sigma2);
    nm_rng rng = {seed ^ 0x6e6f697365ull};
    for (int64_t s = b - 1; s >= 0; s--) /* from the last image: a copy never lands on an image not yet copied */
        for (int f = k - 1; f >= 0; f--) {
            if (s * k + f != s) memcpy(x + (s * k + f) * per, x + s * per, (size_t)per * sizeof(float));
            rows[s * k + f] = idx[s];
        }
    for (int64_t s = 0; sd > 0 && s < b; s++) {
        nm_rng_normals(&rng, (uint64_t)epoch << 40 | (uint64_t)(first + s), 0, (int64_t)k * per, z);
        float *r = x + s * k * per;
        for (int64_t t = 0; t < k * per; t++) r[t] += sd * z[t];
    }
}

/* Softmax cross-entropy of logits (n × c) against labels: returns the summed
 * loss, counts the correct argmaxes, and writes dL/dlogits of the mean loss. */
static double cross_entropy(const float *logits, int64_t n, int64_t c, const uint8_t *labels, const int64_t *idx,
                            float *grad, int64_t *correct)
{
    double total = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *z = logits + r * c;
        int y = labels[idx[r]];
        double m = z[0];
        int64_t arg = 0;
        for (int64_t k = 1; k < c; k++)
            if (z[k] > m) m = z[k], arg = k;
        double s = 0;
        for (int64_t k = 0; k < c; k++) s += exp(z[k] - m);
        total += m + log(s) - z[y];
        *correct += arg == y;
        for (int64_t k = 0; k < c; k++) grad[r * c + k] = (float)((exp(z[k] - m) / s - (k == y)) / (double)n);
    }
    return total;
}

typedef struct {
    int v;          /* value index of the parameter */
    int64_t n;
    float *m, *s;   /* optimizer state: momentum / Adam first and second moments */
    int decay;      /* weight decay applies (rank ≥ 2) */
} param;

/* The constants the trainable inputs of nodes 0..last read, each once. */
static nm_status collect_params(nm_ctx *ctx, nm_net *net, int last, param **out, int *np)
{
    param *ps = nm_alloc_zero(ctx, (size_t)net->nv + 1, sizeof(param));
    if (!ps) return NM_ERR_NOMEM;
    int n = 0;
    for (int k = 0; k <= last; k++) {
        const nm_node *nd = &net->node[k];
        for (int i = 0; i < nd->nin; i++) {
            int v = nd->in[i];
            if (v < 0 || !nm_op_table[nd->op]->trainable[i] || net->v[v].varying || !net->v[v].cdata) continue;
            int seen = 0;
            for (int j = 0; j < n; j++) seen |= ps[j].v == v;
            if (seen) continue;
            ps[n].v = v;
            ps[n].n = nm_shape_numel(&net->v[v].shape);
            ps[n].decay = net->v[v].shape.ndim >= 2;
            nm_free(ctx, net->v[v].pg);
            net->v[v].pg = nm_alloc_zero(ctx, (size_t)ps[n].n, sizeof(float));
            ps[n].m = nm_alloc_zero(ctx, (size_t)ps[n].n, sizeof(float));
            ps[n].s = nm_alloc_zero(ctx, (size_t)ps[n].n, sizeof(float));
            n++;
            if (!net->v[v].pg || !ps[n - 1].m || !ps[n - 1].s) {
                *out = ps;
                *np = n;
                return NM_ERR_NOMEM;
            }
        }
    }
    *out = ps;
    *np = n;
    return NM_OK;
}

static void free_params(nm_ctx *ctx, nm_net *net, param *ps, int np)
{
    for (int j = 0; j < np; j++) {
        nm_free(ctx, ps[j].m);
        nm_free(ctx, ps[j].s);
        nm_free(ctx, net->v[ps[j].v].pg);
        net->v[ps[j].v].pg = NULL;
    }
    nm_free(ctx, ps);
}

static void update(const nm_train_options *o, param *p, float *w, const float *g, double lr, int64_t t)
{
    float wd = p->decay ? (float)o->weight_decay : 0.0f;
    if (o->opt == NM_OPT_SGD) {
        float mu = (float)o->momentum, r = (float)lr;
        #pragma omp parallel for schedule(static) if (p->n > 65536)
        for (int64_t i = 0; i < p->n; i++) {
            p->m[i] = mu * p->m[i] + g[i] + wd * w[i];
            w[i] -= r * p->m[i];
        }
        return;
    }
    /* Adam with the bias corrections folded into the step and ε */
    float b1 = (float)o->beta1, b2 = (float)o->beta2;
    double c1 = 1 - pow(o->beta1, (double)t), c2 = 1 - pow(o->beta2, (double)t);
    float step = (float)(lr * sqrt(c2) / c1), eps = (float)(o->eps * sqrt(c2));
    #pragma omp parallel for schedule(static) if (p->n > 65536)
    for (int64_t i = 0; i < p->n; i++) {
        float gi = g[i] + wd * w[i];
        p->m[i] = b1 * p->m[i] + (1 - b1) * gi;
        p->s[i] = b2 * p->s[i] + (1 - b2) * gi * gi;
        w[i] -= step * p->m[i] / (sqrtf(p->s[i]) + eps);
    }
}

/* ---------------------------------------------------------------- training */

static nm_status check_data(nm_ctx *ctx, const nm_net *net, const nm_dataset *ds, int last)
{
    if (!ds || !ds->pixels || ds->n < 1) return nm_fail(ctx, NM_ERR_ARG, "empty data set");
    const nm_value *in = &net->v[net->input];
    if (in->shape.ndim != 4 || in->shape.d[1] != 1 || in->shape.d[2] != ds->rows || in->shape.d[3] != ds->cols)
        return nm_fail(ctx, NM_ERR_SHAPE, "the model's input '%s' is not (N, 1, %lld, %lld) like the images", in->name,
                       (long long)ds->rows, (long long)ds->cols);
    if (!nm_net_batchable(net)) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "the model runs only at one batch size");
    const nm_value *out = &net->v[net->node[last].out];
    if (out->shape.ndim != 2 || out->shape.d[1] < ds->classes)
        return nm_fail(ctx, NM_ERR_SHAPE, "the logits of '%s' are not (N, %d or more)", out->name, ds->classes);
    return NM_OK;
}

nm_status nm_train(nm_ctx *ctx, nm_net *net, const nm_dataset *ds, const nm_train_options *opt)
{
    if (!ctx || !net || !opt) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    nm_train_options o = *opt;
    if (o.epochs < 1 || o.batch < 1 || !(o.lr > 0) || o.augment < 0 || o.weight_decay < 0 ||
        (o.opt != NM_OPT_SGD && o.opt != NM_OPT_ADAM))
        return nm_fail(ctx, NM_ERR_ARG, "invalid training options (epochs, batch, lr, augment, weight decay, optimizer)");
    if (o.folds < 1 || o.folds > 64 || !(o.noise_sigma2 >= 0) || !isfinite(o.noise_sigma2))
        return nm_fail(ctx, NM_ERR_ARG, "noise augmentation needs 1 to 64 folds and a finite noise variance >= 0 (got %d, %g)", o.folds,
                       o.noise_sigma2);
    if ((o.reg != NM_REG_NONE && o.reg != NM_REG_AMR && o.reg != NM_REG_VAR) ||
        o.reg_depth < 0 || (o.reg && (!(o.reg_sigma2 > 0) || !isfinite(o.reg_sigma2) || !(o.reg_lambda >= 0) || !isfinite(o.reg_lambda))))
        return nm_fail(ctx, NM_ERR_ARG, "a moment regulariser needs a finite noise variance > 0 and a finite weight >= 0 (got %g, %g)",
                       o.reg_sigma2, o.reg_lambda);
    int last = nm_net_logits_node(net);
    nm_status st = check_data(ctx, net, ds, last);
    if (st != NM_OK) return st;
    int64_t B = o.batch < ds->n ? o.batch : ds->n, per = ds->rows * ds->cols, C = net->v[net->node[last].out].shape.d[1];
    int64_t steps = (ds->n + B - 1) / B;
    param *ps = NULL;
    int np = 0;
    int64_t K = o.folds, *perm = nm_alloc(ctx, (size_t)ds->n, sizeof(int64_t)), *rows = nm_alloc(ctx, (size_t)(B * K), sizeof(int64_t));
    float *x = nm_alloc(ctx, (size_t)(B * K * per), sizeof(float)), *tmp = nm_alloc(ctx, (size_t)(K * per), sizeof(float));
    float *grad = nm_alloc(ctx, (size_t)(B * K * C), sizeof(float)), *clean = nm_alloc(ctx, (size_t)(B * K * C), sizeof(float));
    int *labels = nm_alloc(ctx, (size_t)(B * K), sizeof(int));
    if (!perm || !rows || !x || !tmp || !grad || !clean || !labels) st = NM_ERR_NOMEM;
    if (st == NM_OK) st = collect_params(ctx, net, last, &ps, &np);
    nm_mreg *reg = NULL;
    if (st == NM_OK && o.reg) st = nm_mreg_new(ctx, net, o.reg, o.reg_depth, B * K, &reg);
    int64_t t = 0;
    /* One thread pool: BLAS runs serially and large products are split over
     * the OpenMP threads (nm_gemm_f32), so OpenBLAS's own threads do not
     * compete with the sample-parallel kernels for the cores. */
    nm_blas_serial_begin();
    for (int e = 1; st == NM_OK && e <= o.epochs; e++) {
        shuffle(perm, ds->n, o.seed, e);
        double loss = 0, reg_loss = 0;
        int64_t correct = 0, seen = 0;
        for (int64_t s = 0; st == NM_OK && s < steps; s++) {
            int64_t first = s * B, b = ds->n - first < B ? ds->n - first : B;
            const int64_t *idx = perm + first;
            st = nm_dataset_images(ctx, ds, idx, b, o.scale, x);
            if (st != NM_OK) break;
            if (o.augment) shift_images(x, b, ds->rows, ds->cols, o.augment, (float)o.scale.b, o.seed, e, first, tmp);
            const int64_t *ridx = idx;
            if (K > 1 || o.noise_sigma2 > 0) {
                noise_folds(x, b, per, (int)K, o.noise_sigma2, o.seed, e, first, idx, rows, tmp);
                ridx = rows;
            }
            int64_t nb = b * K;
            if ((st = nm_net_run(ctx, net, 0, last, nb, x)) != NM_OK) break;
            const float *z = net->v[net->node[last].out].x;
            loss += cross_entropy(z, nb, C, ds->labels, ridx, grad, &correct);
            seen += nb;
            for (int j = 0; j < np; j++) memset(net->v[ps[j].v].pg, 0, (size_t)ps[j].n * sizeof(float));
            if (o.reg) {
                memcpy(clean, z, (size_t)(nb * C) * sizeof(float));
                for (int64_t r = 0; r < nb; r++) labels[r] = ds->labels[ridx[r]];
            }
            if ((st = nm_net_run_vjp(ctx, net, 0, last, nb, grad, NM_VJP_PARAMS | NM_VJP_NO_INPUT)) != NM_OK) break;
            if (o.reg) {
                double rl;
                if ((st = nm_mreg_step(reg, nb, x, o.reg_sigma2, o.reg_lambda, labels, clean, &rl)) != NM_OK) break;
                reg_loss += rl;
            }
            t++;
            double frac = (double)(t - 1) / (double)(steps * o.epochs);
            double lr = o.cosine ? o.lr * 0.5 * (1 + cos(3.141592653589793 * frac)) : o.lr;
            for (int j = 0; j < np; j++) update(&o, &ps[j], net->v[ps[j].v].cdata, net->v[ps[j].v].pg, lr, t);
            if (!isfinite(loss) || !isfinite(reg_loss)) {
                st = nm_fail(ctx, NM_ERR_NUMERIC, "the loss became non-finite at epoch %d step %lld (try a smaller --lr)", e,
                             (long long)s + 1);
                break;
            }
            if (o.progress) {
                nm_train_progress pr = {e, o.epochs, s + 1, steps, loss / (double)seen, (double)correct / (double)seen,
                                        reg_loss / (double)seen, lr, s + 1 == steps};
                o.progress(o.user, &pr);
            }
        }
    }
    nm_blas_serial_end();
    if (st == NM_OK) st = nm_net_set_input_scale(ctx, net, o.scale);
    net->rec_first = net->rec_last = -1; /* the recorded primal belongs to old weights */
    if (ps) free_params(ctx, net, ps, np);
    nm_free(ctx, perm);
    nm_free(ctx, rows);
    nm_free(ctx, x);
    nm_free(ctx, tmp);
    nm_free(ctx, grad);
    nm_free(ctx, clean);
    nm_free(ctx, labels);
    nm_mreg_free(reg);
    return st;
}

/* ---------------------------------------------------------------- evaluation */

nm_status nm_evaluate(nm_ctx *ctx, nm_net *net, const nm_dataset *ds, nm_eval_result *out)
{
    if (!ctx || !net || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    int last = nm_net_logits_node(net);
    nm_status st = check_data(ctx, net, ds, last);
    if (st != NM_OK) return st;
    int64_t B = 1000, per = ds->rows * ds->cols, C = net->v[net->node[last].out].shape.d[1];
    int classes = (int)C;
    float *x = nm_alloc(ctx, (size_t)(B * per), sizeof(float));
    int64_t *conf = nm_alloc_zero(ctx, (size_t)(classes * classes), sizeof(int64_t));
    if (!x || !conf) st = NM_ERR_NOMEM;
    nm_scale sc = nm_net_get_input_scale(net);
    int64_t correct = 0;
    for (int64_t first = 0; st == NM_OK && first < ds->n; first += B) {
        int64_t b = ds->n - first < B ? ds->n - first : B;
        int64_t idx[1000];
        for (int64_t k = 0; k < b; k++) idx[k] = first + k;
        if ((st = nm_dataset_images(ctx, ds, idx, b, sc, x)) != NM_OK) break;
        if ((st = nm_net_run(ctx, net, 0, last, b, x)) != NM_OK) break;
        const float *z = net->v[net->node[last].out].x;
        for (int64_t r = 0; r < b; r++) {
            int64_t arg = 0;
            for (int64_t k = 1; k < C; k++)
                if (z[r * C + k] > z[r * C + arg]) arg = k;
            int y = ds->labels[first + r];
            conf[y * classes + arg]++;
            correct += arg == y;
        }
    }
    nm_free(ctx, x);
    if (st != NM_OK) {
        nm_free(ctx, conf);
        return st;
    }
    *out = (nm_eval_result){ds->n, classes, correct, (double)correct / (double)ds->n, conf};
    return NM_OK;
}

void nm_eval_result_free(nm_ctx *ctx, nm_eval_result *r)
{
    if (!r) return;
    nm_free(ctx, r->confusion);
    memset(r, 0, sizeof *r);
}
