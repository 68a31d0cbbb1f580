/*
 * cmd_fooling.c — `netmoments fooling`: fooling-rate prediction and top-k
 * ordering (the paper's §4.2 and Table 2) and, with --flip, flip
 * probabilities and their calibration against the Monte Carlo
 * (nm_fooling_run); writes fooling.csv, fooling.json, fooling.md and, with
 * --flip --mc, the calibration figure, as a unit into --out.
 */
#include "experiments.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: netmoments fooling [--model M.onnx] [--perturbation N.npy] [--data mnist|fashion-mnist] [--split test|train]\n"
    "                          [--images K|all [--spread]] [--sigma2 S1] [--method paper|exact|delta] [--topk K] [--mc K]\n"
    "                          [--flip] [--seed S] --out DIR\n\n"
    "Fooling-rate prediction (the paper's 4.2, DESIGN 1.9). Per image X: clean label c = argmax R(X), the real\n"
    "label at X+N, and the prediction: the argmax of the analytic mean of R(X+N+n), n ~ N(0, S1 I), linearized\n"
    "at X+N and split at the last ReLU. Fooled: the label differs from c. Table 2: the share of images whose k\n"
    "largest analytic-mean logits, in order, equal those of R(X+N), k = 1..K. Without --perturbation, N = 0.\n"
    "  --perturbation  NPY in the model's input shape and units (netmoments uap writes one)\n"
    "  --images K|all  the first K images of the split, in the order eval and moments --image use (default all)\n"
    EXP_SPREAD_HELP
    "  --sigma2 S1     the small noise of the prediction (default 1e-4, the paper's Sigma1)\n"
    "  --method        of the analytic mean (default exact)      --topk K  (default 5)\n"
    "  --mc K          also the argmax of a K-sample Monte Carlo mean of the real net at X+N+n (a third column)\n"
    "  --flip          also the probability that the noise moves the label off c, P(argmax R(X+N+n) != c), from\n"
    "                  the analytic Gaussian of the logits (method's mean and covariance) by Genz's method; with\n"
    "                  --mc, against the Monte Carlo's flip frequency: the calibration figure flip-calibration.png/.svg\n"
    "                  and the mean absolute error\n"
    "  --seed S        the Monte Carlo's (default 1)\n"
    "Writes DIR/fooling.csv (per image), DIR/fooling.json (the rates), DIR/fooling.md (beside the paper's).\n"
    CLI_MODEL_HELP;


static int parse(int argc, char **argv, fool_args *a)
{
    enum { O_PERT = 1000, O_SIGMA2, O_METHOD, O_TOPK, O_MC, O_FLIP, O_HELP };
    static const struct option opts[] = {EXP_IMAGE_OPTIONS,
                                         {"perturbation", required_argument, 0, O_PERT},
                                         {"sigma2", required_argument, 0, O_SIGMA2},
                                         {"method", required_argument, 0, O_METHOD},
                                         {"topk", required_argument, 0, O_TOPK},
                                         {"mc", required_argument, 0, O_MC},
                                         {"flip", no_argument, 0, O_FLIP},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    *a = (fool_args){.c = exp_image_defaults("test"), .topk = 5, .sigma2 = 1e-4, .method = NM_METHOD_EXACT};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        int got = exp_image_option(c, optarg, &a->c);
        if (got < 0) return 1;
        if (got) continue;
        switch (c) {
        case O_PERT: a->pert = optarg; break;
        case O_SIGMA2:
            if (!cli_parse_double(optarg, &a->sigma2) || !(a->sigma2 > 0) || !isfinite(a->sigma2))
                return cli_error("--sigma2: '%s' is not a finite number > 0", optarg);
            break;
        case O_METHOD:
            if (cli_parse_method(optarg, &a->method, NULL)) return 1;
            break;
        case O_TOPK:
            if (!cli_parse_range(optarg, 1, NM_FOOLING_MAX_TOPK, &a->topk))
                return cli_error("--topk: '%s' is not an integer in 1..%d", optarg, NM_FOOLING_MAX_TOPK);
            break;
        case O_MC:
            if (!cli_parse_range(optarg, 2, INT64_MAX, &a->mc)) return cli_error("--mc: '%s' is not an integer >= 2", optarg);
            break;
        case O_FLIP: a->flip = 1; break;
        case O_HELP:
        case 'h': return fputs(help, stdout), -1;
        default: return cli_error("fooling: unknown or incomplete option '%s' (netmoments fooling --help)", cli_optname);
        }
    }
    if (optind < argc) return cli_error("fooling: unexpected argument '%s'", argv[optind]);
    if (!a->c.out) return cli_error("fooling: --out DIR is required");
    return 0;
}

