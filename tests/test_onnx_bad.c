/*
 * test_onnx_bad.c — the ONNX loader and the passes on bad input. Starting
 * from a valid exported model: every truncation (all refused but the one
 * that drops exactly the trailing metadata), random bytes, an input
 * shape the weights do not fit, a missing initializer, absurd dimensions
 * (2^40 elements, refused before allocating), NaN weights, an unsupported
 * op and attribute (the message names node, op and attribute), a Softmax
 * that is not last, and an allocation failure at each allocation point of
 * loading. Then the passes: NaN input, wrong shapes, jvp without a primal,
 * ranges out of bounds. Each gives its status and a message, never a crash.
 */
#include "netbuild.h"
#include "check.h"
#include "onnx.pb-c.h"

#include <dirent.h>

static uint8_t *model;
static size_t model_len;

/* A small conv net, saved and read back into memory. */
static nm_net *make_net(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 1, 8, 8), &x);
    int y = conv(net, x, 1, 2, 3, 1, 1);
    y = NODE(net, NM_OP_RELU, NULL, pool(net, y, 2, 2));
    y = NODE(net, NM_OP_FLATTEN, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 32, 6));
    finish(net, linear(net, y, 6, 3));
    return net;
}

/* Loads bytes; expects status want (or any failure when want = 1) and a message. */
static void expect(const char *what, const uint8_t *buf, size_t len, int want, const char *needle)
{
    nm_net *net = NULL;
    nm_status st = nm_net_read_onnx_memory(ctx, buf, len, &net);
    char w[600];
    snprintf(w, sizeof w, "%s: status %s (%s)", what, nm_status_str(st), nm_ctx_message(ctx));
    if (want == 1) check_true(w, st != NM_OK && net == NULL && *nm_ctx_message(ctx));
    else check_true(w, st == (nm_status)want);
    if (needle) {
        snprintf(w, sizeof w, "%s: message '%s' names '%s'", what, nm_ctx_message(ctx), needle);
        check_true(w, strstr(nm_ctx_message(ctx), needle) != NULL);
    }
    nm_net_free(ctx, net);
}

static Onnx__ModelProto *unpack(void)
{
    return onnx__model_proto__unpack(NULL, model_len, model);
}

/* Packs m, loads it and checks the result. */
static void expect_model(const char *what, Onnx__ModelProto *m, int want, const char *needle)
{
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    uint8_t *b = malloc(n);
    protobuf_c_message_pack(&m->base, b);
    expect(what, b, n, want, needle);
    free(b);
}

static Onnx__TensorProto *initializer(Onnx__ModelProto *m, const char *op_type, int input)
{
    Onnx__GraphProto *g = m->graph;
    for (size_t k = 0; k < g->n_node; k++)
        if (strcmp(g->node[k]->op_type, op_type) == 0)
            for (size_t i = 0; i < g->n_initializer; i++)
                if (strcmp(g->initializer[i]->name, g->node[k]->input[input]) == 0) return g->initializer[i];
    return NULL;
}

