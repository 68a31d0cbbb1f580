/*
 * propagate.c — method propagate (DESIGN §1.12): the input Gaussian
 * carried through every layer by moment matching (src/propagate), with no
 * linearization. On an Affine–ReLU–Affine net it is method exact, whose
 * rules it lends to nm_ara_moments.
 */
#include "method.h"
#include "../propagate/prop.h"

const nm_method_def nm_method_propagate = {
    .name = "propagate",
    .summary = "the Gaussian carried through every layer, exact per unit, exact pairs at the last ReLU (DESIGN 1.12)",
    .mean = nm_exact_mean, .var = nm_exact_var, .cov = nm_exact_cov, .slope = nm_exact_slope, .cov_row = nm_exact_cov_row,
    .net_moments = nm_propagate_moments,
};