/* The perturbation: an NPY of exactly the model's n inputs per sample, finite and within float32. */
static int load_perturbation(nm_ctx *ctx, const char *path, const exp_images *im, nm_array *N)
{
    nm_status st = nm_npy_read(ctx, path, N);
    if (st != NM_OK) return cli_fail(ctx, st, "--perturbation");
    if (cli_check_f32(N, "--perturbation", path)) return 1;
    if (nm_array_numel(N) != im->n) {
        char got[128], want[128];
        cli_shape_text(N->ndim, N->shape, got, sizeof got);
        cli_shape_text(im->ndim, im->shape, want, sizeof want);
        return cli_error("--perturbation: %s has shape %s, but the model takes %s (%lld values)", path, got, want, (long long)im->n);
    }
    double *d;
    if ((st = nm_array_to_f64(ctx, N, &d)) != NM_OK) return cli_fail(ctx, st, "--perturbation");
    float *v = malloc((size_t)im->n * sizeof(float));
    if (!v) return nm_free(ctx, d), cli_error("--perturbation: out of memory");
    for (int64_t i = 0; i < im->n; i++) v[i] = (float)d[i];
    nm_free(ctx, d);
    nm_array_free(ctx, N);
    *N = (nm_array){NM_F32, 1, {im->n}, v};
    return 0;
}

/* The paper's figures (§4.2, Table 2: AlexNet with VGG16's universal perturbation). */
static const double paper_real = 38.70, paper_pred = 38.62, paper_topk[5] = {98.3, 95.308, 91.156, 86.088, 80.514};

static void write_csv(FILE *f, const nm_fooling *r, const exp_images *im)
{
    int K = r->topk;
    fprintf(f, "image,label,clean,perturbed,predicted,fooled_real,fooled_predicted");
    for (int k = 1; k <= K; k++) fprintf(f, ",topk_match_%d", k);
    if (r->mc_predicted) {
        fprintf(f, ",mc_predicted,fooled_mc");
        for (int k = 1; k <= K; k++) fprintf(f, ",topk_match_mc_%d", k);
    }
    if (r->flip) fprintf(f, ",flip_probability,flip_se%s", r->mc_flip ? ",mc_flip" : "");
    fprintf(f, "\n");
    for (int64_t i = 0; i < r->images; i++) {
        fprintf(f, "%lld,%d,%d,%d,%d,%d,%d", (long long)im->index[i], im->labels[i], r->clean[i], r->perturbed[i], r->predicted[i],
                r->perturbed[i] != r->clean[i], r->predicted[i] != r->clean[i]);
        for (int k = 0; k < K; k++) fprintf(f, ",%d", r->topk_match[i * K + k]);
        if (r->mc_predicted) {
            fprintf(f, ",%d,%d", r->mc_predicted[i], r->mc_predicted[i] != r->clean[i]);
            for (int k = 0; k < K; k++) fprintf(f, ",%d", r->topk_match_mc[i * K + k]);
        }
        if (r->flip) fprintf(f, ",%.6g,%.3g", r->flip[i], r->flip_se[i]);
        if (r->mc_flip) fprintf(f, ",%.6g", r->mc_flip[i]);
        fprintf(f, "\n");
    }
}

/* Flip calibration: the mean absolute error (percentage points) and the share of images above 1 %. */
static void flip_summary(const nm_fooling *r, double *mae, double *above)
{
    double s = 0, a = 0;
    for (int64_t i = 0; i < r->images; i++) {
        if (r->mc_flip) s += fabs(r->flip[i] - r->mc_flip[i]);
        a += r->flip[i] > 0.01;
    }
    *mae = r->mc_flip ? 100 * s / (double)r->images : NAN;
    *above = 100 * a / (double)r->images;
}