static void file_cases(void)
{
    /* every strict prefix */
    /* The metadata field comes last, so the one cut just before it is a
     * valid model without metadata; every other cut must be refused. */
    int bad = 0, whole_without_meta = 0;
    for (size_t len = 0; len < model_len; len++) {
        nm_net *net = NULL;
        nm_status st = nm_net_read_onnx_memory(ctx, model, len, &net);
        bad += st != NM_OK && net == NULL && *nm_ctx_message(ctx);
        if (st == NM_OK) whole_without_meta += nm_net_get_meta(net, "netmoments.input_scale") == NULL;
        nm_net_free(ctx, net);
    }
    char w[200];
    snprintf(w, sizeof w, "%zu truncations: %d refused, %d loaded without the trailing metadata", model_len, bad,
             whole_without_meta);
    check_true(w, bad == (int)model_len - 1 && whole_without_meta == 1);
    /* random bytes, and the model with random bytes flipped */
    uint8_t *buf = malloc(model_len);
    for (int r = 0; r < 300; r++) {
        size_t len = (size_t)(urand() * 4096);
        uint8_t *rb = malloc(len + 1);
        for (size_t i = 0; i < len; i++) rb[i] = (uint8_t)(urand() * 256);
        expect("random bytes", rb, len, 1, NULL);
        free(rb);
        memcpy(buf, model, model_len);
        for (int f = 0; f < 4; f++) buf[(size_t)(urand() * (double)model_len)] ^= (uint8_t)(1 + urand() * 255);
        nm_net *net = NULL;
        nm_status st = nm_net_read_onnx_memory(ctx, buf, model_len, &net); /* may load: only no crash is asked */
        check_true("flipped bytes: a status", st == NM_OK || *nm_ctx_message(ctx));
        nm_net_free(ctx, net);
    }
    free(buf);

    Onnx__ModelProto *m = unpack();
    /* an input shape the conv weights do not fit: 3 channels for 1 */
    Onnx__TensorShapeProto *sh = m->graph->input[0]->type->tensor_type->shape;
    int64_t saved = sh->dim[1]->dim_value;
    sh->dim[1]->dim_value = 3;
    expect_model("inconsistent shapes", m, NM_ERR_SHAPE, "Conv");
    sh->dim[1]->dim_value = (int64_t)1 << 40;
    /* NM_ERR_FORMAT rather than NM_ERR_NOMEM: refused before any 4 TB allocation */
    expect_model("2^40-element input", m, NM_ERR_FORMAT, "2^40");
    sh->dim[1]->dim_value = saved;

    /* a missing initializer */
    Onnx__GraphProto *g = m->graph;
    size_t ninit = g->n_initializer;
    Onnx__TensorProto *first = g->initializer[0];
    g->initializer[0] = g->initializer[ninit - 1];
    g->n_initializer = ninit - 1;
    expect_model("missing initializer", m, NM_ERR_FORMAT, "not defined");
    g->initializer[ninit - 1] = g->initializer[0];
    g->initializer[0] = first;
    g->n_initializer = ninit;

    /* absurd initializer dims, with the data left as it was */
    Onnx__TensorProto *wt = initializer(m, "Conv", 1);
    int64_t big[2] = {(int64_t)1 << 20, (int64_t)1 << 20}, *dims = wt->dims;
    size_t nd = wt->n_dims;
    wt->dims = big;
    wt->n_dims = 2;
    expect_model("2^40-element initializer", m, NM_ERR_FORMAT, "1099511627776 elements");
    wt->dims = dims;
    wt->n_dims = nd;

    /* NaN in a weight */
    float keep;
    memcpy(&keep, wt->raw_data.data, 4);
    float nan = NAN;
    memcpy(wt->raw_data.data, &nan, 4);
    expect_model("NaN weight", m, NM_ERR_NONFINITE, "non-finite");
    memcpy(wt->raw_data.data, &keep, 4);

    /* an unsupported op, and an unsupported attribute */
    Onnx__NodeProto *relu = NULL, *cv = NULL;
    for (size_t k = 0; k < g->n_node; k++) {
        if (!relu && strcmp(g->node[k]->op_type, "Relu") == 0) relu = g->node[k];
        if (!cv && strcmp(g->node[k]->op_type, "Conv") == 0) cv = g->node[k];
    }
    char *op = relu->op_type;
    relu->op_type = "LSTM";
    expect_model("unsupported op", m, NM_ERR_UNSUPPORTED, "LSTM (x1)");
    relu->op_type = op;
    Onnx__AttributeProto foo = ONNX__ATTRIBUTE_PROTO__INIT, **attrs = cv->attribute, *more[16];
    foo.name = "foo";
    foo.has_type = 1;
    foo.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    foo.has_i = 1;
    size_t na = cv->n_attribute;
    memcpy(more, attrs, na * sizeof *more);
    more[na] = &foo;
    cv->attribute = more;
    cv->n_attribute = na + 1;
    char needle[300];
    snprintf(needle, sizeof needle, "Conv.foo (node '%s')", cv->name);
    expect_model("unsupported attribute", m, NM_ERR_UNSUPPORTED, needle);
    /* every problem at once (issue 13: only the first was named): two unsupported op types and the attribute */
    Onnx__NodeProto *relu2 = NULL;
    for (size_t k = 0; k < g->n_node; k++)
        if (strcmp(g->node[k]->op_type, "Relu") == 0 && g->node[k] != relu) relu2 = g->node[k];
    char *op2 = relu2 ? relu2->op_type : NULL;
    relu->op_type = "LSTM";
    if (relu2) relu2->op_type = "Einsum";
    expect_model("every problem at once: the first op", m, NM_ERR_UNSUPPORTED, "LSTM (x1)");
    expect_model("every problem at once: the second op", m, NM_ERR_UNSUPPORTED, "Einsum (x1)");
    expect_model("every problem at once: the attribute", m, NM_ERR_UNSUPPORTED, needle);
    relu->op_type = op;
    if (relu2) relu2->op_type = op2;
    cv->attribute = attrs;
    cv->n_attribute = na;

    /* Softmax before the end: put one in place of the first Relu */
    relu->op_type = "Softmax";
    expect_model("Softmax not last", m, NM_ERR_UNSUPPORTED, "only as the final node");
    relu->op_type = op;
    onnx__model_proto__free_unpacked(m, NULL);

    /* allocation failure at each allocation point of loading */
    nm_ctx_fail_alloc_after(ctx, 0);
    int points = 0, nomem = 0;
    for (long k = 1; k < 100000; k++) {
        nm_ctx_fail_alloc_after(ctx, k);
        nm_net *net = NULL;
        nm_status st = nm_net_read_onnx_memory(ctx, model, model_len, &net);
        nm_ctx_fail_alloc_after(ctx, 0);
        nm_net_free(ctx, net);
        if (st == NM_OK) break;
        points++;
        nomem += st == NM_ERR_NOMEM;
    }
    snprintf(needle, sizeof needle, "allocation failure at each of %d points gives NM_ERR_NOMEM (%d did)", points, nomem);
    check_true(needle, points > 10 && nomem == points);
    printf("  %zu truncations, 300 random and 300 corrupted buffers, %d allocation points\n", model_len, points);
}

