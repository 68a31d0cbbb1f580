/*
 * registry.c — the op table, built from ops/list.h, and what every op shares
 * through it: lookup by ONNX name and attribute defaults.
 */
#include "../net.h"

#include <string.h>

const nm_op_def *const nm_op_table[NM_OP_COUNT] = {
#define NM_OP(ENUM, def) [NM_OP_##ENUM] = &def,
#include "list.h"
#undef NM_OP
};
_Static_assert(sizeof nm_op_table / sizeof nm_op_table[0] == NM_OP_COUNT, "one definition per op");

const char *nm_op_name(nm_op op)
{
    return op >= 0 && op < NM_OP_COUNT ? nm_op_table[op]->name : "?";
}

int nm_op_find(const char *type)
{
    for (int op = 0; op < NM_OP_COUNT; op++)
        if (strcmp(nm_op_table[op]->name, type) == 0) return op;
    return -1;
}

const char *nm_op_supported(int i)
{
    return i >= 0 && i < NM_OP_COUNT ? nm_op_table[i]->name : NULL;
}

static const char *op_role(const nm_op_def *d)
{
    if (d->role) return d->role;
    if (d->final_only) return "final node only";
    if (d->jvp == nm_pass_folded_only) return d->shape_only ? "folded at load (reads only a shape)" : "folded at load";
    if (d->split) return "piecewise linear, a split point";
    if (d->decides == NM_DECIDES_ARGMAX) return "piecewise linear, argmax frozen";
    if (d->smooth) return "smooth, linearized by its derivative";
    return "linear";
}

int nm_op_describe(int i, nm_op_info *out)
{
    if (i < 0 || i >= NM_OP_COUNT || !out) return 0;
    const nm_op_def *d = nm_op_table[i];
    memset(out, 0, sizeof *out);
    out->name = d->name;
    out->min_inputs = d->min_inputs;
    out->max_inputs = d->max_inputs;
    out->role = op_role(d);
    for (const nm_attr_def *a = d->attrs; a && a->name && out->nattrs < (int)(sizeof out->attrs / sizeof out->attrs[0]); a++)
        out->attrs[out->nattrs++] = a->name;
    return 1;
}

nm_attrs nm_attrs_default(nm_op op)
{
    nm_attrs a;
    memset(&a, 0, sizeof a);
    a.stride[0] = a.stride[1] = a.dil[0] = a.dil[1] = 1;
    a.group = 1;
    a.legacy_axis = -1;
    a.spatial = 2;
    a.keepdims = 1;
    for (const nm_attr_def *d = nm_op_table[op]->attrs; d && d->name; d++) {
        char *f = (char *)&a + d->offset;
        switch (d->kind) {
        case NM_ATTR_INT:
        case NM_ATTR_BOOL:
        case NM_ATTR_AUTO_PAD: *(int64_t *)f = (int64_t)d->def; break;
        case NM_ATTR_FLOAT: *(float *)f = (float)d->def; break;
        case NM_ATTR_INTS:
            for (int i = 0; i < d->count; i++) ((int64_t *)f)[i] = (int64_t)d->def;
            break;
        default: break;
        }
    }
    return a;
}
