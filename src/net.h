/*
 * net.h — the network graph inside the library (DESIGN §3): values (tensors
 * named as in ONNX), nodes in topological order, the op table, and the pass
 * record every op kernel receives. One layout throughout: float32, row-major,
 * NCHW for images. A value is *varying* when it depends on the net input and
 * *constant* otherwise (initializers, and everything computed only from them,
 * which is folded at load time). A varying value is *batched* when its first
 * axis follows the input's first axis sample by sample; only then may a call
 * use a batch size other than the one the model was loaded with.
 */
#ifndef NM_NET_H
#define NM_NET_H

#include "internal.h"

#include <stddef.h>

#define NM_NODE_MAX_IN 64 /* Concat in DenseNet takes dozens */

typedef struct {
    int ndim;
    int64_t d[NM_MAX_DIMS];
} nm_shape;

int64_t nm_shape_numel(const nm_shape *s);
/* Product of the dimensions from axis `from` on (1 when none). */
int64_t nm_shape_tail(const nm_shape *s, int from);
int nm_shape_equal(const nm_shape *a, const nm_shape *b);
/* "(1, 32, 28, 28)" into buf */
const char *nm_shape_str(const nm_shape *s, char *buf, size_t len);

/* The op enum, one line per op in ops/list.h (NM_OP_CONV, ...). */
typedef enum {
#define NM_OP(ENUM, def) NM_OP_##ENUM,
#include "ops/list.h"
#undef NM_OP
    NM_OP_COUNT
} nm_op;

enum { NM_AUTOPAD_NOTSET = 0, NM_AUTOPAD_VALID, NM_AUTOPAD_SAME_UPPER, NM_AUTOPAD_SAME_LOWER };

/* Every attribute any op has, already resolved (auto_pad → explicit pads,
 * defaults filled in). Which fields an op reads is its attribute list's
 * business (nm_op_def.attrs). Integers are int64_t throughout, so that an
 * attribute list needs only three field types. */
typedef struct {
    int64_t kernel[2], stride[2], dil[2];
    int64_t pad[4];               /* begin H, begin W, end H, end W */
    int64_t auto_pad;             /* as read; 0 once resolved into pad */
    int64_t group;
    int64_t ceil_mode, count_include_pad;
    int64_t trans_a, trans_b;
    float alpha, beta, bias;      /* Gemm α β; LeakyRelu α; LRN α β bias */
    int64_t size;                 /* LRN */
    int64_t axis;                 /* Flatten, Softmax (non-negative once resolved) */
    int64_t softmax_2d;           /* Softmax before opset 13: coerced to 2-D at axis */
    float epsilon;                /* BatchNormalization */
    float pad_value;              /* Pad */
    int64_t pads[2 * NM_MAX_DIMS];/* Pad: begins then ends, per axis */
    int64_t allowzero;            /* Reshape */
    int64_t prelu_channel;        /* PRelu before opset 7: a 1-D slope runs along axis 1 */
    int64_t legacy_axis;          /* Add before opset 7: broadcast aligned at this axis, or −1 */
    int64_t spatial;              /* Conv and pools: 2 for images (N, C, H, W), 1 for (N, C, L), seen as (N, C, 1, L) */
    int64_t axes[NM_MAX_DIMS], naxes; /* Squeeze, Unsqueeze, Reduce*, Slice, Transpose's perm */
    int64_t keepdims;             /* Reduce* */
    int64_t starts[NM_MAX_DIMS], steps[NM_MAX_DIMS]; /* Slice, resolved per axis of the input */
    int64_t ends[NM_MAX_DIMS], slice_naxes; /* Slice before opset 10 (attributes; axes given when slice_naxes > 0) */
    int64_t mode;                 /* Pad: constant, reflect, edge; Gelu: none, tanh */
    int64_t to;                   /* Cast: the ONNX element type */
    double value;                 /* ConstantOfShape's fill; Clip's bounds come in lo, hi */
    float lo, hi;                 /* Clip */
    int64_t value_is_int;
} nm_attrs;

