/*
 * sensitivity.c — spatial sensitivity maps (the paper's §4.4 and Fig 3):
 * zero-mean noise σ² I on an h×w window of an image (all channels), slid
 * without padding; per image and position, whether the analytic mean of the
 * logits leaves the clean label ("fooled in expectation") and, optionally,
 * the flip probability (§1.10). An image's linearization is shared by all
 * its positions: A = ∂R_bot/∂x at the image is formed once, the variance of
 * split unit u under window W is σ² Σ_{k∈W} A_uk², read for every position
 * from the integral image of A_u² summed over channels, and the means of
 * all positions are one product with B. The flip probability needs the
 * logits' covariance per position: the exact variance of each split unit,
 * cross-covariances by Stein's lemma (Cov[relu z_u, relu z_v] ≈ Φ(α_u) Φ(α_v)
 * S_uv, exact through first order; DESIGN §1.12's factor rule at the split),
 * so Cov(logits) = σ² (B G A_W)(B G A_W)ᵀ + B diag(Var − G² S_diag) Bᵀ.
 * Images run on threads with a net copy each; results do not depend on the
 * thread count.
 */
#include "exp.h"
#include "../methods/method.h"

#include <math.h>
#include <string.h>

nm_sensitivity_options nm_sensitivity_options_default(void)
{
    nm_sensitivity_options o;
    memset(&o, 0, sizeof o);
    o.h = o.w = 7;
    o.stride = 1;
    o.sigma2 = 200;
    o.mvn = nm_mvn_options_default();
    return o;
}

void nm_sensitivity_free(nm_ctx *ctx, nm_sensitivity *s)
{
    if (!s) return;
    nm_free(ctx, s->clean);
    nm_free(ctx, s->buf);
    memset(s, 0, sizeof *s);
}

typedef struct {
    const float *X;
    const nm_sensitivity_options *o;
    nm_sensitivity *out;
    int64_t C, H, W, n, d;
} sens_job;

/* s2 (PQ × p): σ² times the sum of A_u² over each window position, from
 * the integral image of A_u² summed over channels (I: (H+1)(W+1) scratch). */
static void window_variances(const sens_job *j, int64_t p, const double *A, double *I, double *s2)
{
    const nm_sensitivity_options *o = j->o;
    int64_t H = j->H, W = j->W, P = j->out->P, Q = j->out->Q, W1 = W + 1;
    for (int64_t u = 0; u < p; u++) {
        const double *a = A + u * j->n;
        memset(I, 0, (size_t)((H + 1) * W1) * sizeof(double));
        for (int64_t y = 0; y < H; y++) {
            double row = 0;
            for (int64_t x = 0; x < W; x++) {
                double t = 0;
                for (int64_t c = 0; c < j->C; c++) t += a[(c * H + y) * W + x] * a[(c * H + y) * W + x];
                row += t;
                I[(y + 1) * W1 + x + 1] = I[y * W1 + x + 1] + row;
            }
        }
        for (int64_t pr = 0; pr < P; pr++)
            for (int64_t q = 0; q < Q; q++) {
                int64_t r0 = pr * o->stride, c0 = q * o->stride, r1 = r0 + o->h, c1 = c0 + o->w;
                double sum = I[r1 * W1 + c1] - I[r0 * W1 + c1] - I[r1 * W1 + c0] + I[r0 * W1 + c0];
                s2[(pr * Q + q) * p + u] = o->sigma2 * fmax(0, sum);
            }
    }
}

