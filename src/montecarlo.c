/*
 * montecarlo.c — the sampling baseline (DESIGN §1.7): a counter-based
 * generator (Philox-4x32-10, Salmon et al. 2011) so that every normal is a
 * pure function of (seed, sample, index); streaming statistics merged batch
 * by batch in a fixed order (Chan/Pébay updates for mean, M2, M3, M4 and the
 * co-moment matrix); and the ARA network sampled in batches through SGEMM.
 * Results are identical for any thread count.
 */
#include "internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define NM_MC_BATCH 512 /* samples whose statistics are merged at once */
/* Rows one thread pushes through the network at a time: 64, or 256 when A·L
 * is large, so that each pass over A·L feeds enough rows to stay
 * compute-bound. A function of the problem size only, never of threads. */
static int64_t mc_chunk_rows(int64_t p, int64_t k)
{
    return p * k > ((int64_t)1 << 22) ? 256 : 64;
}

/* ---------------------------------------------------------------- Philox */

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void nm_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo32(0xD2511F53u, c0, &hi0, &lo0);
        mulhilo32(0xCD9E8D57u, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Four normals from one Philox block by Box–Muller on 32-bit uniforms in
 * (0, 1), in single precision: the samples are float32 anyway, and logf /
 * sincosf are faster than their double versions. u1 keeps all 32 bits
 * near 0 (and rounds to at most 1 near 1), so the largest |z| reachable is
 * sqrt(−2 ln 2^−33) ≈ 6.76. */
static void normals4(uint64_t seed, uint64_t stream, uint64_t block, float z[4])
{
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, w[4];
    nm_philox4x32(ctr, key, w);
    for (int i = 0; i < 4; i += 2) {
        float u1 = ((float)w[i] + 0.5f) * 0x1p-32f, u2 = (float)(w[i + 1] >> 8) * 0x1p-24f;
        float r = sqrtf(-2 * logf(u1)), s, c;
        sincosf(6.2831853f * u2, &s, &c);
        z[i] = r * c;
        z[i + 1] = r * s;
    }
}

void nm_rng_normals(const nm_rng *rng, uint64_t stream, uint64_t first, int64_t count, float *out)
{
    float z[4];
    for (int64_t i = 0; i < count;) {
        uint64_t idx = first + (uint64_t)i, block = idx / 4;
        normals4(rng->seed, stream, block, z);
        for (uint64_t j = idx % 4; j < 4 && i < count; j++, i++) out[i] = z[j];
    }
}

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

/* The streaming accumulator shared by the ARA and network samplers: batch
 * statistics merged into the total in the order batches arrive. */
struct nm_mc_accum {
    stats tot, bat;
    double *buf, *centered;
};

nm_status nm_mc_accum_new(nm_ctx *ctx, int64_t d, int want_cov, int64_t max_rows, nm_mc_accum **out)
{
    *out = NULL;
    nm_mc_accum *a = nm_alloc_zero(ctx, 1, sizeof *a);
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

void nm_mc_accum_add(nm_mc_accum *a, const float *Y, int64_t rows)
{
    if (a->tot.n == 0) {
        stats_of_batch(&a->tot, Y, rows, a->centered);
    } else {
        stats_of_batch(&a->bat, Y, rows, a->centered);
        stats_merge(&a->tot, &a->bat);
    }
}

nm_status nm_mc_accum_result(nm_ctx *ctx, const nm_mc_accum *a, nm_mc_result *out)
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

void nm_mc_accum_free(nm_ctx *ctx, nm_mc_accum *a)
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
    int64_t p = a.p, d = a.d, k = 0, nb = NM_MC_BATCH;
    float *AL = NULL, *buf = NULL;
    nm_mc_accum *acc = NULL;
    if ((st = nm_ara_form_AL(ctx, &a, sigma, NULL, &AL, &k)) != NM_OK) goto done;
    /* buffers: ε (nb×k), Z (nb×p), Y (nb×d), m (p), B (d×p), c2 (d) in float */
    size_t nf = (size_t)(nb * k + nb * p + nb * d + p + d * p + d);
    if (!(buf = nm_alloc(ctx, nf, sizeof(float)))) {
        st = NM_ERR_NOMEM;
        goto done;
    }
    float *E = buf, *Z = E + nb * k, *Y = Z + nb * p, *m32 = Y + nb * d, *B32 = m32 + p, *c232 = B32 + d * p;
    for (int64_t i = 0; i < p; i++) m32[i] = (float)a.m[i];
    for (int64_t i = 0; i < d * p; i++) B32[i] = (float)a.B[i];
    for (int64_t i = 0; i < d; i++) c232[i] = (float)a.c2[i];
    if ((st = nm_mc_accum_new(ctx, d, want_cov, nb, &acc)) != NM_OK) goto done;
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1); /* restored below */
    for (int64_t first = 0; first < n_samples; first += nb) {
        int64_t rows = n_samples - first < nb ? n_samples - first : nb;
        /* Fixed chunks of rows, one per thread at a time, each through
         * single-threaded BLAS: the work split does not depend on the thread
         * count, so neither do the results (and OpenMP and OpenBLAS threads
         * no longer compete for the cores). */
        int64_t chunk = mc_chunk_rows(p, k), nchunks = (rows + chunk - 1) / chunk;
        #pragma omp parallel for schedule(static)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            int64_t r0 = ch * chunk, nr = rows - r0 < chunk ? rows - r0 : chunk;
            float *e = E + r0 * k, *z = Z + r0 * p, *y = Y + r0 * d;
            for (int64_t r = 0; r < nr; r++) nm_rng_normals(rng, (uint64_t)(first + r0 + r), 0, k, e + r * k);
            /* z = ε (A L)ᵀ + m ; relu ; y = relu(z) Bᵀ + c2 */
            for (int64_t r = 0; r < nr; r++) memcpy(z + r * p, m32, (size_t)p * sizeof(float));
            nm_gemm_f32(NM_NOTRANS, NM_TRANS, nr, p, k, 1.0f, e, k, AL, k, 1.0f, z, p);
            for (int64_t i = 0; i < nr * p; i++) z[i] = z[i] > 0 ? z[i] : 0;
            for (int64_t r = 0; r < nr; r++) memcpy(y + r * d, c232, (size_t)d * sizeof(float));
            nm_gemm_f32(NM_NOTRANS, NM_TRANS, nr, d, p, 1.0f, z, p, B32, p, 1.0f, y, d);
        }
        nm_mc_accum_add(acc, Y, rows);
    }
    openblas_set_num_threads(blas_threads);
    st = nm_mc_accum_result(ctx, acc, out);
done:
    nm_free(ctx, AL);
    nm_free(ctx, buf);
    nm_mc_accum_free(ctx, acc);
    nm_ara_data_free(ctx, &a);
    if (st != NM_OK) nm_mc_result_free(ctx, out);
    return st;
}
