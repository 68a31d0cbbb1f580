/*
 * attack_batch.c — `attack targeted --targets all` and `attack sparse
 * --images K`: many attacks through nm_attack_batch, the PGD baseline
 * beside them, written as attacks.csv, pgd.csv, summary.json, summary.md
 * and the figure of the first image's attacks (or of images spread over the
 * batch for sparse).
 */
#include "attack.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_rows(FILE *f, const attack_args *a, const nm_attack_table *t, const int64_t *index, int pgd)
{
    fprintf(f, "image,label,%s,sigma2,beta,%ssupport,mu_linf,mu_l2,gap,fooled_analytic,mc,%s,mc_argmax,success,iterations,relinearize,time_s\n",
            a->sparse ? "reached" : "target", a->sparse ? "alpha," : "", a->sparse ? "mc_share_not_label" : "mc_share_target");
    for (int64_t i = 0; i < t->count; i++) {
        const nm_attack_row *r = &t->row[i];
        fprintf(f, "%lld,%d,%d,%.9g,%g,", (long long)index[r->image], r->label, r->target, r->sigma2, a->beta);
        if (a->sparse) fprintf(f, "%g,", a->alpha);
        fprintf(f, "%lld,%.6g,%.6g,%.6g,%d,%lld,%.6g,%d,%d,%d,%lld,%.4f\n", (long long)r->support, r->mu_linf, r->mu_l2, r->gap, r->fooled_analytic,
                pgd ? 0 : a->mc, r->mc_share, r->mc_argmax, r->success, r->iterations, pgd ? 0 : a->relin, cli_seconds(r->time_s));
    }
}

static cJSON *summary_json(const nm_attack_table *t)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "attacks", (double)t->count);
    cJSON_AddNumberToObject(j, "successes", (double)t->successes);
    cJSON_AddNumberToObject(j, "success_rate", (double)t->successes / (double)t->count);
    cJSON_AddNumberToObject(j, "mean_mu_linf", t->mean_linf);
    cJSON_AddNumberToObject(j, "mean_mu_l2", t->mean_l2);
    cJSON_AddNumberToObject(j, "time_per_attack_s", cli_seconds(t->mean_time_s));
    return j;
}

/* The batch's Markdown table: the Gaussian attack's verified success rate beside PGD's (p may be NULL). */
static void write_summary(FILE *f, const attack_args *a, int64_t count, const nm_attack_table *g, const nm_attack_table *p)
{
    fprintf(f, "| %s, beta %g%s, %lld image%s, %lld attacks | success (verified) | mean \\|mu\\|_inf | mean \\|mu\\|_2 | time per attack |\n"
               "|---|---|---|---|---|\n",
            a->sparse ? "alpha%-pixel attack (Eq 4)" : "targeted attack (Eq 3)", a->beta, a->sparse ? "" : ", every other class", (long long)count,
            count == 1 ? "" : "s", (long long)g->count);
    fprintf(f, "| Gaussian, %s, sigma2 <= %g, %lld samples each | %.2f %% | %.3g | %.4g | %.3f s |\n",
            a->relin ? "relinearized" : "linearized once at M", a->sigma2_max, a->mc, 100.0 * (double)g->successes / (double)g->count, g->mean_linf,
            g->mean_l2, cli_seconds(g->mean_time_s));
    if (p)
        fprintf(f, "| PGD on the real net's margin, %lld steps (deterministic) | %.2f %% | %.3g | %.4g | %.3f s |\n", a->pgd_steps,
                100.0 * (double)p->successes / (double)p->count, p->mean_linf, p->mean_l2, cli_seconds(p->mean_time_s));
    if (a->relin) fprintf(f, "\nRelinearized at M + mu_x every %lld evaluations.\n", a->relin);
    if (a->sparse) fprintf(f, "\nThe support: %g %% of the inputs, drawn by seed %llu, the same for every image.\n", a->alpha, (unsigned long long)a->c.seed);
}

