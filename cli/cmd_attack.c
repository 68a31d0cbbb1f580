/*
 * cmd_attack.c — `netmoments attack targeted`: the paper's Gaussian
 * targeted attack (Eq 3) on one image (nm_attack_run), verified by sampling
 * the real net (nm_attack_verify); writes mu.npy, attack.json and the
 * figure as a unit into --out. Batch mode is cli/attack_batch.c.
 */
#include "attack.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: netmoments attack targeted [--model M.onnx] (--image K | --input x.npy) --target J [--beta B]\n"
    "                                  [--sigma2-max S] [--relinearize R] [--max-iter N] [--margin G]\n"
    "                                  [--mc N] [--seed S] --out DIR\n"
    "       netmoments attack targeted [--model M.onnx] (--images K [--spread] | --image K) --targets all [...] --out DIR\n"
    "       netmoments attack sparse [--model M.onnx] (--image K | --input x.npy | --images K) [--alpha A] [--beta B] [...]\n\n"
    "The paper's Gaussian targeted attack (Eq 3, DESIGN 1.11): noise N(mu_x, sigma2 I) added to the image M that\n"
    "fools the net in expectation towards class J: minimise max_{i != J} E_i - E_J over -B <= mu_x <= B and\n"
    "0 < sigma2 <= S, E the analytic mean of the logits at M + x (the net linearized at M and split at the last\n"
    "ReLU), by NLopt's MMA on the epigraph form with the analytic gradients. Then verified by sampling: N draws\n"
    "of M + mu_x + sigma eps through the real net.\n"
    "  --image K       held-out digit K (the order of eval and moments --image)   --input x.npy  M itself\n"
    "  --target J      the class to reach (not M's label)\n"
    "  --beta B        default 30 (the paper's on MNIST, in the model's units)    --sigma2-max S  default 2\n"
    "  --relinearize R linearize again at M + mu_x every R evaluations (beyond the paper; default 0: once at M)\n"
    "  --max-iter N    evaluations of the moments at the most (default 300)\n"
    "  --margin G      stop once fooled in expectation by G logits (default 0.5)\n"
    "  --mc N          samples of the verification (default 10000; 1000 per attack in batch mode)   --seed S  (default 1)\n"
    "batch mode: --images K (the first K of the split, or with --spread K spread over it) or --image K, with\n"
    "--targets all: every image towards every class other than its label, on threads (OMP_NUM_THREADS; results do not\n"
    "depend on it), each verified by sampling; beside it the deterministic baseline at the same beta, projected\n"
    "gradient descent on the real net's logit margin (--pgd-steps N sign steps of 2.5 B / N, default 100; 0: none).\n"
    "Writes DIR/attacks.csv and DIR/pgd.csv (a row per attack: the JSON's scalar keys, and mc_argmax),\n"
    "DIR/summary.json and DIR/summary.md (success rates, mean |mu|_inf and |mu|_2, time per attack), and\n"
    "DIR/fig-attacks.png/.svg (the first image's attacks, or 8 images spread over the batch for sparse: the image, mu_x and\n"
    "the first 4 verification samples with the net's label of each).\n"
    "sparse: the paper's alpha%-pixel attack (Eq 4): mu_x non-zero only on a random A % of the inputs (drawn by\n"
    "--seed, fixed before optimising; default A = 4, B = 550), minimising E_c - max_{j != c} E_j for M's label c\n"
    "(the targeted attack towards each other class in the order of M's logits, until one fools).\n"
    "Writes DIR/mu.npy (the model's input shape) and DIR/attack.json (image, label, target, sigma2, beta, support,\n"
    "analytic_mean, mc_mean, mc_share_target, success: the Monte Carlo mean's argmax is J, iterations, time_s;\n"
    "sparse: alpha, and mc_share_not_label with success: the Monte Carlo mean's argmax is not c), and\n"
    "DIR/attack.png/.svg (the image, mu_x, and the first 4 verification samples with the net's label of each).\n"
    CLI_MODEL_HELP;


attack_args exp_attack_defaults(int sparse)
{
    nm_attack_options d = nm_attack_options_default();
    return (attack_args){.c = exp_image_defaults("test"), .image = -1, .mc = 10000, .pgd_steps = 100, .max_iter = d.max_iter, .target = -1,
                         .beta = sparse ? 550 : d.beta, .sigma2_max = d.sigma2_max, .margin = d.margin, .alpha = 4, .sparse = sparse};
}

