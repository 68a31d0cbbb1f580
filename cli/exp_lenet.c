/*
 * exp_lenet.c — the paper's experiments on the shipped LeNet and the
 * held-out digits: Table 1 (per logit, the mean and spread of the Monte
 * Carlo / analytic ratios over runs around random digits) and Table 3 (the
 * same ratios when each digit is linearized at a k-means centre or at its
 * cluster's farthest member), run through the library and written as CSV
 * and Markdown.
 */
#include "experiments.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Mean over the runs of a per-run share, in percent. */
static double mean_pct(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return 100 * s / (double)n;
}

/* ---------------------------------------------------------------- Table 1 */

/* The Markdown table into f; the CSV rows too when csv is not NULL. */
static void write_table1(FILE *f, FILE *csv, const exp_opts *e, const nm_tightness *t, double secs)
{
    fprintf(f, "Table 1 (%s noise, %lld runs around random held-out digits, %lld Monte Carlo samples each; "
               "ratio = Monte Carlo / analytic)\n\n", cli_regime_names[e->regime], e->runs, e->mc);
    fprintf(f, "| logit | E[Eratio] | σ(Eratio) | E[varratio] paper | σ(varratio) paper | E[varratio] exact | σ(varratio) exact "
               "| E[Eratio] propagate | σ(Eratio) propagate | E[varratio] propagate | σ(varratio) propagate |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|\n");
    double lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int64_t i = 0; i < t->d; i++) {
        nm_ratio_stats q[5] = {nm_ratio_over_runs(t->mc_mean, t->mean[NM_METHOD_EXACT], t->runs, t->d, i),
                               nm_ratio_over_runs(t->mc_var, t->var[NM_METHOD_PAPER], t->runs, t->d, i),
                               nm_ratio_over_runs(t->mc_var, t->var[NM_METHOD_EXACT], t->runs, t->d, i),
                               nm_ratio_over_runs(t->mc_mean, t->mean[NM_METHOD_PROPAGATE], t->runs, t->d, i),
                               nm_ratio_over_runs(t->mc_var, t->var[NM_METHOD_PROPAGATE], t->runs, t->d, i)};
        for (int k = 0; k < 3; k++) {
            double v = q[k < 2 ? k + 1 : 4].mean;
            lo[k] = fmin(lo[k], v), hi[k] = fmax(hi[k], v);
        }
        FILE *out[2] = {csv, f};
        for (int o = 0; o < 2; o++) {
            if (!out[o]) continue;
            fprintf(out[o], o ? "| %lld |" : "%lld", (long long)i);
            for (int k = 0; k < 5; k++) fprintf(out[o], o ? " %.4f | %.4f |" : ",%.6f,%.6f", q[k].mean, q[k].sd);
            fprintf(out[o], "\n");
        }
    }
    fprintf(f, "\nSpread of E[varratio] across logits (max / min): paper %.3f, exact %.3f, propagate %.3f. ReLU states the noise changes "
               "(mean over runs, first %d samples of each): %.2f %% below the split, %.2f %% above it. Time %.1f s.\n",
            hi[0] / lo[0], hi[1] / lo[1], hi[2] / lo[2], NM_RELU_CHANGE_SAMPLES, mean_pct(t->relu_bottom, t->runs), mean_pct(t->relu_top, t->runs),
            secs);
}

int exp_table1(const exp_opts *e, FILE *report)
{
    nm_ctx *ctx = cli_ctx_create();
    nm_dataset ds = {0};
    nm_net *net;
    nm_tightness t = {0};
    double t0 = cli_now();
    int rc = exp_load_digits_and_model(ctx, e->model, "tightness lenet", &ds, &net);
    if (!rc) {
        cli_progress pg = cli_progress_make("lenet", "runs");
        nm_tightness_options o = nm_tightness_options_default();
        o.runs = e->runs, o.mc = e->mc, o.max_var = cli_regime_var[e->regime], o.seed = (uint64_t)e->seed;
        o.progress = cli_progress_print, o.user = &pg;
        o.nmethods = 3, o.methods[2] = NM_METHOD_PROPAGATE; /* DESIGN §1.12, beside the linearized methods */
        nm_status st = nm_tightness_run(ctx, net, &ds, nm_net_get_input_scale(net), &o, &t);
        if (st != NM_OK) rc = cli_fail(ctx, st, "tightness lenet");
    }
    FILE *csv = NULL, *md = NULL;
    if (!rc && (!(csv = exp_open(e->out, "table1.csv")) || !(md = exp_open(e->out, "table1.md")))) rc = 1;
    if (!rc) {
        double secs = cli_elapsed(t0);
        fprintf(csv, "logit,E_Eratio,sd_Eratio,E_varratio_paper,sd_varratio_paper,E_varratio_exact,sd_varratio_exact,E_Eratio_propagate,"
                     "sd_Eratio_propagate,E_varratio_propagate,sd_varratio_propagate\n");
        write_table1(md, csv, e, &t, secs);
        write_table1(stdout, NULL, e, &t, secs);
        if (report) write_table1(report, NULL, e, &t, secs);
    }
    if (csv) fclose(csv);
    if (md) fclose(md);
    nm_tightness_free(ctx, &t);
    nm_net_free(ctx, net);
    nm_dataset_free(ctx, &ds);
    nm_ctx_free(ctx);
    return rc;
}

/* ---------------------------------------------------------------- Table 3 */