/* How one ONNX attribute of an op maps onto nm_attrs: the importer and the
 * exporter read these lists and know no op by name. */
typedef enum {
    NM_ATTR_INT,      /* an integer into an int64_t field */
    NM_ATTR_BOOL,     /* an integer, stored as 0 or 1 */
    NM_ATTR_FLOAT,    /* a float into a float field */
    NM_ATTR_INTS,     /* .count integers into int64_t[.count] (.count < 0: at most −.count) */
    NM_ATTR_AUTO_PAD, /* NOTSET / VALID / SAME_UPPER / SAME_LOWER into an int64_t field */
    NM_ATTR_CHECK,    /* checked, not stored: an integer whose truth must be that of .def, or the string .str */
    NM_ATTR_IGNORE,   /* accepted and ignored (training-only settings, legacy hints) */
    NM_ATTR_INPUT,    /* legacy: the integers become constant input number .count when the node lacks it */
    NM_ATTR_LIST,     /* at most .count integers into int64_t[.count], how many into the int64_t at .count_offset */
    NM_ATTR_ENUM,     /* a string, one of .names (NULL-terminated), stored as its index */
    NM_ATTR_SCALAR,   /* a one-element tensor (ConstantOfShape's value) into the double at .offset, is_int beside it */
} nm_attr_kind;

typedef struct {
    const char *name;
    nm_attr_kind kind;
    size_t offset;       /* offsetof(nm_attrs, field) for the kinds that store */
    int count;
    double def;          /* the default (each element for INTS); CHECK: the accepted truth value */
    const char *str;     /* CHECK: the accepted string */
    const char *why;     /* CHECK: why another value is refused; INTS: appended to a count mismatch */
    int write;           /* written by the exporter (opset 13), in list order */
    size_t count_offset; /* LIST: where the count goes */
    const char *const *names; /* ENUM */
    int window;          /* INTS of a window (kernel, strides, dilations, pads): 1-D ops read and write one axis */
} nm_attr_def;

#define NM_ATTR_FIELD(f) offsetof(nm_attrs, f)
/* The attributes Conv, MaxPool and AveragePool share, in the order they are written. */
#define NM_WINDOW_ONLY_2D ": 1-D and 2-D windows are supported"
#define NM_WINDOW_ATTRS                                                                                                  \
    {.name = "kernel_shape", .kind = NM_ATTR_INTS, .offset = NM_ATTR_FIELD(kernel), .count = 2, .why = NM_WINDOW_ONLY_2D, \
     .write = 1, .window = 1},                                                                                           \
    {.name = "strides", .kind = NM_ATTR_INTS, .offset = NM_ATTR_FIELD(stride), .count = 2, .def = 1,                      \
     .why = NM_WINDOW_ONLY_2D, .write = 1, .window = 1},                                                                 \
    {.name = "pads", .kind = NM_ATTR_INTS, .offset = NM_ATTR_FIELD(pad), .count = 4, .why = NM_WINDOW_ONLY_2D, .write = 1, \
     .window = 1},                                                                                                       \
    {.name = "auto_pad", .kind = NM_ATTR_AUTO_PAD, .offset = NM_ATTR_FIELD(auto_pad)}

/* A constant input the exporter adds to a node (opset 13 wants as inputs
 * what older opsets had as attributes, e.g. Pad's pads): named
 * "<node>.<suffix>", float data f or integer data i. */
typedef struct {
    const char *suffix;
    nm_shape shape;
    const float *f;
    const int64_t *i;
} nm_export_input;

typedef struct {
    char *name;
    nm_shape shape;   /* at the batch size the net was loaded with */
    int varying, batched;
    int is_int;       /* an integer constant (idata), e.g. a shape; varying values are always float */
    int producer;     /* index of the node that writes it; -1 for the input and constants */
    float *cdata;     /* constant float data (owned), or NULL */
    int64_t *idata;   /* constant integer data (owned), or NULL */
    /* run-time buffers (owned, grown on demand) */
    float *x;  int64_t x_cap;   /* primal */
    float *g;  int64_t g_cap;   /* tangent (jvp) or cotangent (vjp) */
    float *pg;                  /* gradient of a constant (training), or NULL */
    nm_shape xs, gs;            /* current shapes of x and g */
} nm_value;