static int parse(int argc, char **argv, attack_args *a)
{
    enum { O_INPUT = 1000, O_IMAGE, O_TARGET, O_TARGETS, O_PGD, O_BETA, O_S2, O_RELIN, O_ITER, O_MARGIN, O_MC, O_ALPHA, O_HELP };
    static const struct option opts[] = {EXP_IMAGE_OPTIONS,
                                         {"input", required_argument, 0, O_INPUT},
                                         {"image", required_argument, 0, O_IMAGE},
                                         {"target", required_argument, 0, O_TARGET},
                                         {"targets", required_argument, 0, O_TARGETS},
                                         {"pgd-steps", required_argument, 0, O_PGD},
                                         {"beta", required_argument, 0, O_BETA},
                                         {"sigma2-max", required_argument, 0, O_S2},
                                         {"relinearize", required_argument, 0, O_RELIN},
                                         {"max-iter", required_argument, 0, O_ITER},
                                         {"margin", required_argument, 0, O_MARGIN},
                                         {"mc", required_argument, 0, O_MC},
                                         {"alpha", required_argument, 0, O_ALPHA},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    *a = exp_attack_defaults(0);
    if (argc < 2 || (strcmp(argv[1], "targeted") && strcmp(argv[1], "sparse"))) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return fputs(help, stdout), -1;
        return cli_error("attack: the first argument must be targeted or sparse (netmoments attack --help)");
    }
    a->sparse = !strcmp(argv[1], "sparse");
    argc--, argv++;
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if (c == EO_IMAGES) a->batch = 1;
        int got = exp_image_option(c, optarg, &a->c);
        if (got < 0) return 1;
        if (got) continue;
        switch (c) {
        case O_INPUT: a->input = optarg; break;
        case O_IMAGE:
            if (!cli_parse_range(optarg, 0, INT64_MAX, &a->image)) return cli_error("--image: '%s' is not a non-negative integer", optarg);
            break;
        case O_TARGET:
            if (!cli_parse_range(optarg, 0, INT32_MAX, &a->target)) return cli_error("--target: '%s' is not a class index", optarg);
            break;
        case O_TARGETS:
            if (strcmp(optarg, "all")) return cli_error("--targets: '%s' is not 'all' (for one target, --target J)", optarg);
            a->all_targets = 1;
            break;
        case O_PGD:
            if (!cli_parse_range(optarg, 0, INT32_MAX, &a->pgd_steps)) return cli_error("--pgd-steps: '%s' is not an integer >= 0", optarg);
            break;
        case O_BETA:
            if (!cli_parse_double(optarg, &a->beta) || !(a->beta > 0) || !isfinite(a->beta)) return cli_error("--beta: '%s' is not a number > 0", optarg);
            a->beta_set = 1;
            break;
        case O_ALPHA:
            if (!cli_parse_double(optarg, &a->alpha) || !(a->alpha > 0 && a->alpha <= 100))
                return cli_error("--alpha: '%s' is not a percentage in (0, 100]", optarg);
            break;
        case O_S2:
            if (!cli_parse_double(optarg, &a->sigma2_max) || !(a->sigma2_max > 0) || !isfinite(a->sigma2_max))
                return cli_error("--sigma2-max: '%s' is not a number > 0", optarg);
            break;
        case O_MARGIN:
            if (!cli_parse_double(optarg, &a->margin) || !(a->margin >= 0) || !isfinite(a->margin)) return cli_error("--margin: '%s' is not a number >= 0", optarg);
            break;
        case O_RELIN:
            if (!cli_parse_range(optarg, 0, INT32_MAX, &a->relin)) return cli_error("--relinearize: '%s' is not an integer >= 0", optarg);
            break;
        case O_ITER:
            if (!cli_parse_range(optarg, 1, INT32_MAX, &a->max_iter)) return cli_error("--max-iter: '%s' is not an integer >= 1", optarg);
            break;
        case O_MC:
            if (!cli_parse_range(optarg, 1, INT64_MAX, &a->mc)) return cli_error("--mc: '%s' is not an integer >= 1", optarg);
            a->mc_set = 1;
            break;
        case O_HELP:
        case 'h': return fputs(help, stdout), -1;
        default: return cli_error("attack %s: unknown or incomplete option '%s' (netmoments attack --help)", a->sparse ? "sparse" : "targeted", cli_optname);
        }
    }
    if (optind < argc) return cli_error("attack %s: unexpected argument '%s'", a->sparse ? "sparse" : "targeted", argv[optind]);
    const char *cmd = a->sparse ? "attack sparse" : "attack targeted";
    if (a->all_targets && a->sparse) return cli_error("attack sparse: takes no --targets (it leaves the label for any class)");
    if (a->all_targets && a->target >= 0) return cli_error("attack targeted: give --target J or --targets all, not both");
    if (!a->sparse && a->batch && !a->all_targets) return cli_error("attack targeted: --images K needs --targets all (for one image, --image K --target J)");
    if (a->batch && a->image >= 0) return cli_error("%s: give one of --image and --images", cmd);
    if (a->all_targets && a->image >= 0) a->batch = 1; /* --image K --targets all: a batch of one image */
    if (a->batch && a->input) return cli_error("%s: --input attacks one image; batch mode takes --images K or --image K", cmd);
    if (!a->batch && (a->input != NULL) == (a->image >= 0)) return cli_error("%s: give exactly one of --input and --image (or --images K)", cmd);
    if (!a->sparse && !a->batch && a->target < 0) return cli_error("attack targeted: --target J (or --targets all) is required");
    if (a->sparse && a->target >= 0) return cli_error("attack sparse: takes no --target (it leaves the label for any class)");
    if (a->sparse && !a->beta_set) a->beta = 550; /* the paper's for Eq 4 on MNIST */
    if (a->batch && !a->mc_set) a->mc = 1000;
    if (!a->c.out) return cli_error("%s: --out DIR is required", cmd);
    return 0;
}

