/*
 * main.c — `netmoments <subcommand>`: dispatch by name, with --help.
 */
#include "common.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"moments", cmd_moments, "the main job: mean and variance of a model's logits under Gaussian input noise"},
    {"ara", cmd_ara, "moments of an Affine-ReLU-Affine network (analytic, optionally Monte Carlo)"},
    {"ara-example", cmd_ara_example, "write a random ARA network and input mean as NPY files"},
    {"tightness", cmd_tightness, "the paper's tightness experiments: Fig 2 (synthetic nets) and Table 1 (LeNet)"},
    {"linpoints", cmd_linpoints, "the paper's Table 3: linearizing at k-means centres instead of at each digit"},
    {"reproduce", cmd_reproduce, "run Fig 2, Table 1 and Table 3 and write a report with the paper's numbers"},
    {"info", cmd_info, "a model's nodes, shapes, parameters and ReLU split points"},
    {"forward", cmd_forward, "run a model on a batch of inputs (NPY in, NPY out)"},
    {"train", cmd_train, "train a LeNet or MLP on MNIST or Fashion-MNIST and write it as ONNX"},
    {"eval", cmd_eval, "accuracy, per-class accuracy and confusion matrix of a model"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: netmoments <subcommand> [options]   (netmoments <subcommand> --help)\n\n"
               "Analytic mean and variance of piecewise-linear networks under Gaussian input noise.\n\n"
               "subcommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-12s %s\n", subcommands[i].name, subcommands[i].summary);
}

int main(int argc, char **argv)
{
    opterr = 0; /* subcommands report bad options themselves, in one line */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("netmoments %s\n", NM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    return cli_error("unknown subcommand '%s' (netmoments --help lists them)", argv[1]);
}
