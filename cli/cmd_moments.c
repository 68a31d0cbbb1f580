/*
 * cmd_moments.c — `netmoments moments`, the main job: the mean and variance
 * of a model's logits when its input is a Gaussian N(μ, Σ) around an image,
 * by the two-stage linearization (DESIGN §1.6) with any moment method, next
 * to a Monte Carlo of the real network when asked; a table or one JSON
 * object; optionally the linearization as NPY files. Parse, run, print.
 */
#include "common.h"
#include "outdir.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: netmoments moments [--model M.onnx] (--input x.npy | --image K [--data mnist|fashion-mnist] [--split test|train])\n"
    "                          (--sigma2 S [--window r,c,h,w] | --var v.npy | --cov C.npy)\n"
    "                          [--split-relu L|none] [--method M|all] [--mc N] [--seed S]\n"
    "                          [--precision double|single] [--mem GIB] [--json] [--save-lin DIR] [--dense-max N]\n"
    "                          [--rank K]\n\n"
    "Mean and variance of the model's logits for x ~ N(mu, Sigma), analytic (DESIGN 1.6: the net split at a\n"
    "ReLU-like activation and linearized on both sides), optionally next to a Monte Carlo of the real network.\n"
    "Input scale: the model sees x = a p + b for pixels p in [0, 1], \"a b\" from its metadata key\n"
    "netmoments.input_scale (x = p when absent); mu and Sigma are in x's units. The ops a model may use, and\n"
    "which make the moments approximate below the split too (smooth ones), are listed by `netmoments ops`.\n"
    CLI_MODEL_HELP
    "  --input x.npy  mu, already in the model's input scale: (1, C, H, W) or (C, H, W)\n"
    "  --image K      mu = held-out image K (0-based) of --data/--split, in the model's recorded input scale\n"
    "  --sigma2 S     Sigma = S I  (with --window r,c,h,w: S I on rows r..r+h-1, columns c..c+w-1 only)\n"
    "  --var v.npy    Sigma = diag(v);  --cov C.npy: Sigma = C (n x n, checked PSD)\n"
    "  --split-relu L split at the L-th split point (netmoments info numbers them; default the last), or none:\n"
    "                 the whole net linearized at mu (for nets whose split points have too many units)\n"
    "  --method M     one of the methods listed below (default exact), or all\n"
    "  --mc N         also N Monte Carlo samples through the real network\n"
    "  --seed S       Monte Carlo seed (default 1)\n"
    "  --mem GIB      the memory netmoments may use (default an eighth of this machine's); A is formed as a matrix\n"
    "                 when it fits (and at most 2 GiB), otherwise applied through jvp passes\n"
    "  --path P       auto (default), or force A as a matrix or as an operator through jvp\n"
    "  --json         one JSON object on stdout\n"
    "  --save-lin DIR write A.npy (p x n), c1.npy, B.npy, c2.npy of the linearization\n"
    "  --covariance   also the d x d covariance of the logits (analytic, and MC with --mc): key cov / mc_cov\n"
    "  --flip         also the probability that the noise moves the label off c = argmax R(mu): 1 - P(logit c is\n"
    "                 the largest) under the analytic Gaussian of the logits (DESIGN 1.10, Genz's method, with its\n"
    "                 error estimate): keys clean_label, flip_probability, flip_se\n"
    "  --dense-max N  method propagate: ReLU-like layers of at most N units (default 1024), and always the last,\n"
    "                 keep their exact pair covariances; larger ones keep Stein's cross terms and exact variances\n"
    "  --rank K       method propagate: compress the shared noise columns to K (randomized SVD) wherever more\n"
    "                 accrue, each unit's variance kept (what is dropped is correlation); key rank_moved: the\n"
    "                 largest share of a value's column variance moved off the columns (default: no compression)\n";

/* What the command line asks for. */
typedef struct {
    const char *model, *input, *data, *split, *var_path, *cov_path, *save;
    double sigma2;
    long long image, mc, relu, win[4];
    uint64_t seed;
    int json, all, have_window, flip;
    nm_net_moments_options o;
} args;

/* What a run found: the analytic moments per method run (and their times),
 * the Monte Carlo, and the ReLU states the noise changes. */
