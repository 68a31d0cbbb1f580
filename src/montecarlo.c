/*
 * montecarlo.c — the sampling baseline (DESIGN §1.7): the three users of
 * the sampling driver (mc_drive.c, statistics merged batch by batch in a
 * fixed order): the ARA network through SGEMM, the real network through
 * forward passes, and the count of ReLU states the noise changes. Draws are x = μ + L ε with ε from the
 * counter-based RNG by sample index, so results are identical for any
 * thread count. The count covers every decision the linearization freezes:
 * the kinks of ReLU and its kin, and the argmax of max pools.
 */
#include "linearize.h"
#include "mc_drive.h"

#include <math.h>
#include <string.h>

/* Rows one thread pushes through the ARA network at a time: 64, or 256 when
 * A·L is large, so that each pass over A·L feeds enough rows to stay
 * compute-bound. A function of the problem size only, never of threads. */
static int64_t ara_chunk_rows(int64_t p, int64_t k)
{
    return p * k > ((int64_t)1 << 22) ? 256 : 64;
}

/* ---------------------------------------------------------------- the ARA network */

typedef struct {
    const nm_rng *rng;
    int64_t p, d, k;
    const float *AL, *m, *B, *c2; /* p×k, p, d×p, d */
    float *E, *Z, *Y;             /* NB×k, NB×p, NB×d */
} ara_batch;

static nm_status ara_eval(void *user, nm_ctx *ctx, int64_t first, int64_t rows, const float **Yout, int64_t *dout)
{
    ara_batch *b = user;
    int64_t p = b->p, d = b->d, k = b->k;
    /* Fixed chunks of rows, one per thread at a time, each through
     * single-threaded BLAS: the work split does not depend on the thread
     * count, so neither do the results. */
    int64_t chunk = ara_chunk_rows(p, k), nchunks = (rows + chunk - 1) / chunk, bad = 0;
    #pragma omp parallel for schedule(static) reduction(+ : bad)
    for (int64_t ch = 0; ch < nchunks; ch++) {
        int64_t r0 = ch * chunk, nr = rows - r0 < chunk ? rows - r0 : chunk;
        float *e = b->E + r0 * k, *z = b->Z + r0 * p, *y = b->Y + r0 * d;
        for (int64_t r = 0; r < nr; r++) nm_rng_normals(b->rng, (uint64_t)(first + r0 + r), 0, k, e + r * k);
        /* z = ε (A L)ᵀ + m ; relu ; y = relu(z) Bᵀ + c2 */
        for (int64_t r = 0; r < nr; r++) memcpy(z + r * p, b->m, (size_t)p * sizeof(float));
        nm_gemm_f32(NM_NOTRANS, NM_TRANS, nr, p, k, 1.0f, e, k, b->AL, k, 1.0f, z, p);
        for (int64_t i = 0; i < nr * p; i++) {
            bad += !isfinite(z[i]); /* the ReLU would hide a NaN */
            z[i] = z[i] > 0 ? z[i] : 0;
        }
        for (int64_t r = 0; r < nr; r++) memcpy(y + r * d, b->c2, (size_t)d * sizeof(float));
        nm_gemm_f32(NM_NOTRANS, NM_TRANS, nr, d, p, 1.0f, z, p, b->B, p, 1.0f, y, d);
        for (int64_t i = 0; i < nr * d; i++) bad += !isfinite(y[i]);
    }
    if (bad)
        return nm_fail(ctx, NM_ERR_NONFINITE, "the Monte Carlo's float32 passes overflow (%lld values among draws %lld..%lld): the noise "
                       "or the network's values are too large for float32", (long long)bad, (long long)first, (long long)(first + rows - 1));
    *Yout = b->Y;
    *dout = d;
    return NM_OK;
}

