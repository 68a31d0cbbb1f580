/*
 * tightness.c — the paper's tightness experiments (DESIGN §1.8, §2: Fig 2
 * and Table 1). A run draws a random input covariance (and, for a trained
 * net, a random held-out image as the mean), computes the analytic mean and
 * the variances of methods paper and exact, and a Monte Carlo of the real
 * network. Runs are independent: they are spread over OpenMP threads, each
 * with its own copy of the net, and every random number is a function of
 * (seed, run) only, so results do not depend on the thread count.
 *
 * Synthetic nets (weights and biases i.i.d. N(0, 1/fan_in) and N(0, σ_b²),
 * σ_b = 0.5 unless chosen, the weights the same for every σ_b > 0; input
 * mean 0; the paper's §4.1 splits them at the first ReLU, l = 2 in its
 * layer count, linearizing at x₀ = 0 and y₀ = relu(R_bot(0))):
 *   FC-A/B/C    R¹⁰⁰ → 64 (→ 64 (→ 64)) → 1: 2/3/4 Linear layers, ReLU between
 *   Conv-A/B/C  1×20×20 → 2/3/4 conv layers of 4 channels, 3×3, stride 1,
 *               pad 1 (the first with stride 2: 4×10×10), ReLU between,
 *               then Linear to a scalar
 * FC-A and Conv-A are exactly (Affine, ReLU, Affine).
 */
#include "exp.h"

#include <math.h>
#include <string.h>

static const char *const syn_names[NM_SYN_COUNT] = {"fc-a", "fc-b", "fc-c", "conv-a", "conv-b", "conv-c"};
_Static_assert(sizeof syn_names / sizeof syn_names[0] == NM_SYN_COUNT, "one name per synthetic net");

const char *nm_synthetic_str(nm_synthetic s)
{
    return s >= 0 && s < NM_SYN_COUNT ? syn_names[s] : "?";
}

/* ---------------------------------------------------------------- synthetic nets */

nm_status nm_synthetic_create(nm_ctx *ctx, nm_synthetic which, uint64_t seed, double bias_sd, nm_net **out)
{
    if (!ctx || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    *out = NULL;
    if (which < 0 || which >= NM_SYN_COUNT) return nm_fail(ctx, NM_ERR_ARG, "unknown synthetic net %d", (int)which);
    if (!(bias_sd >= 0) || !isfinite(bias_sd)) return nm_fail(ctx, NM_ERR_ARG, "the biases' standard deviation must be finite and >= 0");
    int fc = which <= NM_SYN_FC_C, layers = 2 + (int)(which - (fc ? NM_SYN_FC_A : NM_SYN_CONV_A));
    nm_shape in = fc ? (nm_shape){2, {1, 100}} : (nm_shape){4, {1, 1, 20, 20}};
    nm_builder b;
    int y;
    nm_status st = nm_build_start(ctx, seed * 16 + (uint64_t)which, "x", &in, &b, &y);
    if (st != NM_OK) return st;
    if (fc) {
        int64_t w = 100;
        for (int l = 0; l < layers - 1; l++) {
            y = nm_build_unary(&b, NM_OP_RELU, nm_build_linear(&b, y, w, 64, 1.0 / sqrt((double)w), bias_sd), "relu", NULL);
            w = 64;
        }
        y = nm_build_linear(&b, y, w, 1, 1.0 / sqrt((double)w), bias_sd);
    } else {
        for (int l = 0; l < layers; l++) {
            int64_t cin = l ? 4 : 1;
            y = nm_build_conv(&b, y, cin, 4, 3, l ? 1 : 2, 1, 1.0 / sqrt((double)(cin * 9)), bias_sd);
            if (l < layers - 1) y = nm_build_unary(&b, NM_OP_RELU, y, "relu", NULL);
        }
        y = nm_build_unary(&b, NM_OP_FLATTEN, y, "flatten", NULL);
        y = nm_build_linear(&b, y, 400, 1, 1.0 / sqrt(400.0), bias_sd);
    }
    return nm_build_finish(&b, y, out);
}

/* ---------------------------------------------------------------- random covariances */

nm_status nm_cov_random(nm_ctx *ctx, int64_t n, double max_var, const nm_rng *rng, uint64_t stream, nm_cov **out)
{
    *out = NULL;
    if (n < 1 || !(max_var > 0) || !isfinite(max_var)) return nm_fail(ctx, NM_ERR_ARG, "random covariance needs n ≥ 1 and max_var > 0");
    float *g = nm_alloc(ctx, (size_t)(n * n), sizeof(float));
    double *L = nm_alloc(ctx, (size_t)(n * n), sizeof(double));
    if (!g || !L) {
        nm_free(ctx, g);
        nm_free(ctx, L);
        return NM_ERR_NOMEM;
    }
    nm_rng_normals(rng, stream, 0, n * n, g);
    double dmax = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = 0;
        for (int64_t j = 0; j < n; j++) d += (double)g[i * n + j] * g[i * n + j];
        dmax = fmax(dmax, d);
    }
    double s = sqrt(max_var / dmax); /* Σ = L Lᵀ with its largest variance max_var */
    for (int64_t i = 0; i < n * n; i++) L[i] = s * g[i];
    nm_free(ctx, g);
    nm_status st = nm_cov_factor(ctx, n, n, L, out);
    nm_free(ctx, L);
    return st;
}