typedef struct {
    nm_moments res[NM_METHOD_MAX];
    double times[NM_METHOD_MAX];
    nm_mc_result mcr;
    double t_mc;
    nm_decision_changes chg; /* kinks and max-pool argmaxes changed below and above the split, over chg_n draws */
    long long chg_n;
    int clean;                                   /* --flip: argmax R(mu) */
    double flip[NM_METHOD_MAX], flip_se[NM_METHOD_MAX];
} results;

static void mc_progress(void *user, int64_t done, int64_t total)
{
    (void)user;
    fprintf(stderr, "\rmonte carlo: %lld / %lld samples", (long long)done, (long long)total);
    if (done == total) fprintf(stderr, "\n");
}

/* Parses "r,c,h,w": four non-negative integers, each range-checked. */
static int parse_window(const char *s, long long w[4])
{
    char buf[256], *save = NULL;
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) return 0;
    int k = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (k == 4 || !cli_parse_range(tok, 0, INT64_MAX, &w[k++])) return 0;
    return k == 4;
}

/* One option into a; 0, or 1 after printing why (−1: --help was printed). */
static int parse_option(int c, const char *arg, const char *opt, args *a)
{
    switch (c) {
    case 'M': a->model = arg; return 0;
    case 'i': a->input = arg; return 0;
    case 'I':
        return !cli_parse_range(arg, 0, INT64_MAX, &a->image) ? cli_error("--image: '%s' is not a non-negative integer", arg) : 0;
    case 'D': a->data = arg; return 0;
    case 'S': a->split = arg; return 0;
    case 's':
        if (!cli_parse_double(arg, &a->sigma2) || !isfinite(a->sigma2)) return cli_error("--sigma2: '%s' is not a number", arg);
        return a->sigma2 < 0 ? cli_error("--sigma2: %g is negative (a variance)", a->sigma2) : 0;
    case 'v': a->var_path = arg; return 0;
    case 'C': a->cov_path = arg; return 0;
    case 'w':
        if (!parse_window(arg, a->win)) return cli_error("--window: '%s' is not r,c,h,w", arg);
        a->have_window = 1;
        return 0;
    case 'r':
        if (!strcmp(arg, "none")) return a->relu = -1, 0;
        return !cli_parse_range(arg, 1, INT_MAX, &a->relu) ? cli_error("--split-relu: '%s' is neither none nor an integer in 1..%d", arg, INT_MAX) : 0;
    case 'm': return cli_parse_method(arg, &a->o.method, &a->all);
    case 'n': return !cli_parse_int(arg, &a->mc) || a->mc < 2 ? cli_error("--mc: '%s' is not an integer >= 2", arg) : 0;
    case 'e': return !cli_parse_seed(arg, &a->seed) ? cli_error("--seed: '%s' is not an integer in 0..2^64-1", arg) : 0;
    case 'p':
        if (!strcmp(arg, "double")) a->o.precision = NM_PREC_DOUBLE;
        else if (!strcmp(arg, "single")) a->o.precision = NM_PREC_SINGLE;
        else return cli_error("--precision: '%s' is neither double nor single", arg);
        return 0;
    case 'g': return cli_set_mem(arg);
    case 'P':
        if (!strcmp(arg, "auto")) a->o.path = NM_PATH_AUTO;
        else if (!strcmp(arg, "matrix")) a->o.path = NM_PATH_MATRIX;
        else if (!strcmp(arg, "operator")) a->o.path = NM_PATH_OPERATOR;
        else return cli_error("--path: '%s' is not auto, matrix or operator", arg);
        return 0;
    case 'j': a->json = 1; return 0;
    case 'l': a->save = arg; return 0;
    case 'c': a->o.want_cov = 1; return 0;
    case 'F': a->flip = 1; return 0;
    case 'X': {
        long long v;
        if (!cli_parse_int(arg, &v) || v < 0) return cli_error("--dense-max: '%s' is not an integer >= 0", arg);
        a->o.dense_max = v;
        return 0;
    }
    case 'K': {
        long long v;
        if (!cli_parse_int(arg, &v) || v < 1) return cli_error("--rank: '%s' is not an integer >= 1", arg);
        a->o.rank = v;
        return 0;
    }
    case 'h': fputs(help, stdout), cli_print_methods(stdout); return -1;
    default: return cli_error("moments: unknown or incomplete option '%s' (netmoments moments --help)", opt);
    }
}