/* The logits' covariance at one position (see the file's opening): Cd (d×d). */
static void stein_cov(const sens_job *j, const nm_lin *L, const double *A, const double *m, const double *s2, int64_t r0, int64_t c0,
                      double *BG, double *T, double *resid, double *Cd)
{
    const nm_method_def *def = nm_method_def_of(NM_METHOD_EXACT);
    int64_t p = L->p, d = L->d, h = j->o->h, w = j->o->w, nw = j->C * h * w;
    for (int64_t u = 0; u < p; u++) {
        nm_unit un = nm_unit_of(m[u], s2[u]);
        double g = def->slope(&un);
        resid[u] = fmax(0, def->var(&un) - g * g * s2[u]);
        for (int64_t i = 0; i < d; i++) BG[i * p + u] = L->B[i * p + u] * g;
    }
    /* T = B G A_W (d × nw), A_W the window's columns */
    memset(T, 0, (size_t)(d * nw) * sizeof(double));
    for (int64_t u = 0; u < p; u++)
        for (int64_t c = 0, k = 0; c < j->C; c++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++, k++) {
                    double a = A[u * j->n + (c * j->H + r0 + y) * j->W + c0 + x];
                    if (a != 0)
                        for (int64_t i = 0; i < d; i++) T[i * nw + k] += BG[i * p + u] * a;
                }
    for (int64_t i = 0; i < d; i++)
        for (int64_t k = 0; k <= i; k++) {
            double v = 0, r = 0;
            for (int64_t t = 0; t < nw; t++) v += T[i * nw + t] * T[k * nw + t];
            for (int64_t u = 0; u < p; u++) r += L->B[i * p + u] * resid[u] * L->B[k * p + u];
            Cd[i * d + k] = Cd[k * d + i] = j->o->sigma2 * v + r;
        }
}

static nm_status sens_one(nm_ctx *tc, nm_net *net, void *user, int64_t img, void *scratch)
{
    (void)scratch;
    const sens_job *j = user;
    const nm_sensitivity_options *o = j->o;
    nm_sensitivity *out = j->out;
    int64_t n = j->n, d = j->d, PQ = out->P * out->Q;
    nm_array xa = {NM_F32, 1, {n}, (void *)(j->X + img * n)};
    nm_net_moments_options mo = nm_net_moments_options_default();
    nm_lin L;
    double *A = NULL, *c1 = NULL, *m = NULL, *I = NULL, *s2 = NULL, *r = NULL, *E = NULL, *BG = NULL, *T = NULL, *res = NULL, *Cd = NULL;
    nm_status st = nm_lin_prepare(tc, net, &xa, &mo, &L);
    if (st != NM_OK) return st;
    int64_t p = L.p;
    if (o->flip && !L.act.plain) st = nm_fail(tc, NM_ERR_UNSUPPORTED, "sensitivity --flip needs a ReLU at the split (the model's last split point is not one)");
    if (st == NM_OK) st = nm_lin_form_A(tc, net, &L, &A, &c1);
    if (st == NM_OK) {
        m = nm_alloc(tc, (size_t)p, sizeof(double));
        I = nm_alloc(tc, (size_t)((j->H + 1) * (j->W + 1)), sizeof(double));
        s2 = nm_alloc(tc, (size_t)(PQ * p), sizeof(double));
        r = nm_alloc(tc, (size_t)(PQ * p), sizeof(double));
        E = nm_alloc(tc, (size_t)(PQ * d), sizeof(double));
        if (o->flip) {
            int64_t nw = j->C * o->h * o->w;
            BG = nm_alloc(tc, (size_t)(d * p), sizeof(double)), T = nm_alloc(tc, (size_t)(d * nw), sizeof(double));
            res = nm_alloc(tc, (size_t)p, sizeof(double)), Cd = nm_alloc(tc, (size_t)(d * d), sizeof(double));
        }
        if (!m || !I || !s2 || !r || !E || (o->flip && (!BG || !T || !res || !Cd))) st = NM_ERR_NOMEM;
    }
    if (st == NM_OK) {
        for (int64_t u = 0; u < p; u++) m[u] = L.r0[u]; /* zero-mean noise: m = A X + c1 = R_bot(X) */
        window_variances(j, p, A, I, s2);
        const nm_method_def *def = nm_method_def_of(o->method);
        for (int64_t q = 0; q < PQ; q++) nm_act_means(&L.act, def, p, m, s2 + q * p, 1, r + q * p);
        for (int64_t q = 0; q < PQ; q++) memcpy(E + q * d, L.c2, (size_t)d * sizeof(double));
        nm_gemm_f64(NM_NOTRANS, NM_TRANS, PQ, d, p, 1.0, r, p, L.B, p, 1.0, E, d); /* E = r Bᵀ + c2 */
        /* the clean label: argmax R(X) = argmax of the mean without noise, B relu(R_bot(X)) + c2 */
        int c = 0;
        {
            double best = -INFINITY;
            for (int64_t i = 0; i < d; i++) {
                double y = L.c2[i];
                for (int64_t u = 0; u < p; u++) y += L.B[i * p + u] * fmax(0, m[u]);
                if (y > best) best = y, c = (int)i;
            }
        }
        out->clean[img] = c;
        for (int64_t q = 0; q < PQ; q++) {
            out->map[img * PQ + q] = nm_exp_argmax_f64(E + q * d, d) != c;
            if (out->mean) memcpy(out->mean + (img * PQ + q) * d, E + q * d, (size_t)d * sizeof(double));
        }
        for (int64_t q = 0; st == NM_OK && o->flip && q < PQ; q++) {
            stein_cov(j, &L, A, m, s2 + q * p, (q / out->Q) * o->stride, (q % out->Q) * o->stride, BG, T, res, Cd);
            st = nm_flip_probability(tc, d, E + q * d, Cd, c, &o->mvn, &out->flip[img * PQ + q], &out->flip_se[img * PQ + q]);
        }
    }
    nm_free(tc, A), nm_free(tc, c1), nm_free(tc, m), nm_free(tc, I), nm_free(tc, s2), nm_free(tc, r), nm_free(tc, E);
    nm_free(tc, BG), nm_free(tc, T), nm_free(tc, res), nm_free(tc, Cd);
    nm_lin_free(tc, &L);
    return st;
}

