/*
 * cmd_net.c — `netmoments info` (a model's nodes, shapes, parameters and the
 * ReLUs numbered as split points, DESIGN §1.6) and `netmoments forward` (run
 * a model on a batch of inputs from an NPY file, in chunks, with progress on
 * a terminal).
 */
#include "common.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char info_help[] =
    "usage: netmoments info [--model M.onnx] [--json]\n"
    "       netmoments info --ops        the ONNX ops the loader supports, on one line (netmoments ops: the table)\n\n"
    "Lists a model's nodes in topological order with their output shapes and\n"
    "parameter counts, numbers its split points 1.. (--split-relu of the moments\n"
    "commands: each ReLU, LeakyReLU, PReLU, Clip or HardSigmoid whose output alone\n"
    "feeds the rest), says when the net is not piecewise linear, and gives the\n"
    "input scale: the model sees x = a p + b for pixels p in [0, 1], with \"a b\"\n"
    "from the metadata key netmoments.input_scale (x = p when absent). The ops a\n"
    "model may use are listed by `netmoments ops`.\n"
    CLI_MODEL_HELP
    "  --json    one JSON object on stdout\n";

static const char forward_help[] =
    "usage: netmoments forward [--model M.onnx] --input x.npy --output y.npy [--logits] [--chunk B]\n\n"
    "Runs the model on every input along the first axis of x.npy (float32 or\n"
    "float64, in the model's input scale) and writes the outputs as float32.\n"
    "An x without the batch axis is read as a batch of one.\n"
    CLI_MODEL_HELP
    "  --logits   stop before a final Softmax/LogSoftmax (output the logits)\n"
    "  --chunk B  inputs per pass (default 1000)\n";


/* info --ops: the supported op types on one line (netmoments ops gives the table). */
static void print_op_names(void)
{
    for (int i = 0; nm_op_supported(i); i++) printf("%s%s", i ? " " : "", nm_op_supported(i));
    printf(" (and Constant)\n");
}

/* info's lines after the node table: parameters, split points, piecewise linearity, input scale. */
static void print_summary(const nm_net *net)
{
    int nr = nm_net_relu_count(net), nn = nm_net_node_count(net), logits = nm_net_logits_node(net);
    printf("\n%lld parameters; %d split point%s%s%s\n", (long long)nm_net_param_count(net), nr, nr == 1 ? "" : "s",
           nr ? " (ReLU-like activations for --split-relu; the paper splits at the last)"
              : " (no ReLU-like activation feeds the rest alone: the moments linearize the whole net at mu)",
           logits < nn - 1 ? "; moments are taken on the logits, before the final softmax" : "");
    if (!nm_net_piecewise_linear(net))
        printf("not piecewise linear: a smooth op or a product of varying values is below the logits, so the\n"
               "moments approximate below the split too (netmoments ops gives each op's role)\n");
    nm_scale sc = nm_net_get_input_scale(net);
    if (nm_net_get_meta(net, "netmoments.input_scale"))
        printf("input scale: x = %g p %+g for pixels p in [0, 1] (metadata netmoments.input_scale)\n", sc.a, sc.b);
    else
        printf("input scale: none recorded (x = p: --image feeds pixels in [0, 1])\n");
}