/* The k values of --k: counts, or percentages of the n digits. */
static int parse_k(const char *klist, int64_t n, nm_linpoints_options *o)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", klist);
    o->nk = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        double v;
        size_t len = strlen(tok);
        int pct = len && tok[len - 1] == '%';
        if (pct) tok[len - 1] = 0;
        if (!cli_parse_double(tok, &v) || !(v > 0) || o->nk == NM_LINPOINTS_MAX_K)
            return cli_error("--k: '%s' is not a positive count or percentage", tok);
        int64_t k = pct ? (int64_t)llround(v / 100.0 * (double)n) : (int64_t)v;
        if (k < 1 || k > n) return cli_error("--k: %lld clusters for %lld digits", (long long)k, (long long)n);
        o->k[o->nk++] = k;
    }
    return 0;
}

static void write_table3_csv(FILE *csv, const nm_linpoints *t)
{
    static const char *const point[2] = {"centre", "baseline"};
    fprintf(csv, "k,point,logit,E_Eratio,E_varratio_paper,E_varratio_exact,E_Eratio_propagate,E_varratio_propagate\n");
    for (int q = 0; q < t->rows; q++)
        for (int64_t i = 0; i < t->d; i++) {
            int64_t j = q * t->d + i;
            fprintf(csv, "%lld,%s,%lld,%.6f,%.6f,%.6f,", (long long)t->k[q], point[t->farthest[q]], (long long)i, t->e_ratio[j],
                    t->var_ratio[NM_METHOD_PAPER][j], t->var_ratio[NM_METHOD_EXACT][j]);
            if (t->prop_e_ratio) fprintf(csv, "%.6f,%.6f\n", t->prop_e_ratio[i], t->prop_var_ratio[i]); /* the same on every row */
            else fprintf(csv, ",\n");
        }
}

static void write_table3_md(FILE *md, const t3_args *a, const nm_linpoints *t)
{
    fprintf(md, "Table 3 (%lld held-out digits, %s noise, %lld Monte Carlo samples each; linearized at the nearest k-means "
                "centre%s; ratio = Monte Carlo / analytic)\n\n| logit |", (long long)t->images, cli_regime_names[a->e.regime], a->e.mc,
            a->baseline ? " or, for the baseline, at the cluster's farthest member" : "");
    for (int q = 0; q < t->rows; q++)
        fprintf(md, " k=%lld%s E[Eratio] | E[varratio] paper | E[varratio] exact |", (long long)t->k[q], t->farthest[q] ? " baseline" : "");
    fprintf(md, "\n|---|");
    for (int q = 0; q < t->rows; q++) fprintf(md, "---|---|---|");
    fprintf(md, "\n");
    for (int64_t i = 0; i < t->d; i++) {
        fprintf(md, "| %lld |", (long long)i);
        for (int q = 0; q < t->rows; q++) {
            int64_t j = q * t->d + i;
            fprintf(md, " %.4f | %.4f | %.4f |", t->e_ratio[j], t->var_ratio[NM_METHOD_PAPER][j], t->var_ratio[NM_METHOD_EXACT][j]);
        }
        fprintf(md, "\n");
    }
    fprintf(md, "\nReLU states below the split that the noise changes, against their states at the linearization point "
                "(mean over the digits, first %d samples of each):", NM_RELU_CHANGE_SAMPLES);
    for (int q = 0; q < t->rows; q++)
        fprintf(md, "%s k = %lld%s %.2f %%", q ? "," : "", (long long)t->k[q], t->farthest[q] ? " baseline" : "", 100 * t->relu_bottom[q]);
    fprintf(md, ".\n");
    if (!t->prop_e_ratio) return;
    fprintf(md, "\nMethod propagate on the same digits and Monte Carlo: it carries the Gaussian through every layer, so no "
                "linearization point (and no k) enters; what the clustered points lose against it is what the "
                "linearization at a shared point costs.\n\n| logit | propagate E[Eratio] | propagate E[varratio] |\n|---|---|---|\n");
    for (int64_t i = 0; i < t->d; i++) fprintf(md, "| %lld | %.4f | %.4f |\n", (long long)i, t->prop_e_ratio[i], t->prop_var_ratio[i]);
}

typedef struct {
    double t0;
} t3_progress;

static void t3_print(void *user, int64_t done, int64_t total)
{
    fprintf(stderr, "linpoints: %lld / %lld rows done in %.1f s\n", (long long)done, (long long)total, cli_now() - ((t3_progress *)user)->t0);
}

int exp_table3(const t3_args *a, FILE *report)
{
    nm_ctx *ctx = cli_ctx_create();
    nm_dataset ds = {0};
    nm_net *net;
    nm_linpoints t = {0};
    nm_linpoints_options o = nm_linpoints_options_default();
    t3_progress pg = {cli_now()};
    o.baseline = a->baseline, o.images = a->e.runs, o.mc = a->e.mc, o.max_var = cli_regime_var[a->e.regime];
    o.seed = (uint64_t)a->e.seed, o.progress = t3_print, o.user = &pg, o.propagate = a->propagate;
    int rc = exp_load_digits_and_model(ctx, a->e.model, "linpoints", &ds, &net);
    if (!rc) rc = parse_k(a->klist, ds.n, &o);
    nm_status st;
    if (!rc && (st = nm_linpoints_run(ctx, net, &ds, &o, &t)) != NM_OK) rc = cli_fail(ctx, st, "linpoints");
    FILE *csv = NULL, *md = NULL;
    if (!rc && (!(csv = exp_open(a->e.out, "table3.csv")) || !(md = exp_open(a->e.out, "table3.md")))) rc = 1;
    if (!rc) {
        write_table3_csv(csv, &t);
        write_table3_md(md, a, &t);
        if (report) write_table3_md(report, a, &t);
    }
    if (csv) fclose(csv);
    if (md) fclose(md);
    nm_linpoints_free(ctx, &t);
    nm_net_free(ctx, net);
    nm_dataset_free(ctx, &ds);
    nm_ctx_free(ctx);
    return rc;
}
