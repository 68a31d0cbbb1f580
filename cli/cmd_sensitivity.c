/*
 * cmd_sensitivity.c — `netmoments sensitivity`: the paper's Fig 3 (spatial
 * sensitivity maps, nm_sensitivity_run), optional flip probabilities and
 * verification by sampling (nm_sensitivity_verify); writes the maps as NPY
 * and CSV and the figure, as a unit into --out.
 */
#include "experiments.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: netmoments sensitivity [--model M.onnx] [--data mnist|fashion-mnist] [--split test|train] [--images K|all [--spread]]\n"
    "                              [--window H[xW]] [--stride S] [--sigma2 S3] [--flip] [--verify K [--mc N]]\n"
    "                              [--seed S] --out DIR\n\n"
    "Spatial sensitivity (the paper's 4.4 and Fig 3): zero-mean noise of variance S3 on an HxW window only (all\n"
    "channels), slid without padding (22x22 positions for 7x7 on 28x28). Per image and position: fooled in\n"
    "expectation (the argmax of the analytic mean of the logits differs from the clean label), linearized at the\n"
    "image and split at the last ReLU; one linearization per image serves all its positions.\n"
    "  --window H[xW]  default 7 (7x7)      --stride S  default 1      --sigma2 S3  default 200 (the paper's)\n"
    "  --images K|all  the first K images of the split, in the order eval and moments --image use (default all)\n"
    EXP_SPREAD_HELP
    "  --flip          also the flip probability per position: the logits' Gaussian with the exact mean and the\n"
    "                  exact variance of each split unit, cross-covariances by Stein's lemma; Genz's method\n"
    "  --verify K      K random (image, position) pairs against an N-sample Monte Carlo of the real net\n"
    "                  (--mc, default 20000): agreement of fooled-in-expectation and of the flip probability\n"
    "  --seed S        the verification's pairs and samples (default 1)\n"
    "Writes DIR/sensitivity.npy (classes, P, Q: the fooling rate over each class's images, by their labels),\n"
    "DIR/sensitivity-images.npy (images, P, Q: 0/1), DIR/sensitivity.csv (class,row,col,rate[,flip]), with --flip\n"
    "DIR/flip.npy and DIR/flip-images.npy (probabilities), DIR/sensitivity.json (sizes, time, verification) and the\n"
    "figure DIR/fig3.png/.svg (an image of each class with its map over it; with --flip also fig3-flip.png/.svg).\n"
    CLI_MODEL_HELP;


static int parse_window(const char *s, long long *h, long long *w)
{
    char *x = strchr(s, 'x');
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    if (x) buf[x - s] = 0;
    if (!cli_parse_range(buf, 1, 4096, h) || !cli_parse_range(x ? x + 1 : buf, 1, 4096, w))
        return cli_error("--window: '%s' is not H or HxW with sizes 1..4096", s);
    return 0;
}

static int parse(int argc, char **argv, sens_args *a)
{
    enum { O_WINDOW = 1000, O_STRIDE, O_SIGMA2, O_FLIP, O_VERIFY, O_MC, O_HELP };
    static const struct option opts[] = {EXP_IMAGE_OPTIONS,
                                         {"window", required_argument, 0, O_WINDOW},
                                         {"stride", required_argument, 0, O_STRIDE},
                                         {"sigma2", required_argument, 0, O_SIGMA2},
                                         {"flip", no_argument, 0, O_FLIP},
                                         {"verify", required_argument, 0, O_VERIFY},
                                         {"mc", required_argument, 0, O_MC},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    *a = (sens_args){.c = exp_image_defaults("test"), .stride = 1, .mc = 20000, .h = 7, .w = 7, .sigma2 = 200};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        int got = exp_image_option(c, optarg, &a->c);
        if (got < 0) return 1;
        if (got) continue;
        switch (c) {
        case O_WINDOW:
            if (parse_window(optarg, &a->h, &a->w)) return 1;
            break;
        case O_STRIDE:
            if (!cli_parse_range(optarg, 1, 4096, &a->stride)) return cli_error("--stride: '%s' is not an integer in 1..4096", optarg);
            break;
        case O_SIGMA2:
            if (!cli_parse_double(optarg, &a->sigma2) || !(a->sigma2 > 0) || !isfinite(a->sigma2))
                return cli_error("--sigma2: '%s' is not a finite number > 0", optarg);
            break;
        case O_FLIP: a->flip = 1; break;
        case O_VERIFY:
            if (!cli_parse_range(optarg, 1, INT64_MAX, &a->verify)) return cli_error("--verify: '%s' is not an integer >= 1", optarg);
            break;
        case O_MC:
            if (!cli_parse_range(optarg, 2, INT64_MAX, &a->mc)) return cli_error("--mc: '%s' is not an integer >= 2", optarg);
            break;
        case O_HELP:
        case 'h': return fputs(help, stdout), -1;
        default: return cli_error("sensitivity: unknown or incomplete option '%s' (netmoments sensitivity --help)", cli_optname);
        }
    }
    if (optind < argc) return cli_error("sensitivity: unexpected argument '%s'", argv[optind]);
    if (!a->c.out) return cli_error("sensitivity: --out DIR is required");
    return 0;
}