nm_status nm_ara_montecarlo(nm_ctx *ctx, const nm_ara *net, const nm_array *mu,
                            const nm_cov *sigma, int64_t n_samples, const nm_rng *rng,
                            int want_cov, nm_mc_result *out)
{
    memset(out, 0, sizeof *out);
    if (n_samples < 2) return nm_fail(ctx, NM_ERR_ARG, "Monte Carlo needs at least 2 samples, got %lld", (long long)n_samples);
    if (!rng) return nm_fail(ctx, NM_ERR_ARG, "Monte Carlo needs a random generator");
    nm_ara_data a;
    nm_status st = nm_ara_load(ctx, net, mu, sigma, &a);
    if (st != NM_OK) return st;
    int64_t p = a.p, d = a.d, k = nm_cov_rank(sigma), nb = NM_MC_BATCH;
    double *AL64 = NULL;
    /* float buffers: A L (p×k), m (p), B (d×p), c2 (d), ε (nb×k), Z (nb×p), Y (nb×d) */
    float *buf = nm_alloc(ctx, (size_t)(p * k + p + d * p + d + nb * k + nb * p + nb * d), sizeof(float));
    if (!buf) st = NM_ERR_NOMEM;
    if (st == NM_OK) st = nm_ara_form_AL(ctx, p, a.A, sigma, &AL64);
    if (st == NM_OK) {
        float *AL = buf, *m32 = AL + p * k, *B32 = m32 + p, *c232 = B32 + d * p, *E = c232 + d;
        for (int64_t i = 0; i < p * k; i++) AL[i] = (float)AL64[i];
        for (int64_t i = 0; st == NM_OK && i < p * k; i++)
            if (!isfinite(AL[i])) st = nm_fail(ctx, NM_ERR_NONFINITE, "A L (the noise at the split) is beyond float32's range");
        for (int64_t i = 0; i < p; i++) m32[i] = (float)a.m[i];
        for (int64_t i = 0; i < d * p; i++) B32[i] = (float)a.B[i];
        for (int64_t i = 0; i < d; i++) c232[i] = (float)a.c2[i];
        ara_batch b = {rng, p, d, k, AL, m32, B32, c232, E, E + nb * k, E + nb * k + nb * p};
        nm_blas_serial_begin();
        if (st == NM_OK) st = nm_mc_drive(ctx, n_samples, d, ara_eval, &b, want_cov, NULL, NULL, out);
        nm_blas_serial_end();
    }
    nm_free(ctx, AL64);
    nm_free(ctx, buf);
    nm_ara_data_free(ctx, &a);
    if (st != NM_OK) nm_mc_result_free(ctx, out);
    return st;
}

/* ---------------------------------------------------------------- the real network */

/* Draws x = μ + L ε (rows × n) for the network's Monte Carlo. */
typedef struct {
    const nm_cov *cov;
    const nm_rng *rng;
    int64_t n, k;
    float *mu, *E, *X; /* n, NB×k, NB×n */
} sampler;

static void sampler_free(nm_ctx *ctx, sampler *s)
{
    nm_free(ctx, s->mu), nm_free(ctx, s->E), nm_free(ctx, s->X);
    memset(s, 0, sizeof *s);
}

static nm_status sampler_init(nm_ctx *ctx, const nm_net *net, const nm_array *mu, const nm_cov *sigma, const nm_rng *rng,
                              sampler *s)
{
    memset(s, 0, sizeof *s);
    nm_shape in = net->v[net->input].shape;
    in.d[0] = 1;
    int64_t n = nm_shape_numel(&in), NB = NM_MC_BATCH;
    if (nm_cov_dim(sigma) != n)
        return nm_fail(ctx, NM_ERR_SHAPE, "the covariance is over %lld inputs but the model has %lld", (long long)nm_cov_dim(sigma),
                       (long long)n);
    *s = (sampler){sigma, rng, n, nm_cov_rank(sigma), NULL, NULL, NULL};
    nm_status st = nm_to_float(ctx, mu, n, "the input mean", &s->mu);
    if (st == NM_OK && (!(s->E = nm_alloc(ctx, (size_t)(NB * s->k), sizeof(float))) || !(s->X = nm_alloc(ctx, (size_t)(NB * n), sizeof(float)))))
        st = NM_ERR_NOMEM;
    if (st != NM_OK) sampler_free(ctx, s);
    return st;
}

/* Draws first .. first+rows−1 into s->X (rows × n); NM_ERR_NONFINITE when
 * they overflow float32 (the noise too large for the float32 passes). */
static nm_status sampler_draw(nm_ctx *ctx, sampler *s, int64_t first, int64_t rows)
{
    int64_t n = s->n, k = s->k;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        nm_rng_normals(s->rng, (uint64_t)(first + r), 0, k, s->E + r * k);
        memcpy(s->X + r * n, s->mu, (size_t)n * sizeof(float));
    }
    nm_cov_add_factor_f32(s->cov, rows, s->E, s->X);
    int64_t bad = INT64_MAX;
    #pragma omp parallel for reduction(min : bad)
    for (int64_t i = 0; i < rows * n; i++)
        if (!isfinite(s->X[i]) && i < bad) bad = i;
    if (bad == INT64_MAX) return NM_OK;
    return nm_fail(ctx, NM_ERR_NONFINITE, "the Monte Carlo's draw %lld, x = mu + L eps, overflows float32 at input %lld: the noise is too "
                   "large for the network's float32 passes", (long long)(first + bad / n), (long long)(bad % n));
}