/* M: digit --image of the split, or --input (the model's n inputs, finite, within float32). */
static int load_image(nm_ctx *ctx, const attack_args *a, exp_images *im, float **M)
{
    if (!a->input) {
        if (exp_load_images(ctx, a->c.model, a->c.data, a->c.split, a->image + 1, 0, "attack", im)) return 1;
        if (im->count <= a->image)
            return cli_error("--image %lld: the %s split of %s has images 0..%lld", a->image, a->c.split, a->c.data, (long long)im->count - 1);
        *M = im->X + a->image * im->n;
        return 0;
    }
    memset(im, 0, sizeof *im);
    nm_status st = nm_net_read_onnx(ctx, a->c.model, &im->net);
    if (st != NM_OK) return cli_fail(ctx, st, "attack");
    nm_net_input_shape(im->net, &im->ndim, im->shape);
    im->shape[0] = 1, im->n = 1;
    for (int i = 1; i < im->ndim; i++) im->n *= im->shape[i];
    nm_array x;
    if ((st = nm_npy_read(ctx, a->input, &x)) != NM_OK) return cli_fail(ctx, st, "--input");
    int rc = cli_check_f32(&x, "--input", a->input);
    if (!rc && nm_array_numel(&x) != im->n)
        rc = cli_error("--input: %s has %lld values, the model takes %lld", a->input, (long long)nm_array_numel(&x), (long long)im->n);
    double *d = NULL;
    if (!rc && (st = nm_array_to_f64(ctx, &x, &d)) != NM_OK) rc = cli_fail(ctx, st, "--input");
    if (!rc && !(im->X = malloc((size_t)im->n * sizeof(float)))) rc = cli_error("attack: out of memory");
    for (int64_t k = 0; !rc && k < im->n; k++) im->X[k] = (float)d[k];
    nm_free(ctx, d);
    nm_array_free(ctx, &x);
    *M = im->X;
    return rc;
}

