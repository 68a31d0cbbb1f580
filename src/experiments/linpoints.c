/*
 * linpoints.c — the paper's Table 3 (DESIGN §2): the held-out digits are
 * clustered by k-means in the model's input space, and each evaluated digit
 * is linearized once at its cluster's centre (or, for the baseline, at the
 * cluster's farthest member) instead of at itself; per logit, the mean
 * Monte Carlo / analytic ratios over the digits, against a Monte Carlo
 * around each digit (nm_tightness_run with given images and points).
 * Method propagate, which carries the Gaussian through every layer and so
 * has no linearization point, is run once, with the first row.
 */
#include "../net.h"

#include <string.h>

nm_linpoints_options nm_linpoints_options_default(void)
{
    nm_linpoints_options o;
    memset(&o, 0, sizeof o);
    o.images = 200;
    o.mc = 20000;
    o.max_var = 1;
    o.seed = 1;
    o.propagate = 1;
    return o;
}

void nm_linpoints_free(nm_ctx *ctx, nm_linpoints *t)
{
    if (!t) return;
    nm_free(ctx, t->buf);
    nm_free(ctx, t->index);
    memset(t, 0, sizeof *t);
}

/* The evaluated digits: the first `images` of a seeded partial shuffle of 0..N−1. */
static void draw_digits(int64_t N, int64_t images, uint64_t seed, int64_t *perm, int64_t *idx)
{
    for (int64_t i = 0; i < N; i++) perm[i] = i;
    for (int64_t i = 0; i < images; i++) {
        uint32_t ctr[4] = {(uint32_t)i, 0, 0, 0x6c696e70u}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, w[4];
        nm_philox4x32(ctr, key, w);
        int64_t j = i + (int64_t)(w[0] % (uint32_t)(N - i)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
        idx[i] = perm[i];
    }
}

/* The linearization point of each evaluated digit: its cluster's centre
 * (farthest = 0) or the cluster member farthest from the centre (the first
 * in index order at the largest squared distance). */
static void points_of(const float *X, int64_t N, int64_t n, const int64_t *assign, const float *C, const int64_t *idx,
                      int64_t images, int farthest, float *x0)
{
    for (int64_t r = 0; r < images; r++) {
        int64_t cl = assign[idx[r]];
        const float *p = C + cl * n;
        double best = -1;
        for (int64_t i = 0; farthest && i < N; i++) {
            if (assign[i] != cl) continue;
            double s = 0;
            for (int64_t t = 0; t < n; t++) s += ((double)X[i * n + t] - C[cl * n + t]) * ((double)X[i * n + t] - C[cl * n + t]);
            if (s > best) best = s, p = X + i * n;
        }
        memcpy(x0 + r * n, p, sizeof(float) * (size_t)n);
    }
}

/* Row q of the result from one tightness run: per logit the mean ratios of
 * every method compared, and the mean share of changed ReLU states below the split. */
static void summarize(const nm_tightness *t, const nm_tightness_options *to, int q, nm_linpoints *out)
{
    int64_t d = t->d;
    for (int64_t i = 0; i < d; i++) {
        out->e_ratio[q * d + i] = nm_ratio_over_runs(t->mc_mean, t->mean[NM_METHOD_EXACT], t->runs, d, i).mean;
        for (int k = 0; k < to->nmethods; k++) {
            nm_method m = to->methods[k];
            if (m == NM_METHOD_PROPAGATE) continue; /* one row of its own, below */
            out->var_ratio[m][q * d + i] = nm_ratio_over_runs(t->mc_var, t->var[m], t->runs, d, i).mean;
        }
    }
    for (int64_t i = 0; t->mean[NM_METHOD_PROPAGATE] && i < d; i++) {
        out->prop_e_ratio[i] = nm_ratio_over_runs(t->mc_mean, t->mean[NM_METHOD_PROPAGATE], t->runs, d, i).mean;
        out->prop_var_ratio[i] = nm_ratio_over_runs(t->mc_var, t->var[NM_METHOD_PROPAGATE], t->runs, d, i).mean;
    }
    double s = 0;
    for (int64_t r = 0; r < t->runs; r++) s += t->relu_bottom[r];
    out->relu_bottom[q] = s / (double)t->runs;
}

static nm_status linpoints_alloc(nm_ctx *ctx, const nm_linpoints_options *o, const nm_tightness_options *to, int64_t d, int64_t images,
                                 nm_linpoints *out)
{
    out->rows = 0;
    for (int q = 0; q < o->nk; q++) {
        out->k[out->rows] = o->k[q], out->farthest[out->rows++] = 0;
        if (o->baseline && o->k[q] < o->n_digits) out->k[out->rows] = o->k[q], out->farthest[out->rows++] = 1;
    }
    out->d = d;
    out->images = images;
    int64_t per = out->rows * d;
    out->buf = nm_alloc_zero(ctx, (size_t)((1 + to->nmethods) * per + out->rows + (o->propagate ? 2 * d : 0)), sizeof(double));
    out->index = nm_alloc(ctx, (size_t)images, sizeof(int64_t));
    if (!out->buf || !out->index) return NM_ERR_NOMEM;
    out->e_ratio = out->buf;
    for (int k = 0; k < to->nmethods; k++) out->var_ratio[to->methods[k]] = out->buf + (1 + k) * per;
    out->relu_bottom = out->buf + (1 + to->nmethods) * per;
    if (o->propagate) out->prop_e_ratio = out->relu_bottom + out->rows, out->prop_var_ratio = out->prop_e_ratio + d;
    return NM_OK;
}

nm_status nm_linpoints_run(nm_ctx *ctx, const nm_net *net, const nm_dataset *ds, const nm_linpoints_options *opt, nm_linpoints *out)
{
    if (!ctx || !net || !ds || !opt || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    nm_linpoints_options o = *opt;
    int64_t N = ds->n, n = ds->rows * ds->cols, nin = nm_shape_tail(&net->v[net->input].shape, 1);
    if (n != nin) return nm_fail(ctx, NM_ERR_SHAPE, "the images have %lld pixels, the model's input %lld", (long long)n, (long long)nin);
    if (o.nk < 1 || o.nk > NM_LINPOINTS_MAX_K) return nm_fail(ctx, NM_ERR_ARG, "linpoints needs 1 to %d cluster counts", NM_LINPOINTS_MAX_K);
    for (int q = 0; q < o.nk; q++)
        if (o.k[q] < 1 || o.k[q] > N) return nm_fail(ctx, NM_ERR_ARG, "%lld clusters for %lld digits", (long long)o.k[q], (long long)N);
    if (o.images < 1) return nm_fail(ctx, NM_ERR_ARG, "linpoints needs at least one digit");
    int64_t images = o.images < N ? o.images : N;
    o.n_digits = N;
    nm_tightness_options to = nm_tightness_options_default();
    to.runs = images, to.mc = o.mc, to.max_var = o.max_var, to.seed = o.seed;
    nm_scale scale = nm_net_get_input_scale(net);
    float *X = nm_alloc(ctx, (size_t)(N * n), sizeof(float)), *C = nm_alloc(ctx, (size_t)(N * n), sizeof(float));
    float *x0 = nm_alloc(ctx, (size_t)(images * n), sizeof(float));
    int64_t *assign = nm_alloc(ctx, (size_t)N, sizeof(int64_t)), *perm = nm_alloc(ctx, (size_t)N, sizeof(int64_t));
    nm_status st = X && C && x0 && assign && perm ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK) st = linpoints_alloc(ctx, &o, &to, nm_shape_tail(&net->v[net->node[nm_net_logits_node(net)].out].shape, 1), images, out);
    if (st == NM_OK) st = nm_dataset_images(ctx, ds, NULL, N, scale, X);
    if (st == NM_OK) draw_digits(N, images, o.seed, perm, out->index);
    to.image_index = out->index, to.x0 = x0;
    for (int q = 0, row = 0; st == NM_OK && q < o.nk; q++) {
        if ((st = nm_kmeans(ctx, X, N, n, o.k[q], o.seed, 100, assign, C)) != NM_OK) break;
        for (; st == NM_OK && row < out->rows && out->k[row] == o.k[q]; row++) {
            nm_tightness t;
            points_of(X, N, n, assign, C, out->index, images, out->farthest[row], x0);
            /* propagate needs no point: the first row's run computes it against the same Monte Carlo */
            to.methods[2] = NM_METHOD_PROPAGATE, to.nmethods = o.propagate && row == 0 ? 3 : 2;
            if ((st = nm_tightness_run(ctx, net, ds, scale, &to, &t)) != NM_OK) break;
            summarize(&t, &to, row, out);
            nm_tightness_free(ctx, &t);
            if (o.progress) o.progress(o.user, row + 1, out->rows);
        }
    }
    nm_free(ctx, X), nm_free(ctx, C), nm_free(ctx, x0), nm_free(ctx, assign), nm_free(ctx, perm);
    if (st != NM_OK) nm_linpoints_free(ctx, out);
    return st;
}