/* ---------------------------------------------------------------- runs */

void nm_tightness_free(nm_ctx *ctx, nm_tightness *t)
{
    if (!t) return;
    nm_free(ctx, t->buf);
    nm_free(ctx, t->mean_index);
    memset(t, 0, sizeof *t);
}

nm_tightness_options nm_tightness_options_default(void)
{
    nm_tightness_options o;
    memset(&o, 0, sizeof o);
    o.runs = 200;
    o.mc = 75000;
    o.max_var = 1;
    o.seed = 1;
    o.nmethods = 2;
    o.methods[0] = NM_METHOD_PAPER;
    o.methods[1] = NM_METHOD_EXACT;
    return o;
}

/* The result buffers: for each method compared its mean and variance, the
 * MC mean and variance (runs × d each), and the two ReLU shares (runs). */
static nm_status tightness_alloc(nm_ctx *ctx, const nm_tightness_options *opt, int64_t R, int64_t d, nm_tightness *out)
{
    out->runs = R;
    out->d = d;
    out->buf = nm_alloc_zero(ctx, (size_t)((2 * opt->nmethods + 2) * R * d + 2 * R), sizeof(double));
    out->mean_index = nm_alloc_zero(ctx, (size_t)R, sizeof(int64_t));
    if (!out->buf || !out->mean_index) {
        nm_tightness_free(ctx, out);
        return NM_ERR_NOMEM;
    }
    double *b = out->buf;
    for (int i = 0; i < opt->nmethods; i++) {
        out->mean[opt->methods[i]] = b, b += R * d;
        out->var[opt->methods[i]] = b, b += R * d;
    }
    out->mc_mean = b, b += R * d;
    out->mc_var = b, b += R * d;
    out->relu_bottom = b;
    out->relu_top = b + R;
    return NM_OK;
}

/* Run r on this thread's net and context: Σ, the mean (an image or 0), the
 * analytic moments of every method from one linearization, the Monte Carlo
 * and the ReLU-change count, written into out. */
static nm_status tightness_one(nm_ctx *tc, nm_net *net, const nm_dataset *images, nm_scale scale, const nm_tightness_options *opt,
                               int64_t r, float *mu, const nm_shape *in, nm_tightness *out)
{
    int64_t n = nm_shape_numel(in), d = out->d;
    nm_status ts = NM_OK;
    nm_rng rng = {opt->seed};
    nm_cov *cov = NULL;
    nm_moments mom[NM_METHOD_MAX] = {{0}};
    nm_mc_result mc = {0};
    if (images) { /* a given or a random held-out image as the mean */
        uint32_t ctr[4] = {(uint32_t)r, 0, 0, 0x696d6167u}, key[2] = {(uint32_t)opt->seed, (uint32_t)(opt->seed >> 32)}, w[4];
        nm_philox4x32(ctr, key, w);
        int64_t k = opt->image_index ? opt->image_index[r] : (int64_t)(w[0] % (uint32_t)images->n);
        out->mean_index[r] = k;
        ts = nm_dataset_images(tc, images, &k, 1, scale, mu);
    }
    nm_array mua = {NM_F32, in->ndim, {0}, mu};
    memcpy(mua.shape, in->d, sizeof(int64_t) * (size_t)in->ndim);
    nm_net_moments_options mo = nm_net_moments_options_default();
    mo.split_relu = opt->split_relu;
    nm_array x0a = mua;
    if (opt->x0) { /* a linearization point other than the mean (Table 3) */
        x0a.data = (void *)(opt->x0 + r * n);
        mo.x0 = &x0a;
    }
    if (ts == NM_OK) ts = nm_cov_random(tc, n, opt->max_var, &rng, (uint64_t)r, &cov);
    if (ts == NM_OK) ts = nm_net_moments_methods(tc, net, &mua, cov, &mo, opt->nmethods, opt->methods, mom);
    nm_rng mrng = {opt->seed * 1000003u + (uint64_t)r + 1};
    if (ts == NM_OK) ts = nm_net_montecarlo(tc, net, &mua, cov, opt->mc, &mrng, 0, NULL, NULL, &mc);
    if (ts == NM_OK)
        ts = nm_net_relu_changes(tc, net, &mua, cov, &mo, opt->mc < NM_RELU_CHANGE_SAMPLES ? opt->mc : NM_RELU_CHANGE_SAMPLES, &mrng,
                                 &out->relu_bottom[r], &out->relu_top[r]);
    for (int64_t i = 0; ts == NM_OK && i < d; i++) {
        for (int k = 0; k < opt->nmethods; k++) {
            out->mean[opt->methods[k]][r * d + i] = mom[k].mean[i];
            out->var[opt->methods[k]][r * d + i] = mom[k].var[i];
        }
        out->mc_mean[r * d + i] = mc.mean[i];
        out->mc_var[r * d + i] = mc.var[i];
    }
    for (int k = 0; k < opt->nmethods; k++) nm_moments_free(tc, &mom[k]);
    nm_mc_result_free(tc, &mc), nm_cov_free(tc, cov);
    return ts;
}