typedef struct {
    nm_op op;
    char *name;
    int nin;
    int in[NM_NODE_MAX_IN]; /* value indices; -1 for an absent optional input */
    int out;
    nm_attrs a;
} nm_node;

struct nm_net {
    int nv, nv_cap;
    nm_value *v;
    int nn, nn_cap;
    nm_node *node;
    int input, output;            /* value indices */
    int nmeta;
    char **meta_key, **meta_val;  /* ONNX metadata_props */
    int64_t opset;
    size_t fold_limit;            /* bytes a folded constant may take (0: the context's budget only) */
    /* the primal recorded by the last forward call */
    int rec_first, rec_last;
    float *scratch; size_t scratch_cap;
};

/* What one kernel call sees. Forward reads x[i] (shapes xs[i]) and writes y
 * (shape ys). jvp reads the primal x[i], y and the input tangents dx[i]
 * (NULL for constant inputs: zero tangent) and writes the output tangent dy
 * (shape dys). vjp reads the primal and dy and *accumulates* (+=) the input
 * cotangents into dx[i] where non-NULL, and parameter gradients into gp[i]
 * for constant inputs where non-NULL. Tangent batches: a tangent sample t
 * belongs to primal sample t % P, where P = xs[i].d[0] and the tangent has
 * T = dxs[i].d[0] samples with P == 1 or P == T. */
typedef struct {
    nm_ctx *ctx;
    struct nm_net *net;   /* owner of the scratch buffer */
    float *x[NM_NODE_MAX_IN];
    nm_shape xs[NM_NODE_MAX_IN];
    const int64_t *ix[NM_NODE_MAX_IN]; /* integer constant inputs */
    float *y;
    nm_shape ys;
    float *dx[NM_NODE_MAX_IN];
    nm_shape dxs[NM_NODE_MAX_IN];
    float *dy;
    nm_shape dys;
    float *gp[NM_NODE_MAX_IN];
    int64_t *iy; /* folding an integer constant: its data (y is NULL then) */
} nm_pass;

/* Data inputs and outputs of the ops that move data of either type (net.h
 * int_data): float32 elements, or int64 when an integer constant is folded. */
static inline size_t nm_pass_esize(const nm_pass *p) { return p->iy ? sizeof(int64_t) : sizeof(float); }
static inline const void *nm_pass_in(const nm_pass *p, int i) { return p->iy ? (const void *)p->ix[i] : (const void *)p->x[i]; }
static inline void *nm_pass_out(const nm_pass *p) { return p->iy ? (void *)p->iy : (void *)p->y; }

/* Scratch memory owned by the net, valid until the next call; NULL (and a
 * message on p->ctx) when it cannot be grown. */
float *nm_pass_scratch(nm_pass *p, size_t nfloats);

/* One op, registered by one line of ops/list.h and defined in its own file
 * under src/ops: its ONNX name and arity, which inputs may be integer
 * constants and which constants the vjp trains, its attributes, shape
 * inference (validates the inputs, resolves attributes, sets the output's
 * shape and batched flag), and the three passes. ONNX Constant nodes become
 * constant values at import, not nodes. */
struct nm_net;

/* A linear map y = W x (method propagate's linear ops) by groups of rows that read the same inputs: group g's rows
 * row[gp[g] .. gp[g+1]) all read the columns idx[ip[g] .. ip[g+1]), its a-th row with the values
 * v[g][a · ld[g] + e] (e over the columns), or vd's where v is NULL. Values may point into the op's constants or
 * into own, the map's. Rows in no group are zero; each row is in at most one. */