static cJSON *json_rates(const nm_fooling *r, const fool_args *a, double secs)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "images", (double)r->images);
    cJSON_AddNumberToObject(j, "sigma2", a->sigma2);
    cJSON_AddStringToObject(j, "method", nm_method_str(a->method));
    cJSON_AddNumberToObject(j, "fooling_rate_real", r->rate_real);
    cJSON_AddNumberToObject(j, "fooling_rate_predicted", r->rate_predicted);
    cJSON_AddNumberToObject(j, "disagreements", (double)r->disagreements);
    cJSON *t = cJSON_AddArrayToObject(j, "topk_accuracy");
    for (int k = 0; k < r->topk; k++) cJSON_AddItemToArray(t, cJSON_CreateNumber(r->topk_accuracy[k]));
    if (r->mc_predicted) {
        cJSON_AddNumberToObject(j, "mc", (double)a->mc);
        cJSON_AddNumberToObject(j, "fooling_rate_mc", r->rate_mc);
        cJSON_AddNumberToObject(j, "disagreements_mc", (double)r->disagreements_mc);
        cJSON *u = cJSON_AddArrayToObject(j, "topk_accuracy_mc");
        for (int k = 0; k < r->topk; k++) cJSON_AddItemToArray(u, cJSON_CreateNumber(r->topk_accuracy_mc[k]));
    }
    if (r->flip) {
        double mae, above;
        flip_summary(r, &mae, &above);
        cJSON_AddNumberToObject(j, "flip_above_1pct", above / 100);
        if (r->mc_flip) cJSON_AddNumberToObject(j, "flip_mae_pp", mae);
    }
    cJSON_AddNumberToObject(j, "time_s", secs);
    return j;
}

static void write_md(FILE *f, const nm_fooling *r, const fool_args *a, double secs)
{
    int mc = r->mc_predicted != NULL;
    fprintf(f, "Fooling-rate prediction (%lld images of %s/%s%s%s; analytic mean by method %s at X+N+n, n ~ N(0, %g I), "
               "split at the last ReLU",
            (long long)r->images, a->c.data, a->c.split, a->pert ? ", perturbation " : ", no perturbation", a->pert ? a->pert : "",
            nm_method_str(a->method), a->sigma2);
    if (mc) fprintf(f, "; Monte Carlo of the real net: %lld samples per image", a->mc);
    fprintf(f, "; paper: AlexNet with VGG16's universal perturbation on ImageNet)\n\n");
    fprintf(f, "| | real R(X+N) | predicted (analytic mean) |%s paper real | paper predicted |\n|---|---|---|%s---|---|\n",
            mc ? " Monte Carlo mean |" : "", mc ? "---|" : "");
    fprintf(f, "| fooling rate | %.2f %% | %.2f %% |", 100 * r->rate_real, 100 * r->rate_predicted);
    if (mc) fprintf(f, " %.2f %% |", 100 * r->rate_mc);
    fprintf(f, " %.2f %% | %.2f %% |\n", paper_real, paper_pred);
    fprintf(f, "| images where fooled differs from the real net | | %lld |", (long long)r->disagreements);
    if (mc) fprintf(f, " %lld |", (long long)r->disagreements_mc);
    fprintf(f, " | |\n\nTable 2: top-k ordering accuracy (the k largest logits, in order, equal those of R(X+N))\n\n");
    fprintf(f, "| k | analytic mean |%s paper |\n|---|---|%s---|\n", mc ? " Monte Carlo mean |" : "", mc ? "---|" : "");
    for (int k = 0; k < r->topk; k++) {
        fprintf(f, "| %d | %.3f %% |", k + 1, 100 * r->topk_accuracy[k]);
        if (mc) fprintf(f, " %.3f %% |", 100 * r->topk_accuracy_mc[k]);
        if (k < 5) fprintf(f, " %.3f %% |\n", paper_topk[k]);
        else fprintf(f, " |\n");
    }
    if (r->flip) {
        double mae, above;
        flip_summary(r, &mae, &above);
        fprintf(f, "\nFlip probability P(argmax R(X+N+n) != clean label) from the analytic Gaussian of the logits: above 1 %% "
                   "for %.1f %% of the images", above);
        if (r->mc_flip) fprintf(f, "; mean absolute error against the Monte Carlo's flip frequency %.3f percentage points", mae);
        fprintf(f, ".\n");
    }
    fprintf(f, "\nTime %.1f s.\n", secs);
}

/* The calibration figure: per bin of the predicted probability, the mean predicted against the mean Monte
 * Carlo frequency (circles), every image (crosses), the diagonal dashed. */