int cmd_info(int argc, char **argv)
{
    enum { O_MODEL = 1000, O_JSON, O_OPS, O_HELP };
    static const struct option opts[] = {CLI_MEM_OPTION, {"model", required_argument, 0, O_MODEL}, {"json", no_argument, 0, O_JSON},
                                         {"ops", no_argument, 0, O_OPS}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    const char *model = cli_default_model();
    int json = 0, c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if (c == O_MODEL) model = optarg;
        else if (c == CLI_OPT_MEM) {
            if (cli_set_mem(optarg)) return 1;
        } else if (c == O_JSON) json = 1;
        else if (c == O_OPS) return print_op_names(), 0;
        else if (c == O_HELP || c == 'h') return fputs(info_help, stdout), 0;
        else return cli_error("info: unknown or incomplete option '%s' (netmoments info --help)", cli_optname);
    }
    if (optind < argc) return cli_error("info: unexpected argument '%s'", argv[optind]);
    nm_ctx *ctx = cli_ctx_create();
    nm_net *net;
    nm_status st = nm_net_read_onnx(ctx, model, &net);
    if (st != NM_OK) {
        int rc = cli_fail(ctx, st, "info");
        nm_ctx_free(ctx);
        return rc;
    }
    int ndim, nn = nm_net_node_count(net), logits = nm_net_logits_node(net);
    int64_t in[NM_MAX_DIMS];
    nm_net_input_shape(net, &ndim, in);
    char buf[256];
    cJSON *root = json ? cJSON_CreateObject() : NULL, *jn = NULL;
    if (json) {
        cJSON_AddStringToObject(root, "model", model);
        cJSON *s = cJSON_AddArrayToObject(root, "input_shape");
        for (int i = 0; i < ndim; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)in[i]));
        cJSON_AddBoolToObject(root, "batchable", nm_net_batchable(net));
        cJSON_AddNumberToObject(root, "parameters", (double)nm_net_param_count(net));
        cJSON_AddNumberToObject(root, "relus", nm_net_relu_count(net));
        cJSON_AddBoolToObject(root, "piecewise_linear", nm_net_piecewise_linear(net));
        cJSON_AddNumberToObject(root, "logits_node", logits);
        jn = cJSON_AddArrayToObject(root, "nodes");
    } else {
        cli_shape_text(ndim, in, buf, sizeof buf);
        printf("model %s\ninput %s%s\n\n", model, buf,
               nm_net_batchable(net) ? ", any batch size"
                                     : ", no batch axis (the graph mixes values along the first axis: forward runs it whole,\n"
                                       "the moments need a batch axis)");
        printf("%4s  %-24s %-20s %-22s %10s  %s\n", "node", "name", "op", "output shape", "params", "split point");
    }
    for (int i = 0; i < nn; i++) {
        nm_node_info info;
        nm_net_node_info(ctx, net, i, &info);
        cli_shape_text(info.ndim, info.shape, buf, sizeof buf);
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", info.name);
            cJSON_AddStringToObject(o, "op", info.op);
            cJSON *s = cJSON_AddArrayToObject(o, "shape");
            for (int k = 0; k < info.ndim; k++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)info.shape[k]));
            cJSON_AddNumberToObject(o, "params", (double)info.params);
            if (info.relu_index) cJSON_AddNumberToObject(o, "relu", info.relu_index);
            cJSON_AddItemToArray(jn, o);
        } else {
            char split[40] = "";
            if (info.relu_index) snprintf(split, sizeof split, "ReLU %d", info.relu_index);
            if (i == logits && logits < nn - 1) snprintf(split, sizeof split, "logits");
            printf("%4d  %-24.24s %-20s %-22s %10lld  %s\n", i, info.name, info.op, buf, (long long)info.params, split);
        }
    }
    if (json) {
        char *txt = cJSON_PrintUnformatted(root);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(root);
    } else {
        print_summary(net);
    }
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return 0;
}

/* Runs nodes 0..last on every input along x's first axis, chunk at a time,
 * into *out (allocated from the first chunk's output shape). */
static int forward_chunks(nm_ctx *ctx, nm_net *net, int last, const nm_array *x, long long chunk, nm_array *out)
{
    int64_t n = x->ndim ? x->shape[0] : 0, per = n ? nm_array_numel(x) / n : 0, per_out = 0;
    size_t esize = x->dtype == NM_F64 ? 8 : 4;
    int tty = cli_show_progress();
    nm_array y = {0};
    for (int64_t first = 0; first < n; first += chunk) {
        int64_t b = n - first < chunk ? n - first : chunk;
        nm_array part = *x;
        part.shape[0] = b;
        part.data = (char *)x->data + (size_t)(first * per) * esize;
        nm_status st = nm_net_forward(ctx, net, 0, last, &part, &y);
        if (st == NM_OK && !out->data) { /* the first chunk tells the output's shape */
            int64_t shape[NM_MAX_DIMS];
            memcpy(shape, y.shape, sizeof shape);
            shape[0] = n;
            per_out = nm_array_numel(&y) / b;
            st = nm_array_alloc(ctx, out, NM_F32, y.ndim, shape);
        }
        if (st != NM_OK) {
            nm_array_free(ctx, &y);
            return cli_fail(ctx, st, "forward");
        }
        memcpy((float *)out->data + first * per_out, y.data, (size_t)(b * per_out) * sizeof(float));
        nm_array_free(ctx, &y);
        if (tty) fprintf(stderr, "\rforward: %lld / %lld", (long long)(first + b), (long long)n);
    }
    if (tty) fprintf(stderr, "\n");
    return 0;
}

