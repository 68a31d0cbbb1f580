/*
 * cmd_moments.c — `netmoments moments`, the main job: the mean and variance
 * of a model's logits when its input is a Gaussian N(μ, Σ) around an image,
 * by the two-stage linearization (DESIGN §1.6) with method paper, exact or
 * delta, next to a Monte Carlo of the real network when asked; a table or
 * one JSON object; optionally the linearization as NPY files.
 */
#include "common.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char help[] =
    "usage: netmoments moments [--model M.onnx] (--input x.npy | --image K [--data mnist|fashion-mnist] [--split test|train])\n"
    "                          (--sigma2 S [--window r,c,h,w] | --var v.npy | --cov C.npy)\n"
    "                          [--split-relu L] [--method paper|exact|delta|all] [--mc N] [--seed S]\n"
    "                          [--precision double|single] [--mem GIB] [--json] [--save-lin DIR]\n\n"
    "Mean and variance of the model's logits for x ~ N(mu, Sigma), analytic (DESIGN 1.6: the net split at a\n"
    "ReLU and linearized on both sides), optionally next to a Monte Carlo of the real network.\n"
    "  --model        ONNX file (default " CLI_DEFAULT_MODEL ")\n"
    "  --input x.npy  mu, already in the model's input scale: (1, C, H, W) or (C, H, W)\n"
    "  --image K      mu = held-out image K (0-based) of --data/--split, in the model's recorded input scale\n"
    "  --sigma2 S     Sigma = S I  (with --window r,c,h,w: S I on rows r..r+h-1, columns c..c+w-1 only)\n"
    "  --var v.npy    Sigma = diag(v);  --cov C.npy: Sigma = C (n x n, checked PSD)\n"
    "  --split-relu L split at the L-th ReLU (netmoments info numbers them; default the last)\n"
    "  --method       exact (default; 1.5), paper (1.4), delta (1.7), or all three\n"
    "  --mc N         also N Monte Carlo samples through the real network\n"
    "  --seed S       Monte Carlo seed (default 1)\n"
    "  --mem GIB      memory for A as a matrix (default 2); above it A is applied through jvp\n"
    "  --json         one JSON object on stdout\n"
    "  --save-lin DIR write A.npy (p x n), c1.npy, B.npy, c2.npy of the linearization\n"
    "  --covariance   also the d x d covariance of the logits (analytic, and MC with --mc): key cov / mc_cov\n";

static void mc_progress(void *user, int64_t done, int64_t total)
{
    (void)user;
    fprintf(stderr, "\rmonte carlo: %lld / %lld samples", (long long)done, (long long)total);
    if (done == total) fprintf(stderr, "\n");
}

static cJSON *json_vec(const double *x, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static int save_npy(nm_ctx *ctx, const char *dir, const char *name, const nm_array *a)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    nm_status st = nm_npy_write(ctx, path, a);
    return st == NM_OK ? 0 : cli_fail(ctx, st, "--save-lin");
}

/* Parses "r,c,h,w". */
static int parse_window(const char *s, long long w[4])
{
    char tail;
    return sscanf(s, "%lld,%lld,%lld,%lld%c", &w[0], &w[1], &w[2], &w[3], &tail) == 4;
}

