/* gendata.c: the generate(n, x, y, noise, seed) source: n samples of x drawn from uniform(a, b) or
   normal(mean, std), and y an expression of x (rexpr.h) plus normal noise of std `noise`, as seed 002's
   linear regression builds its data (x = torch.rand(n, 1) * 10; y = 2 * x + 1 + noise). x and y are f32
   [n, 1]; the same seed gives the same data, and x does not depend on the noise (two streams). */
#include "rt.h"
#include "rexpr.h"

#include <math.h>
#include <stdlib.h>

/* Streams of the generated data, apart from shuffling (0..2^62) and parameters (2^62 + i, see rng.c). */
/* streams of their own (loader.h lists who takes which): 2^63 + k would be the shuffle of epoch k */
#define GEN_X_STREAM (5ull << 60)
#define GEN_NOISE_STREAM ((5ull << 60) + 1)

/* Box-Muller, as rng.c draws normal parameters; 1 - u keeps the logarithm finite */
static double normal(RtRng *r) {
    double u = 1.0 - rt_rng_unit(r), w = rt_rng_unit(r);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * w);
}

int rt_generate_load(RtDataset *d, const RtDataSpec *spec, RtErr *e) {
    int64_t n = spec->n;
    if (n < 1)
        return rt_errf(e, "%s: n must be at least 1", d->images_path);
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    d->images = (uint8_t *)x;
    d->labels = (uint8_t *)y;
    if (!x || !y)
        return rt_errf(e, "%s: out of memory", d->images_path);
    RtRng rx, rn;
    rt_rng_seed(&rx, spec->seed, GEN_X_STREAM);
    rt_rng_seed(&rn, spec->seed, GEN_NOISE_STREAM);
    static const char *const names[] = {"x"};
    for (int64_t i = 0; i < n; i++) {
        double v = spec->x_normal ? spec->xa + spec->xb * normal(&rx)
                                  : spec->xa + (spec->xb - spec->xa) * rt_rng_unit(&rx);
        x[i] = (float)v;
        if (spec->xb > spec->xa && !spec->x_normal && x[i] >= spec->xb) /* the interval is half-open */
            x[i] = (float)spec->xa;
        double xv = x[i], yv = 2 * xv + 1;
        RtErr why;
        if (spec->y_expr && rt_rexpr_eval(spec->y_expr, names, &xv, 1, &yv, &why) != RT_OK)
            return rt_errf(e, "%s: y at sample %lld (x = %g): %s", d->images_path, (long long)i, xv, why.msg);
        if (spec->noise > 0)
            yv += spec->noise * normal(&rn);
        if (!isfinite(yv))
            return rt_errf(e, "%s: y is %g at sample %lld (x = %g): not a finite number", d->images_path, yv,
                           (long long)i, xv);
        y[i] = (float)yv;
    }
    d->count = n;
    d->per_sample = d->per_label = 1;
    d->images_dtype = d->labels_dtype = RT_F32;
    d->regression = true;
    d->scale = 1;
    return RT_OK;
}