typedef struct {
    int64_t rows, cols, ng;
    int64_t *gp, *row, *ip, *idx, *ld;
    const float **v;
    const double **vd;
    float *own;
} nm_wmat;

/* W's index arrays for ng groups holding nrow rows and nidx columns in all, and own for nown floats (gp, ip zeroed);
 * NM_ERR_NOMEM else. */
nm_status nm_wmat_alloc(nm_ctx *ctx, int64_t rows, int64_t cols, int64_t ng, int64_t nrow, int64_t nidx, int64_t nown, nm_wmat *W);
void nm_wmat_free(nm_ctx *ctx, nm_wmat *W);

static inline double nm_wmat_at(const nm_wmat *W, int64_t g, int64_t a, int64_t e)
{
    return W->v ? W->v[g][a * W->ld[g] + e] : W->vd[g][a * W->ld[g] + e];
}

typedef struct {
    const char *name;
    int min_inputs, max_inputs;
    unsigned char int_input[NM_NODE_MAX_IN]; /* input i may be an integer constant (shapes, pads, modes) */
    unsigned char trainable[NM_NODE_MAX_IN]; /* vjp fills gp[i] for a constant input i */
    const nm_attr_def *attrs;                /* terminated by a NULL name; NULL: no attributes */
    /* optional: defaults that depend on the model's opset (import only) */
    void (*opset_defaults)(nm_attrs *a, int64_t opset);
    /* optional: why the node cannot be written at opset 13, or NULL */
    const char *(*export_refusal)(const struct nm_net *net, const nm_node *nd);
    int export_inputs; /* how many of the node's own inputs are written (0: all) */
    int hides_nonfinite; /* its output can be finite where its input is not (Relu: NaN → 0): the forward pass checks its input */
    int split;           /* a piecewise-linear activation the net can be split at (DESIGN §1.6): ReLU and its kin */
    int int_data;        /* moves data of either type: its data inputs may be integer constants (a shape), folded into one */
    int shape_only;      /* reads only its input's shape (Shape): its output is a constant even for a varying input */
    const char *role;    /* optional: what it is to the moments where the flags do not say it (nm_op_describe) */
    int final_only;      /* allowed only as the final node, whose input is the logits (Softmax) */
    int smooth;          /* a smooth nonlinearity (Sigmoid, ...): the net is then not piecewise linear, and its
                            linearization freezes a curvature, not only masks */
    /* optional: the decisions the linearization freezes at the primal (bound in p), one code per output
     * element into codes: the side of each kink (activations) or the argmax (max pools); decides tells which */
    nm_status (*decide)(const nm_node *nd, nm_pass *p, int32_t *codes);
    int decides;         /* NM_DECIDES_KINK or NM_DECIDES_ARGMAX */
    /* optional: whether this node is not piecewise linear (Mul of two varying values) */
    int (*nonlinear_node)(const struct nm_net *net, const nm_node *nd);
    /* optional: constant inputs the exporter appends; returns how many (≤ 2) */
    int (*export_extra)(const struct nm_net *net, const nm_node *nd, nm_export_input extra[2]);
    /* how method propagate (DESIGN §1.12) maps a Gaussian through it, where split (hinges) and window
     * (maxima) do not say it: NM_MOMENTS_LINEAR (0) by its matrix, read off jvp passes of unit tangents */
    int moments;
    /* optional, for ops that take the max of windows: the input elements (within a sample) of output
     * element o's window into idx, returning how many; with idx NULL, the most any window has */
    int64_t (*window)(const nm_node *nd, const nm_shape *xs, const nm_shape *ys, int64_t o, int64_t *idx);
    /* optional, for linear ops whose matrix is at hand (Conv, Gemm): the matrix from varying input i
     * within a sample, with the float values unit tangents through jvp give (zeros may be kept), into W;
     * 0 when it does not apply to this node (the caller reads the matrix off jvp passes then) */
    int (*matrix)(nm_ctx *ctx, const struct nm_net *net, const nm_node *nd, int i, nm_wmat *W, nm_status *st);
    nm_status (*infer)(nm_ctx *ctx, struct nm_net *net, nm_node *nd);
    nm_status (*forward)(const nm_node *nd, nm_pass *p);
    nm_status (*jvp)(const nm_node *nd, nm_pass *p);
    nm_status (*vjp)(const nm_node *nd, nm_pass *p);
} nm_op_def;