static int write_npy(nm_ctx *ctx, const char *dir, const char *name, double *data, int64_t a, int64_t b, int64_t c)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    nm_array arr = {NM_F64, 3, {a, b, c}, data};
    nm_status st = nm_npy_write(ctx, path, &arr);
    return st != NM_OK ? cli_fail(ctx, st, "sensitivity") : 0;
}

/* Fig 3: the first image of each class with its class's map. */
static int write_figure(nm_ctx *ctx, const char *dir, const exp_images *im, const nm_sensitivity *s, const sens_args *a, double secs, int flip)
{
    nm_plot_heat h[20];
    char titles[20][64];
    int n = 0;
    int64_t HW = im->ds.rows * im->ds.cols, PQ = s->P * s->Q;
    double *img = malloc((size_t)(s->classes * HW) * sizeof(double));
    if (!img) return cli_error("sensitivity: out of memory for the figure");
    for (int k = 0; k < s->classes && n < 20; k++) {
        int64_t first = -1;
        for (int64_t i = 0; i < s->images && first < 0; i++)
            if (s->label[i] == k) first = i;
        if (first < 0) continue;
        for (int64_t t = 0; t < HW; t++) img[n * HW + t] = im->ds.pixels[im->index[first] * HW + t];
        snprintf(titles[n], sizeof titles[n], "class %d (%lld images)", k, (long long)s->class_count[k]);
        double off = (double)(a->h - a->stride) / 2;
        h[n] = (nm_plot_heat){titles[n], img + n * HW, im->ds.rows, im->ds.cols, (flip ? s->class_flip : s->class_map) + k * PQ, s->P, s->Q, off, (double)(a->w - a->stride) / 2,
                              (double)a->stride};
        n++;
    }
    char png[4200], svg[4200], title[256], caption[256];
    snprintf(png, sizeof png, "%s/%s.png", dir, flip ? "fig3-flip" : "fig3");
    snprintf(svg, sizeof svg, "%s/%s.svg", dir, flip ? "fig3-flip" : "fig3");
    snprintf(title, sizeof title, "Fig 3: %s per position of a %lldx%lld noise window (sigma^2 = %g), per class",
             flip ? "mean flip probability" : "fooling rate in expectation", a->h, a->w, a->sigma2);
    double vmax = 1;
    if (flip) { /* the flip maps' scale: their largest value (at least 1e-6) */
        vmax = 1e-6;
        for (int64_t t = 0; t < s->classes * PQ; t++)
            if (isfinite(s->class_flip[t])) vmax = fmax(vmax, s->class_flip[t]);
    }
    snprintf(caption, sizeof caption, "%lld images of %s/%s; analytic mean, split at the last ReLU; stride %lld; %.0f s", (long long)s->images,
             a->c.data, a->c.split, a->stride, secs);
    nm_status st = n ? nm_plot_heatmaps(ctx, png, svg, n, h, vmax, title, caption) : NM_OK;
    free(img);
    return st != NM_OK ? cli_fail(ctx, st, "sensitivity: the figure") : 0;
}

static int write_csv(const char *dir, const nm_sensitivity *s)
{
    FILE *f = exp_open(dir, "sensitivity.csv");
    if (!f) return 1;
    fprintf(f, "class,row,col,rate%s\n", s->flip ? ",flip" : "");
    for (int k = 0; k < s->classes; k++)
        for (int64_t r = 0; r < s->P; r++)
            for (int64_t q = 0; q < s->Q; q++) {
                int64_t j = (k * s->P + r) * s->Q + q;
                fprintf(f, "%d,%lld,%lld,%.6g", k, (long long)r, (long long)q, s->class_map[j]);
                if (s->flip) fprintf(f, ",%.6g", s->class_flip[j]);
                fprintf(f, "\n");
            }
    return fclose(f) ? cli_error("sensitivity: writing sensitivity.csv failed") : 0;
}

