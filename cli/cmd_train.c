/*
 * cmd_train.c — `netmoments train` (a fresh LeNet or MLP trained on MNIST
 * or Fashion-MNIST, written as ONNX with its input scale) and `netmoments
 * eval` (accuracy, per-class accuracy, confusion matrix). Training shows a
 * progress bar on a terminal and one line per epoch otherwise.
 */
#include "common.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char train_help[] =
    "usage: netmoments train [--arch lenet|lenet-small|mlp] [--data mnist|fashion-mnist] --out M.onnx\n"
    "                        [--epochs E] [--batch B] [--lr LR] [--opt adam|sgd] [--momentum M]\n"
    "                        [--weight-decay WD] [--constant-lr] [--augment K] [--augment-noise S --folds K]\n"
    "                        [--reg amr|var --reg-sigma2 S [--reg-lambda L] [--reg-depth D]]\n"
    "                        [--seed S] [--scale A,B]\n\n"
    "Trains a freshly initialized network by softmax cross-entropy on the training split,\n"
    "reports the accuracy on the held-out split, and writes the model as ONNX.\n"
    "  --arch          lenet (the paper's, default), lenet-small (Caffe's 20/50/500), mlp (784-1024-10)\n"
    "  --data          mnist (default: 8,004 train / 1,996 held-out digits) or fashion-mnist (60,000 / 10,000)\n"
    "  --epochs E      passes over the training set (default 10)\n"
    "  --batch B       samples per step (default 64)\n"
    "  --lr LR         learning rate (default 1e-3 for adam, 0.01 for sgd); decays on a half cosine\n"
    "  --constant-lr   keep the learning rate constant\n"
    "  --opt           adam (default) or sgd (with --momentum, default 0.9)\n"
    "  --weight-decay  L2 on weights, added to the gradient (default 0)\n"
    "  --augment K     random shifts of up to K pixels (default 0)\n"
    "  --augment-noise S  Gaussian noise augmentation: every image K times per step (--folds K, default 1),\n"
    "                  each copy plus N(0, S I) on the model's input scale (the baseline of moment-regularised training)\n"
    "  --reg amr       moment regulariser: + L x cross-entropy of the expected logits under N(x, S I), the noise's\n"
    "                  mean and variance carried through every layer (units as independent), differentiated exactly\n"
    "  --reg var       + L x the variance of the true-class margin z_y - z_j (j the clean runner-up) under N(x, S I)\n"
    "  --reg-sigma2 S  the regulariser's noise variance on the model's input scale (required with --reg)\n"
    "  --reg-lambda L  the regulariser's weight (default 1)\n"
    "  --reg-depth D   amr: carry the variance through the first D ReLUs only, the net above them on the means\n"
    "                  (1: AMR's first layer; default 0: to the logits)\n"
    "  --seed S        initialization, sample order and shifts (default 1)\n"
    "  --scale A,B     input scale x = A p + B for pixels p in [0, 1] (default 255,-127.5, the paper's)\n";

static const char eval_help[] =
    "usage: netmoments eval [--model M.onnx] [--data mnist|fashion-mnist] [--split test|train] [--json]\n\n"
    "Accuracy, per-class accuracy and confusion matrix (rows: true class, columns:\n"
    "predicted) of a model, with the input scale recorded in the model.\n"
    CLI_MODEL_HELP
    "  --data    mnist (default) or fashion-mnist\n"
    "  --split   test (default; MNIST: the 1,996 held-out digits) or train\n"
    "  --json    one JSON object on stdout\n";

typedef struct {
    int tty;
    double t0;
    int64_t batch;
} progress_state;

static void progress(void *user, const nm_train_progress *p)
{
    progress_state *ps = user;
    if (ps->tty) {
        int width = 30, filled = (int)(width * p->step / p->steps);
        fprintf(stderr, "\repoch %d/%d [%.*s%*s] %lld/%lld  loss %.4f  acc %.4f  lr %.2e ", p->epoch, p->epochs, filled,
                "##############################", width - filled, "", (long long)p->step, (long long)p->steps, p->loss,
                p->accuracy, p->lr);
        if (p->epoch_done) fprintf(stderr, "\n");
    } else if (p->epoch_done) {
        fprintf(stderr, "epoch %d/%d: loss %.4f, regulariser %.4f, training accuracy %.4f, lr %.2e, %.1f s\n", p->epoch, p->epochs,
                p->loss, p->reg_loss, p->accuracy, p->lr, cli_now() - ps->t0);
    }
}