typedef struct {
    sampler sm;
    nm_net *net;
    int last;
    int64_t sub;  /* draws per forward pass: the batch, or fewer where the net's values would not fit the budget */
    float *Y;     /* the batch's outputs when it runs in several passes */
} net_batch;

/* The batch's draws through the net, in passes of b->sub draws (the statistics see the same batch either way). */
static nm_status net_eval(void *user, nm_ctx *ctx, int64_t first, int64_t rows, const float **Y, int64_t *d)
{
    net_batch *b = user;
    nm_status st = sampler_draw(ctx, &b->sm, first, rows);
    const nm_value *o = &b->net->v[b->net->node[b->last].out];
    for (int64_t r0 = 0; st == NM_OK && r0 < rows; r0 += b->sub) {
        int64_t r = rows - r0 < b->sub ? rows - r0 : b->sub;
        if ((st = nm_net_run(ctx, b->net, 0, b->last, r, b->sm.X + r0 * b->sm.n)) != NM_OK) break;
        *d = nm_shape_numel(&o->xs) / r;
        if (r == rows) {
            *Y = o->x;
            break;
        }
        if (!b->Y && !(b->Y = nm_alloc(ctx, (size_t)(NM_MC_BATCH * *d), sizeof(float)))) return NM_ERR_NOMEM;
        memcpy(b->Y + r0 * *d, o->x, (size_t)(r * *d) * sizeof(float));
        *Y = b->Y;
    }
    return st;
}

nm_status nm_net_montecarlo(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, int64_t n_samples,
                            const nm_rng *rng, int want_cov, nm_progress_fn progress, void *user, nm_mc_result *out)
{
    if (!ctx || !net || !mu || !sigma || !rng || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    if (n_samples < 2) return nm_fail(ctx, NM_ERR_ARG, "Monte Carlo needs at least 2 samples, got %lld", (long long)n_samples);
    net_batch b = {.net = net, .last = nm_net_logits_node(net)};
    nm_status st = nm_require_batchable(ctx, net, b.last, "sampling needs");
    if (st == NM_OK) st = sampler_init(ctx, net, mu, sigma, rng, &b.sm);
    if (st != NM_OK) return st;
    b.sub = nm_net_batch_fit(ctx, nm_net_sample_bytes(net, 0, b.last), NM_MC_BATCH);
    st = nm_mc_drive(ctx, n_samples, nm_shape_tail(&net->v[net->node[b.last].out].shape, 1), net_eval, &b, want_cov, progress, user, out);
    sampler_free(ctx, &b.sm);
    nm_free(ctx, b.Y);
    return st;
}

/* ---------------------------------------------------------------- decisions the noise changes */

typedef struct {
    net_batch nb;
    int k;                     /* the split node, whose moments are exact: not counted */
    int nd, *node;             /* the counted nodes: every node up to the logits that decides (kinks, argmax) */
    int64_t *units, off_max;   /* codes per sample of each; the most */
    int32_t *ref, *codes;      /* the codes at the linearization points (per node, one sample each); a batch's */
    int64_t changed[4], total[4]; /* kinks below, above; argmax below, above */
} decision_count;

static int slot(const decision_count *dc, int j)
{
    return (dc->node[j] > dc->k) + 2 * (nm_op_table[dc->nb.net->node[dc->node[j]].op]->decides == NM_DECIDES_ARGMAX);
}

/* The decisions of the rows the net's last pass ran, against the references. */
static nm_status decision_tally(decision_count *dc, nm_ctx *ctx, int64_t rows)
{
    nm_status st = NM_OK;
    const int32_t *ref = dc->ref;
    for (int j = 0; st == NM_OK && j < dc->nd; j++) {
        int64_t m = dc->units[j], c = 0, s = slot(dc, j);
        if ((st = nm_net_decide(ctx, dc->nb.net, dc->node[j], dc->codes)) != NM_OK) break;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < m; t++) c += dc->codes[r * m + t] != ref[t];
        dc->changed[s] += c, dc->total[s] += rows * m;
        ref += m;
    }
    return st;
}

/* A batch's draws through the net, pass by pass (b->sub draws each), every pass's decisions tallied: counts,
 * so the passes' size does not change them. */
static nm_status decision_eval(void *user, nm_ctx *ctx, int64_t first, int64_t rows, const float **Y, int64_t *d)
{
    decision_count *dc = user;
    net_batch *b = &dc->nb;
    nm_status st = sampler_draw(ctx, &b->sm, first, rows);
    for (int64_t r0 = 0; st == NM_OK && r0 < rows; r0 += b->sub) {
        int64_t r = rows - r0 < b->sub ? rows - r0 : b->sub;
        if ((st = nm_net_run(ctx, b->net, 0, b->last, r, b->sm.X + r0 * b->sm.n)) == NM_OK) st = decision_tally(dc, ctx, r);
    }
    *Y = NULL; /* counted, not accumulated */
    *d = 0;
    return st;
}