enum { NM_DECIDES_KINK = 1, NM_DECIDES_ARGMAX = 2 };
/* nm_op_def.moments: linear by its matrix (the default); its output is its input's data in the same order
 * (Reshape, Flatten, ...); elementwise linear in a varying input of the output's shape (BatchNormalization,
 * Add, ...); a smooth elementwise function (Sigmoid, ...: Gauss–Hermite moments per unit). */
enum { NM_MOMENTS_LINEAR = 0, NM_MOMENTS_SAME, NM_MOMENTS_DIAGONAL, NM_MOMENTS_UNIT };

extern const nm_op_def *const nm_op_table[NM_OP_COUNT];
const char *nm_op_name(nm_op op);
/* The op named type (ONNX op_type), or −1. */
int nm_op_find(const char *type);
/* Base defaults (unit strides, dilations and group) with the op's own attribute defaults over them. */
nm_attrs nm_attrs_default(nm_op op);

/* Per-op definitions, one file per op kind under src/ops. */
#define NM_OP(ENUM, def) extern const nm_op_def def;
#include "ops/list.h"
#undef NM_OP

/* ---- building a net (src/net.c); used by the ONNX importer and by code
 * that makes nets (training, tests). Each returns a value index ≥ 0, or a
 * negative nm_status with a message on ctx. */
struct nm_net *nm_net_new(nm_ctx *ctx);
int nm_net_add_input(nm_ctx *ctx, struct nm_net *net, const char *name, const nm_shape *shape);
/* Takes ownership of data (float) or idata (int64): exactly one non-NULL. */
int nm_net_add_const(nm_ctx *ctx, struct nm_net *net, const char *name, const nm_shape *shape,
                     float *data, int64_t *idata);
/* Appends a node; infers its output's shape; a node whose inputs are all
 * constant is evaluated now and its output becomes a constant. */
int nm_net_add_node(nm_ctx *ctx, struct nm_net *net, nm_op op, const char *name,
                    const char *out_name, int nin, const int *in, const nm_attrs *a);
nm_status nm_net_set_output(nm_ctx *ctx, struct nm_net *net, int value);
int nm_net_find_value(const struct nm_net *net, const char *name);

/* Run-time passes over nodes first..last (inclusive). The range reads the
 * output of node first−1 (the net input when first = 0) and writes that of
 * node last. nm_net_run records the primal; jvp and vjp use the recorded
 * one. Results stay in the net: the primal in v[out].x, tangents and
 * cotangents in .g (the vjp's result in the range input's .g). With
 * NM_VJP_PARAMS, vjp also accumulates into the .pg of trainable constants
 * (where allocated); NM_VJP_NO_INPUT skips the range input's cotangent. */
nm_status nm_net_run(nm_ctx *ctx, struct nm_net *net, int first, int last, int64_t n, const float *x);
nm_status nm_net_run_jvp(nm_ctx *ctx, struct nm_net *net, int first, int last, int64_t t, const float *dx);
enum { NM_VJP_PARAMS = 1, NM_VJP_NO_INPUT = 2 }; /* flags of nm_net_run_vjp */
nm_status nm_net_run_vjp(nm_ctx *ctx, struct nm_net *net, int first, int last, int64_t t, const float *dy,
                         unsigned flags);
int nm_net_range_input(const struct nm_net *net, int first);
/* One node's passes on buffers of the caller's (method propagate): the jvp at the recorded primal with
 * tangents dx[i] (t samples; one for every varying input i) into dy, and the forward on inputs x[i] (n
 * samples; one for every varying input i; constants bound as in the net, or to x[i] where non-NULL) into y. */
