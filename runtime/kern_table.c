/* kern_table.c: every kernel of lathe_kern.h by name, for the test JIT. One line a kernel in KERNELS, which
   both declares it (the kernels' files need no header of their own) and lists it. */
#include "lathe_kern.h"

#include <stddef.h>

#define DATA(op) K(lathe_k_##op##_f32) K(lathe_k_##op##_f64) K(lathe_k_##op##_i32) K(lathe_k_##op##_i64) \
                 K(lathe_k_##op##_u8)

#define FLOAT(op) K(lathe_k_##op##_f32) K(lathe_k_##op##_f64)

#define KERNELS                                                                                         \
    DATA(slice) DATA(pad) DATA(concat) DATA(gather) DATA(scatter_add)                                   \
    K(lathe_k_random_f32)                                                                               \
    /* kern_window.c */                                                                                 \
    FLOAT(conv2d) FLOAT(conv2d_bwd_input) FLOAT(conv2d_bwd_weight)                                      \
    FLOAT(max_pool2d) FLOAT(max_pool2d_bwd) FLOAT(avg_pool2d) FLOAT(avg_pool2d_bwd)                     \
    FLOAT(adaptive_avg_pool2d) FLOAT(adaptive_avg_pool2d_bwd)

#define K(name) void name(void *out, const void *const *in, int64_t n, const int64_t *desc);
KERNELS
#undef K

const LatheKernSymbol lathe_kern_symbols[] = {
#define K(name) {#name, name},
    KERNELS
#undef K
    {NULL, NULL},
};

/* The convolutions by parts (kern_window.c), declared in lathe_kern.h. */
#define RANGE(op) R(lathe_k_##op##_f32_range) R(lathe_k_##op##_f64_range)

const LatheKernRangeSymbol lathe_kern_range_symbols[] = {
#define R(name) {#name, name},
    RANGE(conv2d) RANGE(conv2d_bwd_input) RANGE(conv2d_bwd_weight)
#undef R
    {NULL, NULL},
};
