/* rng.c: PCG32 (O'Neill, pcg-random.org), the one generator of the runtime, and parameter initialization.
   Every use seeds its own stream from (seed, purpose), so results depend on the seed only, never on the
   order in which things happen: resume reproduces an uninterrupted run. */
#include "rt.h"

#include <math.h>

void rt_rng_seed(RtRng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1) | 1u;
    rt_rng_u32(r);
    r->state += seed;
    rt_rng_u32(r);
}

uint32_t rt_rng_u32(RtRng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ull + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

/* O'Neill's bounded draw (pcg32_boundedrand_r): rejecting x below 2^32 mod bound removes the bias of a
   plain modulo. */
uint32_t rt_rng_below(RtRng *r, uint32_t bound) {
    uint32_t threshold = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t x = rt_rng_u32(r);
        if (x >= threshold)
            return x % bound;
    }
}

uint64_t rt_rng_below64(RtRng *r, uint64_t bound) {
    if (bound <= UINT32_MAX)
        return rt_rng_below(r, (uint32_t)bound);
    uint64_t threshold = (-bound) % bound;
    for (;;) {
        uint64_t hi = rt_rng_u32(r); /* two statements: the order of a | b's operands is unspecified */
        uint64_t x = (hi << 32) | rt_rng_u32(r);
        if (x >= threshold)
            return x % bound;
    }
}

double rt_rng_unit(RtRng *r) {
    uint64_t hi = rt_rng_u32(r); /* drawn first, in its own statement (see rt_rng_below64) */
    uint64_t x = (hi << 21) ^ (rt_rng_u32(r) >> 11);
    return (double)(x & ((1ull << 53) - 1)) * 0x1.0p-53;
}

/* Streams for parameters are kept apart from the shuffling streams (see data.c) by the high bit. */
#define PARAM_STREAM (1ull << 62)

void rt_param_init(const RtParam *p, int pi, uint64_t seed, void *data) {
    RtRng r;
    rt_rng_seed(&r, seed, PARAM_STREAM + (uint64_t)pi);
    int64_t n = 0;
    rt_numel(&p->t, 1, &n);
    for (int64_t i = 0; i < n; i++) {
        double v;
        switch (p->init) {
        case RT_INIT_ZEROS: v = 0; break;
        case RT_INIT_ONES: v = 1; break;
        case RT_INIT_CONST: v = p->a; break;
        case RT_INIT_UNIFORM: v = p->a + (p->b - p->a) * rt_rng_unit(&r); break;
        case RT_INIT_NORMAL: {
            /* Box-Muller; 1 - u keeps the logarithm finite */
            double u = 1.0 - rt_rng_unit(&r), w = rt_rng_unit(&r);
            v = p->a + p->b * sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * w);
            break;
        }
        default: v = 0; break;
        }
        rt_store(p->t.dtype, data, i, v);
        /* rounding to f32 can reach b itself; the interval is half-open */
        if (p->init == RT_INIT_UNIFORM && p->b > p->a && rt_load(p->t.dtype, data, i) >= p->b)
            rt_store(p->t.dtype, data, i, p->a);
    }
}