typedef struct {
    const nm_dataset *images;
    nm_scale scale;
    const nm_tightness_options *opt;
    const nm_shape *in;
    nm_tightness *out;
} tight_job;

/* nm_exp_parallel's item: run r, with this thread's mean buffer as scratch. */
static nm_status tight_item(nm_ctx *tc, nm_net *net, void *user, int64_t r, void *scratch)
{
    const tight_job *j = user;
    return tightness_one(tc, net, j->images, j->scale, j->opt, r, scratch, j->in, j->out);
}

nm_status nm_tightness_run(nm_ctx *ctx, const nm_net *net, const nm_dataset *images, nm_scale scale,
                           const nm_tightness_options *opt, nm_tightness *out)
{
    if (!ctx || !net || !opt || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    if (opt->runs < 1 || opt->mc < 2 || !(opt->max_var > 0))
        return nm_fail(ctx, NM_ERR_ARG, "tightness needs runs ≥ 1, mc ≥ 2 and max_var > 0");
    if (opt->nmethods < 1 || opt->nmethods > NM_METHOD_MAX) return nm_fail(ctx, NM_ERR_ARG, "tightness needs 1 to %d methods", NM_METHOD_MAX);
    for (int i = 0; i < opt->nmethods; i++)
        if (opt->methods[i] < 0 || opt->methods[i] >= nm_method_count())
            return nm_fail(ctx, NM_ERR_ARG, "unknown method %d", (int)opt->methods[i]);
    int last = nm_net_logits_node(net);
    nm_shape in = net->v[net->input].shape, o = net->v[net->node[last].out].shape;
    in.d[0] = o.d[0] = 1;
    int64_t n = nm_shape_numel(&in), d = nm_shape_numel(&o), R = opt->runs;
    if (images && images->rows * images->cols != n)
        return nm_fail(ctx, NM_ERR_SHAPE, "the images have %lld pixels, the model's input %lld", (long long)(images->rows * images->cols),
                       (long long)n);
    nm_status fail = tightness_alloc(ctx, opt, R, d, out);
    if (fail != NM_OK) return fail;
    tight_job j = {images, scale, opt, &in, out};
    nm_dist_slab slab[2 * NM_METHOD_MAX + 5];
    int ns = 0;
    size_t row = (size_t)d * sizeof(double);
    for (int k = 0; k < opt->nmethods; k++) {
        slab[ns++] = (nm_dist_slab){out->mean[opt->methods[k]], row};
        slab[ns++] = (nm_dist_slab){out->var[opt->methods[k]], row};
    }
    slab[ns++] = (nm_dist_slab){out->mc_mean, row};
    slab[ns++] = (nm_dist_slab){out->mc_var, row};
    slab[ns++] = (nm_dist_slab){out->relu_bottom, sizeof(double)};
    slab[ns++] = (nm_dist_slab){out->relu_top, sizeof(double)};
    slab[ns++] = (nm_dist_slab){out->mean_index, sizeof(int64_t)};
    fail = nm_exp_parallel(ctx, net, R, (size_t)n * sizeof(float), tight_item, &j, opt->progress, opt->user, slab, ns);
    if (fail != NM_OK) nm_tightness_free(ctx, out);
    return fail;
}

/* ---------------------------------------------------------------- summaries */

nm_ratio_stats nm_ratio_over_runs(const double *mc, const double *analytic, int64_t runs, int64_t d, int64_t i)
{
    double s = 0, s2 = 0, R = (double)runs;
    for (int64_t r = 0; r < runs; r++) {
        double v = mc[r * d + i] / analytic[r * d + i];
        s += v, s2 += v * v;
    }
    nm_ratio_stats q = {s / R, 0};
    double var = (s2 - R * q.mean * q.mean) / (R - 1);
    q.sd = var > 0 ? sqrt(var) : 0;
    return q;
}

nm_ls_line nm_ls_fit(const double *x, const double *y, int64_t n, int64_t stride)
{
    double mx = 0, my = 0, sxy0 = 0, sxx0 = 0;
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i * stride], yi = y[i * stride];
        mx += xi, my += yi;
        sxy0 += xi * yi, sxx0 += xi * xi;
    }
    mx /= (double)n, my /= (double)n;
    double sxy = 0, sxx = 0; /* centred sums, two-pass: the means may dwarf the spread */
    for (int64_t i = 0; i < n; i++) {
        double dx = x[i * stride] - mx;
        sxy += dx * (y[i * stride] - my);
        sxx += dx * dx;
    }
    nm_ls_line l = {sxx0 > 0 ? sxy0 / sxx0 : NAN, sxx > 0 ? sxy / sxx : NAN, NAN};
    l.intercept = my - l.free_slope * mx;
    return l;
}
