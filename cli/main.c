/*
 * main.c — `netmoments <subcommand>`: dispatch by name, with --help.
 */
#include "common.h"
#include "ranks.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

#define CLI_COMMAND(name, fn, summary) int fn(int argc, char **argv);
#include "commands.h"
#undef CLI_COMMAND

static const subcommand subcommands[] = {
#define CLI_COMMAND(name, fn, summary) {name, fn, summary},
#include "commands.h"
#undef CLI_COMMAND
};

static void usage(FILE *f)
{
    fprintf(f, "usage: netmoments <subcommand> [options]   (netmoments <subcommand> --help)\n\n"
               "Analytic mean and variance of piecewise-linear networks under Gaussian input noise.\n\n"
               "subcommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-12s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\nEvery subcommand takes --mem GIB, the memory it may use (default: an eighth of this machine's, at least\n"
               "1 GiB; NETMOMENTS_MEM=GIB in the environment sets it too). Work that would need more is refused before\n"
               "it allocates, with the sizes in the message.\n");
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
        if (!strcmp(argv[1], subcommands[i].name)) {
            int idle = cli_ranks_start(argv[1]); /* under mpirun: every rank runs it, sharing the work */
            return cli_ranks_finish(idle ? 0 : subcommands[i].run(argc - 1, argv + 1));
        }
    return cli_error("unknown subcommand '%s' (netmoments --help lists them)", argv[1]);
}
