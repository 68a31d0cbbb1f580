/*
 * test_dist.c — work shared among processes (nm_dist), with the processes
 * played by threads of this program and the exchange by shared memory and a
 * barrier: every dataset-level entry point (tightness, fooling,
 * sensitivity, robustness, attack batch, universal perturbation, the
 * network's Monte Carlo) run by 2 and 3 "processes" returns, on every one
 * of them, results bit-identical to one process's without a distribution;
 * a failure on one process fails the call on all with its message; a bad
 * distribution is refused.
 */
#include "netbuild.h"
#include "check.h"

#include <pthread.h>

#define MAXP 3
#define IMG 6 /* images: 6 × 6 pixels, 4 classes */
#define COUNT 7

/* ---------------------------------------------------------------- processes as threads */

typedef struct {
    int P;
    pthread_barrier_t bar;
    const void *slot[MAXP];
} world;

typedef struct {
    world *w;
    int rank;
} member;

static int share(void *user, const void *mine, void *all, size_t bytes)
{
    member *m = user;
    m->w->slot[m->rank] = mine;
    pthread_barrier_wait(&m->w->bar);
    for (int q = 0; q < m->w->P; q++) memcpy((char *)all + (size_t)q * bytes, m->w->slot[q], bytes);
    pthread_barrier_wait(&m->w->bar);
    return 0;
}

/* What one experiment does on one process: st and the bytes it returns, to compare. */
typedef struct {
    nm_ctx *ctx;
    nm_net *net;
    nm_status st;
    unsigned char *bytes;
    size_t len;
    char message[512];
} proc;

typedef void (*experiment_fn)(proc *p);

static const nm_net *proto;
static float X[COUNT * IMG * IMG];
static uint8_t labels[COUNT];
static experiment_fn current;

static void keep(proc *p, const void *data, size_t len)
{
    p->bytes = realloc(p->bytes, p->len + len);
    memcpy(p->bytes + p->len, data, len);
    p->len += len;
}

typedef struct {
    proc *p;
    member m;
    size_t mem;
} job;

static void *run_proc(void *arg)
{
    job *j = arg;
    proc *p = j->p;
    p->ctx = nm_ctx_create();
    if (j->mem) nm_ctx_set_mem_limit(p->ctx, j->mem);
    nm_dist d = {j->m.rank, j->m.w ? j->m.w->P : 1, share, &j->m};
    if (j->m.w) nm_ctx_set_dist(p->ctx, &d);
    nm_net_copy(p->ctx, proto, &p->net);
    current(p);
    snprintf(p->message, sizeof p->message, "%s", p->st == NM_OK ? "" : nm_ctx_message(p->ctx));
    nm_net_free(p->ctx, p->net);
    nm_ctx_free(p->ctx);
    return NULL;
}

/* Runs the experiment on P processes (P = 0: one, without a distribution); mem[rank] budgets (0: default). */
static void run_on(int P, proc *out, const size_t *mem)
{
    world w = {P > 0 ? P : 1, {{0}}, {0}};
    pthread_barrier_init(&w.bar, NULL, (unsigned)w.P);
    pthread_t th[MAXP];
    job jobs[MAXP];
    for (int r = 0; r < w.P; r++) {
        memset(&out[r], 0, sizeof out[r]);
        jobs[r] = (job){&out[r], {P > 0 ? &w : NULL, r}, mem ? mem[r] : 0};
        pthread_create(&th[r], NULL, run_proc, &jobs[r]);
    }
    for (int r = 0; r < w.P; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&w.bar);
}

static void compare(const char *name, experiment_fn fn)
{
    current = fn;
    proc one, many[MAXP];
    run_on(0, &one, NULL);
    char what[160];
    snprintf(what, sizeof what, "%s runs in one process", name);
    if (!check_true(what, one.st == NM_OK && one.len > 0)) fprintf(stderr, "  %s\n", one.message);
    for (int P = 2; P <= MAXP; P++) {
        run_on(P, many, NULL);
        for (int r = 0; r < P; r++) {
            snprintf(what, sizeof what, "%s on %d processes: process %d's results are bit-identical to one process's", name, P, r);
            int same = many[r].st == NM_OK && many[r].len == one.len && !memcmp(many[r].bytes, one.bytes, one.len);
            if (!check_true(what, same)) fprintf(stderr, "  status %d %s\n", many[r].st, many[r].message);
            free(many[r].bytes);
        }
    }
    free(one.bytes);
}