int attack_figure(nm_ctx *ctx, nm_net *net, const exp_images *im, const attack_args *a, const char *dir, const char *name, int rows,
                  const fig_row *row, const char *title)
{
    int64_t n = im->n, W = im->ndim >= 2 ? im->shape[im->ndim - 1] : n, H = im->ndim >= 3 ? im->shape[im->ndim - 2] : 1, hw = H * W;
    int cells = rows * FIG_COLS, rc = 0;
    nm_plot_image *pi = calloc((size_t)cells, sizeof *pi);
    double *pix = malloc((size_t)cells * (size_t)hw * sizeof(double));
    float *X = malloc((size_t)(FIG_SAMPLES * n) * sizeof(float));
    char (*titles)[64] = calloc((size_t)cells, sizeof *titles);
    int lab[FIG_SAMPLES];
    if (!pi || !pix || !X || !titles) rc = cli_error("attack: out of memory for the figure");
    for (int r = 0; !rc && r < rows; r++) {
        const fig_row *f = &row[r];
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t k = 0; k < hw; k++) lo = fmin(lo, f->M[k]), hi = fmax(hi, f->M[k]);
        nm_status st = nm_attack_samples(ctx, net, f->M, f->mu, f->sigma2, FIG_SAMPLES, a->c.seed, f->stream, X, lab);
        if (st != NM_OK) {
            rc = cli_fail(ctx, st, "attack: the figure's samples");
            break;
        }
        for (int col = 0; col < FIG_COLS; col++) {
            int i = r * FIG_COLS + col;
            const float *src = col == 0 ? f->M : col == 1 ? f->mu : X + (col - 2) * n;
            for (int64_t k = 0; k < hw; k++) pix[i * hw + k] = src[k]; /* the first channel */
            if (col >= 2) /* samples shown over the image's own range (the noise's outliers clipped for display) */
                for (int64_t k = 0; k < hw; k++) pix[i * hw + k] = fmin(hi, fmax(lo, pix[i * hw + k]));
            pi[i] = (nm_plot_image){titles[i], pix + i * hw, H, W, col == 1 ? a->beta : 0};
            if (col == 0 && f->image >= 0) snprintf(titles[i], sizeof titles[i], "image %lld: %d", f->image, f->label);
            else if (col == 0) snprintf(titles[i], sizeof titles[i], "the image: %d", f->label);
            else if (col == 1 && a->sparse) snprintf(titles[i], sizeof titles[i], "mu_x (sigma2 %.2g)", f->sigma2);
            else if (col == 1) snprintf(titles[i], sizeof titles[i], "mu_x -> %d (sigma2 %.2g)", f->target, f->sigma2);
            else snprintf(titles[i], sizeof titles[i], "sample: %d", lab[col - 2]);
        }
    }
    char png[4200], svg[4200], caption[300];
    snprintf(png, sizeof png, "%s/%s.png", dir, name), snprintf(svg, sizeof svg, "%s/%s.svg", dir, name);
    snprintf(caption, sizeof caption, "mu_x: blue -%g .. red +%g. Samples: the verification's first %d (shown within the image's range), the net's label",
             a->beta, a->beta, FIG_SAMPLES);
    nm_status st;
    if (!rc && (st = nm_plot_images(ctx, png, svg, cells, FIG_COLS, pi, title, caption)) != NM_OK) rc = cli_fail(ctx, st, "attack: the figure");
    free(pi), free(pix), free(X), free(titles);
    return rc;
}