/* 0 with a filled in; 1 after printing why; −1 after --help. */
static int parse(int argc, char **argv, args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'M'},  {"input", required_argument, 0, 'i'},      {"image", required_argument, 0, 'I'},
        {"data", required_argument, 0, 'D'},   {"split", required_argument, 0, 'S'},      {"sigma2", required_argument, 0, 's'},
        {"var", required_argument, 0, 'v'},    {"cov", required_argument, 0, 'C'},        {"window", required_argument, 0, 'w'},
        {"split-relu", required_argument, 0, 'r'}, {"method", required_argument, 0, 'm'}, {"mc", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 'e'},   {"precision", required_argument, 0, 'p'}, {"mem", required_argument, 0, 'g'},
        {"json", no_argument, 0, 'j'},         {"save-lin", required_argument, 0, 'l'},   {"help", no_argument, 0, 'h'},
        {"covariance", no_argument, 0, 'c'},   {"path", required_argument, 0, 'P'}, {"flip", no_argument, 0, 'F'},
        {"dense-max", required_argument, 0, 'X'}, {"rank", required_argument, 0, 'K'}, {0, 0, 0, 0}};
    *a = (args){.model = cli_default_model(), .data = "mnist", .split = "test", .sigma2 = NAN, .image = -1, .seed = 1,
                .o = nm_net_moments_options_default()};
    int c, rc;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1)
        if ((rc = parse_option(c, optarg, cli_optname, a))) return rc;
    if (optind < argc) return cli_error("moments: unexpected argument '%s'", argv[optind]);
    if ((a->input != NULL) == (a->image >= 0)) return cli_error("moments: give exactly one of --input and --image");
    if ((!isnan(a->sigma2)) + (a->var_path != NULL) + (a->cov_path != NULL) != 1)
        return cli_error("moments: give exactly one of --sigma2, --var and --cov");
    if (a->have_window && isnan(a->sigma2)) return cli_error("moments: --window goes with --sigma2");
    a->o.split_relu = (int)a->relu;
    if (cli_mem_bytes()) a->o.mem_budget = cli_mem_bytes(); /* --mem bounds the matrix path too */
    return 0;
}

/* μ from --input or --image, in the model's input shape (batch 1). */
static int load_mean(nm_ctx *ctx, const args *a, const nm_net *net, nm_array *mu)
{
    int ndim;
    int64_t shape[NM_MAX_DIMS], n = 1;
    nm_net_input_shape(net, &ndim, shape);
    shape[0] = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    nm_status st;
    if (!nm_net_batchable(net)) {
        char buf[256];
        nm_net_input_shape(net, &ndim, shape);
        cli_shape_text(ndim, shape, buf, sizeof buf);
        return cli_error("%s: the input %s has no batch axis (the graph mixes values along its first axis); the moments need "
                         "one: export the model with a batched dummy input, e.g. (1, ...)", a->model, buf);
    }
    if (a->input) {
        if ((st = nm_npy_read(ctx, a->input, mu)) != NM_OK) return cli_fail(ctx, st, "--input");
        if (cli_check_f32(mu, "--input", a->input)) return 1;
        int ok = mu->ndim == ndim || mu->ndim == ndim - 1;
        for (int i = 0; ok && i < mu->ndim; i++) ok = mu->shape[mu->ndim - 1 - i] == shape[ndim - 1 - i];
        if (!ok || (mu->ndim == ndim && mu->shape[0] != 1))
            return cli_error("--input: %s does not have the model's input shape (1, ...) of %lld elements", a->input, (long long)n);
        return 0;
    }
    nm_dataset ds;
    int rc = cli_load_dataset(ctx, a->data, a->split, &ds);
    if (rc) return rc;
    if (a->image >= ds.n) rc = cli_error("--image %lld: the %s split of %s has images 0..%lld", a->image, a->split, a->data, (long long)ds.n - 1);
    else if (ds.rows * ds.cols != n)
        rc = cli_error("--image: the model's input (%lld elements) is not a %lld x %lld image", (long long)n, (long long)ds.rows,
                       (long long)ds.cols);
    else if ((st = nm_array_alloc(ctx, mu, NM_F32, ndim, shape)) != NM_OK ||
             (st = nm_dataset_images(ctx, &ds, (int64_t[]){a->image}, 1, nm_net_get_input_scale(net), mu->data)) != NM_OK)
        rc = cli_fail(ctx, st, "--image");
    nm_dataset_free(ctx, &ds);
    return rc;
}