/* Per class k: the mean over images of that label of map (images × PQ). */
static void class_maps(nm_sensitivity *s, const double *map, double *cm)
{
    int64_t PQ = s->P * s->Q;
    memset(cm, 0, (size_t)(s->classes * PQ) * sizeof(double));
    for (int64_t i = 0; i < s->images; i++)
        for (int64_t q = 0; q < PQ; q++) cm[s->label[i] * PQ + q] += map[i * PQ + q];
    for (int k = 0; k < s->classes; k++)
        for (int64_t q = 0; q < PQ; q++) cm[k * PQ + q] = s->class_count[k] ? cm[k * PQ + q] / (double)s->class_count[k] : NAN;
}

nm_status nm_sensitivity_run(nm_ctx *ctx, const nm_net *net, const float *X, const uint8_t *labels, int64_t count,
                             const nm_sensitivity_options *opt, nm_sensitivity *out)
{
    if (!ctx || !net || !X || !opt || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    const nm_sensitivity_options *o = opt;
    int nd;
    int64_t sh[NM_MAX_DIMS];
    nm_net_input_shape(net, &nd, sh);
    if (nd != 4) return nm_fail(ctx, NM_ERR_SHAPE, "sensitivity maps need an image input (N, C, H, W)");
    int64_t C = sh[1], H = sh[2], W = sh[3], d = nm_exp_logit_count(net);
    if (count < 1) return nm_fail(ctx, NM_ERR_ARG, "sensitivity needs at least one image");
    if (o->h < 1 || o->w < 1 || o->h > H || o->w > W)
        return nm_fail(ctx, NM_ERR_SHAPE, "the %lldx%lld window does not fit the %lldx%lld image", (long long)o->h, (long long)o->w,
                       (long long)H, (long long)W);
    if (o->stride < 1) return nm_fail(ctx, NM_ERR_ARG, "the window's stride must be ≥ 1");
    if (!(o->sigma2 > 0) || !isfinite(o->sigma2)) return nm_fail(ctx, NM_ERR_ARG, "sensitivity: sigma2 must be finite and > 0");
    if (o->method < 0 || o->method >= nm_method_count() || nm_method_def_of(o->method)->at_mean)
        return nm_fail(ctx, NM_ERR_ARG, "sensitivity maps take method paper or exact (the window's mean is that of the linearization at the image)");
    if (!nm_all_finite_f32(X, count * C * H * W)) return nm_fail(ctx, NM_ERR_NONFINITE, "sensitivity: the images are not finite");
    int64_t P = (H - o->h) / o->stride + 1, Q = (W - o->w) / o->stride + 1, PQ = P * Q;
    out->images = count, out->P = P, out->Q = Q, out->d = d;
    out->classes = (int)d;
    out->clean = nm_alloc_zero(ctx, (size_t)(2 * count), sizeof(int));
    size_t nbuf = (size_t)(count * PQ * (o->flip ? 3 : 1) + (o->want_means ? count * PQ * d : 0) + d * PQ * (o->flip ? 2 : 1) + d);
    out->buf = nm_alloc_zero(ctx, nbuf, sizeof(double));
    if (!out->clean || !out->buf) {
        nm_sensitivity_free(ctx, out);
        return NM_ERR_NOMEM;
    }
    out->label = out->clean + count;
    double *b = out->buf;
    out->map = b, b += count * PQ;
    if (o->flip) out->flip = b, b += count * PQ, out->flip_se = b, b += count * PQ;
    if (o->want_means) out->mean = b, b += count * PQ * d;
    out->class_map = b, b += d * PQ;
    if (o->flip) out->class_flip = b, b += d * PQ;
    out->class_count = (int64_t *)(void *)b; /* d counts in the last d slots */
    sens_job j = {X, o, out, C, H, W, C * H * W, d};
    size_t maps = (size_t)PQ * sizeof(double);
    nm_dist_slab slab[] = {{out->clean, sizeof(int)}, {out->map, maps}, {out->flip, maps}, {out->flip_se, maps}, {out->mean, maps * (size_t)d}};
    nm_status st = nm_exp_parallel(ctx, net, count, 0, sens_one, &j, o->progress, o->user, slab, (int)(sizeof slab / sizeof slab[0]));
    if (st != NM_OK) {
        nm_sensitivity_free(ctx, out);
        return st;
    }
    for (int64_t i = 0; i < count; i++) {
        int k = labels ? labels[i] : out->clean[i];
        if (k < 0 || k >= d) {
            nm_sensitivity_free(ctx, out);
            return nm_fail(ctx, NM_ERR_ARG, "image %lld's label %d is not one of the %lld classes", (long long)i, k, (long long)d);
        }
        out->label[i] = k;
        out->class_count[k]++;
    }
    class_maps(out, out->map, out->class_map);
    if (o->flip) class_maps(out, out->flip, out->class_flip);
    return NM_OK;
}

/* One verification pair t: its image and position drawn from (seed, t), the window's Monte Carlo of mc samples. */
typedef struct {
    const float *X;
    const nm_sensitivity *s;
    const nm_sensitivity_options *opt;
    int64_t mc, C, H, W, nw;
    uint64_t seed;
    nm_sensitivity_check *out;
} verify_job;

static nm_status verify_one(nm_ctx *tc, nm_net *tnet, void *user, int64_t t, void *scratch)
{
    const verify_job *j = user;
    const nm_sensitivity *s = j->s;
    int64_t n = j->C * j->H * j->W, d = s->d, PQ = s->P * s->Q;
    double *mean = scratch; /* scratch: the means (d), the window's pixels (nw), the Monte Carlo's batch */
    int64_t *support = (int64_t *)(mean + d);
    float *buf = (float *)(support + j->nw);
    uint32_t ctr[4] = {(uint32_t)t, (uint32_t)(t >> 32), 0, 0x73656e73u}, key[2] = {(uint32_t)j->seed, (uint32_t)(j->seed >> 32)}, w[4];
    nm_philox4x32(ctr, key, w);
    int64_t img = (int64_t)(w[0] % (uint32_t)s->images), q = (int64_t)(w[1] % (uint32_t)PQ);
    int64_t r0 = (q / s->Q) * j->opt->stride, c0 = (q % s->Q) * j->opt->stride;
    for (int64_t c = 0, k = 0; c < j->C; c++)
        for (int64_t y = 0; y < j->opt->h; y++)
            for (int64_t x = 0; x < j->opt->w; x++) support[k++] = (c * j->H + r0 + y) * j->W + c0 + x;
    double flip;
    nm_status st = nm_exp_mc_flip(tc, tnet, j->X + img * n, sqrt(j->opt->sigma2), support, j->nw, j->mc, j->seed, (uint64_t)t,
                                  s->clean[img], buf, mean, &flip);
    if (st != NM_OK) return st;
    double m2 = -INFINITY; /* the Monte Carlo mean's margin: clean logit minus the largest other */
    for (int64_t i = 0; i < d; i++)
        if (i != s->clean[img]) m2 = fmax(m2, mean[i]);
    nm_sensitivity_check *o = j->out;
    o->image[t] = img, o->position[t] = q;
    o->mc_fooled[t] = nm_exp_argmax_f64(mean, d) != s->clean[img], o->mc_flip[t] = flip, o->mc_margin[t] = mean[s->clean[img]] - m2;
    return NM_OK;
}

nm_status nm_sensitivity_verify(nm_ctx *ctx, nm_net *net, const float *X, const nm_sensitivity *s, const nm_sensitivity_options *opt,
                                int64_t pairs, int64_t mc, uint64_t seed, nm_sensitivity_check *out)
{
    if (!ctx || !net || !X || !s || !opt || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    if (pairs < 1 || mc < 2) return nm_fail(ctx, NM_ERR_ARG, "verification needs at least one pair and two samples");
    int nd;
    int64_t sh[NM_MAX_DIMS];
    nm_net_input_shape(net, &nd, sh);
    int64_t C = sh[1], H = sh[2], W = sh[3], n = C * H * W, d = s->d, PQ = s->P * s->Q, nw = C * opt->h * opt->w;
    out->pairs = pairs;
    out->image = nm_alloc(ctx, (size_t)(2 * pairs), sizeof(int64_t));
    out->buf = nm_alloc(ctx, (size_t)(3 * pairs), sizeof(double));
    nm_status st = out->image && out->buf ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK) {
        out->position = out->image + pairs;
        out->mc_fooled = out->buf, out->mc_flip = out->buf + pairs, out->mc_margin = out->buf + 2 * pairs;
    }
    /* the pairs over the threads (and ranks), each on its own streams, gathered in order */
    verify_job j = {X, s, opt, mc, C, H, W, nw, seed, out};
    size_t scratch = (size_t)d * sizeof(double) + (size_t)nw * sizeof(int64_t) + (size_t)(NM_FOOLING_MC_BATCH * (n + d) + n) * sizeof(float);
    nm_dist_slab slab[] = {{out->image, sizeof(int64_t)}, {out->position, sizeof(int64_t)}, {out->mc_fooled, sizeof(double)},
                           {out->mc_flip, sizeof(double)}, {out->mc_margin, sizeof(double)}};
    if (st == NM_OK) st = nm_exp_parallel(ctx, net, pairs, scratch, verify_one, &j, NULL, NULL, slab, (int)(sizeof slab / sizeof slab[0]));
    if (st != NM_OK) {
        nm_sensitivity_check_free(ctx, out);
        return st;
    }
    int64_t agree = 0;
    double abs_err = 0;
    for (int64_t t = 0; t < pairs; t++) {
        int64_t at = out->image[t] * PQ + out->position[t];
        agree += (int)out->mc_fooled[t] == (int)s->map[at];
        if (s->flip) abs_err += fabs(s->flip[at] - out->mc_flip[t]);
    }
    out->agreement = (double)agree / (double)pairs;
    out->flip_mae = s->flip ? abs_err / (double)pairs : NAN;
    return NM_OK;
}

void nm_sensitivity_check_free(nm_ctx *ctx, nm_sensitivity_check *c)
{
    if (!c) return;
    nm_free(ctx, c->image);
    nm_free(ctx, c->buf);
    memset(c, 0, sizeof *c);
}