/* Standard deviation of the training images in the input scale. */
static double input_std(const nm_dataset *ds, nm_scale sc)
{
    double s = 0, s2 = 0;
    int64_t n = ds->n * ds->rows * ds->cols;
    for (int64_t i = 0; i < n; i++) {
        double x = sc.a * (ds->pixels[i] / 255.0) + sc.b;
        s += x;
        s2 += x * x;
    }
    double var = s2 / (double)n - (s / (double)n) * (s / (double)n);
    return var > 0 ? sqrt(var) : 1.0;
}

static int parse_arch(const char *s, nm_arch *a)
{
    for (int i = 0; i < NM_ARCH_COUNT; i++)
        if (!strcmp(s, nm_arch_str((nm_arch)i))) {
            *a = (nm_arch)i;
            return 1;
        }
    return 0;
}

enum { O_ARCH = 1000, O_DATA, O_EPOCHS, O_BATCH, O_LR, O_OPT, O_MOM, O_WD, O_CONST, O_AUG, O_NOISE, O_FOLDS, O_REG, O_REG_S2, O_REG_L, O_REG_D, O_SEED, O_SCALE, O_OUT, O_HELP };

typedef struct {
    nm_train_options o;
    nm_arch arch;
    const char *data, *out;
    int lr_given;
} train_args;

/* One option of `train` into t; 0, 1 after printing why, −1 after --help. */
static int train_option(int c, const char *arg, const char *opt, train_args *t)
{
    nm_train_options *o = &t->o;
    long long v;
    switch (c) {
    case O_ARCH:
        return !parse_arch(arg, &t->arch) || t->arch == NM_ARCH_ALEXNET ? cli_error("--arch: '%s' is not lenet, lenet-small or mlp", arg) : 0;
    case O_DATA: t->data = arg; return 0;
    case O_EPOCHS:
        if (!cli_parse_int(arg, &v) || v < 1 || v > 100000) return cli_error("--epochs: '%s' is not a positive integer", arg);
        o->epochs = (int)v;
        return 0;
    case O_BATCH:
        if (!cli_parse_int(arg, &v) || v < 1 || v > 65536) return cli_error("--batch: '%s' is not an integer in 1..65536", arg);
        o->batch = v;
        return 0;
    case O_LR:
        t->lr_given = 1;
        return !cli_parse_double(arg, &o->lr) || !(o->lr > 0) ? cli_error("--lr: '%s' is not a positive number", arg) : 0;
    case O_OPT:
        if (!strcmp(arg, "adam")) o->opt = NM_OPT_ADAM;
        else if (!strcmp(arg, "sgd")) o->opt = NM_OPT_SGD;
        else return cli_error("--opt: '%s' is neither adam nor sgd", arg);
        return 0;
    case O_MOM:
        return !cli_parse_double(arg, &o->momentum) || o->momentum < 0 || o->momentum >= 1 ? cli_error("--momentum: '%s' is not in [0, 1)", arg) : 0;
    case O_WD:
        return !cli_parse_double(arg, &o->weight_decay) || o->weight_decay < 0
                   ? cli_error("--weight-decay: '%s' is not a non-negative number", arg) : 0;
    case O_CONST: o->cosine = 0; return 0;
    case O_AUG:
        if (!cli_parse_int(arg, &v) || v < 0 || v > 8) return cli_error("--augment: '%s' is not an integer in 0..8", arg);
        o->augment = (int)v;
        return 0;
    case O_NOISE:
        return !cli_parse_double(arg, &o->noise_sigma2) || !(o->noise_sigma2 >= 0) || !isfinite(o->noise_sigma2)
                   ? cli_error("--augment-noise: '%s' is not a finite variance >= 0", arg) : 0;
    case O_FOLDS:
        if (!cli_parse_int(arg, &v) || v < 1 || v > 64) return cli_error("--folds: '%s' is not an integer in 1..64", arg);
        o->folds = (int)v;
        return 0;
    case O_REG:
        if (!strcmp(arg, "amr")) o->reg = NM_REG_AMR;
        else if (!strcmp(arg, "var")) o->reg = NM_REG_VAR;
        else if (!strcmp(arg, "none")) o->reg = NM_REG_NONE;
        else return cli_error("--reg: '%s' is not amr, var or none", arg);
        return 0;
    case O_REG_S2:
        return !cli_parse_double(arg, &o->reg_sigma2) || !(o->reg_sigma2 > 0) || !isfinite(o->reg_sigma2)
                   ? cli_error("--reg-sigma2: '%s' is not a finite variance > 0", arg) : 0;
    case O_REG_L:
        return !cli_parse_double(arg, &o->reg_lambda) || !(o->reg_lambda >= 0) || !isfinite(o->reg_lambda)
                   ? cli_error("--reg-lambda: '%s' is not a finite weight >= 0", arg) : 0;
    case O_REG_D:
        if (!cli_parse_int(arg, &v) || v < 0 || v > 1000) return cli_error("--reg-depth: '%s' is not an integer in 0..1000", arg);
        o->reg_depth = (int)v;
        return 0;
    case O_SEED:
        return !cli_parse_seed(arg, &o->seed) ? cli_error("--seed: '%s' is not an integer in 0..2^64-1", arg) : 0;
    case O_SCALE: return sscanf(arg, "%lf,%lf", &o->scale.a, &o->scale.b) != 2 ? cli_error("--scale: '%s' is not A,B", arg) : 0;
    case O_OUT: t->out = arg; return 0;
    case CLI_OPT_MEM: return cli_set_mem(arg);
    case O_HELP:
    case 'h': fputs(train_help, stdout); return -1;
    default: return cli_error("train: unknown or incomplete option '%s' (netmoments train --help)", opt);
    }
}