static int write_json(const char *dir, const nm_sensitivity *s, const nm_sensitivity_check *v, const sens_args *a, double secs, double vsecs)
{
    FILE *f = exp_open(dir, "sensitivity.json");
    if (!f) return 1;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "images", (double)s->images);
    cJSON_AddNumberToObject(j, "positions", (double)(s->P * s->Q));
    cJSON_AddNumberToObject(j, "window_h", (double)a->h);
    cJSON_AddNumberToObject(j, "window_w", (double)a->w);
    cJSON_AddNumberToObject(j, "stride", (double)a->stride);
    cJSON_AddNumberToObject(j, "sigma2", a->sigma2);
    double all = 0;
    for (int64_t i = 0; i < s->images * s->P * s->Q; i++) all += s->map[i];
    cJSON_AddNumberToObject(j, "fooling_rate", all / (double)(s->images * s->P * s->Q));
    cJSON_AddNumberToObject(j, "time_s", secs);
    cJSON_AddNumberToObject(j, "positions_per_s", secs > 0 ? (double)(s->images * s->P * s->Q) / secs : 0);
    if (v) {
        cJSON *o = cJSON_AddObjectToObject(j, "verify");
        cJSON_AddNumberToObject(o, "pairs", (double)v->pairs);
        cJSON_AddNumberToObject(o, "mc", (double)a->mc);
        cJSON_AddNumberToObject(o, "agreement", v->agreement);
        if (s->flip) cJSON_AddNumberToObject(o, "flip_mae", v->flip_mae);
        cJSON_AddNumberToObject(o, "time_s", vsecs);
    }
    char *txt = cJSON_Print(j);
    fprintf(f, "%s\n", txt);
    free(txt);
    cJSON_Delete(j);
    return fclose(f) ? cli_error("sensitivity: writing sensitivity.json failed") : 0;
}

/* Per verified pair: image, position, the map's verdict and flip, the Monte Carlo's. */
static int write_verify_csv(const char *dir, const exp_images *im, const nm_sensitivity *s, const nm_sensitivity_check *v)
{
    FILE *f = exp_open(dir, "verify.csv");
    if (!f) return 1;
    int64_t PQ = s->P * s->Q;
    fprintf(f, "image,row,col,fooled_analytic,fooled_mc,mc_margin%s\n", s->flip ? ",flip_analytic,flip_se,flip_mc" : ",flip_mc");
    for (int64_t t = 0; t < v->pairs; t++) {
        int64_t i = v->image[t], q = v->position[t];
        fprintf(f, "%lld,%lld,%lld,%d,%d,%.6g", (long long)im->index[i], (long long)(q / s->Q), (long long)(q % s->Q), (int)s->map[i * PQ + q],
                (int)v->mc_fooled[t], v->mc_margin[t]);
        if (s->flip) fprintf(f, ",%.6g,%.3g", s->flip[i * PQ + q], s->flip_se[i * PQ + q]);
        fprintf(f, ",%.6g\n", v->mc_flip[t]);
    }
    return fclose(f) ? cli_error("sensitivity: writing verify.csv failed") : 0;
}

/* The report's lines: sizes, the overall rate, the time, the verification, the figures. */
static void write_report(FILE *f, const nm_sensitivity *s, const nm_sensitivity_check *v, const sens_args *a, double secs, double vsecs)
{
    double all = 0, fl = 0;
    int64_t N = s->images * s->P * s->Q;
    for (int64_t i = 0; i < N; i++) all += s->map[i], fl += s->flip ? s->flip[i] : 0;
    fprintf(f, "%lld images of %s/%s%s, a %lldx%lld window of noise sigma^2 = %g slid with stride %lld (%lld positions an image): "
               "fooled in expectation at %.3f %% of the (image, position) pairs%s",
            (long long)s->images, a->c.data, a->c.split, a->c.spread ? " (spread over the split)" : "", a->h, a->w, a->sigma2, a->stride,
            (long long)(s->P * s->Q), 100 * all / (double)N, s->flip ? "; mean flip probability " : "");
    if (s->flip) fprintf(f, "%.4f %%", 100 * fl / (double)N);
    fprintf(f, ". Time %.1f s (%.0f positions/s).", secs, secs > 0 ? (double)N / secs : 0);
    if (v) {
        fprintf(f, " Against a %lld-sample Monte Carlo of the real net on %lld random pairs (%.0f s): fooled-in-expectation agrees on %.1f %%",
                a->mc, (long long)v->pairs, vsecs, 100 * v->agreement);
        if (s->flip) fprintf(f, ", flip probability mean absolute error %.3f percentage points", 100 * v->flip_mae);
        fprintf(f, ".");
    }
    fprintf(f, "\n\n");
}

