/*
 * cmd_ara.c — `netmoments ara`: mean and variance of an Affine–ReLU–Affine
 * network read from NPY files, analytic (any moment method) and, with
 * --mc, Monte Carlo beside it; and `netmoments ara-example`, which writes a
 * random such network to try it on.
 */
#include "common.h"
#include "outdir.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char ara_help[] =
    "usage: netmoments ara --A A.npy --c1 c1.npy --B B.npy --c2 c2.npy --mu mu.npy\n"
    "                      (--sigma2 S | --var v.npy | --cov C.npy)\n"
    "                      [--method M] [--precision double|single]\n"
    "                      [--mc N] [--seed S] [--json]\n\n"
    "Mean and variance of g(x) = B relu(A x + c1) + c2 for x ~ N(mu, Sigma).\n"
    "  --A, --c1, --B, --c2   the network: A p x n, c1 p, B d x p, c2 d (float32/float64 NPY)\n"
    "  --mu                   input mean (n)\n"
    "  --sigma2 S             Sigma = S I\n"
    "  --var v.npy            Sigma = diag(v)\n"
    "  --cov C.npy            Sigma = C (n x n, symmetric PSD)\n"
    "  --method M             one of the methods listed below (default exact)\n"
    "  --precision            of the BLAS products S = A Sigma A^T and B C B^T (default double)\n"
    "  --mc N                 also estimate by N Monte Carlo samples\n"
    "  --seed S               Monte Carlo seed (default 1)\n"
    "  --json                 one JSON object on stdout\n";

static cJSON *json_array(const double *x, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

/* The analytic moments (and the Monte Carlo) as one JSON object or a table. */
static int ara_print(const nm_moments *mom, const nm_mc_result *mcr, nm_method method, int json, long long mc, uint64_t seed,
                     double t_an, double t_mc)
{
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "method", nm_method_str(method));
        cJSON_AddItemToObject(o, "mean", json_array(mom->mean, mom->d));
        cJSON_AddItemToObject(o, "var", json_array(mom->var, mom->d));
        cJSON_AddNumberToObject(o, "time_analytic_s", t_an);
        if (mc) {
            cJSON_AddItemToObject(o, "mc_mean", json_array(mcr->mean, mcr->d));
            cJSON_AddItemToObject(o, "mc_var", json_array(mcr->var, mcr->d));
            cJSON_AddNumberToObject(o, "mc_samples", (double)mc);
            cJSON_AddNumberToObject(o, "seed", (double)seed);
            cJSON_AddNumberToObject(o, "time_mc_s", t_mc);
        }
        char *s = cJSON_PrintUnformatted(o);
        int rc = s ? (puts(s), 0) : cli_error("out of memory writing JSON");
        free(s);
        cJSON_Delete(o);
        return rc;
    }
    printf("method %s, d = %lld outputs\n", nm_method_str(method), (long long)mom->d);
    if (mc) {
        printf("%6s %14s %14s %8s %14s %14s %8s\n", "output", "mean", "MC mean", "ratio", "var", "MC var", "ratio");
        for (int64_t i = 0; i < mom->d; i++)
            printf("%6lld %14.6g %14.6g %8.4f %14.6g %14.6g %8.4f\n", (long long)i, mom->mean[i], mcr->mean[i], mcr->mean[i] / mom->mean[i],
                   mom->var[i], mcr->var[i], mcr->var[i] / mom->var[i]);
        printf("analytic %.4f s; Monte Carlo %lld samples (seed %llu) %.4f s; speed-up %.0fx\n", t_an, mc, (unsigned long long)seed, t_mc,
               t_mc / t_an);
    } else {
        printf("%6s %14s %14s\n", "output", "mean", "var");
        for (int64_t i = 0; i < mom->d; i++) printf("%6lld %14.6g %14.6g\n", (long long)i, mom->mean[i], mom->var[i]);
        printf("analytic %.4f s\n", t_an);
    }
    return 0;
}

typedef struct {
    const char *paths[5], *var_path, *cov_path; /* A, c1, B, c2, mu */
    double sigma2;
    long long mc;
    uint64_t seed;
    int json, ncov;
    nm_ara_options opt;
} ara_args;

enum { O_A = 1000, O_C1, O_B, O_C2, O_MU, O_SIGMA2, O_VAR, O_COV, O_METHOD, O_PREC, O_MC, O_SEED, O_JSON, O_HELP };