/* Σ from --sigma2 (with --window), --var or --cov. */
static int load_sigma(nm_ctx *ctx, const args *a, const nm_net *net, nm_cov **cov)
{
    int ndim;
    int64_t shape[NM_MAX_DIMS], n = 1;
    nm_net_input_shape(net, &ndim, shape);
    for (int i = 1; i < ndim; i++) n *= shape[i];
    if (!a->have_window) return cli_load_cov(ctx, n, a->sigma2, a->var_path, a->cov_path, cov);
    if (ndim != 4) return cli_error("--window needs an image input (N, C, H, W)");
    nm_status st = nm_cov_window(ctx, shape[1], shape[2], shape[3], a->win[0], a->win[1], a->win[2], a->win[3], a->sigma2, cov);
    return st == NM_OK ? 0 : cli_fail(ctx, st, "--window");
}

static int save_npy(nm_ctx *ctx, const char *dir, const char *name, const nm_array *a)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    nm_status st = nm_npy_write(ctx, path, a);
    return st == NM_OK ? 0 : cli_fail(ctx, st, "--save-lin");
}

/* --save-lin: A, c1, B, c2 as NPY files, the four written as a unit. */
static int save_linearization(nm_ctx *ctx, const args *a, nm_net *net, const nm_array *mu)
{
    nm_array A, c1, B, c2;
    cli_outdir od;
    if (cli_outdir_open(&od, a->save, "--save-lin")) return 1;
    nm_status st = nm_net_linearize(ctx, net, mu, &a->o, &A, &c1, &B, &c2);
    if (st != NM_OK) {
        cli_outdir_abort(&od);
        return cli_fail(ctx, st, "--save-lin");
    }
    const char *dir = cli_outdir_stage(&od);
    int rc = save_npy(ctx, dir, "A.npy", &A) || save_npy(ctx, dir, "c1.npy", &c1) || save_npy(ctx, dir, "B.npy", &B) ||
             save_npy(ctx, dir, "c2.npy", &c2);
    nm_array_free(ctx, &A), nm_array_free(ctx, &c1), nm_array_free(ctx, &B), nm_array_free(ctx, &c2);
    if (rc) cli_outdir_abort(&od);
    return rc || cli_outdir_commit(&od);
}

static int method_on(const args *a, int m)
{
    return a->all || m == (int)a->o.method;
}

/* --flip: the clean label argmax R(mu) and each method's flip probability from its mean and covariance. */
static int flip_probabilities(nm_ctx *ctx, const args *a, nm_net *net, const nm_array *mu, results *r)
{
    nm_array y;
    nm_status st = nm_net_forward(ctx, net, 0, nm_net_logits_node(net), mu, &y);
    if (st != NM_OK) return cli_fail(ctx, st, "--flip");
    int64_t d = nm_array_numel(&y);
    const float *v = y.data;
    r->clean = 0;
    for (int64_t i = 1; i < d; i++)
        if (v[i] > v[r->clean]) r->clean = (int)i;
    nm_array_free(ctx, &y);
    for (int m = 0; m < nm_method_count(); m++) {
        if (!method_on(a, m)) continue;
        if ((st = nm_flip_probability(ctx, d, r->res[m].mean, r->res[m].cov, r->clean, NULL, &r->flip[m], &r->flip_se[m])) != NM_OK)
            return cli_fail(ctx, st, "--flip");
    }
    return 0;
}

/* The analytic moments (each method timed alone, linearization included) and the Monte Carlo. */
static int run(nm_ctx *ctx, const args *a, nm_net *net, const nm_array *mu, const nm_cov *cov, results *r)
{
    nm_status st;
    for (int m = 0; m < nm_method_count(); m++) {
        if (!method_on(a, m)) continue;
        nm_net_moments_options om = a->o;
        om.method = (nm_method)m;
        om.want_cov |= a->flip;
        double t0 = cli_now();
        st = nm_net_moments(ctx, net, mu, cov, &om, &r->res[m]);
        r->times[m] = cli_elapsed(t0);
        if (st != NM_OK) return cli_fail(ctx, st, "moments");
    }
    if (a->flip && flip_probabilities(ctx, a, net, mu, r)) return 1;
    r->chg_n = a->mc < NM_RELU_CHANGE_SAMPLES ? a->mc : NM_RELU_CHANGE_SAMPLES;
    if (a->mc) {
        nm_rng rng = {a->seed};
        double t0 = cli_now();
        st = nm_net_montecarlo(ctx, net, mu, cov, a->mc, &rng, a->o.want_cov, cli_show_progress() && !a->json ? mc_progress : NULL, NULL, &r->mcr);
        r->t_mc = cli_elapsed(t0);
        /* how far the noise leaves the linear region the split freezes, on the MC's first draws */
        if (st == NM_OK) st = nm_net_decision_changes(ctx, net, mu, cov, &a->o, r->chg_n, &rng, &r->chg);
        if (st != NM_OK) return cli_fail(ctx, st, "--mc");
    }
    return a->save ? save_linearization(ctx, a, net, mu) : 0;
}