int attack_batch(const attack_args *a, const char *dir, FILE *report)
{
    nm_ctx *ctx = cli_ctx_create();
    if (!ctx) return 1;
    exp_images im;
    const char *cmd = a->sparse ? "attack sparse" : "attack targeted";
    long long want = a->image >= 0 ? a->image + 1 : a->c.images;
    int rc = exp_load_images(ctx, a->c.model, a->c.data, a->c.split, want, a->image >= 0 ? 0 : a->c.spread, cmd, &im);
    if (!rc && a->image >= 0 && im.count <= a->image)
        rc = cli_error("--image %lld: the %s split of %s has images 0..%lld", a->image, a->c.split, a->c.data, (long long)im.count - 1);
    const float *X = NULL;
    int64_t count = 0;
    if (!rc) X = a->image >= 0 ? im.X + a->image * im.n : im.X, count = a->image >= 0 ? 1 : im.count;
    const int64_t *index = a->image >= 0 && !rc ? im.index + a->image : im.index;
    nm_attack_batch_options o = nm_attack_batch_options_default();
    o.attack.beta = a->beta, o.attack.sigma2_max = a->sigma2_max, o.attack.relinearize = (int)a->relin, o.attack.max_iter = (int)a->max_iter;
    o.attack.margin = a->margin;
    o.untargeted = a->sparse, o.pgd_steps = (int)a->pgd_steps, o.mc = a->mc, o.seed = a->c.seed, o.keep_mu = 1;
    uint8_t *mask = NULL;
    nm_status st;
    if (!rc && a->sparse) {
        if (!(mask = malloc((size_t)im.n))) rc = cli_error("attack: out of memory");
        else if ((st = nm_attack_support(ctx, im.n, a->alpha, a->c.seed, mask, NULL)) != NM_OK) rc = cli_fail(ctx, st, cmd);
        o.attack.support = mask;
    }
    nm_attack_table g = {0}, p = {0};
    double t0 = cli_now(), t_gauss = 0, t_pgd = 0;
    if (!rc) {
        cli_progress pg = cli_progress_make(cmd, "attacks");
        o.progress = cli_progress_print, o.user = &pg;
        if ((st = nm_attack_batch(ctx, im.net, X, count, &o, &g)) != NM_OK) rc = cli_fail(ctx, st, cmd);
        t_gauss = cli_elapsed(t0);
    }
    if (!rc && a->pgd_steps > 0) {
        cli_progress pg = cli_progress_make("PGD baseline", "attacks");
        o.progress = cli_progress_print, o.user = &pg, o.pgd = 1, o.keep_mu = 0;
        t0 = cli_now();
        if ((st = nm_attack_batch(ctx, im.net, X, count, &o, &p)) != NM_OK) rc = cli_fail(ctx, st, "the PGD baseline");
        t_pgd = cli_elapsed(t0);
    }
    FILE *fa = NULL, *fp = NULL, *fs = NULL, *fm = NULL;
    if (!rc && (!(fa = exp_open(dir, "attacks.csv")) || (a->pgd_steps > 0 && !(fp = exp_open(dir, "pgd.csv"))) || !(fs = exp_open(dir, "summary.json")) ||
                !(fm = exp_open(dir, "summary.md"))))
        rc = 1;
    if (!rc) {
        write_rows(fa, a, &g, index, 0);
        if (fp) write_rows(fp, a, &p, index, 1);
        cJSON *j = cJSON_CreateObject(), *jg = summary_json(&g), *jp = fp ? summary_json(&p) : NULL;
        cJSON_AddStringToObject(j, "attack", a->sparse ? "sparse" : "targeted");
        cJSON_AddNumberToObject(j, "images", (double)count);
        cJSON_AddNumberToObject(j, "beta", a->beta);
        if (a->sparse) cJSON_AddNumberToObject(j, "alpha", a->alpha);
        cJSON_AddNumberToObject(j, "sigma2_max", a->sigma2_max);
        cJSON_AddNumberToObject(j, "relinearize", (double)a->relin);
        cJSON_AddNumberToObject(j, "mc", (double)a->mc);
        cJSON_AddNumberToObject(jg, "wall_s", t_gauss);
        cJSON_AddItemToObject(j, "gaussian", jg);
        if (jp) {
            cJSON_AddNumberToObject(jp, "wall_s", t_pgd), cJSON_AddNumberToObject(jp, "steps", (double)a->pgd_steps);
            cJSON_AddItemToObject(j, "pgd", jp);
        }
        char *txt = cJSON_Print(j);
        fprintf(fs, "%s\n", txt);
        free(txt), cJSON_Delete(j);
        write_summary(fm, a, count, &g, fp ? &p : NULL);
        if (report) write_summary(report, a, count, &g, fp ? &p : NULL);
    }
    if (fa && fclose(fa)) rc = cli_error("%s: writing attacks.csv failed", cmd);
    if (fp && fclose(fp)) rc = cli_error("%s: writing pgd.csv failed", cmd);
    if (fs && fclose(fs)) rc = cli_error("%s: writing summary.json failed", cmd);
    if (fm && fclose(fm)) rc = cli_error("%s: writing summary.md failed", cmd);
    if (!rc) { /* the figure: the first image's attacks, or the first images' for sparse */
        int64_t want_rows = a->sparse ? 8 : g.d - 1;
        int rows = (int)(g.count < want_rows ? g.count : want_rows > 64 ? 64 : want_rows);
        fig_row fr[64];
        for (int r = 0; r < rows; r++) { /* sparse: rows spread over the batch (a split sorted by label shows its classes) */
            int64_t at = a->sparse ? r * g.count / rows : r;
            const nm_attack_row *w = &g.row[at];
            fr[r] = (fig_row){X + w->image * im.n, g.mu + at * im.n, w->sigma2, w->label, w->target, (long long)index[w->image], (uint64_t)at};
        }
        char title[200];
        char how[64] = "linearized once at M";
        if (a->relin) snprintf(how, sizeof how, "relinearized every %lld", a->relin);
        snprintf(title, sizeof title, "%s, beta %g, %s: %lld/%lld verified (%.1f %%)", a->sparse ? "alpha%-pixel attacks (Eq 4)" : "Targeted attacks (Eq 3)",
                 a->beta, how, (long long)g.successes, (long long)g.count, 100.0 * (double)g.successes / (double)g.count);
        rc = attack_figure(ctx, im.net, &im, a, dir, "fig-attacks", rows, fr, title);
    }
    if (!rc)
        printf("%s, beta %g: %lld image%s, %lld attacks\n  Gaussian (%s): %.2f %% verified by %lld samples each, mean |mu|_inf %.3g, |mu|_2 %.4g, %.3f s per attack\n",
               cmd, a->beta, (long long)count, count == 1 ? "" : "s", (long long)g.count, a->relin ? "relinearized" : "linearized once", 100.0 * (double)g.successes / (double)g.count,
               a->mc, g.mean_linf, g.mean_l2, cli_seconds(g.mean_time_s));
    if (!rc && a->pgd_steps > 0)
        printf("  PGD baseline (%lld steps): %.2f %%, mean |mu|_inf %.3g, |mu|_2 %.4g, %.3f s per attack\n", a->pgd_steps,
               100.0 * (double)p.successes / (double)p.count, p.mean_linf, p.mean_l2, cli_seconds(p.mean_time_s));
    nm_attack_table_free(ctx, &g), nm_attack_table_free(ctx, &p);
    free(mask);
    exp_images_free(ctx, &im);
    nm_ctx_free(ctx);
    return rc;
}