/* One option of `ara` into a; 0, 1 after printing why, −1 after --help. */
static int ara_option(int c, const char *arg, ara_args *a)
{
    switch (c) {
    case O_A: case O_C1: case O_B: case O_C2: case O_MU: a->paths[c - O_A] = arg; return 0;
    case O_SIGMA2:
        a->ncov++;
        return !cli_parse_double(arg, &a->sigma2) ? cli_error("--sigma2: '%s' is not a finite number", arg) : 0;
    case O_VAR: a->var_path = arg; a->ncov++; return 0;
    case O_COV: a->cov_path = arg; a->ncov++; return 0;
    case O_METHOD: return cli_parse_method(arg, &a->opt.method, NULL);
    case O_PREC:
        if (!strcmp(arg, "double")) a->opt.precision = NM_PREC_DOUBLE;
        else if (!strcmp(arg, "single")) a->opt.precision = NM_PREC_SINGLE;
        else return cli_error("--precision: '%s' is not double or single", arg);
        return 0;
    case O_MC: return !cli_parse_int(arg, &a->mc) || a->mc < 2 ? cli_error("--mc: '%s' is not an integer >= 2", arg) : 0;
    case O_SEED: return !cli_parse_seed(arg, &a->seed) ? cli_error("--seed: '%s' is not an integer in 0..2^64-1", arg) : 0;
    case O_JSON: a->json = 1; return 0;
    case CLI_OPT_MEM: return cli_set_mem(arg);
    case 'h': case O_HELP: fputs(ara_help, stdout), cli_print_methods(stdout); return -1;
    default: return cli_error("ara: bad option (netmoments ara --help)");
    }
}