/* Trains, evaluates on the held-out split and writes the model. */
static int train_run(nm_ctx *ctx, train_args *t, const nm_dataset *tr, const nm_dataset *te)
{
    nm_train_options *o = &t->o;
    nm_net *net = NULL;
    nm_status st = nm_net_create(ctx, t->arch, o->seed, input_std(tr, o->scale), &net);
    if (st != NM_OK) return cli_fail(ctx, st, "train");
    progress_state ps = {cli_show_progress(), cli_now(), o->batch};
    o->progress = progress;
    o->user = &ps;
    static const char *const reg_names[] = {"none", "amr", "var"};
    fprintf(stderr, "train: %s on %s, %lld images, %d epochs, batch %lld, %s lr %g%s, weight decay %g, augment %d, noise %g x %d folds, "
                    "regulariser %s (sigma2 %g, lambda %g, depth %d), seed %llu, %d threads\n",
            nm_arch_str(t->arch), t->data, (long long)tr->n, o->epochs, (long long)o->batch, o->opt == NM_OPT_ADAM ? "adam" : "sgd",
            o->lr, o->cosine ? " (cosine)" : "", o->weight_decay, o->augment, o->noise_sigma2, o->folds, reg_names[o->reg],
            o->reg_sigma2, o->reg_lambda, o->reg_depth, (unsigned long long)o->seed, cli_threads());
    st = nm_train(ctx, net, tr, o);
    double secs = cli_now() - ps.t0;
    nm_eval_result r;
    int rc = 0;
    if (st != NM_OK || (st = nm_evaluate(ctx, net, te, &r)) != NM_OK) {
        rc = cli_fail(ctx, st, "train");
    } else {
        printf("trained %s on %s in %.1f s (%.0f images/s); held-out accuracy %.4f (%lld/%lld)\n", nm_arch_str(t->arch), t->data,
               secs, (double)tr->n * o->epochs / secs, r.accuracy, (long long)r.correct, (long long)r.n);
        nm_eval_result_free(ctx, &r);
        if ((st = nm_net_write_onnx(ctx, net, t->out)) != NM_OK) rc = cli_fail(ctx, st, "train");
        else printf("wrote %s\n", t->out);
    }
    nm_net_free(ctx, net);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {CLI_MEM_OPTION, 
        {"arch", required_argument, 0, O_ARCH},   {"data", required_argument, 0, O_DATA},
        {"epochs", required_argument, 0, O_EPOCHS}, {"batch", required_argument, 0, O_BATCH},
        {"lr", required_argument, 0, O_LR},       {"opt", required_argument, 0, O_OPT},
        {"momentum", required_argument, 0, O_MOM}, {"weight-decay", required_argument, 0, O_WD},
        {"constant-lr", no_argument, 0, O_CONST}, {"augment", required_argument, 0, O_AUG},
        {"augment-noise", required_argument, 0, O_NOISE}, {"folds", required_argument, 0, O_FOLDS},
        {"reg", required_argument, 0, O_REG},     {"reg-sigma2", required_argument, 0, O_REG_S2},
        {"reg-lambda", required_argument, 0, O_REG_L},   {"reg-depth", required_argument, 0, O_REG_D},
        {"seed", required_argument, 0, O_SEED},   {"scale", required_argument, 0, O_SCALE},
        {"out", required_argument, 0, O_OUT},     {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    train_args t = {nm_train_options_default(), NM_ARCH_LENET, "mnist", NULL, 0};
    t.o.reg_lambda = 1;
    t.o.scale = (nm_scale){255.0, -127.5};
    int c, rc;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1)
        if ((rc = train_option(c, optarg, cli_optname, &t))) return rc < 0 ? 0 : rc;
    if (optind < argc) return cli_error("train: unexpected argument '%s'", argv[optind]);
    if (!t.out) return cli_error("train: --out M.onnx is required");
    if (t.o.reg && !(t.o.reg_sigma2 > 0)) return cli_error("train: --reg needs --reg-sigma2 S, the noise variance it regularises for");
    if (t.o.reg_depth && t.o.reg != NM_REG_AMR) return cli_error("train: --reg-depth applies to --reg amr");
    if (!t.lr_given && t.o.opt == NM_OPT_SGD) t.o.lr = 0.01;
    nm_ctx *ctx = cli_ctx_create();
    nm_dataset tr = {0}, te = {0};
    rc = cli_load_dataset(ctx, t.data, "train", &tr);
    if (!rc) rc = cli_load_dataset(ctx, t.data, "test", &te);
    if (!rc) rc = train_run(ctx, &t, &tr, &te);
    nm_dataset_free(ctx, &tr);
    nm_dataset_free(ctx, &te);
    nm_ctx_free(ctx);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    enum { O_MODEL = 2000, O_SPLIT, O_JSON }; /* with O_DATA and O_HELP of train's options */
    static const struct option opts[] = {CLI_MEM_OPTION, {"model", required_argument, 0, O_MODEL}, {"data", required_argument, 0, O_DATA},
                                         {"split", required_argument, 0, O_SPLIT}, {"json", no_argument, 0, O_JSON},
                                         {"help", no_argument, 0, O_HELP},         {0, 0, 0, 0}};
    const char *model = cli_default_model(), *data = "mnist", *split = "test";
    int json = 0, c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if (c == O_MODEL) model = optarg;
        else if (c == CLI_OPT_MEM) {
            if (cli_set_mem(optarg)) return 1;
        } else if (c == O_DATA) data = optarg;
        else if (c == O_SPLIT) split = optarg;
        else if (c == O_JSON) json = 1;
        else if (c == O_HELP || c == 'h') return fputs(eval_help, stdout), 0;
        else return cli_error("eval: unknown or incomplete option '%s' (netmoments eval --help)", cli_optname);
    }
    if (optind < argc) return cli_error("eval: unexpected argument '%s'", argv[optind]);
    nm_ctx *ctx = cli_ctx_create();
    nm_dataset ds = {0};
    nm_net *net = NULL;
    nm_eval_result r = {0};
    nm_status st;
    int rc = cli_load_dataset(ctx, data, split, &ds);
    if (!rc && (st = nm_net_read_onnx(ctx, model, &net)) != NM_OK) rc = cli_fail(ctx, st, "eval");
    if (!rc && (st = nm_evaluate(ctx, net, &ds, &r)) != NM_OK) rc = cli_fail(ctx, st, "eval");
    if (!rc && json) {
        cJSON *o = cJSON_CreateObject(), *pc = cJSON_CreateArray(), *cm = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "data", data);
        cJSON_AddStringToObject(o, "split", split);
        cJSON_AddNumberToObject(o, "n", (double)r.n);
        cJSON_AddNumberToObject(o, "accuracy", r.accuracy);
        for (int i = 0; i < r.classes; i++) {
            int64_t tot = 0;
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < r.classes; j++) {
                tot += r.confusion[i * r.classes + j];
                cJSON_AddItemToArray(row, cJSON_CreateNumber((double)r.confusion[i * r.classes + j]));
            }
            cJSON_AddItemToArray(pc, cJSON_CreateNumber(tot ? (double)r.confusion[i * r.classes + i] / (double)tot : 0));
            cJSON_AddItemToArray(cm, row);
        }
        cJSON_AddItemToObject(o, "per_class_accuracy", pc);
        cJSON_AddItemToObject(o, "confusion", cm);
        char *txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else if (!rc) {
        printf("%s on %s/%s: accuracy %.4f (%lld of %lld)\n\n", model, data, split, r.accuracy, (long long)r.correct, (long long)r.n);
        printf("class  accuracy     n   confusion (rows true, columns predicted)\n");
        for (int i = 0; i < r.classes; i++) {
            int64_t tot = 0;
            for (int j = 0; j < r.classes; j++) tot += r.confusion[i * r.classes + j];
            printf("%5d  %8.4f  %4lld  ", i, tot ? (double)r.confusion[i * r.classes + i] / (double)tot : 0.0, (long long)tot);
            for (int j = 0; j < r.classes; j++) printf("%5lld", (long long)r.confusion[i * r.classes + j]);
            printf("\n");
        }
    }
    nm_eval_result_free(ctx, &r);
    nm_net_free(ctx, net);
    nm_dataset_free(ctx, &ds);
    nm_ctx_free(ctx);
    return rc;
}