/* Inputs the fuzzer once crashed on (tests/fuzz_regressions): each must
 * give a status and a message now. */
static void fuzz_regressions(void)
{
    DIR *d = opendir("tests/fuzz_regressions");
    if (!check_true("tests/fuzz_regressions is readable (run from the source tree)", d != NULL)) return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[600];
        snprintf(path, sizeof path, "tests/fuzz_regressions/%s", e->d_name);
        uint8_t *b;
        size_t len;
        if (nm_read_file(ctx, path, 1 << 24, &b, &len) != NM_OK) continue;
        nm_net *net = NULL;
        nm_status st = nm_net_read_onnx_memory(ctx, b, len, &net);
        check_true(path, st != NM_OK && *nm_ctx_message(ctx));
        nm_net_free(ctx, net);
        nm_free(ctx, b);
        n++;
    }
    closedir(d);
    printf("  %d fuzzer regression inputs refused with a message\n", n);
}

static void pass_cases(void)
{
    nm_net *net = make_net();
    nm_shape s = net->v[net->input].shape;
    int64_t n = nm_shape_numel(&s);
    float *x = calloc((size_t)n * 2, sizeof(float));
    nm_array xa = {NM_F32, 4, {1, 1, 8, 8}, x}, y;
    nm_status st = nm_net_jvp(ctx, net, 0, -1, &xa, &y);
    check_true("jvp before any forward: NM_ERR_ARG", st == NM_ERR_ARG && strstr(nm_ctx_message(ctx), "forward"));
    x[5] = NAN;
    check_true("NaN input: NM_ERR_NONFINITE", nm_net_forward(ctx, net, 0, -1, &xa, &y) == NM_ERR_NONFINITE);
    x[5] = 0;
    nm_array wrong = {NM_F32, 4, {1, 1, 8, 7}, x};
    st = nm_net_forward(ctx, net, 0, -1, &wrong, &y);
    check_true("wrong input shape: NM_ERR_SHAPE", st == NM_ERR_SHAPE && strstr(nm_ctx_message(ctx), "(1, 1, 8, 7)"));
    nm_array three = {NM_F32, 3, {1, 8, 8}, x};
    check_true("wrong input rank: NM_ERR_SHAPE", nm_net_forward(ctx, net, 0, -1, &three, &y) == NM_ERR_SHAPE);
    check_true("range past the end: NM_ERR_ARG", nm_net_forward(ctx, net, 0, net->nn, &xa, &y) == NM_ERR_ARG);
    check_true("empty range: NM_ERR_ARG", nm_net_forward(ctx, net, 3, 2, &xa, &y) == NM_ERR_ARG);
    nm_array two = {NM_F32, 4, {2, 1, 8, 8}, x};
    check_true("batch of 2 runs", nm_net_forward(ctx, net, 0, -1, &two, &y) == NM_OK);
    nm_array_free(ctx, &y);
    /* 3 tangents for a primal batch of 2 */
    float *t = calloc((size_t)n * 3, sizeof(float));
    nm_array ta = {NM_F32, 4, {3, 1, 8, 8}, t};
    check_true("3 tangents for 2 primals: NM_ERR_SHAPE", nm_net_jvp(ctx, net, 0, -1, &ta, &y) == NM_ERR_SHAPE);
    free(t);
    free(x);
    nm_net_free(ctx, net);
}

int main(void)
{
    ctx = nm_ctx_create();
    nm_net *net = make_net();
    nm_net_set_meta(ctx, net, "netmoments.input_scale", "255 -127.5");
    const char *path = check_tmp("bad.onnx");
    if (nm_net_write_onnx(ctx, net, path) != NM_OK || nm_read_file(ctx, path, 1 << 24, &model, &model_len) != NM_OK) {
        fprintf(stderr, "setup: %s\n", nm_ctx_message(ctx));
        return 2;
    }
    remove(path);
    nm_net_free(ctx, net);
    if (nm_net_read_onnx_memory(ctx, model, model_len, &net) == NM_OK) { /* metadata survives the round trip */
        const char *m = nm_net_get_meta(net, "netmoments.input_scale");
        check_true("metadata_props round trip", m && strcmp(m, "255 -127.5") == 0);
        nm_net_free(ctx, net);
    } else {
        check_true("the saved model loads", 0);
    }
    file_cases();
    fuzz_regressions();
    pass_cases();
    nm_free(ctx, model);
    nm_ctx_free(ctx);
    return check_finish("test_onnx_bad");
}
