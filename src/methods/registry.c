/*
 * registry.c — the method table, built from methods/list.h, and the public
 * lookups by index and by name.
 */
#include "method.h"

#include <math.h>
#include <string.h>

static const nm_method_def *const table[] = {
#define NM_METHOD(ENUM, def) &def,
#include "list.h"
#undef NM_METHOD
};
#define COUNT ((int)(sizeof table / sizeof table[0]))
_Static_assert(sizeof table / sizeof table[0] <= NM_METHOD_MAX, "NM_METHOD_MAX holds every method");

int nm_method_count(void)
{
    return COUNT;
}

const nm_method_def *nm_method_def_of(nm_method m)
{
    return table[m];
}

const char *nm_method_str(nm_method m)
{
    return m >= 0 && m < COUNT ? table[m]->name : "unknown";
}

const char *nm_method_summary(nm_method m)
{
    return m >= 0 && m < COUNT ? table[m]->summary : "";
}

nm_method nm_method_from_str(const char *name)
{
    for (int m = 0; name && m < COUNT; m++)
        if (strcmp(table[m]->name, name) == 0) return m;
    return -1;
}

nm_unit nm_unit_of(double m, double suu)
{
    nm_unit u = {m, suu > 0 ? sqrt(suu) : 0, 0, 0};
    u.a = u.s > 0 ? m / u.s : (m > 0 ? INFINITY : -INFINITY);
    u.Pa = nm_normal_cdf(u.a);
    return u;
}