nm_status nm_node_jvp(nm_ctx *ctx, struct nm_net *net, int k, int64_t t, float *const *dx, float *dy);
nm_status nm_node_forward(nm_ctx *ctx, struct nm_net *net, int k, int64_t n, float *const *x, float *y);
/* The vjp at the recorded primal of cotangents dy (t samples), accumulated into dx[i] where non-NULL. */
nm_status nm_node_vjp(nm_ctx *ctx, struct nm_net *net, int k, int64_t t, const float *dy, float *const *dx);
/* The vjp at the caller's primal inputs x[i] (n samples, bound as by nm_node_forward; the output is not
 * bound, so only for ops whose vjp reads no output: Conv, Gemm, MatMul) of cotangents dy: accumulated
 * into dx[i] for the varying inputs where non-NULL, and into gp[i] for the trainable constants where
 * non-NULL (the moment regularisers). */
nm_status nm_node_vjp_at(nm_ctx *ctx, struct nm_net *net, int k, int64_t n, float *const *x, const float *dy, float *const *dx,
                         float *const *gp);
/* Bytes one more batch sample costs a forward, jvp or vjp pass over nodes first..last: the per-sample
 * elements of the values they write, and of the range input. */
size_t nm_net_sample_bytes(const struct nm_net *net, int first, int last);
/* The largest batch ≤ want (at least 1) whose per-sample bytes take at most half of what the context's
 * memory budget has left: passes over big nets run in smaller batches instead of failing. */
int64_t nm_net_batch_fit(const nm_ctx *ctx, size_t per_sample, int64_t want);
/* The decisions of node k at the recorded primal (its op's decide hook), one code per output element. */
nm_status nm_net_decide(nm_ctx *ctx, struct nm_net *net, int k, int32_t *codes);

/* Building nets layer by layer (src/builder.c), for the built-in
 * architectures and the synthetic nets. After the first failure every call
 * returns −1 and st keeps the status. Random constants take streams
 * 0, 1, ... of rng in creation order; sd = 0 makes a zero constant (no stream). */
typedef struct {
    nm_ctx *ctx;
    struct nm_net *net;
    nm_rng rng;
    uint64_t stream;
    int layer; /* counts Conv and Linear layers; names layer<l>.weight, conv<l>, fc<l>, relu<l>, ... */
    nm_status st;
} nm_builder;

nm_status nm_build_start(nm_ctx *ctx, uint64_t seed, const char *input, const nm_shape *shape, nm_builder *b, int *x);
int nm_build_param(nm_builder *b, const char *what, nm_shape s, double sd);
int nm_build_conv(nm_builder *b, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad, double w_sd,
                  double b_sd);
int nm_build_linear(nm_builder *b, int x, int64_t in_f, int64_t out_f, double w_sd, double b_sd);
int nm_build_unary(nm_builder *b, nm_op op, int x, const char *kind, const nm_attrs *a);
int nm_build_pool(nm_builder *b, int x, int64_t k, int64_t stride);
/* Sets y as the output and hands the net over (or frees it on failure). */
nm_status nm_build_finish(nm_builder *b, int y, struct nm_net **out);

/* ONNX import (src/io/onnx_import.c): graph inputs named in names[] are
 * bound to the given tensors as constants (the conformance tests feed
 * their extra inputs this way); the one left unbound is the net input. */
nm_status nm_net_from_model(nm_ctx *ctx, const struct Onnx__ModelProto *m, int nbind, const char *const *names,
                            const struct Onnx__TensorProto *const *tensors, struct nm_net **out);

/* Shared helpers of the op files. */
/* Conv and pooling windows: resolves auto_pad into a->pad and gives the
 * output size (OH, OW) for an input of H×W, with ceil_mode where set. */
nm_status nm_window_resolve(nm_ctx *ctx, const nm_node *nd, nm_attrs *a, int64_t H, int64_t W,
                            int64_t *OH, int64_t *OW);
