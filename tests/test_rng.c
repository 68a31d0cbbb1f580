/*
 * test_rng.c — the counter-based generator: Philox-4x32-10 against the
 * known-answer vectors published with Random123 (tests/kat_vectors); the
 * normals' first four moments against N(0,1) within 5 standard errors; and
 * any slice of a stream equal to the same slice read from its start.
 */
#include "netmoments.h"
#include "check.h"

#include <string.h>

#define Z_MAX 5.0

static void kat(void)
{
    static const uint32_t v[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        nm_philox4x32(v[i], v[i] + 4, out);
        check_true("Philox-4x32-10 known answer", !memcmp(out, v[i] + 6, sizeof out));
    }
}

static void moments(void)
{
    enum { N = 4000000 };
    static float z[N];
    nm_rng rng = {7};
    nm_rng_normals(&rng, 3, 0, N, z);
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    for (int i = 0; i < N; i++) {
        double x = z[i];
        s1 += x;
        s2 += x * x;
        s3 += x * x * x;
        s4 += x * x * x * x;
    }
    /* standard errors of the raw moments: sqrt(Var[x^k] / N) with
     * Var[x]=1, Var[x²]=2, Var[x³]=15, Var[x⁴]=96 for N(0,1) */
    double m[4] = {s1 / N, s2 / N, s3 / N, s4 / N}, want[4] = {0, 1, 0, 3}, var[4] = {1, 2, 15, 96};
    for (int k = 0; k < 4; k++) {
        double zk = (m[k] - want[k]) / sqrt(var[k] / N);
        char what[64];
        snprintf(what, sizeof what, "normal moment %d: z = %.2f", k + 1, zk);
        check_true(what, fabs(zk) < Z_MAX);
    }
    /* a slice starting mid-block equals the same slice of the whole stream */
    float part[37];
    nm_rng_normals(&rng, 3, 1001, 37, part);
    check_true("slice of a stream", !memcmp(part, z + 1001, sizeof part));
    nm_rng_normals(&rng, 4, 1001, 37, part);
    check_true("another stream differs", memcmp(part, z + 1001, sizeof part) != 0);
}

int main(void)
{
    kat();
    moments();
    return check_finish("test_rng");
}