static cJSON *json_vec(const double *x, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static void print_json(const args *a, const nm_net *net, const results *r, int64_t d)
{
    cJSON *j = cJSON_CreateObject();
    int logits = nm_net_logits_node(net), nr = nm_net_relu_count(net);
    cJSON_AddStringToObject(j, "model", a->model);
    cJSON_AddNumberToObject(j, "split_relu", a->relu ? (int)a->relu : nr);
    cJSON_AddBoolToObject(j, "piecewise_linear", nm_net_piecewise_linear(net));
    cJSON_AddBoolToObject(j, "logits_before_softmax", logits < nm_net_node_count(net) - 1);
    if (a->flip) cJSON_AddNumberToObject(j, "clean_label", r->clean);
    for (int m = 0; m < nm_method_count(); m++) {
        if (!method_on(a, m)) continue;
        cJSON *k = a->all ? cJSON_CreateObject() : j;
        if (!a->all) cJSON_AddStringToObject(j, "method", nm_method_str(m));
        cJSON_AddItemToObject(k, "mean", json_vec(r->res[m].mean, d));
        cJSON_AddItemToObject(k, "var", json_vec(r->res[m].var, d));
        if (r->res[m].cov) cJSON_AddItemToObject(k, "cov", json_vec(r->res[m].cov, d * d));
        cJSON_AddNumberToObject(k, "time_analytic_s", r->times[m]);
        if (m == NM_METHOD_PROPAGATE && a->o.rank) cJSON_AddNumberToObject(k, "rank_moved", r->res[m].rank_moved);
        if (a->flip) {
            cJSON_AddNumberToObject(k, "flip_probability", r->flip[m]);
            cJSON_AddNumberToObject(k, "flip_se", r->flip_se[m]);
        }
        if (a->all) cJSON_AddItemToObject(j, nm_method_str(m), k);
    }
    if (a->mc) {
        cJSON_AddItemToObject(j, "mc_mean", json_vec(r->mcr.mean, d));
        cJSON_AddItemToObject(j, "mc_var", json_vec(r->mcr.var, d));
        cJSON_AddItemToObject(j, "mc_mean_se", json_vec(r->mcr.mean_se, d));
        cJSON_AddItemToObject(j, "mc_var_se", json_vec(r->mcr.var_se, d));
        if (r->mcr.cov) cJSON_AddItemToObject(j, "mc_cov", json_vec(r->mcr.cov, d * d));
        cJSON_AddNumberToObject(j, "mc_samples", (double)a->mc);
        cJSON_AddNumberToObject(j, "seed", (double)a->seed);
        cJSON_AddNumberToObject(j, "time_mc_s", r->t_mc);
        cJSON_AddNumberToObject(j, "relu_changed_below", r->chg.kinks_below);
        cJSON_AddNumberToObject(j, "relu_changed_above", r->chg.kinks_above);
        cJSON_AddNumberToObject(j, "argmax_changed_below", r->chg.argmax_below);
        cJSON_AddNumberToObject(j, "argmax_changed_above", r->chg.argmax_above);
    }
    char *txt = cJSON_PrintUnformatted(j);
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(j);
}

/* One method's table: per logit the mean and variance (beside the Monte Carlo's), the covariance, the time. */
static void print_method(const args *a, const results *r, int m, int64_t d)
{
    const nm_moments *x = &r->res[m];
    const nm_mc_result *mc = &r->mcr;
    printf("\nmethod %s:\n", nm_method_str(m));
    if (a->mc) printf("%5s %14s %14s %8s %14s %14s %8s\n", "logit", "mean", "MC mean", "ratio", "variance", "MC variance", "ratio");
    else printf("%5s %14s %14s\n", "logit", "mean", "variance");
    for (int64_t i = 0; i < d; i++) {
        if (a->mc)
            printf("%5lld %14.6g %14.6g %8.4f %14.6g %14.6g %8.4f\n", (long long)i, x->mean[i], mc->mean[i], mc->mean[i] / x->mean[i],
                   x->var[i], mc->var[i], mc->var[i] / x->var[i]);
        else
            printf("%5lld %14.6g %14.6g\n", (long long)i, x->mean[i], x->var[i]);
    }
    if (x->cov) {
        printf("covariance of the logits (row-major, %lld x %lld):\n", (long long)d, (long long)d);
        for (int64_t i = 0; i < d; i++) {
            for (int64_t k = 0; k < d; k++) printf(" %11.4g", x->cov[i * d + k]);
            printf("\n");
        }
    }
    printf("analytic (%s, linearization included): %.4f s\n", nm_method_str(m), r->times[m]);
    if (m == NM_METHOD_PROPAGATE && a->o.rank)
        printf("--rank %lld: at most %.3g %% of a value's column variance moved to its private diagonal (its correlations dropped)\n",
               (long long)a->o.rank, 100 * x->rank_moved);
    if (a->flip)
        printf("flip probability P(argmax != %d, the label at mu): %.6g (error estimate %.2g)\n", r->clean, r->flip[m], r->flip_se[m]);
}

static void print_table(const args *a, const nm_net *net, const results *r, int64_t d)
{
    int logits = nm_net_logits_node(net), nr = nm_net_relu_count(net), l = a->relu ? (int)a->relu : nr;
    nm_node_info info = {.op = "Relu"};
    if (nr > 0 && l > 0) nm_net_node_info(NULL, net, nm_net_relu_node(net, l), &info);
    if (nr == 0) printf("model %s, no split point: linearized whole at mu", a->model);
    else if (l < 0) printf("model %s, not split (--split-relu none): linearized whole at mu", a->model);
    else if (!strcmp(info.op, "Relu")) printf("model %s, split at ReLU %d of %d", a->model, l, nr);
    else printf("model %s, split at split point %d of %d (%s)", a->model, l, nr, info.op);
    printf("%s\n", logits < nm_net_node_count(net) - 1 ? "; moments of the logits (the input of the final softmax)" : "");
    if (!nm_net_piecewise_linear(net))
        printf("not piecewise linear (smooth ops: netmoments info): the moments approximate below the split too\n");
    for (int m = 0; m < nm_method_count(); m++)
        if (method_on(a, m)) print_method(a, r, m, d);
    if (a->mc) {
        int m = a->all ? NM_METHOD_EXACT : a->o.method;
        printf("\nMonte Carlo: %lld samples, seed %llu, %.3f s: %.3gx the %s time (ratios are MC / analytic)\n", a->mc, (unsigned long long)a->seed, r->t_mc,
               r->t_mc / r->times[m], nm_method_str(m));
        printf("ReLU states the noise changes against the linearization point (first %lld samples): %.2f %% below the split, "
               "%.2f %% above it\n", r->chg_n, 100 * r->chg.kinks_below, 100 * r->chg.kinks_above);
        printf("max-pool argmaxes it changes: %.2f %% below the split, %.2f %% above it\n", 100 * r->chg.argmax_below,
               100 * r->chg.argmax_above);
    }
}

int cmd_moments(int argc, char **argv)
{
    args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    nm_ctx *ctx = cli_ctx_create();
    nm_net *net = NULL;
    nm_cov *cov = NULL;
    nm_array mu = {0};
    results r = {0};
    nm_status st = nm_net_read_onnx(ctx, a.model, &net);
    if (st != NM_OK) rc = cli_fail(ctx, st, "moments");
    if (!rc) rc = load_mean(ctx, &a, net, &mu);
    if (!rc) rc = load_sigma(ctx, &a, net, &cov);
    if (!rc) rc = run(ctx, &a, net, &mu, cov, &r);
    if (!rc && a.json) print_json(&a, net, &r, r.res[a.all ? NM_METHOD_EXACT : a.o.method].d);
    else if (!rc) print_table(&a, net, &r, r.res[a.all ? NM_METHOD_EXACT : a.o.method].d);
    for (int m = 0; m < nm_method_count(); m++) nm_moments_free(ctx, &r.res[m]);
    nm_mc_result_free(ctx, &r.mcr);
    nm_array_free(ctx, &mu);
    nm_cov_free(ctx, cov);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return rc;
}