/* A (N, C, L) shape seen as (N, C, 1, L), the layout of 1-D windows; other shapes unchanged. */
static inline nm_shape nm_as_image(const nm_shape *s)
{
    if (s->ndim != 3) return *s;
    return (nm_shape){4, {s->d[0], s->d[1], 1, s->d[2]}};
}

/* Axis a (negative counts from the end) of a rank-r tensor into *out; 0 when out of range. */
int nm_axis(int64_t a, int r, int64_t *out);
/* Runs BODY for every element i = b·np + k of n tangent elements, k the element of the primal (np elements)
 * it belongs to: blocks of np without the per-element modulo, so that the loop vectorizes; parallel over the
 * blocks when there are many, else within each (n > MIN elements). */
#define NM_FOR_TANGENTS(n, np, MIN, BODY)                                                                              \
    do {                                                                                                               \
        int64_t nb_ = (np) ? (n) / (np) : 0, np_ = (np), n_ = (n), min_ = (MIN);                                       \
        if (nb_ >= 16) {                                                                                               \
            _Pragma("omp parallel for schedule(static) if (n_ > min_)")                                                \
            for (int64_t b_ = 0; b_ < nb_; b_++)                                                                       \
                for (int64_t k = 0; k < np_; k++) {                                                                    \
                    int64_t i = b_ * np_ + k;                                                                          \
                    BODY                                                                                               \
                }                                                                                                      \
        } else {                                                                                                       \
            for (int64_t b_ = 0; b_ < nb_; b_++) {                                                                     \
                _Pragma("omp parallel for schedule(static) if (np_ > min_)")                                           \
                for (int64_t k = 0; k < np_; k++) {                                                                    \
                    int64_t i = b_ * np_ + k;                                                                          \
                    BODY                                                                                               \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

/* Shape inference of an elementwise op: the output is shaped and batched like input 0. */
nm_status nm_infer_elementwise(nm_ctx *ctx, struct nm_net *net, nm_node *nd);
/* Stub pass for ops that are always folded at load (Shape, Range, ...): never called on varying values. */
nm_status nm_pass_folded_only(const nm_node *nd, nm_pass *p);
/* The data-movement ops' gather for elements of esize bytes (float32 or int64): element i of y, in the
 * row-major order of shape o, is src[off(i)], off from the strides st (nm_strided's copy for any type). */
void nm_strided_any(const nm_shape *o, const int64_t *st, void *y, const void *src, size_t esize);

/* The output value of nd, and input i's value (NULL when absent). */
#define NM_OUT(net, nd) (&(net)->v[(nd)->out])
#define NM_IN(net, nd, i) ((nd)->in[i] >= 0 ? &(net)->v[(nd)->in[i]] : NULL)
/* Visits every element i of shape o with the offset off(i) that strides st
 * give (nm_broadcast_strides): y[i] = src[off] (acc = 0), y[i] += src[off]
 * (acc = 1), or, with reduce = 1, src[off] += y[i] (the adjoint). */
void nm_strided(const nm_shape *o, const int64_t *st, float *y, float *src, int reduce, int acc);
/* A constant input that broadcasts against a batched value of rank r
 * without touching the batch axis (rank < r, or first dimension 1). */
int nm_const_spares_batch(const nm_value *c, int r);
/* Kernels that loop over samples run them on OpenMP threads, each with
 * single-threaded BLAS and its own slice of scratch, when there are at least
 * nm_threads() samples; otherwise serially, with threaded BLAS. */
int nm_threads(void);
nm_status nm_check_varying_batched(nm_ctx *ctx, const struct nm_net *net, const nm_node *nd);
/* Broadcast (numpy rules) shape of a and b into out. */
nm_status nm_broadcast_shape(nm_ctx *ctx, const nm_node *nd, const nm_shape *a, const nm_shape *b,
                             nm_shape *out);
/* Element strides of `in` read at the indices of `out` under broadcasting
 * (0 along broadcast axes); in is right-aligned against out. */
void nm_broadcast_strides(const nm_shape *in, const nm_shape *out, int64_t *strides);

#endif
