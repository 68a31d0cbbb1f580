/*
 * exp_common.c — the experiment commands' shared option parsing, output
 * files and data loading (experiments.h).
 */
#include "experiments.h"
#include "outdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cli_regime_names[CLI_REGIMES] = {"low", "medium", "high"};
const double cli_regime_var[CLI_REGIMES] = {1e-4, 1.0, 200.0};

static int regime_of(const char *s)
{
    for (int i = 0; i < CLI_REGIMES; i++)
        if (!strcmp(s, cli_regime_names[i])) return i;
    return -1;
}

int exp_option(int c, const char *arg, long long min_runs, exp_opts *e)
{
    switch (c) {
    case CLI_OPT_MEM: return cli_set_mem(arg) ? -1 : 1;
    case O_MODEL: e->model = arg; return 1;
    case O_OUT: e->out = arg; return 1;
    case O_REGIME:
        if ((e->regime = regime_of(arg)) < 0) return cli_error("--regime: '%s' is not low, medium or high", arg), -1;
        return 1;
    case O_RUNS:
    case O_IMAGES:
        if (!cli_parse_range(arg, min_runs, INT64_MAX, &e->runs))
            return cli_error("--%s: '%s' is not an integer >= %lld", c == O_RUNS ? "runs" : "images", arg, min_runs), -1;
        return 1;
    case O_MC:
        if (!cli_parse_range(arg, 2, INT64_MAX, &e->mc)) return cli_error("--mc: '%s' is not an integer >= 2", arg), -1;
        return 1;
    case O_SEED:
        if (!cli_parse_seed(arg, &e->seed)) return cli_error("--seed: '%s' is not an integer in 0..2^64-1", arg), -1;
        return 1;
    default: return 0;
    }
}

int exp_staged(exp_opts *e, const char *cmd, int (*fn)(const void *args, FILE *report), const void *args, const char *wrote)
{
    if (!e->out) return cli_error("%s: --out DIR is required", cmd);
    cli_outdir od;
    if (cli_outdir_open(&od, e->out, "--out")) return 1;
    const char *dest = e->out;
    e->out = cli_outdir_stage(&od);
    int rc = fn(args, NULL);
    e->out = dest;
    if (rc) {
        cli_outdir_abort(&od);
        return rc;
    }
    if (!(rc = cli_outdir_commit(&od)) && wrote) printf("wrote %s%s\n", dest, wrote);
    return rc;
}

int exp_parse_list(const char *s, const char *what, int count, const char *(*name)(int), int *on)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    memset(on, 0, sizeof(int) * (size_t)count);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int k = -1;
        for (int i = 0; i < count; i++)
            if (!strcmp(tok, name(i))) k = i;
        if (k < 0) return cli_error("--%s: unknown '%s'", what, tok);
        on[k] = 1;
    }
    return 0;
}

FILE *exp_open(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) cli_error("cannot write %s", path);
    return f;
}

int exp_load_digits_and_model(nm_ctx *ctx, const char *model, const char *what, nm_dataset *ds, nm_net **net)
{
    *net = NULL;
    int rc = cli_load_dataset(ctx, "mnist", "test", ds);
    nm_status st;
    if (!rc && (st = nm_net_read_onnx(ctx, model, net)) != NM_OK) rc = cli_fail(ctx, st, what);
    return rc;
}

int exp_parse_images(const char *arg, long long *out)
{
    if (!strcmp(arg, "all")) return *out = 0, 0;
    if (!cli_parse_range(arg, 1, INT64_MAX, out)) return cli_error("--images: '%s' is neither a count >= 1 nor all", arg);
    return 0;
}

int exp_load_images(nm_ctx *ctx, const char *model, const char *data, const char *split, long long images, int spread, const char *what,
                    exp_images *out)
{
    memset(out, 0, sizeof *out);
    int rc = cli_load_dataset(ctx, data, split, &out->ds);
    nm_status st;
    if (!rc && (st = nm_net_read_onnx(ctx, model, &out->net)) != NM_OK) rc = cli_fail(ctx, st, what);
    if (!rc) {
        int64_t shape[NM_MAX_DIMS];
        nm_net_input_shape(out->net, &out->ndim, shape);
        memcpy(out->shape, shape, sizeof shape);
        out->shape[0] = 1;
        out->n = 1;
        for (int i = 1; i < out->ndim; i++) out->n *= shape[i];
        if (out->n != out->ds.rows * out->ds.cols)
            rc = cli_error("%s: the model takes %lld inputs per sample, the images have %lld pixels", what, (long long)out->n,
                           (long long)(out->ds.rows * out->ds.cols));
    }
    out->count = images && images < out->ds.n ? images : out->ds.n;
    if (!rc && (!(out->X = malloc((size_t)(out->count * out->n) * sizeof(float))) || !(out->index = malloc((size_t)out->count * sizeof(int64_t))) ||
                !(out->labels = malloc((size_t)out->count))))
        rc = cli_error("%s: out of memory for %lld images", what, (long long)out->count);
    for (int64_t i = 0; !rc && i < out->count; i++) { /* the first K, or K spread evenly over the split */
        out->index[i] = spread ? (int64_t)((double)i * (double)out->ds.n / (double)out->count) : i;
        out->labels[i] = out->ds.labels[out->index[i]];
    }
    if (!rc && (st = nm_dataset_images(ctx, &out->ds, out->index, out->count, nm_net_get_input_scale(out->net), out->X)) != NM_OK)
        rc = cli_fail(ctx, st, what);
    return rc;
}

void exp_images_free(nm_ctx *ctx, exp_images *im)
{
    free(im->X), free(im->index), free(im->labels);
    nm_net_free(ctx, im->net);
    nm_dataset_free(ctx, &im->ds);
    memset(im, 0, sizeof *im);
}

exp_image_args exp_image_defaults(const char *split)
{
    return (exp_image_args){.model = cli_default_model(), .data = "mnist", .split = split, .seed = 1};
}

int exp_image_option(int c, const char *arg, exp_image_args *a)
{
    switch (c) {
    case CLI_OPT_MEM: return cli_set_mem(arg) ? -1 : 1;
    case EO_MODEL: a->model = arg; return 1;
    case EO_DATA: a->data = arg; return 1;
    case EO_SPLIT: a->split = arg; return 1;
    case EO_OUT: a->out = arg; return 1;
    case EO_SPREAD: a->spread = 1; return 1;
    case EO_IMAGES: return exp_parse_images(arg, &a->images) ? -1 : 1;
    case EO_SEED:
        if (!cli_parse_seed(arg, &a->seed)) return cli_error("--seed: '%s' is not an integer in 0..2^64-1", arg), -1;
        return 1;
    default: return 0;
    }
}

int exp_in_outdir(const char *out, int (*fn)(const void *args, const char *dir), const void *args)
{
    cli_outdir od;
    if (cli_outdir_open(&od, out, "--out")) return 1;
    int rc = fn(args, cli_outdir_stage(&od));
    if (rc) {
        cli_outdir_abort(&od);
        return rc;
    }
    return cli_outdir_commit(&od);
}