static int write_calibration(nm_ctx *ctx, const char *dir, const nm_fooling *r)
{
    enum { BINS = 10 };
    double bx[BINS] = {0}, by[BINS] = {0}, cnt[BINS] = {0}, px[BINS], py[BINS];
    for (int64_t i = 0; i < r->images; i++) {
        int b = (int)fmin(BINS - 1, floor(r->flip[i] * BINS));
        bx[b] += r->flip[i], by[b] += r->mc_flip[i], cnt[b]++;
    }
    int nb = 0;
    for (int b = 0; b < BINS; b++)
        if (cnt[b] > 0) px[nb] = bx[b] / cnt[b], py[nb] = by[b] / cnt[b], nb++;
    nm_plot_panel p = {"Flip probability: analytic (Genz) vs Monte Carlo", "predicted P(label changes)", "Monte Carlo frequency", 0, {{0}}};
    if (r->images >= 2) p.series[p.nseries++] = (nm_plot_series){"images", r->flip, r->mc_flip, r->images, 1, 1};
    if (nb >= 2) p.series[p.nseries++] = (nm_plot_series){"bins of 0.1 (mean)", px, py, nb, 1, 0};
    if (!p.nseries) return 0; /* one image: nothing to draw */
    char png[4200], svg[4200];
    snprintf(png, sizeof png, "%s/flip-calibration.png", dir);
    snprintf(svg, sizeof svg, "%s/flip-calibration.svg", dir);
    nm_status st = nm_plot_scatter(ctx, png, svg, 1, &p);
    return st != NM_OK ? cli_fail(ctx, st, "fooling: the calibration figure") : 0;
}

int exp_fooling(const fool_args *a, const char *dir, FILE *report)
{
    nm_ctx *ctx = cli_ctx_create();
    if (!ctx) return 1;
    exp_images im;
    nm_array N = {0};
    nm_fooling r = {0};
    double t0 = cli_now();
    int rc = exp_load_images(ctx, a->c.model, a->c.data, a->c.split, a->c.images, a->c.spread, "fooling", &im);
    if (!rc && a->pert) rc = load_perturbation(ctx, a->pert, &im, &N);
    if (!rc) {
        cli_progress pg = cli_progress_make("fooling", "images");
        nm_fooling_options o = nm_fooling_options_default();
        o.sigma2 = a->sigma2, o.method = a->method, o.topk = (int)a->topk, o.mc = a->mc, o.flip = a->flip, o.seed = a->c.seed;
        o.progress = cli_progress_print, o.user = &pg;
        nm_status st = nm_fooling_run(ctx, im.net, im.X, im.index, im.count, a->pert ? N.data : NULL, &o, &r);
        if (pg.tty) fprintf(stderr, "\r\033[K");
        if (st != NM_OK) rc = cli_fail(ctx, st, "fooling");
    }
    double secs = cli_elapsed(t0);
    FILE *csv = NULL, *md = NULL, *js = NULL;
    if (!rc && (!(csv = exp_open(dir, "fooling.csv")) || !(md = exp_open(dir, "fooling.md")) || !(js = exp_open(dir, "fooling.json"))))
        rc = 1;
    if (!rc) {
        write_csv(csv, &r, &im);
        write_md(md, &r, a, secs);
        write_md(stdout, &r, a, secs);
        if (report) write_md(report, &r, a, secs);
        cJSON *j = json_rates(&r, a, secs);
        char *txt = cJSON_Print(j);
        fprintf(js, "%s\n", txt);
        free(txt);
        cJSON_Delete(j);
    }
    if (csv && fclose(csv)) rc = cli_error("fooling: writing fooling.csv failed");
    if (md && fclose(md)) rc = cli_error("fooling: writing fooling.md failed");
    if (js && fclose(js)) rc = cli_error("fooling: writing fooling.json failed");
    if (!rc && r.mc_flip) rc = write_calibration(ctx, dir, &r);
    nm_fooling_free(ctx, &r);
    free(N.data);
    exp_images_free(ctx, &im);
    nm_ctx_free(ctx);
    return rc;
}

static int fooling_fn(const void *a, const char *dir) { return exp_fooling(a, dir, NULL); }

int cmd_fooling(int argc, char **argv)
{
    fool_args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!(rc = exp_in_outdir(a.c.out, fooling_fn, &a))) printf("wrote %s/{fooling.csv,fooling.json,fooling.md}%s\n", a.c.out, a.flip && a.mc ? " and flip-calibration.png/.svg" : "");
    return rc;
}
