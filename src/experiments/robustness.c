/*
 * robustness.c — accuracy under Gaussian input noise (issue 19): per noise
 * level σ, the share of noisy copies x_i + σ ε of the images classified as
 * their labels by the real net, and the area under that accuracy–σ curve.
 * Image i's mc copies draw ε from stream i of the seed's generator, the
 * same ε scaled for every σ (common random numbers: the curve is smooth and
 * two models compared on one seed see the same noise). Images run on
 * threads with a net copy each; counts are per image, so results do not
 * depend on the thread count.
 */
#include "exp.h"

#include <math.h>
#include <string.h>

nm_robustness_options nm_robustness_options_default(void)
{
    nm_robustness_options o;
    memset(&o, 0, sizeof o);
    o.mc = 10;
    o.seed = 1;
    return o;
}

typedef struct {
    const float *X;
    const uint8_t *labels;
    int64_t n, mc;
    int ns;
    const double *sigmas;
    uint64_t seed;
    int64_t *correct; /* count × ns */
} rob_job;

/* Image i: its mc noisy copies at every σ through the net (scratch: ε, the copies and their labels). */
static nm_status rob_item(nm_ctx *tc, nm_net *net, void *user, int64_t i, void *scratch)
{
    const rob_job *j = user;
    int64_t n = j->n, K = j->mc;
    float *eps = scratch, *x = eps + K * n;
    int *lab = (int *)(x + K * n);
    nm_rng rng = {j->seed};
    nm_rng_normals(&rng, (uint64_t)i, 0, K * n, eps);
    const float *xi = j->X + i * n;
    for (int s = 0; s < j->ns; s++) {
        float sig = (float)j->sigmas[s];
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = 0; t < n; t++) x[k * n + t] = xi[t] + sig * eps[k * n + t];
        nm_status st = nm_exp_predict(tc, net, x, K, NULL, NULL, lab);
        if (st != NM_OK) return st;
        int64_t c = 0;
        for (int64_t k = 0; k < K; k++) c += lab[k] == j->labels[i];
        j->correct[i * j->ns + s] = c;
    }
    return NM_OK;
}

nm_status nm_robustness_run(nm_ctx *ctx, const nm_net *net, const float *X, const uint8_t *labels, int64_t count, int ns,
                            const double *sigmas, const nm_robustness_options *opt, double *accuracy)
{
    if (!ctx || !net || !X || !labels || !sigmas || !accuracy) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    nm_robustness_options o = opt ? *opt : nm_robustness_options_default();
    if (count < 1 || ns < 1 || o.mc < 1)
        return nm_fail(ctx, NM_ERR_ARG, "robustness needs at least one image, one noise level and one copy (got %lld, %d, %lld)",
                       (long long)count, ns, (long long)o.mc);
    for (int s = 0; s < ns; s++)
        if (!(sigmas[s] >= 0) || !isfinite(sigmas[s]))
            return nm_fail(ctx, NM_ERR_ARG, "noise level %d is %g: a standard deviation must be finite and >= 0", s, sigmas[s]);
    int64_t n = nm_exp_input_size(net), d = nm_exp_logit_count(net);
    for (int64_t i = 0; i < count; i++)
        if (labels[i] >= d) return nm_fail(ctx, NM_ERR_ARG, "image %lld has label %d but the model has %lld classes", (long long)i, labels[i], (long long)d);
    int64_t *correct = nm_alloc_zero(ctx, (size_t)(count * ns), sizeof(int64_t));
    if (!correct) return NM_ERR_NOMEM;
    rob_job j = {X, labels, n, o.mc, ns, sigmas, o.seed, correct};
    size_t scratch = (size_t)(2 * o.mc * n) * sizeof(float) + (size_t)o.mc * sizeof(int);
    nm_dist_slab slab = {correct, (size_t)ns * sizeof(int64_t)};
    nm_status st = nm_exp_parallel(ctx, net, count, scratch, rob_item, &j, o.progress, o.user, &slab, 1);
    for (int s = 0; st == NM_OK && s < ns; s++) {
        int64_t c = 0;
        for (int64_t i = 0; i < count; i++) c += correct[i * ns + s];
        accuracy[s] = (double)c / (double)(count * o.mc);
    }
    nm_free(ctx, correct);
    return st;
}

double nm_robustness_auc(int ns, const double *sigmas, const double *accuracy)
{
    if (ns < 2 || !(sigmas[ns - 1] > sigmas[0])) return ns == 1 ? accuracy[0] : NAN;
    double a = 0;
    for (int s = 1; s < ns; s++) a += (sigmas[s] - sigmas[s - 1]) * (accuracy[s] + accuracy[s - 1]) / 2;
    return a / (sigmas[ns - 1] - sigmas[0]);
}