/* ---------------------------------------------------------------- the experiments */

static void tightness(proc *p)
{
    nm_tightness_options o = nm_tightness_options_default();
    o.runs = COUNT, o.mc = 1300, o.nmethods = 2, o.methods[0] = NM_METHOD_EXACT, o.methods[1] = NM_METHOD_PROPAGATE;
    nm_tightness t;
    p->st = nm_tightness_run(p->ctx, p->net, NULL, (nm_scale){1, 0}, &o, &t);
    if (p->st != NM_OK) return;
    size_t row = (size_t)(t.runs * t.d) * sizeof(double);
    for (int k = 0; k < o.nmethods; k++) keep(p, t.mean[o.methods[k]], row), keep(p, t.var[o.methods[k]], row);
    keep(p, t.mc_mean, row), keep(p, t.mc_var, row);
    keep(p, t.relu_bottom, (size_t)t.runs * sizeof(double)), keep(p, t.relu_top, (size_t)t.runs * sizeof(double));
    nm_tightness_free(p->ctx, &t);
}

static void fooling(proc *p)
{
    nm_fooling_options o = nm_fooling_options_default();
    o.sigma2 = 0.5, o.mc = 300, o.flip = 1, o.topk = 2;
    float N[IMG * IMG];
    for (int i = 0; i < IMG * IMG; i++) N[i] = (float)(0.3 * sin(i));
    nm_fooling f;
    p->st = nm_fooling_run(p->ctx, p->net, X, NULL, COUNT, N, &o, &f);
    if (p->st != NM_OK) return;
    keep(p, f.ibuf, sizeof(int) * (size_t)(4 * COUNT + 2 * COUNT * o.topk)), keep(p, f.dbuf, sizeof(double) * 3 * COUNT);
    keep(p, &f.rate_real, sizeof(double) * 3), keep(p, f.topk_accuracy, sizeof f.topk_accuracy);
    nm_fooling_free(p->ctx, &f);
}

static void sensitivity(proc *p)
{
    nm_sensitivity_options o = nm_sensitivity_options_default();
    o.h = o.w = 3, o.sigma2 = 4, o.flip = 1, o.want_means = 1;
    nm_sensitivity s;
    p->st = nm_sensitivity_run(p->ctx, p->net, X, labels, COUNT, &o, &s);
    if (p->st != NM_OK) return;
    int64_t PQ = s.P * s.Q;
    keep(p, s.clean, sizeof(int) * COUNT), keep(p, s.map, sizeof(double) * (size_t)(COUNT * PQ));
    keep(p, s.flip, sizeof(double) * (size_t)(COUNT * PQ)), keep(p, s.mean, sizeof(double) * (size_t)(COUNT * PQ * s.d));
    keep(p, s.class_map, sizeof(double) * (size_t)(s.d * PQ)), keep(p, s.class_flip, sizeof(double) * (size_t)(s.d * PQ));
    nm_sensitivity_free(p->ctx, &s);
}

static void robustness(proc *p)
{
    double sig[3] = {0, 0.5, 2}, acc[3];
    nm_robustness_options o = nm_robustness_options_default();
    o.mc = 5;
    p->st = nm_robustness_run(p->ctx, p->net, X, labels, COUNT, 3, sig, &o, acc);
    if (p->st == NM_OK) keep(p, acc, sizeof acc);
}

static void attacks(proc *p)
{
    nm_attack_batch_options o = nm_attack_batch_options_default();
    o.attack.max_iter = 20, o.attack.beta = 2, o.mc = 200, o.keep_mu = 1;
    nm_attack_table t;
    p->st = nm_attack_batch(p->ctx, p->net, X, 3, &o, &t);
    if (p->st != NM_OK) return;
    for (int64_t i = 0; i < t.count; i++) {
        nm_attack_row r = t.row[i];
        r.time_s = 0; /* wall time: the one field that is not a result */
        keep(p, &r, sizeof r);
    }
    keep(p, t.mu, sizeof(float) * (size_t)(t.count * t.n));
    nm_attack_table_free(p->ctx, &t);
}