int cmd_forward(int argc, char **argv)
{
    enum { O_MODEL = 1000, O_INPUT, O_OUTPUT, O_LOGITS, O_CHUNK, O_HELP };
    static const struct option opts[] = {CLI_MEM_OPTION, 
        {"model", required_argument, 0, O_MODEL}, {"input", required_argument, 0, O_INPUT},
        {"output", required_argument, 0, O_OUTPUT}, {"logits", no_argument, 0, O_LOGITS},
        {"chunk", required_argument, 0, O_CHUNK}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    const char *model = cli_default_model(), *input = NULL, *output = NULL;
    int logits = 0, c;
    long long chunk = 1000;
    optind = 1;
    while ((c = cli_getopt(argc, argv, opts)) != -1) {
        if (c == O_MODEL) model = optarg;
        else if (c == CLI_OPT_MEM) {
            if (cli_set_mem(optarg)) return 1;
        } else if (c == O_INPUT) input = optarg;
        else if (c == O_OUTPUT) output = optarg;
        else if (c == O_LOGITS) logits = 1;
        else if (c == O_CHUNK) {
            if (!cli_parse_int(optarg, &chunk) || chunk < 1) return cli_error("forward: --chunk needs a positive integer");
        } else if (c == O_HELP || c == 'h') return fputs(forward_help, stdout), 0;
        else return cli_error("forward: unknown or incomplete option '%s' (netmoments forward --help)", cli_optname);
    }
    if (optind < argc) return cli_error("forward: unexpected argument '%s'", argv[optind]);
    if (!input || !output) return cli_error("forward: --input and --output are required");
    nm_ctx *ctx = cli_ctx_create();
    nm_net *net = NULL;
    nm_array x = {0}, out = {0};
    double t0 = cli_now();
    nm_status st = nm_net_read_onnx(ctx, model, &net);
    if (st == NM_OK) st = nm_npy_read(ctx, input, &x);
    int rc = st != NM_OK ? cli_fail(ctx, st, "forward") : cli_check_f32(&x, "--input", input);
    if (!rc) {
        int ndim;
        int64_t in[NM_MAX_DIMS];
        nm_net_input_shape(net, &ndim, in);
        if (!nm_net_batchable(net)) { /* no batch axis: x is one input of exactly the model's shape */
            int same = x.ndim == ndim;
            for (int i = 0; same && i < ndim; i++) same = x.shape[i] == in[i];
            char want[256], got[256];
            cli_shape_text(ndim, in, want, sizeof want);
            cli_shape_text(x.ndim, x.shape, got, sizeof got);
            if (!same)
                rc = cli_error("forward: %s: the model has no batch axis and runs only on its input shape %s, not %s", input, want, got);
            else if ((st = nm_net_forward(ctx, net, 0, logits ? nm_net_logits_node(net) : nm_net_node_count(net) - 1, &x, &out)) != NM_OK)
                rc = cli_fail(ctx, st, "forward");
            x.ndim = 1, x.shape[0] = 1; /* one input, for the summary line */
        } else if (x.ndim == ndim - 1) { /* one input without its batch axis */
            memmove(x.shape + 1, x.shape, sizeof(int64_t) * (size_t)x.ndim);
            x.shape[0] = 1;
            x.ndim++;
        }
        if (nm_net_batchable(net)) rc = forward_chunks(ctx, net, logits ? nm_net_logits_node(net) : nm_net_node_count(net) - 1, &x, chunk, &out);
    }
    if (!rc && !out.data) rc = cli_error("forward: %s holds no inputs", input);
    if (!rc && (st = nm_npy_write(ctx, output, &out)) != NM_OK) rc = cli_fail(ctx, st, "forward");
    if (!rc) fprintf(stderr, "forward: %lld input(s) in %.3f s -> %s\n", (long long)x.shape[0], cli_now() - t0, output);
    nm_array_free(ctx, &x);
    nm_array_free(ctx, &out);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return rc;
}