int cmd_ara(int argc, char **argv)
{
    static const struct option opts[] = {CLI_MEM_OPTION, 
        {"A", required_argument, 0, O_A},          {"c1", required_argument, 0, O_C1},
        {"B", required_argument, 0, O_B},          {"c2", required_argument, 0, O_C2},
        {"mu", required_argument, 0, O_MU},        {"sigma2", required_argument, 0, O_SIGMA2},
        {"var", required_argument, 0, O_VAR},      {"cov", required_argument, 0, O_COV},
        {"method", required_argument, 0, O_METHOD}, {"precision", required_argument, 0, O_PREC},
        {"mc", required_argument, 0, O_MC},        {"seed", required_argument, 0, O_SEED},
        {"json", no_argument, 0, O_JSON},          {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    ara_args a = {.sigma2 = NAN, .seed = 1, .opt = nm_ara_options_default()};
    int c, rc;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1)
        if ((rc = ara_option(c, optarg, &a))) return rc < 0 ? 0 : rc;
    if (optind < argc) return cli_error("ara: unexpected argument '%s'", argv[optind]);
    static const char *const names[5] = {"--A", "--c1", "--B", "--c2", "--mu"};
    for (int i = 0; i < 5; i++)
        if (!a.paths[i]) return cli_error("ara: %s is required (netmoments ara --help)", names[i]);
    if (a.ncov != 1) return cli_error("ara: give exactly one of --sigma2, --var, --cov");

    nm_ctx *ctx = cli_ctx_create();
    if (!ctx) return cli_error("out of memory");
    nm_array arr[5] = {{0}};
    nm_cov *cov = NULL;
    nm_moments mom = {0};
    nm_mc_result mcr = {0};
    rc = 0;
    for (int i = 0; i < 5 && !rc; i++) {
        nm_status st = nm_npy_read(ctx, a.paths[i], &arr[i]);
        if (st != NM_OK) rc = cli_fail(ctx, st, names[i] + 2);
    }
    if (!rc && arr[0].ndim != 2) rc = cli_error("A: must be a matrix (p x n), has rank %d", arr[0].ndim);
    if (!rc) rc = cli_load_cov(ctx, arr[0].shape[1], a.sigma2, a.var_path, a.cov_path, &cov);
    nm_ara net = {&arr[0], &arr[1], &arr[2], &arr[3]};
    double t0 = cli_now(), t_an = 0, t_mc = 0;
    nm_status st;
    if (!rc && (st = nm_ara_moments(ctx, &net, &arr[4], cov, &a.opt, &mom)) != NM_OK) rc = cli_fail(ctx, st, "ara");
    t_an = cli_elapsed(t0);
    if (!rc && a.mc) {
        nm_rng rng = {a.seed};
        t0 = cli_now();
        if ((st = nm_ara_montecarlo(ctx, &net, &arr[4], cov, a.mc, &rng, 0, &mcr)) != NM_OK) rc = cli_fail(ctx, st, "ara Monte Carlo");
        t_mc = cli_elapsed(t0);
    }
    if (!rc) rc = ara_print(&mom, &mcr, a.opt.method, a.json, a.mc, a.seed, t_an, t_mc);
    nm_moments_free(ctx, &mom);
    nm_mc_result_free(ctx, &mcr);
    nm_cov_free(ctx, cov);
    for (int i = 0; i < 5; i++) nm_array_free(ctx, &arr[i]);
    nm_ctx_free(ctx);
    return rc;
}

/* ---------------------------------------------------------------- ara-example */

static const char example_help[] =
    "usage: netmoments ara-example --out DIR [--n N] [--p P] [--d D] [--seed S]\n\n"
    "Writes DIR/{A,c1,B,c2,mu}.npy: a random Affine-ReLU-Affine network with\n"
    "A ~ N(0, 1/n), B ~ N(0, 1/p), c1, c2 ~ N(0, 0.25) and mu ~ N(0, 1), so that\n"
    "methods paper and exact differ. Defaults: n 100, p 64, d 5, seed 1.\n";

int cmd_ara_example(int argc, char **argv)
{
    static const struct option opts[] = {CLI_MEM_OPTION, {"out", required_argument, 0, 'o'}, {"n", required_argument, 0, 'n'},
                                         {"p", required_argument, 0, 'p'},   {"d", required_argument, 0, 'd'},
                                         {"seed", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL;
    long long dims[3] = {100, 64, 5};
    uint64_t seed = 1;
    optind = 1;
    int c;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'n': case 'p': case 'd': {
            long long *v = &dims[c == 'n' ? 0 : c == 'p' ? 1 : 2];
            if (!cli_parse_int(optarg, v) || *v < 1 || *v > 100000) return cli_error("--%c: '%s' is not an integer in 1..100000", c, optarg);
            break;
        }
        case 's':
            if (!cli_parse_seed(optarg, &seed)) return cli_error("--seed: '%s' is not an integer in 0..2^64-1", optarg);
            break;
        case CLI_OPT_MEM:
            if (cli_set_mem(optarg)) return 1;
            break;
        case 'h': fputs(example_help, stdout); return 0;
        default: return cli_error("ara-example: bad option (netmoments ara-example --help)");
        }
    }
    if (!out) return cli_error("ara-example: --out DIR is required");
    cli_outdir od;
    if (cli_outdir_open(&od, out, "--out")) return 1;
    int64_t n = dims[0], p = dims[1], d = dims[2];
    struct { const char *name; int ndim; int64_t shape[2]; double scale; } spec[5] = {
        {"A", 2, {p, n}, 1 / sqrt((double)n)}, {"c1", 1, {p, 0}, 0.5}, {"B", 2, {d, p}, 1 / sqrt((double)p)},
        {"c2", 1, {d, 0}, 0.5}, {"mu", 1, {n, 0}, 1.0}};
    nm_ctx *ctx = cli_ctx_create();
    nm_rng rng = {seed};
    int rc = ctx ? 0 : 1;
    for (int i = 0; i < 5 && !rc; i++) {
        nm_array a;
        nm_status st = nm_array_alloc(ctx, &a, NM_F32, spec[i].ndim, spec[i].shape);
        if (st != NM_OK) {
            rc = cli_fail(ctx, st, spec[i].name);
            break;
        }
        float *x = a.data;
        nm_rng_normals(&rng, (uint64_t)i, 0, nm_array_numel(&a), x);
        for (int64_t j = 0; j < nm_array_numel(&a); j++) x[j] *= (float)spec[i].scale;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", cli_outdir_stage(&od), spec[i].name);
        if ((st = nm_npy_write(ctx, path, &a)) != NM_OK) rc = cli_fail(ctx, st, path);
        nm_array_free(ctx, &a);
    }
    if (rc) cli_outdir_abort(&od);
    else if (!(rc = cli_outdir_commit(&od)))
        printf("wrote %s/{A,c1,B,c2,mu}.npy (n %lld, p %lld, d %lld, seed %llu)\n", out, (long long)n, (long long)p, (long long)d,
               (unsigned long long)seed);
    nm_ctx_free(ctx);
    return rc;
}
