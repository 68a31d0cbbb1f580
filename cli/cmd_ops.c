/*
 * cmd_ops.c — `netmoments ops`: the table of the ONNX ops the loader
 * supports, with what each is to the moments (DESIGN §1.6) and the
 * attributes it reads, as text or JSON.
 */
#include "common.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: netmoments ops [--json]\n\n"
    "The ONNX ops the loader supports (opsets 7-17; Constant nodes become constants at load), with\n"
    "their input counts, what each is to the moments, and the attributes each reads. A model with\n"
    "an op or attribute outside this table is refused with every one of them named.\n"
    "  linear                          the moments pass through it exactly\n"
    "  piecewise linear, a split point ReLU and its kin: the net may be split there (--split-relu);\n"
    "                                  elsewhere its kinks are frozen at the linearization point\n"
    "  piecewise linear, argmax frozen max pools: the linearization keeps the primal's argmax\n"
    "  smooth, linearized by its derivative\n"
    "                                  the moments are then an approximation below the split too\n"
    "  linear in each operand, smooth when both vary\n"
    "                                  Mul (Div: smooth in its denominator), by the product rule\n"
    "  folded at load                  evaluated once at load on constants (shape chains)\n"
    "  final node only                 Softmax, LogSoftmax: the moments are those of the logits\n"
    "  --json   one JSON array on stdout\n";

static void attr_list(const nm_op_info *o, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < o->nattrs && k < len; i++) k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? ", " : "", o->attrs[i]);
}

static int print_json(void)
{
    cJSON *arr = cJSON_CreateArray();
    nm_op_info o;
    for (int i = 0; nm_op_describe(i, &o); i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "op", o.name);
        cJSON_AddNumberToObject(j, "min_inputs", o.min_inputs);
        cJSON_AddNumberToObject(j, "max_inputs", o.max_inputs);
        cJSON_AddStringToObject(j, "role", o.role);
        cJSON *a = cJSON_AddArrayToObject(j, "attributes");
        for (int k = 0; k < o.nattrs; k++) cJSON_AddItemToArray(a, cJSON_CreateString(o.attrs[k]));
        cJSON_AddItemToArray(arr, j);
    }
    char *txt = cJSON_PrintUnformatted(arr);
    int rc = txt ? (puts(txt), 0) : cli_error("ops: out of memory");
    free(txt);
    cJSON_Delete(arr);
    return rc;
}

int cmd_ops(int argc, char **argv)
{
    enum { O_JSON = 1000, O_HELP };
    static const struct option opts[] = {{"json", no_argument, 0, O_JSON}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    int json = 0, c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if (c == O_JSON) json = 1;
        else if (c == O_HELP || c == 'h') return fputs(help, stdout), 0;
        else return cli_error("ops: unknown or incomplete option '%s' (netmoments ops --help)", cli_optname);
    }
    if (optind < argc) return cli_error("ops: unexpected argument '%s'", argv[optind]);
    if (json) return print_json();
    nm_op_info o;
    char inputs[32], attrs[512];
    int n = 0;
    printf("%-19s %-7s %-51s %s\n", "op", "inputs", "role", "attributes");
    for (; nm_op_describe(n, &o); n++) {
        if (o.min_inputs == o.max_inputs) snprintf(inputs, sizeof inputs, "%d", o.min_inputs);
        else snprintf(inputs, sizeof inputs, "%d-%d", o.min_inputs, o.max_inputs);
        attr_list(&o, attrs, sizeof attrs);
        printf("%-19s %-7s %-51s %s\n", o.name, inputs, o.role, attrs);
    }
    printf("%d op types, and Constant (netmoments ops --help explains the roles)\n", n);
    return 0;
}
