/*
 * rng.c — the counter-based generator of every random number in the
 * library (Philox-4x32-10, Salmon et al. 2011): each normal is a pure
 * function of (seed, stream, index), so results depend on neither threads
 * nor batching.
 */
#include "internal.h"

#include <math.h>



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