int exp_sensitivity(const sens_args *a, const char *dir, FILE *report)
{
    nm_ctx *ctx = cli_ctx_create();
    if (!ctx) return 1;
    exp_images im;
    nm_sensitivity s = {0};
    nm_sensitivity_check v = {0};
    double t0 = cli_now(), secs = 0, vsecs = 0;
    int rc = exp_load_images(ctx, a->c.model, a->c.data, a->c.split, a->c.images, a->c.spread, "sensitivity", &im);
    nm_sensitivity_options o = nm_sensitivity_options_default();
    o.h = a->h, o.w = a->w, o.stride = a->stride, o.sigma2 = a->sigma2, o.flip = a->flip;
    if (!rc) {
        cli_progress pg = cli_progress_make("sensitivity", "images");
        o.progress = cli_progress_print, o.user = &pg;
        nm_status st = nm_sensitivity_run(ctx, im.net, im.X, im.labels, im.count, &o, &s);
        if (pg.tty) fprintf(stderr, "\r\033[K");
        if (st != NM_OK) rc = cli_fail(ctx, st, "sensitivity");
        secs = cli_elapsed(t0);
    }
    if (!rc)
        printf("sensitivity: %lld images x %lld positions (%lldx%lld window, stride %lld, sigma2 %g) in %.1f s: %.0f positions/s\n",
               (long long)s.images, (long long)(s.P * s.Q), a->h, a->w, a->stride, a->sigma2, secs, (double)(s.images * s.P * s.Q) / secs);
    if (!rc && a->verify) {
        double t1 = cli_now();
        nm_status st = nm_sensitivity_verify(ctx, im.net, im.X, &s, &o, a->verify, a->mc, a->c.seed, &v);
        if (st != NM_OK) rc = cli_fail(ctx, st, "sensitivity --verify");
        vsecs = cli_elapsed(t1);
        if (!rc) {
            printf("verify: %lld pairs, %lld samples each (%.1f s): fooled in expectation agrees on %.1f %%", (long long)v.pairs, a->mc, vsecs,
                   100 * v.agreement);
            if (s.flip) printf("; flip probability mean absolute error %.3f percentage points", 100 * v.flip_mae);
            printf("\n");
        }
    }
    if (!rc) rc = write_npy(ctx, dir, "sensitivity.npy", s.class_map, s.classes, s.P, s.Q);
    if (!rc) rc = write_npy(ctx, dir, "sensitivity-images.npy", s.map, s.images, s.P, s.Q);
    if (!rc && s.flip) rc = write_npy(ctx, dir, "flip.npy", s.class_flip, s.classes, s.P, s.Q);
    if (!rc && s.flip) rc = write_npy(ctx, dir, "flip-images.npy", s.flip, s.images, s.P, s.Q);
    if (!rc) rc = write_csv(dir, &s);
    if (!rc) rc = write_json(dir, &s, a->verify ? &v : NULL, a, secs, vsecs);
    if (!rc && a->verify) rc = write_verify_csv(dir, &im, &s, &v);
    if (!rc && report) write_report(report, &s, a->verify ? &v : NULL, a, secs, vsecs);
    if (!rc) rc = write_figure(ctx, dir, &im, &s, a, secs, 0);
    if (!rc && s.flip) rc = write_figure(ctx, dir, &im, &s, a, secs, 1);
    nm_sensitivity_check_free(ctx, &v);
    nm_sensitivity_free(ctx, &s);
    exp_images_free(ctx, &im);
    nm_ctx_free(ctx);
    return rc;
}

static int sensitivity_fn(const void *a, const char *dir) { return exp_sensitivity(a, dir, NULL); }

int cmd_sensitivity(int argc, char **argv)
{
    sens_args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!(rc = exp_in_outdir(a.c.out, sensitivity_fn, &a))) printf("wrote %s/{sensitivity.npy,sensitivity-images.npy,sensitivity.csv,sensitivity.json,fig3.png,fig3.svg}\n", a.c.out);
    return rc;
}