static cJSON *json_vec(const double *x, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static int run(const attack_args *a, const char *dir)
{
    nm_ctx *ctx = cli_ctx_create();
    if (!ctx) return 1;
    exp_images im;
    float *M = NULL, *mu = NULL;
    double t0 = cli_now(), *mc_mean = NULL, share = 0;
    nm_attack_result r = {0};
    int rc = load_image(ctx, a, &im, &M);
    nm_attack_options o = nm_attack_options_default();
    o.target = (int)a->target, o.beta = a->beta, o.sigma2_max = a->sigma2_max, o.relinearize = (int)a->relin, o.max_iter = (int)a->max_iter;
    o.margin = a->margin;
    nm_status st;
    uint8_t *mask = NULL;
    if (!rc && a->sparse) {
        o.target = NM_ATTACK_UNTARGETED;
        if (!(mask = malloc((size_t)im.n))) rc = cli_error("attack: out of memory");
        else if ((st = nm_attack_support(ctx, im.n, a->alpha, a->c.seed, mask, NULL)) != NM_OK) rc = cli_fail(ctx, st, "attack sparse");
        o.support = mask;
    }
    if (!rc && (!(mu = malloc((size_t)im.n * sizeof(float))) || !(mc_mean = malloc(64 * sizeof(double)) )))
        rc = cli_error("attack: out of memory");
    if (!rc && (st = nm_attack_run(ctx, im.net, M, &o, mu, &r)) != NM_OK) rc = cli_fail(ctx, st, a->sparse ? "attack sparse" : "attack targeted");
    if (!rc && r.d > 64 && !(mc_mean = realloc(mc_mean, (size_t)r.d * sizeof(double)))) rc = cli_error("attack: out of memory");
    double t_attack = cli_elapsed(t0);
    /* sparse: the share classified as the label, turned into the share that leaves it */
    if (!rc && (st = nm_attack_verify(ctx, im.net, M, mu, r.sigma2, a->mc, a->c.seed, a->sparse ? r.label : r.target, mc_mean, &share)) != NM_OK)
        rc = cli_fail(ctx, st, "attack: the verification");
    if (!rc && a->sparse) share = 1 - share;
    if (!rc) {
        int arg = 0;
        for (int64_t i = 1; i < r.d; i++)
            if (mc_mean[i] > mc_mean[arg]) arg = (int)i;
        double li = 0, l2 = 0;
        for (int64_t k = 0; k < im.n; k++) li = fmax(li, fabs(mu[k])), l2 += (double)mu[k] * mu[k];
        char path[4200];
        snprintf(path, sizeof path, "%s/mu.npy", dir);
        nm_array mua = {NM_F32, im.ndim, {0}, mu};
        memcpy(mua.shape, im.shape, sizeof(int64_t) * (size_t)im.ndim);
        if ((st = nm_npy_write(ctx, path, &mua)) != NM_OK) rc = cli_fail(ctx, st, "attack targeted");
        cJSON *j = cJSON_CreateObject();
        if (a->image >= 0) cJSON_AddNumberToObject(j, "image", (double)a->image);
        else cJSON_AddStringToObject(j, "image", a->input);
        cJSON_AddNumberToObject(j, "label", r.label);
        if (!a->sparse) cJSON_AddNumberToObject(j, "target", r.target);
        else cJSON_AddNumberToObject(j, "alpha", a->alpha), cJSON_AddNumberToObject(j, "reached", r.target);
        cJSON_AddNumberToObject(j, "sigma2", r.sigma2);
        cJSON_AddNumberToObject(j, "beta", a->beta);
        cJSON_AddNumberToObject(j, "support", (double)r.support);
        cJSON_AddNumberToObject(j, "mu_linf", li);
        cJSON_AddNumberToObject(j, "mu_l2", sqrt(l2));
        cJSON_AddItemToObject(j, "analytic_mean", json_vec(r.analytic_mean, r.d));
        cJSON_AddBoolToObject(j, "fooled_analytic", r.fooled_analytic);
        cJSON_AddItemToObject(j, "mc_mean", json_vec(mc_mean, r.d));
        cJSON_AddNumberToObject(j, "mc", (double)a->mc);
        cJSON_AddNumberToObject(j, a->sparse ? "mc_share_not_label" : "mc_share_target", share);
        int success = a->sparse ? arg != r.label : arg == r.target;
        cJSON_AddBoolToObject(j, "success", success);
        cJSON_AddNumberToObject(j, "iterations", r.iterations);
        cJSON_AddNumberToObject(j, "relinearize", (double)a->relin);
        cJSON_AddNumberToObject(j, "time_s", t_attack);
        char *txt = cJSON_Print(j);
        FILE *f = rc ? NULL : exp_open(dir, "attack.json");
        if (!rc && !f) rc = 1;
        if (f) {
            fprintf(f, "%s\n", txt);
            if (fclose(f)) rc = cli_error("attack: writing attack.json failed");
        }
        free(txt);
        cJSON_Delete(j);
        fig_row fr = {M, mu, r.sigma2, r.label, r.target, a->image, 0};
        char title[200];
        if (a->sparse) snprintf(title, sizeof title, "%g%%-pixel attack (Eq 4), beta %g: %s", a->alpha, a->beta, success ? "success" : "failure");
        else snprintf(title, sizeof title, "Targeted attack (Eq 3), beta %g: %s", a->beta, success ? "success" : "failure");
        if (!rc) rc = attack_figure(ctx, im.net, &im, a, dir, "attack", 1, &fr, title);
        if (!rc)
            printf("attack %d -> %d: sigma2 %.4g, |mu|_inf %.3g, |mu|_2 %.4g, %d evaluations, %.2f s; analytic gap %.4g (%s in expectation);\n"
                   "verified by %lld samples: the Monte Carlo mean's argmax is %d (%s), %.1f %% of the samples are classified %s %d\n",
                   r.label, r.target, r.sigma2, li, sqrt(l2), r.iterations, t_attack, r.gap, r.fooled_analytic ? "fooled" : "not fooled", a->mc, arg,
                   success ? "success" : "failure", 100 * share, a->sparse ? "other than" : "as", a->sparse ? r.label : r.target);
    }
    nm_attack_result_free(ctx, &r);
    free(mu), free(mc_mean), free(mask);
    exp_images_free(ctx, &im);
    nm_ctx_free(ctx);
    return rc;
}

int exp_attack(const attack_args *a, const char *dir, FILE *report) { return a->batch ? attack_batch(a, dir, report) : run(a, dir); }

static int attack_fn(const void *a, const char *dir) { return exp_attack(a, dir, NULL); }

int cmd_attack(int argc, char **argv)
{
    attack_args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!(rc = exp_in_outdir(a.c.out, attack_fn, &a)))
        printf(!a.batch ? "wrote %s/{mu.npy,attack.json,attack.png,attack.svg}\n"
               : a.pgd_steps ? "wrote %s/{attacks.csv,pgd.csv,summary.json,summary.md,fig-attacks.png,fig-attacks.svg}\n"
                             : "wrote %s/{attacks.csv,summary.json,summary.md,fig-attacks.png,fig-attacks.svg}\n",
               a.c.out);
    return rc;
}