int cmd_moments(int argc, char **argv)
{
    enum { O_MODEL = 1000, O_INPUT, O_IMAGE, O_DATA, O_SPLIT, O_SIGMA2, O_VAR, O_COV, O_WINDOW, O_RELU, O_METHOD, O_MC, O_SEED,
           O_PREC, O_MEM, O_JSON, O_SAVE, O_COVOUT, O_HELP };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},     {"input", required_argument, 0, O_INPUT},
        {"image", required_argument, 0, O_IMAGE},     {"data", required_argument, 0, O_DATA},
        {"split", required_argument, 0, O_SPLIT},     {"sigma2", required_argument, 0, O_SIGMA2},
        {"var", required_argument, 0, O_VAR},         {"cov", required_argument, 0, O_COV},
        {"window", required_argument, 0, O_WINDOW},   {"split-relu", required_argument, 0, O_RELU},
        {"method", required_argument, 0, O_METHOD},   {"mc", required_argument, 0, O_MC},
        {"seed", required_argument, 0, O_SEED},       {"precision", required_argument, 0, O_PREC},
        {"mem", required_argument, 0, O_MEM},         {"json", no_argument, 0, O_JSON},
        {"save-lin", required_argument, 0, O_SAVE},   {"help", no_argument, 0, O_HELP},
        {"covariance", no_argument, 0, O_COVOUT},
        {0, 0, 0, 0}};
    const char *model = CLI_DEFAULT_MODEL, *input = NULL, *data = "mnist", *split = "test", *var_path = NULL, *cov_path = NULL,
               *save = NULL;
    double sigma2 = NAN, mem_gib = 2;
    long long image = -1, mc = 0, seed = 1, relu = 0, win[4] = {0};
    int json = 0, all = 0, have_window = 0, c;
    nm_net_moments_options o = nm_net_moments_options_default();
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_INPUT: input = optarg; break;
        case O_IMAGE:
            if (!cli_parse_int(optarg, &image) || image < 0) return cli_error("--image: '%s' is not a non-negative integer", optarg);
            break;
        case O_DATA: data = optarg; break;
        case O_SPLIT: split = optarg; break;
        case O_SIGMA2:
            if (!cli_parse_double(optarg, &sigma2) || !isfinite(sigma2)) return cli_error("--sigma2: '%s' is not a number", optarg);
            if (sigma2 < 0) return cli_error("--sigma2: %g is negative (a variance)", sigma2);
            break;
        case O_VAR: var_path = optarg; break;
        case O_COV: cov_path = optarg; break;
        case O_WINDOW:
            if (!parse_window(optarg, win)) return cli_error("--window: '%s' is not r,c,h,w", optarg);
            have_window = 1;
            break;
        case O_RELU:
            if (!cli_parse_int(optarg, &relu) || relu < 1) return cli_error("--split-relu: '%s' is not a positive integer", optarg);
            break;
        case O_METHOD:
            if (cli_parse_method(optarg, &o.method, &all)) return 1;
            break;
        case O_MC:
            if (!cli_parse_int(optarg, &mc) || mc < 2) return cli_error("--mc: '%s' is not an integer >= 2", optarg);
            break;
        case O_SEED:
            if (!cli_parse_int(optarg, &seed) || seed < 0) return cli_error("--seed: '%s' is not a non-negative integer", optarg);
            break;
        case O_PREC:
            if (!strcmp(optarg, "double")) o.precision = NM_PREC_DOUBLE;
            else if (!strcmp(optarg, "single")) o.precision = NM_PREC_SINGLE;
            else return cli_error("--precision: '%s' is neither double nor single", optarg);
            break;
        case O_MEM:
            if (!cli_parse_double(optarg, &mem_gib) || !(mem_gib > 0)) return cli_error("--mem: '%s' is not a positive number", optarg);
            break;
        case O_JSON: json = 1; break;
        case O_SAVE: save = optarg; break;
        case O_COVOUT: o.want_cov = 1; break;
        case O_HELP:
        case 'h': fputs(help, stdout); return 0;
        default: return cli_error("moments: unknown or incomplete option '%s' (netmoments moments --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_error("moments: unexpected argument '%s'", argv[optind]);
    if ((input != NULL) == (image >= 0)) return cli_error("moments: give exactly one of --input and --image");
    if ((!isnan(sigma2)) + (var_path != NULL) + (cov_path != NULL) != 1)
        return cli_error("moments: give exactly one of --sigma2, --var and --cov");
    if (have_window && isnan(sigma2)) return cli_error("moments: --window goes with --sigma2");
    o.split_relu = (int)relu;
    o.mem_budget = (size_t)(mem_gib * (double)(1 << 30));

    nm_ctx *ctx = nm_ctx_create();
    nm_net *net = NULL;
    nm_cov *cov = NULL;
    nm_array mu = {0};
    nm_moments res[NM_METHOD_MAX] = {{0}};
    double times[NM_METHOD_MAX] = {0};
    nm_mc_result mcr = {0};
    double t_mc = 0, chg[2] = {0, 0}; /* ReLU states changed below and above the split, over chg_n draws */
    long long chg_n = mc < NM_RELU_CHANGE_SAMPLES ? mc : NM_RELU_CHANGE_SAMPLES;
    int rc = 0;
    nm_status st = nm_net_read_onnx(ctx, model, &net);
    if (st != NM_OK) {
        rc = cli_fail(ctx, st, "moments");
        goto done;
    }
    int ndim;
    int64_t shape[NM_MAX_DIMS];
    nm_net_input_shape(net, &ndim, shape);
    shape[0] = 1;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    if (input) {
        if ((st = nm_npy_read(ctx, input, &mu)) != NM_OK) {
            rc = cli_fail(ctx, st, "--input");
            goto done;
        }
        int ok = mu.ndim == ndim || mu.ndim == ndim - 1;
        for (int i = 0; ok && i < mu.ndim; i++) ok = mu.shape[mu.ndim - 1 - i] == shape[ndim - 1 - i];
        if (!ok || (mu.ndim == ndim && mu.shape[0] != 1)) {
            rc = cli_error("--input: %s does not have the model's input shape (1, ...) of %lld elements", input, (long long)n);
            goto done;
        }
    } else {
        nm_dataset ds;
        if ((rc = cli_load_dataset(ctx, data, split, &ds))) goto done;
        if (image >= ds.n || ds.rows * ds.cols != n) {
            rc = image >= ds.n ? cli_error("--image %lld: the %s split of %s has images 0..%lld", image, split, data, (long long)ds.n - 1)
                               : cli_error("--image: the model's input (%lld elements) is not a %lld x %lld image", (long long)n,
                                           (long long)ds.rows, (long long)ds.cols);
            nm_dataset_free(ctx, &ds);
            goto done;
        }
        if ((st = nm_array_alloc(ctx, &mu, NM_F32, ndim, shape)) == NM_OK)
            st = nm_dataset_images(ctx, &ds, (int64_t[]){image}, 1, nm_net_get_input_scale(net), mu.data);
        nm_dataset_free(ctx, &ds);
        if (st != NM_OK) {
            rc = cli_fail(ctx, st, "--image");
            goto done;
        }
    }
    if (have_window) {
        if (ndim != 4) {
            rc = cli_error("--window needs an image input (N, C, H, W)");
            goto done;
        }
        st = nm_cov_window(ctx, shape[1], shape[2], shape[3], win[0], win[1], win[2], win[3], sigma2, &cov);
        if (st != NM_OK) {
            rc = cli_fail(ctx, st, "--window");
            goto done;
        }
    } else if ((rc = cli_load_cov(ctx, n, sigma2, var_path, cov_path, &cov))) {
        goto done;
    }
    /* analytic: each method timed alone, linearization included */
    for (int m = 0; m < nm_method_count(); m++) {
        if (!all && m != (int)o.method) continue;
        nm_net_moments_options om = o;
        om.method = (nm_method)m;
        double t0 = cli_now();
        st = nm_net_moments(ctx, net, &mu, cov, &om, &res[m]);
        times[m] = cli_now() - t0;
        if (st != NM_OK) {
            rc = cli_fail(ctx, st, "moments");
            goto done;
        }
    }
    if (mc) {
        nm_rng rng = {(uint64_t)seed};
        double t0 = cli_now();
        st = nm_net_montecarlo(ctx, net, &mu, cov, mc, &rng, o.want_cov, isatty(2) && !json ? mc_progress : NULL, NULL, &mcr);
        t_mc = cli_now() - t0;
        /* how far the noise leaves the linear region the split freezes, on the MC's first draws */
        if (st == NM_OK) st = nm_net_relu_changes(ctx, net, &mu, cov, &o, chg_n, &rng, &chg[0], &chg[1]);
        if (st != NM_OK) {
            rc = cli_fail(ctx, st, "moments: Monte Carlo");
            goto done;
        }
    }
    if (save) {
        nm_array A, c1, B, c2;
        if ((rc = cli_make_dir(save, "--save-lin"))) goto done;
        if ((st = nm_net_linearize(ctx, net, &mu, &o, &A, &c1, &B, &c2)) != NM_OK) {
            rc = cli_fail(ctx, st, "--save-lin");
            goto done;
        }
        rc = save_npy(ctx, save, "A.npy", &A) || save_npy(ctx, save, "c1.npy", &c1) || save_npy(ctx, save, "B.npy", &B) ||
             save_npy(ctx, save, "c2.npy", &c2);
        nm_array_free(ctx, &A), nm_array_free(ctx, &c1), nm_array_free(ctx, &B), nm_array_free(ctx, &c2);
        if (rc) goto done;
    }
    int64_t d = res[all ? NM_METHOD_EXACT : o.method].d;
    int logits = nm_net_logits_node(net), on_logits = logits < nm_net_node_count(net) - 1;
    int nr = nm_net_relu_count(net), l = relu ? (int)relu : nr;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", model);
        cJSON_AddNumberToObject(j, "split_relu", l);
        cJSON_AddBoolToObject(j, "logits_before_softmax", on_logits);
        if (all) {
            for (int m = 0; m < nm_method_count(); m++) {
                cJSON *k = cJSON_CreateObject();
                cJSON_AddItemToObject(k, "mean", json_vec(res[m].mean, d));
                cJSON_AddItemToObject(k, "var", json_vec(res[m].var, d));
                if (res[m].cov) cJSON_AddItemToObject(k, "cov", json_vec(res[m].cov, d * d));
                cJSON_AddNumberToObject(k, "time_s", times[m]);
                cJSON_AddItemToObject(j, nm_method_str((nm_method)m), k);
            }
        } else {
            cJSON_AddStringToObject(j, "method", nm_method_str(o.method));
            cJSON_AddItemToObject(j, "mean", json_vec(res[o.method].mean, d));
            cJSON_AddItemToObject(j, "var", json_vec(res[o.method].var, d));
            if (res[o.method].cov) cJSON_AddItemToObject(j, "cov", json_vec(res[o.method].cov, d * d));
            cJSON_AddNumberToObject(j, "time_analytic_s", times[o.method]);
        }
        if (mc) {
            cJSON_AddItemToObject(j, "mc_mean", json_vec(mcr.mean, d));
            cJSON_AddItemToObject(j, "mc_var", json_vec(mcr.var, d));
            cJSON_AddItemToObject(j, "mc_mean_se", json_vec(mcr.mean_se, d));
            cJSON_AddItemToObject(j, "mc_var_se", json_vec(mcr.var_se, d));
            if (mcr.cov) cJSON_AddItemToObject(j, "mc_cov", json_vec(mcr.cov, d * d));
            cJSON_AddNumberToObject(j, "mc_samples", (double)mc);
            cJSON_AddNumberToObject(j, "seed", (double)seed);
            cJSON_AddNumberToObject(j, "time_mc_s", t_mc);
            cJSON_AddNumberToObject(j, "relu_changed_below", chg[0]);
            cJSON_AddNumberToObject(j, "relu_changed_above", chg[1]);
        }
        char *txt = cJSON_PrintUnformatted(j);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(j);
    } else {
        printf("model %s, split at ReLU %d of %d%s\n", model, l, nr,
               on_logits ? "; moments of the logits (the input of the final softmax)" : "");
        for (int m = 0; m < nm_method_count(); m++) {
            if (!all && m != (int)o.method) continue;
            printf("\nmethod %s:\n", nm_method_str((nm_method)m));
            if (mc)
                printf("%5s %14s %14s %8s %14s %14s %8s\n", "logit", "mean", "MC mean", "ratio", "variance", "MC variance", "ratio");
            else
                printf("%5s %14s %14s\n", "logit", "mean", "variance");
            for (int64_t i = 0; i < d; i++) {
                if (mc)
                    printf("%5lld %14.6g %14.6g %8.4f %14.6g %14.6g %8.4f\n", (long long)i, res[m].mean[i], mcr.mean[i],
                           mcr.mean[i] / res[m].mean[i], res[m].var[i], mcr.var[i], mcr.var[i] / res[m].var[i]);
                else
                    printf("%5lld %14.6g %14.6g\n", (long long)i, res[m].mean[i], res[m].var[i]);
            }
            if (res[m].cov) {
                printf("covariance of the logits (row-major, %lld x %lld):\n", (long long)d, (long long)d);
                for (int64_t i = 0; i < d; i++) {
                    for (int64_t k2 = 0; k2 < d; k2++) printf(" %11.4g", res[m].cov[i * d + k2]);
                    printf("\n");
                }
            }
            printf("analytic (%s, linearization included): %.4f s\n", nm_method_str((nm_method)m), times[m]);
        }
        if (mc) {
            int m = all ? NM_METHOD_EXACT : o.method;
            printf("\nMonte Carlo: %lld samples, seed %lld, %.3f s: %.0fx the %s time (ratios are MC / analytic)\n", mc, seed, t_mc,
                   t_mc / times[m], nm_method_str((nm_method)m));
            printf("ReLU states the noise changes against the linearization point (first %lld samples): %.2f %% below the split, "
                   "%.2f %% above it\n", chg_n, 100 * chg[0], 100 * chg[1]);
        }
    }
done:
    for (int m = 0; m < nm_method_count(); m++) nm_moments_free(ctx, &res[m]);
    nm_mc_result_free(ctx, &mcr);
    nm_array_free(ctx, &mu);
    nm_cov_free(ctx, cov);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return rc;
}