/* The counted nodes and their codes at x₀ (the bottom's; nm_lin_point's pass R_bot(x₀) left them in the
 * net) and at y₀ (the top's). */
static nm_status decision_reference(nm_ctx *ctx, nm_net *net, const nm_lin *L, const float *y0, decision_count *dc)
{
    int64_t total = 0;
    dc->node = nm_alloc(ctx, (size_t)net->nn, sizeof(int));
    dc->units = nm_alloc(ctx, (size_t)net->nn, sizeof(int64_t));
    if (!dc->node || !dc->units) return NM_ERR_NOMEM;
    for (int j = 0; j <= L->last; j++) {
        if (j == L->k || !nm_op_table[net->node[j].op]->decide) continue;
        const nm_value *o = &net->v[net->node[j].out];
        int64_t m = nm_shape_numel(&o->shape) / (o->shape.d[0] ? o->shape.d[0] : 1);
        dc->node[dc->nd] = j, dc->units[dc->nd++] = m, total += m;
        if (m > dc->off_max) dc->off_max = m;
    }
    if (!(dc->ref = nm_alloc(ctx, (size_t)(total ? total : 1), sizeof(int32_t))) ||
        !(dc->codes = nm_alloc(ctx, (size_t)(dc->off_max ? dc->off_max : 1) * 500, sizeof(int32_t))))
        return NM_ERR_NOMEM;
    nm_status st = NM_OK;
    for (int part = 0; st == NM_OK && part < 2; part++) {
        int first = part ? L->k + 1 : 0, last = part ? L->last : L->k - 1;
        if (first > last) continue;
        if (part && (st = nm_net_run(ctx, net, first, last, 1, y0)) != NM_OK) return st;
        int32_t *ref = dc->ref;
        for (int j = 0; st == NM_OK && j < dc->nd; j++) {
            if (dc->node[j] >= first && dc->node[j] <= last) st = nm_net_decide(ctx, net, dc->node[j], ref);
            ref += dc->units[j];
        }
    }
    return st;
}

nm_status nm_net_decision_changes(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, const nm_net_moments_options *opt,
                                  int64_t n_samples, const nm_rng *rng, nm_decision_changes *out)
{
    if (!ctx || !net || !mu || !sigma || !opt || !rng || !out) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    if (n_samples < 1) return nm_fail(ctx, NM_ERR_ARG, "counting ReLU changes needs at least 1 sample");
    nm_lin L;
    float *y0 = NULL;
    decision_count dc = {.nb = {.net = net}};
    nm_status st = nm_lin_point(ctx, net, mu, opt, &L);
    dc.k = L.k, dc.nb.last = L.last;
    dc.nb.sub = nm_net_batch_fit(ctx, nm_net_sample_bytes(net, 0, L.last), NM_MC_BATCH);
    if (st == NM_OK) st = nm_lin_top_point(ctx, &L, opt, &y0);
    if (st == NM_OK) st = sampler_init(ctx, net, mu, sigma, rng, &dc.nb.sm);
    if (st == NM_OK) st = decision_reference(ctx, net, &L, y0, &dc);
    if (st == NM_OK) st = nm_mc_drive(ctx, n_samples, 0, decision_eval, &dc, 0, NULL, NULL, NULL);
    double *share[4] = {&out->kinks_below, &out->kinks_above, &out->argmax_below, &out->argmax_above};
    for (int s = 0; st == NM_OK && s < 4; s++) *share[s] = dc.total[s] ? (double)dc.changed[s] / (double)dc.total[s] : 0;
    nm_free(ctx, dc.node), nm_free(ctx, dc.units), nm_free(ctx, dc.ref), nm_free(ctx, dc.codes);
    nm_free(ctx, y0);
    sampler_free(ctx, &dc.nb.sm);
    nm_lin_free(ctx, &L);
    return st;
}

nm_status nm_net_relu_changes(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_cov *sigma, const nm_net_moments_options *opt,
                              int64_t n_samples, const nm_rng *rng, double *bottom, double *top)
{
    if (!bottom || !top) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    nm_decision_changes c;
    nm_status st = nm_net_decision_changes(ctx, net, mu, sigma, opt, n_samples, rng, &c);
    *bottom = c.kinks_below, *top = c.kinks_above;
    return st;
}