static void montecarlo(proc *p)
{
    nm_array mu = {NM_F32, 4, {1, 1, IMG, IMG}, X};
    nm_cov *cov = NULL;
    nm_mc_result r;
    nm_rng rng = {11};
    p->st = nm_cov_isotropic(p->ctx, IMG * IMG, 0.8, &cov);
    if (p->st == NM_OK) p->st = nm_net_montecarlo(p->ctx, p->net, &mu, cov, 2 * 500 * MAXP + 77, &rng, 1, NULL, NULL, &r);
    nm_cov_free(p->ctx, cov);
    if (p->st != NM_OK) return;
    keep(p, r.mean, sizeof(double) * (size_t)r.d), keep(p, r.var, sizeof(double) * (size_t)r.d);
    keep(p, r.var_se, sizeof(double) * (size_t)r.d), keep(p, r.cov, sizeof(double) * (size_t)(r.d * r.d));
    nm_mc_result_free(p->ctx, &r);
}

/* Many images, so that the labels behind the fooling rates come in several batches. */
#define UAP_IMAGES 700
static float XU[UAP_IMAGES * IMG * IMG];

static void uap(proc *p)
{
    nm_uap_options o = nm_uap_options_default();
    o.xi = 3, o.passes = 2, o.target_rate = 1;
    float v[IMG * IMG];
    nm_uap_result r;
    p->st = nm_uap_run(p->ctx, p->net, XU, UAP_IMAGES, &o, v, &r);
    if (p->st == NM_OK) keep(p, v, sizeof v), keep(p, r.rate, sizeof(double) * (size_t)r.passes);
}

int main(void)
{
    ctx = nm_ctx_create();
    int x;
    nm_net *net = start(SHAPE(1, 1, IMG, IMG), &x);
    int y = conv(net, x, 1, 3, 3, 1, 1);
    y = NODE(net, NM_OP_RELU, NULL, pool(net, y, 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 27, 16));
    finish(net, linear(net, y, 16, 4));
    proto = net;
    for (int i = 0; i < COUNT * IMG * IMG; i++) X[i] = (float)nrand();
    for (int i = 0; i < UAP_IMAGES * IMG * IMG; i++) XU[i] = (float)nrand();
    for (int i = 0; i < COUNT; i++) labels[i] = (uint8_t)(i % 4);

    compare("tightness", tightness);
    compare("fooling", fooling);
    compare("sensitivity", sensitivity);
    compare("robustness", robustness);
    compare("attack batch", attacks);
    compare("Monte Carlo", montecarlo);
    compare("universal perturbation", uap);

    /* a failure on one process: process 1's budget is too small for its runs' work */
    current = tightness;
    proc many[MAXP];
    size_t mem[MAXP] = {0, 24 << 10, 0};
    run_on(3, many, mem);
    for (int r = 0; r < 3; r++) {
        char what[160];
        snprintf(what, sizeof what, "a failure on process 1 fails the call on process %d with its message", r);
        int ok = many[r].st == NM_ERR_NOMEM && strstr(many[r].message, "memory budget");
        if (r != 1) ok = ok && !strncmp(many[r].message, "rank 1: ", 8);
        if (!check_true(what, ok)) fprintf(stderr, "  status %d: %s\n", many[r].st, many[r].message);
        free(many[r].bytes);
    }

    nm_dist bad = {2, 2, share, NULL}, none = {0, 2, NULL, NULL};
    check_true("rank beyond size refused", nm_ctx_set_dist(ctx, &bad) == NM_ERR_ARG);
    check_true("no allgather refused", nm_ctx_set_dist(ctx, &none) == NM_ERR_ARG);
    check_true("clearing accepted", nm_ctx_set_dist(ctx, NULL) == NM_OK);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return check_finish("test_dist");
}
