/* test_optim.c: the runtime's optimizers (optim.c): each optimizer and each of its options against steps
   worked out by hand, accumulation, clipping, parameter groups, the state tensors, the recipe's errors, the
   same bits for any number of threads, and f64 parameters.

   Unless a test says otherwise, one f32 parameter w = [1, -2] takes three steps on the gradients
   g1 = [0.5, 1], g2 = [1, -1], g3 = [-0.25, 0.5]. The expected values are exact arithmetic (the comments
   work them out); f32 results must agree to 1e-6 (relative, absolute below 1). */
#include "optim.h"

#include "lathe_kern.h"
#include "support.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---------------------------------------------------------------- helpers */

/* JSON written with single quotes, so that the tests read: q("{'lr': 0.5}") */
static const char *q(const char *s) {
    static char buf[8][4096];
    static int next;
    char *out = buf[next++ % 8];
    size_t i = 0;
    for (; s[i] && i + 1 < sizeof buf[0]; i++)
        out[i] = s[i] == '\'' ? '"' : s[i];
    out[i] = 0;
    return out;
}

#define W_F32 "[{'name': 'w', 'dtype': 'f32', 'shape': [2]}]"
#define W_F64 "[{'name': 'w', 'dtype': 'f64', 'shape': [2]}]"
/* A recipe of one optimizer call with keyword arguments, and more recipe keys after it. */
#define OPT(name, kwargs) "{'optimizer': {'call': '" name "', 'args': [], 'kwargs': {" kwargs "}}}"
#define OPT_WITH(name, kwargs, keys) "{'optimizer': {'call': '" name "', 'args': [], 'kwargs': {" kwargs "}}, " keys "}"

typedef struct Opt {
    RtManifest m;
    RtOptimSpec spec;
    RtOptim o;
} Opt;

/* The manifest of params (a JSON list) with recipe (a JSON object); RT_OK or the first error in e. */
static int try_open(Opt *t, const char *params, const char *recipe, RtErr *e) {
    char text[8192];
    snprintf(text, sizeof text, "{\"params\": %s, \"recipe\": %s}", q(params), q(recipe));
    memset(t, 0, sizeof *t);
    if (rt_manifest_parse(&t->m, text, e) != RT_OK)
        fail_msg("manifest: %s", e->msg);
    if (rt_optim_spec_parse(t->m.recipe, &t->spec, e) != RT_OK)
        return RT_ERR;
    return rt_optim_open(&t->o, &t->spec, &t->m, e);
}

static void open_opt(Opt *t, const char *params, const char *recipe) {
    RtErr e = {{0}};
    if (try_open(t, params, recipe, &e) != RT_OK)
        fail_msg("%s", e.msg);
    t->o.track_norm = true; /* the tests read the norm of steps that do not clip too */
}

static void close_opt(Opt *t) {
    rt_optim_close(&t->o);
    rt_manifest_free(&t->m);
}

/* The message of the recipe's error (a static buffer); fails the test when the recipe is accepted. */
static const char *error_of(const char *params, const char *recipe) {
    static RtErr e;
    Opt t;
    memset(&e, 0, sizeof e);
    if (try_open(&t, params, recipe, &e) == RT_OK)
        fail_msg("accepted: %s", q(recipe));
    rt_manifest_free(&t.m);
    return e.msg;
}

static void assert_near(double got, double want, double tol, const char *what, int step, int i) {
    if (!(fabs(got - want) <= tol * fmax(1, fabs(want))))
        fail_msg("%s after step %d, element %d: %.17g, expected %.17g", what, step, i, got, want);
}

static const double G[3][2] = {{0.5, 1}, {1, -1}, {-0.25, 0.5}};

/* Three steps of the optimizer name(kwargs) on w = [1, -2] with g1, g2, g3 (dtype f32 or f64); w must be
   want[k] after step k + 1. */
static void steps_dtype(const char *recipe, RtDType dtype, const double want[3][2]) {
    Opt t;
    open_opt(&t, dtype == RT_F32 ? W_F32 : W_F64, recipe);
    union {
        float f[2];
        double d[2];
    } w, g;
    for (int i = 0; i < 2; i++)
        rt_store(dtype, &w, i, i == 0 ? 1 : -2);
    void *params[] = {&w}, *grads[] = {&g};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 2; i++)
            rt_store(dtype, &g, i, G[k][i]);
        assert_true(rt_optim_feed(&t.o, params, grads, NULL));
        for (int i = 0; i < 2; i++)
            assert_near(rt_load(dtype, &w, i), want[k][i], dtype == RT_F32 ? 1e-6 : 1e-14, "w", k + 1, i);
    }
    assert_int_equal(t.o.steps, 3);
    close_opt(&t);
}

static void steps(const char *recipe, const double want[3][2]) { steps_dtype(recipe, RT_F32, want); }

/* ---------------------------------------------------------------- SGD */

/* w -= 0.5 g: [0.75, -2.5], [0.25, -2], [0.375, -2.25] */
static void test_sgd(void **state) {
    steps(OPT("SGD", "'lr': 0.5"), (const double[3][2]){{0.75, -2.5}, {0.25, -2}, {0.375, -2.25}});
}

/* buf = g1 on the first step, then 0.5 buf + g; w -= 0.5 buf
     buf = [0.5, 1]                                  w = [0.75, -2.5]
     buf = [0.25, 0.5] + [1, -1] = [1.25, -0.5]      w = [0.125, -2.25]
     buf = [0.625, -0.25] + [-0.25, 0.5] = [0.375, 0.25]   w = [-0.0625, -2.375] */
static void test_sgd_momentum(void **state) {
    steps(OPT("SGD", "'lr': 0.5, 'momentum': 0.5"),
          (const double[3][2]){{0.75, -2.5}, {0.125, -2.25}, {-0.0625, -2.375}});
}

/* dampening 0.5: buf = g1 on the first step (no dampening there), then 0.5 buf + 0.5 g
     buf = [0.5, 1]                                  w = [0.75, -2.5]
     buf = [0.25, 0.5] + [0.5, -0.5] = [0.75, 0]     w = [0.375, -2.5]
     buf = [0.375, 0] + [-0.125, 0.25] = [0.25, 0.25]   w = [0.25, -2.625] */
static void test_sgd_dampening(void **state) {
    steps(OPT("SGD", "'lr': 0.5, 'momentum': 0.5, 'dampening': 0.5"),
          (const double[3][2]){{0.75, -2.5}, {0.375, -2.5}, {0.25, -2.625}});
}

/* nesterov: the buffers of test_sgd_momentum; w -= 0.5 (g + 0.5 buf)
     d = [0.5, 1] + [0.25, 0.5] = [0.75, 1.5]                w = [0.625, -2.75]
     d = [1, -1] + [0.625, -0.25] = [1.625, -1.25]           w = [-0.1875, -2.125]
     d = [-0.25, 0.5] + [0.1875, 0.125] = [-0.0625, 0.625]   w = [-0.15625, -2.4375] */
static void test_sgd_nesterov(void **state) {
    steps(OPT("SGD", "'lr': 0.5, 'momentum': 0.5, 'nesterov': true"),
          (const double[3][2]){{0.625, -2.75}, {-0.1875, -2.125}, {-0.15625, -2.4375}});
}

/* weight_decay 0.5: d = g + 0.5 w; w -= 0.5 d
     d = [0.5, 1] + [0.5, -1] = [1, 0]               w = [0.5, -2]
     d = [1, -1] + [0.25, -1] = [1.25, -2]           w = [-0.125, -1]
     d = [-0.25, 0.5] + [-0.0625, -0.5] = [-0.3125, 0]   w = [0.03125, -1] */
static void test_sgd_weight_decay(void **state) {
    steps(OPT("SGD", "'lr': 0.5, 'weight_decay': 0.5"),
          (const double[3][2]){{0.5, -2}, {-0.125, -1}, {0.03125, -1}});
}

/* maximize: w += 0.5 g: [1.25, -1.5], [1.75, -2], [1.625, -1.75] */
static void test_sgd_maximize(void **state) {
    steps(OPT("SGD", "'lr': 0.5, 'maximize': true"), (const double[3][2]){{1.25, -1.5}, {1.75, -2}, {1.625, -1.75}});
}

/* SGD(0.5, 0.5, 0.5): lr, momentum, dampening by position, as test_sgd_dampening */
static void test_sgd_positional_arguments(void **state) {
    steps("{'optimizer': {'call': 'SGD', 'args': [0.5, 0.5, 0.5], 'kwargs': {}}}",
          (const double[3][2]){{0.75, -2.5}, {0.375, -2.5}, {0.25, -2.625}});
}

/* ---------------------------------------------------------------- Adam, AdamW

   m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, w -= lr m^ / (sqrt(v^) + eps) with m^ = m / (1 - b1^t),
   v^ = v / (1 - b2^t), t counted from 1. Default betas (0.9, 0.999), lr 0.1:
     t = 1: m^ = g1, v^ = g1^2: w -= 0.1 sign(g1)                        w = [0.9, -2.1]
     t = 2: m = [0.145, -0.01], bc1 = 0.19, m^ = [0.763158, -0.052632]
            v = [0.00124975, 0.001999], bc2 = 0.001999, v^ = [0.625188, 1]
            w -= 0.1 [0.763158 / 0.790688, -0.052632 / 1]                w = [0.803482, -2.094737]
     t = 3: m^ = [0.389299, 0.151292], v^ = [0.437437, 0.749750]         w = [0.744621, -2.112209] */
static void test_adam(void **state) {
    steps(OPT("Adam", "'lr': 0.1"), (const double[3][2]){{0.900000002, -2.099999999},
                                                        {0.80348180063850938, -2.0947368411578946},
                                                        {0.74462112825555671, -2.1122093943752773}});
}

/* betas (0.5, 0.75): t = 1 as before; t = 2: m = [0.625, -0.25], bc1 = 0.75, m^ = [0.833333, -0.333333],
   v = [0.296875, 0.4375], bc2 = 0.4375, v^ = [0.678571, 1]:
   w = [0.9 - 0.1 0.833333 / 0.823754, -2.1 + 0.1 0.333333] = [0.798837, -2.066667] */
static void test_adam_betas(void **state) {
    steps(OPT("Adam", "'lr': 0.1, 'betas': [0.5, 0.75]"),
          (const double[3][2]){{0.900000002, -2.099999999},
                               {0.79883717345025618, -2.0666666660000002},
                               {0.76545926243792917, -2.0840459873037092}});
}

/* eps 0.5: t = 1: w -= 0.1 [0.5 / 1, 1 / 1.5] = [0.05, 0.066667] */
static void test_adam_eps(void **state) {
    steps(OPT("Adam", "'lr': 0.1, 'eps': 0.5"),
          (const double[3][2]){{0.95, -2.0666666666666669},
                               {0.89087201053582832, -2.0631578947368423},
                               {0.85735194147198779, -2.0742343734036202}});
}

/* weight_decay 0.5 (L2, into the gradient): t = 1: g = [0.5, 1] + 0.5 [1, -2] = [1, 0]: w -= 0.1 [1, 0] */
static void test_adam_weight_decay(void **state) {
    steps(OPT("Adam", "'lr': 0.1, 'weight_decay': 0.5"),
          (const double[3][2]){{0.900000001, -2},
                               {0.80070331320399812, -1.9255863181693544},
                               {0.71878846967277599, -1.8551382962743512}});
}

/* amsgrad with betas (0.9, 0.5): v = [0.125, 0.5], [0.5625, 0.75], [0.3125, 0.5]; at t = 3 v falls and
   vmax = [0.5625, 0.75] divides instead: v^ = vmax / 0.875 = [0.642857, 0.857143]
   w3 = w2 - 0.1 [0.389299 / 0.801784, 0.151292 / 0.925820] = [0.763324, -2.111078] */
static void test_adam_amsgrad(void **state) {
    steps(OPT("Adam", "'lr': 0.1, 'betas': [0.9, 0.5], 'amsgrad': true"),
          (const double[3][2]){{0.900000002, -2.099999999},
                               {0.811878119825443, -2.0947368411578946},
                               {0.76332401781052073, -2.1110781920659343}});
}

/* maximize: test_adam's steps with the sign turned: w = [1.1, -1.9], ... */
static void test_adam_maximize(void **state) {
    steps(OPT("Adam", "'lr': 0.1, 'maximize': true"),
          (const double[3][2]){{1.099999998, -1.900000001},
                               {1.1965181993614904, -1.9052631588421052},
                               {1.2553788717444432, -1.8877906056247222}});
}

/* AdamW's default weight_decay 0.01, decoupled: w *= 1 - 0.1 0.01 = 0.999 before test_adam's step:
   t = 1: w = [0.999, -1.998] - 0.1 [1, 1] sign = [0.899, -2.098] */
static void test_adamw(void **state) {
    steps(OPT("AdamW", "'lr': 0.1"), (const double[3][2]){{0.899000002, -2.097999999},
                                                         {0.80158280063650933, -2.0906388411588948},
                                                         {0.74192054545292019, -2.1060207555351185}});
}

/* weight_decay 0.5: w *= 0.95, then the step of test_adam (the decay never enters m or v):
   t = 1: w = [0.95, -1.9] - [0.1, 0.1] sign = [0.85, -2] */
static void test_adamw_weight_decay(void **state) {
    steps(OPT("AdamW", "'lr': 0.1, 'weight_decay': 0.5"),
          (const double[3][2]){{0.850000002, -1.999999999},
                               {0.71098180053850935, -1.8947368412078947},
                               {0.61657203812863115, -1.8174725523648827}});
}

/* amsgrad as test_adam_amsgrad, with the decay 0.999 before each step */
static void test_adamw_amsgrad(void **state) {
    steps(OPT("AdamW", "'lr': 0.1, 'betas': [0.9, 0.5], 'amsgrad': true"),
          (const double[3][2]){{0.899000002, -2.097999999},
                               {0.80997911982344295, -2.0906388411588948},
                               {0.7606150386886974, -2.1048895532257754}});
}

static void test_adamw_maximize(void **state) {
    steps(OPT("AdamW", "'lr': 0.1, 'maximize': true"),
          (const double[3][2]){{1.098999998, -1.898000001},
                               {1.1944191993634905, -1.9013651588411051},
                               {1.2520854525470797, -1.8819912404648811}});
}

/* ---------------------------------------------------------------- RMSprop

   sq = alpha sq + (1 - alpha) g^2, w -= lr g / (sqrt(sq) + eps). lr 0.1, alpha 0.99:
     sq = [0.0025, 0.01]: w -= 0.1 [0.5 / 0.05, 1 / 0.1] = [1, 1]             w = [0, -3]
     sq = [0.012475, 0.0199]: w -= 0.1 [1 / 0.111692, -1 / 0.141067]          w = [-0.895323, -2.291119]
     sq = [0.01297525, 0.022201]: w -= 0.1 [-0.25 / 0.113909, 0.5 / 0.149]    w = [-0.675849, -2.626689]
   (eps 1e-8 makes the first step's 0 a 2e-7) */
static void test_rmsprop(void **state) {
    steps(OPT("RMSprop", "'lr': 0.1"), (const double[3][2]){{1.9999996048181146e-07, -2.9999999000000095},
                                                           {-0.89532268191141617, -2.2911187452429265},
                                                           {-0.67584917490410745, -2.6266891925200775}});
}

/* alpha 0.5: sq = [0.125, 0.5]: w -= 0.1 [0.5 / 0.353553, 1 / 0.707107] = [0.141421, 0.141421] */
static void test_rmsprop_alpha(void **state) {
    steps(OPT("RMSprop", "'lr': 0.1, 'alpha': 0.5"),
          (const double[3][2]){{0.85857864776269044, -2.1414213542373095},
                               {0.72524531620713484, -2.0259513017327175},
                               {0.76996667495713067, -2.0966619788513725}});
}

/* eps 0.5: w -= 0.1 [0.5 / 0.55, 1 / 0.6] = [0.090909, 0.166667] */
static void test_rmsprop_eps(void **state) {
    steps(OPT("RMSprop", "'lr': 0.1, 'eps': 0.5"),
          (const double[3][2]){{0.90909090909090906, -2.1666666666666665},
                               {0.7456098184766341, -2.0106768186860751},
                               {0.78633246928927469, -2.0877184211514064}});
}

/* weight_decay 0.5: g = g1 + 0.5 w = [1, 0]: sq = [0.01, 0]: w -= 0.1 [1 / 0.1, 0] = [1, 0] */
static void test_rmsprop_weight_decay(void **state) {
    steps(OPT("RMSprop", "'lr': 0.1, 'weight_decay': 0.5"),
          (const double[3][2]){{9.9999990399446403e-08, -2},
                               {-0.70888107239006481, -1.0000000499999979},
                               {-0.31336110803223988, -1.0000000374370264}});
}

/* momentum 0.5: buf = 0.5 buf + g / (sqrt(sq) + eps), w -= 0.1 buf:
     buf = [10, 10]                                    w = [0, -3]
     buf = [5, 5] + [8.953227, -7.088812] = [13.953227, -2.088812]   w = [-1.395323, -2.791119] */
static void test_rmsprop_momentum(void **state) {
    steps(OPT("RMSprop", "'lr': 0.1, 'momentum': 0.5"),
          (const double[3][2]){{1.9999996053732261e-07, -2.9999999000000099},
                               {-1.3953225819114359, -2.7911186952429321},
                               {-1.8735104658598254, -3.0222485401415442}});
}

/* centered, alpha 0.5: ga = 0.5 ga + 0.5 g, avg = sqrt(sq - ga^2):
     sq = [0.125, 0.5], ga = [0.25, 0.5], avg = [sqrt(0.0625), sqrt(0.25)] = [0.25, 0.5]
     w -= 0.1 [0.5 / 0.25, 1 / 0.5] = [0.2, 0.2]        w = [0.8, -2.2] */
static void test_rmsprop_centered(void **state) {
    steps(OPT("RMSprop", "'lr': 0.1, 'alpha': 0.5, 'centered': true"),
          (const double[3][2]){{0.8000000079999996, -2.1999999959999998},
                               {0.55879093815597036, -2.0793954596234396},
                               {0.60626220358231608, -2.1512375794018914}});
}

static void test_rmsprop_maximize(void **state) {
    steps(OPT("RMSprop", "'lr': 0.1, 'maximize': true"),
          (const double[3][2]){{1.9999998000000394, -1.0000000999999905},
                               {2.895322681911416, -1.7088812547570735},
                               {2.6758491749041071, -1.3733108074799225}});
}

/* ---------------------------------------------------------------- Adagrad

   sum += g^2, w -= lr / (1 + (t - 1) lr_decay) g / (sqrt(sum) + eps). lr 0.1:
     sum = [0.25, 1]: w -= 0.1 [0.5 / 0.5, 1 / 1] = [0.1, 0.1]                  w = [0.9, -2.1]
     sum = [1.25, 2]: w -= 0.1 [1 / 1.118034, -1 / 1.414214]                    w = [0.810557, -2.029289]
     sum = [1.3125, 2.25]: w -= 0.1 [-0.25 / 1.145644, 0.5 / 1.5]               w = [0.832379, -2.062623] */
static void test_adagrad(void **state) {
    steps(OPT("Adagrad", "'lr': 0.1"), (const double[3][2]){{0.90000000002, -2.09999999999},
                                                           {0.81055728092800838, -2.0292893218763455},
                                                           {0.8323790699497029, -2.0626226552074565}});
}

/* lr_decay 0.5: the step's lr is 0.1, 0.1 / 1.5, 0.1 / 2:
     w2 = 0.9 - 0.066667 / 1.118034 = 0.840372 */
static void test_adagrad_lr_decay(void **state) {
    steps(OPT("Adagrad", "'lr': 0.1, 'lr_decay': 0.5"),
          (const double[3][2]){{0.90000000002, -2.09999999999},
                               {0.84037152062533893, -2.0528595479142302},
                               {0.85128241513618619, -2.0695262145797857}});
}

/* weight_decay 0.5: g = g1 + 0.5 w = [1, 0]: sum = [1, 0], w -= 0.1 [1, 0] */
static void test_adagrad_weight_decay(void **state) {
    steps(OPT("Adagrad", "'lr': 0.1, 'weight_decay': 0.5"),
          (const double[3][2]){{0.90000000001, -2},
                               {0.81767872142305154, -1.9000000000049999},
                               {0.80869733242901543, -1.8780487804937596}});
}

/* initial_accumulator_value 1: sum = [1.25, 2]: w -= 0.1 [0.5 / 1.118034, 1 / 1.414214] */
static void test_adagrad_initial_accumulator_value(void **state) {
    steps(OPT("Adagrad", "'lr': 0.1, 'initial_accumulator_value': 1.0"),
          (const double[3][2]){{0.95527864045400424, -2.0707106781136546},
                               {0.88861197379178203, -2.0129756511980252},
                               {0.90505187252123664, -2.0407106610077483}});
}

/* eps 0.5: w -= 0.1 [0.5 / 1, 1 / 1.5] */
static void test_adagrad_eps(void **state) {
    steps(OPT("Adagrad", "'lr': 0.1, 'eps': 0.5"),
          (const double[3][2]){{0.95, -2.0666666666666669},
                               {0.88819660112501042, -2.0144258916739184},
                               {0.90338822286004472, -2.0394258916739183}});
}

static void test_adagrad_maximize(void **state) {
    steps(OPT("Adagrad", "'lr': 0.1, 'maximize': true"),
          (const double[3][2]){{1.09999999998, -1.90000000001},
                               {1.1894427190719916, -1.9707106781236547},
                               {1.1676209300502971, -1.9373773447925435}});
}

/* ---------------------------------------------------------------- f64 parameters */

/* The same steps on an f64 parameter, to 1e-14: the f32 results above could not tell 0.9 from
   0.900000002 (Adam's eps), these do. */
static void test_f64_parameters(void **state) {
    steps_dtype(OPT("Adam", "'lr': 0.1, 'betas': [0.9, 0.5], 'amsgrad': true"), RT_F64,
                (const double[3][2]){{0.90000000199999997, -2.099999999},
                                     {0.811878119825443, -2.0947368411578946},
                                     {0.76332401781052073, -2.1110781920659343}});
    steps_dtype(OPT("RMSprop", "'lr': 0.1, 'alpha': 0.5, 'centered': true"), RT_F64,
                (const double[3][2]){{0.8000000079999996, -2.1999999959999998},
                                     {0.55879093815597036, -2.0793954596234396},
                                     {0.60626220358231608, -2.1512375794018914}});
    steps_dtype(OPT("Adagrad", "'lr': 0.1, 'lr_decay': 0.5"), RT_F64,
                (const double[3][2]){{0.90000000002, -2.09999999999},
                                     {0.84037152062533893, -2.0528595479142302},
                                     {0.85128241513618619, -2.0695262145797857}});
    steps_dtype(OPT("SGD", "'lr': 0.5, 'momentum': 0.5, 'nesterov': true"), RT_F64,
                (const double[3][2]){{0.625, -2.75}, {-0.1875, -2.125}, {-0.15625, -2.4375}});
}

/* f32 arithmetic for an f32 parameter, as PyTorch's: SGD(lr = 0.1) on w = 1, g = 0.3f is w + (-0.1f) g, the
   product fused into the add (torch.add(alpha) on AVX2): 0.96999997f, where the step in double rounded at
   the end gives 0.97f */
static void test_f32_parameters_use_f32_arithmetic(void **state) {
    Opt t;
    open_opt(&t, "[{'name': 'w', 'dtype': 'f32', 'shape': [1]}]", OPT("SGD", "'lr': 0.1"));
    float w = 1, g = 0.3f;
    void *params[] = {&w}, *grads[] = {&g};
    rt_optim_feed(&t.o, params, grads, NULL);
    assert_true(w == 0.96999997f);
    assert_true((float)(1 - 0.1 * (double)g) == 0.97f); /* what the test tells apart */
    close_opt(&t);
}

/* ---------------------------------------------------------------- accumulation */

/* accumulate 3, SGD lr 1: nothing moves for two batches, then w -= mean(g1, g2, g3) = [5/12, 1/6];
   a fourth batch waits, and the flush at the end of the epoch steps on it alone (its mean is itself) */
static void test_accumulate_averages_k_batches(void **state) {
    Opt t;
    open_opt(&t, W_F64, OPT_WITH("SGD", "'lr': 1", "'accumulate': 3"));
    double w[2] = {1, -2}, g[2];
    void *params[] = {w}, *grads[] = {g};
    for (int k = 0; k < 3; k++) {
        memcpy(g, G[k], sizeof g);
        bool stepped = rt_optim_feed(&t.o, params, grads, NULL);
        assert_int_equal(stepped, k == 2);
        if (k < 2) {
            assert_true(w[0] == 1 && w[1] == -2);
            assert_int_equal(t.o.pending, k + 1);
        }
    }
    assert_near(w[0], 1 - 1.25 / 3, 1e-15, "w", 1, 0);
    assert_near(w[1], -2 - 0.5 / 3, 1e-15, "w", 1, 1);
    assert_int_equal(t.o.steps, 1);
    assert_int_equal(t.o.pending, 0);
    assert_false(rt_optim_flush(&t.o, params, NULL)); /* nothing pending */

    double w1[2] = {w[0], w[1]};
    g[0] = 4, g[1] = 8;
    assert_false(rt_optim_feed(&t.o, params, grads, NULL));
    g[0] = g[1] = 1000; /* the next batch's buffer: not read by the flush */
    assert_true(rt_optim_flush(&t.o, params, NULL));
    assert_near(w[0], w1[0] - 4, 1e-15, "w", 2, 0);
    assert_near(w[1], w1[1] - 8, 1e-15, "w", 2, 1);
    assert_int_equal(t.o.steps, 2);
    assert_false(rt_optim_flush(&t.o, params, NULL));
    close_opt(&t);
}

/* a flush of two batches of accumulate 3 averages over the two: w -= (g1 + g2) / 2 = [0.75, 0] */
static void test_accumulate_flush_averages_what_was_fed(void **state) {
    Opt t;
    open_opt(&t, W_F32, OPT_WITH("SGD", "'lr': 1", "'accumulate': 3"));
    float w[2] = {1, -2}, g[2];
    void *params[] = {w}, *grads[] = {g};
    for (int k = 0; k < 2; k++) {
        g[0] = (float)G[k][0], g[1] = (float)G[k][1];
        assert_false(rt_optim_feed(&t.o, params, grads, NULL));
    }
    assert_true(rt_optim_flush(&t.o, params, NULL));
    assert_true(w[0] == 0.25f && w[1] == -2.0f);
    close_opt(&t);
}

/* ---------------------------------------------------------------- clipping */

#define WB_F32 "[{'name': 'w', 'dtype': 'f32', 'shape': [2]}, {'name': 'b', 'dtype': 'f32', 'shape': [1]}]"

/* clip_grad_norm 1 over both parameters: g = ([3, 0], [4]), norm 5, coef 1 / (5 + 1e-6):
   w -= [0.6, 0], b -= 0.8 (SGD lr 1); a norm below the limit leaves the gradient as it is */
static void test_clip_grad_norm(void **state) {
    Opt t;
    open_opt(&t, WB_F32, OPT_WITH("SGD", "'lr': 1", "'clip_grad_norm': 1.0"));
    float w[2] = {0, 0}, b[1] = {0}, gw[2] = {3, 0}, gb[1] = {4};
    void *params[] = {w, b}, *grads[] = {gw, gb};
    rt_optim_feed(&t.o, params, grads, NULL);
    assert_near(rt_optim_last_grad_norm(&t.o), 5, 1e-7, "norm", 1, 0);
    assert_near(w[0], -0.6, 1e-6, "w", 1, 0);
    assert_true(w[1] == 0);
    assert_near(b[0], -0.8, 1e-6, "b", 1, 0);

    gw[0] = 0.3f, gw[1] = 0, gb[0] = 0.4f; /* norm 0.5: no clipping */
    rt_optim_feed(&t.o, params, grads, NULL);
    assert_near(rt_optim_last_grad_norm(&t.o), 0.5, 1e-7, "norm", 2, 0);
    assert_near(w[0], -0.9, 1e-6, "w", 2, 0);
    assert_near(b[0], -1.2, 1e-6, "b", 2, 0);
    close_opt(&t);
}

/* clip_grad_value 0.5 clamps each element: g = [2, -0.25], [-3] gives w -= [0.5, -0.25], b -= -0.5 */
static void test_clip_grad_value(void **state) {
    Opt t;
    open_opt(&t, WB_F32, OPT_WITH("SGD", "'lr': 1", "'clip_grad_value': 0.5"));
    float w[2] = {0, 0}, b[1] = {0}, gw[2] = {2, -0.25f}, gb[1] = {-3};
    void *params[] = {w, b}, *grads[] = {gw, gb};
    rt_optim_feed(&t.o, params, grads, NULL);
    assert_true(w[0] == -0.5f && w[1] == 0.25f && b[0] == 0.5f);
    assert_near(rt_optim_last_grad_norm(&t.o), sqrt(4 + 0.0625 + 9), 1e-6, "norm", 1, 0);
    close_opt(&t);
}

/* with accumulate 2 the norm is the mean's: ([6, 0], [8]) and ([0, 0], [0]) average to ([3, 0], [4]) */
static void test_clip_grad_norm_of_accumulated_mean(void **state) {
    Opt t;
    open_opt(&t, WB_F32, OPT_WITH("SGD", "'lr': 1", "'clip_grad_norm': 1.0, 'accumulate': 2"));
    float w[2] = {0, 0}, b[1] = {0}, gw[2] = {6, 0}, gb[1] = {8};
    void *params[] = {w, b}, *grads[] = {gw, gb};
    assert_false(rt_optim_feed(&t.o, params, grads, NULL));
    gw[0] = 0, gb[0] = 0;
    assert_true(rt_optim_feed(&t.o, params, grads, NULL));
    assert_near(rt_optim_last_grad_norm(&t.o), 5, 1e-7, "norm", 1, 0);
    assert_near(w[0], -0.6, 1e-6, "w", 1, 0);
    assert_near(b[0], -0.8, 1e-6, "b", 1, 0);
    close_opt(&t);
}

/* ---------------------------------------------------------------- parameter groups */

#define NET "[{'name': 'fc.weight', 'dtype': 'f32', 'shape': [2]}, {'name': 'fc.bias', 'dtype': 'f32', 'shape': [1]}," \
            " {'name': 'bn.running_mean', 'dtype': 'f32', 'shape': [1], 'trainable': false, 'buffer': true}," \
            " {'name': 'head.weight', 'dtype': 'f32', 'shape': [1]}, {'name': 'head.bias', 'dtype': 'f32', 'shape': [1]}]"

/* SGD(lr 0.5, weight_decay 0.5) with no decay on "*.bias" and lr 0.25 on "head.*": every parameter 1,
   every gradient 1: the weight decays (w -= 0.5 (1 + 0.5)), the biases do not (b -= 0.5), head.weight takes
   the first group that matches it, "*.bias" being before "head.*" for head.bias */
static void test_groups_weight_decay_and_lr(void **state) {
    Opt t;
    open_opt(&t, NET,
             OPT_WITH("SGD", "'lr': 0.5, 'weight_decay': 0.5",
                      "'param_groups': [{'call': 'group', 'args': ['*.bias'], 'kwargs': {'weight_decay': 0}},"
                      "                 {'call': 'group', 'args': ['head.*', 'tail.*'], 'kwargs': {'lr': 0.25}}]"));
    assert_int_equal(t.spec.ngroups, 3);
    assert_int_equal(t.o.group[0], 0);  /* fc.weight: the optimizer's own settings */
    assert_int_equal(t.o.group[1], 1);  /* fc.bias */
    assert_int_equal(t.o.group[2], -1); /* bn.running_mean: not trained */
    assert_int_equal(t.o.group[3], 2);  /* head.weight */
    assert_int_equal(t.o.group[4], 1);  /* head.bias: the first match */
    assert_true(t.spec.groups[2].h.weight_decay == 0.5); /* the group's keywords over the optimizer's */

    float fw[2] = {1, 1}, fb[1] = {1}, rm[1] = {7}, hw[1] = {1}, hb[1] = {1}, g[2] = {1, 1};
    void *params[] = {fw, fb, rm, hw, hb}, *grads[] = {g, g, NULL, g, g};
    rt_optim_feed(&t.o, params, grads, NULL);
    assert_true(fw[0] == 0.25f && fw[1] == 0.25f); /* 1 - 0.5 * 1.5 */
    assert_true(fb[0] == 0.5f);                    /* 1 - 0.5 * 1 */
    assert_true(rm[0] == 7);                       /* untouched */
    assert_true(hw[0] == 0.625f);                  /* 1 - 0.25 * 1.5 */
    assert_true(hb[0] == 0.5f);

    /* a schedule's learning rates, one per group */
    const double lr[] = {0.25, 0.125, 0.5};
    rt_optim_feed(&t.o, params, grads, lr);
    assert_true(fw[0] == -0.03125f);               /* 0.25 - 0.25 * (1 + 0.5 * 0.25) */
    assert_true(fb[0] == 0.375f);                  /* 0.5 - 0.125 * 1 */
    assert_true(hw[0] == -0.03125f);               /* 0.625 - 0.5 * (1 + 0.5 * 0.625) */
    close_opt(&t);
}

/* ---------------------------------------------------------------- the state tensors */

static void assert_tensor(const RtTensor *t, const char *name, RtDType dtype, int rank, const int64_t *shape) {
    assert_string_equal(t->name, name);
    assert_int_equal(t->dtype, dtype);
    assert_int_equal(t->rank, rank);
    for (int i = 0; i < rank; i++)
        assert_int_equal(t->shape[i], shape[i]);
    assert_non_null(t->data);
}

#define FC "[{'name': 'fc.weight', 'dtype': 'f32', 'shape': [2, 3]}, {'name': 'fc.bias', 'dtype': 'f64', 'shape': [2]}," \
           " {'name': 'bn.running_mean', 'dtype': 'f32', 'shape': [2], 'trainable': false, 'buffer': true}]"

static void test_state_names_and_shapes(void **state) {
    static const int64_t s23[] = {2, 3}, s2[] = {2};
    Opt t;
    open_opt(&t, FC, OPT("Adam", "'amsgrad': true"));
    assert_int_equal(t.o.ntensors, 6);
    const char *keys[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "optimizer.fc.weight.%s", keys[k]);
        assert_tensor(&t.o.tensors[k], name, RT_F32, 2, s23);
        snprintf(name, sizeof name, "optimizer.fc.bias.%s", keys[k]);
        assert_tensor(&t.o.tensors[3 + k], name, RT_F64, 1, s2);
    }
    close_opt(&t);

    open_opt(&t, FC, OPT("Adam", ""));
    assert_int_equal(t.o.ntensors, 4); /* no max_exp_avg_sq without amsgrad */
    close_opt(&t);

    open_opt(&t, FC, OPT("SGD", "'lr': 0.1"));
    assert_int_equal(t.o.ntensors, 0); /* no momentum_buffer without momentum */
    close_opt(&t);

    open_opt(&t, FC, OPT("SGD", "'lr': 0.1, 'momentum': 0.9"));
    assert_int_equal(t.o.ntensors, 2);
    assert_tensor(&t.o.tensors[0], "optimizer.fc.weight.momentum_buffer", RT_F32, 2, s23);
    assert_tensor(&t.o.tensors[1], "optimizer.fc.bias.momentum_buffer", RT_F64, 1, s2);
    close_opt(&t);

    /* momentum in one group only: the buffer only there */
    open_opt(&t, FC, OPT_WITH("SGD", "'lr': 0.1", "'param_groups': [{'call': 'group', 'args': ['*.bias'], "
                                                  "'kwargs': {'momentum': 0.9}}]"));
    assert_int_equal(t.o.ntensors, 1);
    assert_tensor(&t.o.tensors[0], "optimizer.fc.bias.momentum_buffer", RT_F64, 1, s2);
    close_opt(&t);

    open_opt(&t, FC, OPT("RMSprop", "'momentum': 0.5, 'centered': true"));
    assert_int_equal(t.o.ntensors, 6);
    assert_tensor(&t.o.tensors[0], "optimizer.fc.weight.square_avg", RT_F32, 2, s23);
    assert_tensor(&t.o.tensors[1], "optimizer.fc.weight.momentum_buffer", RT_F32, 2, s23);
    assert_tensor(&t.o.tensors[2], "optimizer.fc.weight.grad_avg", RT_F32, 2, s23);
    close_opt(&t);

    open_opt(&t, FC, OPT("RMSprop", ""));
    assert_int_equal(t.o.ntensors, 2); /* square_avg */
    close_opt(&t);

    /* Adagrad's sum starts at initial_accumulator_value */
    open_opt(&t, FC, OPT("Adagrad", "'initial_accumulator_value': 0.5"));
    assert_int_equal(t.o.ntensors, 2);
    assert_tensor(&t.o.tensors[0], "optimizer.fc.weight.sum", RT_F32, 2, s23);
    for (int i = 0; i < 6; i++)
        assert_true(((float *)t.o.tensors[0].data)[i] == 0.5f);
    assert_true(((double *)t.o.tensors[1].data)[1] == 0.5);
    close_opt(&t);
}

/* the tensors are the live buffers: after Adam's first step on g1, exp_avg = 0.1 g1, exp_avg_sq = 0.001 g1^2;
   and a value written into them (a checkpoint loaded) is what the next step uses */
static void test_state_tensors_are_the_buffers(void **state) {
    Opt t;
    open_opt(&t, W_F64, OPT("Adam", "'lr': 0.1"));
    double w[2] = {1, -2}, g[2] = {0.5, 1};
    void *params[] = {w}, *grads[] = {g};
    rt_optim_feed(&t.o, params, grads, NULL);
    const double *m = t.o.tensors[0].data, *v = t.o.tensors[1].data;
    assert_near(m[0], 0.05, 1e-15, "exp_avg", 1, 0);
    assert_near(v[1], 0.001, 1e-15, "exp_avg_sq", 1, 1);
    close_opt(&t);

    /* SGD momentum resumed at step 1 with buffer [2, 2]: buf = 0.5 [2, 2] + g, not g */
    open_opt(&t, W_F64, OPT("SGD", "'lr': 1, 'momentum': 0.5"));
    double *buf = t.o.tensors[0].data;
    buf[0] = buf[1] = 2;
    t.o.steps = 1;
    w[0] = w[1] = 0;
    rt_optim_feed(&t.o, params, grads, NULL);
    assert_true(buf[0] == 1.5 && buf[1] == 2);
    assert_true(w[0] == -1.5 && w[1] == -2);
    close_opt(&t);
}

/* ---------------------------------------------------------------- the recipe */

static void test_parse_defaults(void **state) {
    Opt t;
    open_opt(&t, W_F32, OPT("AdamW", ""));
    const RtOptHyper *h = &t.spec.groups[0].h;
    assert_int_equal(t.spec.kind, RT_OPT_ADAMW);
    assert_true(h->lr == 1e-3 && h->beta1 == 0.9 && h->beta2 == 0.999 && h->eps == 1e-8 && h->weight_decay == 1e-2);
    assert_false(h->amsgrad || h->maximize);
    assert_int_equal(t.spec.ngroups, 1);
    assert_int_equal(t.spec.accumulate, 1);
    assert_true(t.spec.clip_grad_norm == 0 && t.spec.clip_grad_value == 0);
    close_opt(&t);

    open_opt(&t, W_F32, OPT("RMSprop", ""));
    h = &t.spec.groups[0].h;
    assert_true(h->lr == 1e-2 && h->alpha == 0.99 && h->eps == 1e-8 && h->momentum == 0 && !h->centered);
    close_opt(&t);

    open_opt(&t, W_F32, OPT("Adagrad", ""));
    h = &t.spec.groups[0].h;
    assert_true(h->lr == 1e-2 && h->lr_decay == 0 && h->eps == 1e-10 && h->initial_accumulator_value == 0);
    close_opt(&t);

    /* positional in torch's order: Adam(lr, betas, eps, weight_decay, amsgrad) */
    open_opt(&t, W_F32, "{'optimizer': {'call': 'Adam', 'args': [0.5, [0.25, 0.75], 0.125, 0.0625, true], 'kwargs': {}}}");
    h = &t.spec.groups[0].h;
    assert_true(h->lr == 0.5 && h->beta1 == 0.25 && h->beta2 == 0.75 && h->eps == 0.125 && h->weight_decay == 0.0625 &&
                h->amsgrad);
    close_opt(&t);

    /* RMSprop(lr, alpha, eps, weight_decay, momentum, centered) */
    open_opt(&t, W_F32, "{'optimizer': {'call': 'RMSprop', 'args': [0.5, 0.25, 0.125, 0.0625, 0.75, true], 'kwargs': {}}}");
    h = &t.spec.groups[0].h;
    assert_true(h->lr == 0.5 && h->alpha == 0.25 && h->eps == 0.125 && h->weight_decay == 0.0625 && h->momentum == 0.75 &&
                h->centered);
    close_opt(&t);

    /* Adagrad(lr, lr_decay, weight_decay, initial_accumulator_value, eps) */
    open_opt(&t, W_F32, "{'optimizer': {'call': 'Adagrad', 'args': [0.5, 0.25, 0.125, 0.0625, 0.75], 'kwargs': {}}}");
    h = &t.spec.groups[0].h;
    assert_true(h->lr == 0.5 && h->lr_decay == 0.25 && h->weight_decay == 0.125 && h->initial_accumulator_value == 0.0625 &&
                h->eps == 0.75);
    close_opt(&t);

    /* --set optimizer.lr=0.2 on SGD(0.1, 0.9) adds the keyword: it replaces the positional value */
    open_opt(&t, W_F32, "{'optimizer': {'call': 'SGD', 'args': [0.1, 0.9], 'kwargs': {'lr': 0.25}}}");
    assert_true(t.spec.groups[0].h.lr == 0.25 && t.spec.groups[0].h.momentum == 0.9);
    close_opt(&t);

    open_opt(&t, W_F32, OPT_WITH("SGD", "'lr': 0.1", "'clip_grad_norm': 2.5, 'clip_grad_value': 0.5, 'accumulate': 4"));
    assert_true(t.spec.clip_grad_norm == 2.5 && t.spec.clip_grad_value == 0.5);
    assert_int_equal(t.spec.accumulate, 4);
    close_opt(&t);
}

static void test_parse_errors(void **state) {
    assert_contains(error_of(W_F32, OPT("Adamw", "")),
                    "recipe key optimizer: unknown optimizer 'Adamw' (did you mean 'AdamW'?)");
    assert_contains(error_of(W_F32, OPT("RMSProp", "")), "did you mean 'RMSprop'?");
    assert_contains(error_of(W_F32, OPT("Lion", "")), "SGD, Adam, AdamW, RMSprop and Adagrad");
    assert_contains(error_of(W_F32, "{'optimizer': 3}"), "recipe key optimizer: expected a call");
    assert_contains(error_of(W_F32, "{}"), "recipe key optimizer: missing");
    assert_contains(error_of(W_F32, OPT("Adam", "'beta': [0.9, 0.99]")),
                    "recipe key optimizer: Adam has no argument 'beta' (did you mean 'betas'?)");
    assert_contains(error_of(W_F32, OPT("SGD", "'lr': 0.1, 'momentun': 0.9")), "did you mean 'momentum'?");
    assert_contains(error_of(W_F32, OPT("Adam", "'momentum': 0.9")), "Adam has no argument 'momentum'");
    assert_contains(error_of(W_F32, OPT("Adam", "'betas': [0.9, 1.0]")),
                    "recipe key optimizer: betas[1] must be at least 0 and below 1 (got 1)");
    assert_contains(error_of(W_F32, OPT("Adam", "'betas': [-0.1, 0.9]")), "betas[0]");
    assert_contains(error_of(W_F32, OPT("Adam", "'betas': 0.9")), "betas must be a list of two numbers");
    assert_contains(error_of(W_F32, OPT("Adam", "'betas': [0.9, 0.99, 0.9]")), "betas must be a list of two numbers");
    assert_contains(error_of(W_F32, OPT("SGD", "'lr': 0.1, 'nesterov': true")),
                    "recipe key optimizer: SGD's nesterov momentum requires a momentum and zero dampening");
    assert_contains(error_of(W_F32, OPT("SGD", "'lr': 0.1, 'momentum': 0.9, 'dampening': 0.1, 'nesterov': true")),
                    "requires a momentum and zero dampening");
    assert_contains(error_of(W_F32, OPT("SGD", "'momentum': 0.9")), "recipe key optimizer: SGD needs a learning rate");
    assert_contains(error_of(W_F32, OPT("Adam", "'lr': -0.1")), "recipe key optimizer: lr must be a number from 0");
    assert_contains(error_of(W_F32, OPT("RMSprop", "'alpha': -1")), "alpha must be a number from 0");
    assert_contains(error_of(W_F32, OPT("Adam", "'amsgrad': 1")), "amsgrad must be true or false");
    assert_contains(error_of(W_F32, "{'optimizer': {'call': 'SGD', 'args': [0.1, 0, 0, 0, false, true], 'kwargs': {}}}"),
                    "SGD takes at most 5 positional arguments");

    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'param_groups': 3")),
                    "recipe key param_groups: expected a list of group(...) calls");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'param_groups': [{'call': 'group', 'args': [], "
                                                                 "'kwargs': {'lr': 1}}]")),
                    "recipe key param_groups[0]: group needs at least one name pattern");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'param_groups': [{'call': 'group', 'args': [3], "
                                                                 "'kwargs': {}}]")),
                    "pattern 1 must be a string");
    assert_contains(error_of(W_F32, OPT_WITH("Adam", "", "'param_groups': [{'call': 'group', 'args': ['w'], "
                                                        "'kwargs': {'weight_decy': 0}}]")),
                    "recipe key param_groups[0]: Adam has no argument 'weight_decy' (did you mean 'weight_decay'?)");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'param_groups': [{'call': 'group', 'args': ['w'], "
                                                                 "'kwargs': {'nesterov': true}}]")),
                    "recipe key param_groups[0]: SGD's nesterov momentum requires");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'param_groups': [{'call': 'group', 'args': ['*.bais'], "
                                                                 "'kwargs': {}}]")),
                    "recipe key param_groups[0]: group(\"*.bais\") takes no trained parameter");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'param_groups': [{'call': 'grp', 'args': ['w'], "
                                                                 "'kwargs': {}}]")),
                    "recipe key param_groups[0]: expected a call group(");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'clip_grad_norm': -1")),
                    "recipe key clip_grad_norm: expected a positive number");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'clip_grad_value': 'a'")), "recipe key clip_grad_value");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'accumulate': 0")), "recipe key accumulate");
    assert_contains(error_of(W_F32, OPT_WITH("SGD", "'lr': 0.1", "'accumulate': 1.5")), "recipe key accumulate");
    assert_contains(error_of("[{'name': 'w', 'dtype': 'i64', 'shape': [2]}]", OPT("SGD", "'lr': 0.1")),
                    "parameter w is i64");
}

static void test_is_fused(void **state) {
    Opt a, b;
    open_opt(&a, W_F32, OPT("SGD", "'lr': 0.1, 'momentum': 0.9"));
    open_opt(&b, W_F32, OPT("SGD", "'lr': 0.5, 'momentum': 0.9")); /* another lr: still the compiled step */
    assert_true(rt_optim_is_fused(&b.spec, &a.spec));
    close_opt(&b);
    open_opt(&b, W_F32, OPT("SGD", "'lr': 0.1, 'momentum': 0.8"));
    assert_false(rt_optim_is_fused(&b.spec, &a.spec));
    close_opt(&b);
    open_opt(&b, W_F32, OPT_WITH("SGD", "'lr': 0.1, 'momentum': 0.9", "'clip_grad_norm': 1"));
    assert_false(rt_optim_is_fused(&b.spec, &a.spec));
    close_opt(&b);
    open_opt(&b, W_F32, OPT_WITH("SGD", "'lr': 0.1, 'momentum': 0.9", "'accumulate': 2"));
    assert_false(rt_optim_is_fused(&b.spec, &a.spec));
    close_opt(&b);
    open_opt(&b, W_F32, OPT_WITH("SGD", "'lr': 0.1, 'momentum': 0.9",
                                 "'param_groups': [{'call': 'group', 'args': ['w'], 'kwargs': {}}]"));
    assert_false(rt_optim_is_fused(&b.spec, &a.spec));
    close_opt(&b);
    open_opt(&b, W_F32, OPT("Adam", "'lr': 0.1"));
    assert_false(rt_optim_is_fused(&b.spec, &a.spec));
    close_opt(&b);
    close_opt(&a);
}

/* ---------------------------------------------------------------- threads */

#define BIG "[{'name': 'a', 'dtype': 'f32', 'shape': [300, 301]}, {'name': 'b', 'dtype': 'f64', 'shape': [40000]}," \
            " {'name': 'c', 'dtype': 'f32', 'shape': [5]}]"
enum { NA = 300 * 301, NB = 40000, NC = 5 };

/* Adam with clipping and accumulation on parameters of many blocks: the parameters, the state and the norm
   are the same bits with 1 thread and with 3 threads and ranges split 7 ways. */
static void run_big(int threads, int split, float *a, double *b, float *c, double *norm, void *state_out) {
    lathe_pool_init(threads);
    lathe_pool_test_split(split);
    Opt t;
    open_opt(&t, BIG, OPT_WITH("Adam", "'lr': 0.01, 'amsgrad': true", "'clip_grad_norm': 1.0, 'accumulate': 2"));
    float *ga = malloc(NA * sizeof *ga), gc[NC];
    double *gb = malloc(NB * sizeof *gb);
    assert_true(ga && gb);
    for (int i = 0; i < NA; i++)
        a[i] = (float)sin(i * 0.37);
    for (int i = 0; i < NB; i++)
        b[i] = cos(i * 0.11);
    for (int i = 0; i < NC; i++)
        c[i] = (float)i;
    void *params[] = {a, b, c}, *grads[] = {ga, gb, gc};
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < NA; i++)
            ga[i] = (float)sin(i * 0.013 + step);
        for (int i = 0; i < NB; i++)
            gb[i] = cos(i * 0.007 - step) / 3;
        for (int i = 0; i < NC; i++)
            gc[i] = (float)(i - step);
        rt_optim_feed(&t.o, params, grads, NULL);
    }
    rt_optim_flush(&t.o, params, NULL);
    *norm = rt_optim_last_grad_norm(&t.o);
    size_t off = 0;
    for (int k = 0; k < t.o.ntensors; k++) {
        size_t n = (size_t)(k < 3 ? NA : k < 6 ? NB : NC) * rt_dtype_size(t.o.tensors[k].dtype);
        memcpy((char *)state_out + off, t.o.tensors[k].data, n);
        off += n;
    }
    assert_int_equal(t.o.ntensors, 9);
    assert_true(t.o.nblocks > 6);
    close_opt(&t);
    free(ga);
    free(gb);
    lathe_pool_test_split(0);
    lathe_pool_init(1);
}

static void test_same_bits_for_any_thread_count(void **state) {
    size_t state_bytes = 3 * (NA * 4 + NB * 8 + NC * 4);
    float *a1 = malloc(NA * 4), *a3 = malloc(NA * 4), c1[NC], c3[NC];
    double *b1 = malloc(NB * 8), *b3 = malloc(NB * 8), n1, n3;
    void *s1 = malloc(state_bytes), *s3 = malloc(state_bytes);
    assert_true(a1 && a3 && b1 && b3 && s1 && s3);
    run_big(1, 0, a1, b1, c1, &n1, s1);
    run_big(3, 7, a3, b3, c3, &n3, s3);
    assert_memory_equal(a1, a3, NA * 4);
    assert_memory_equal(b1, b3, NB * 8);
    assert_memory_equal(c1, c3, sizeof c1);
    assert_memory_equal(s1, s3, state_bytes);
    assert_memory_equal(&n1, &n3, sizeof n1);
    assert_true(n1 > 1); /* the clipping took effect */
    free(a1), free(a3), free(b1), free(b3), free(s1), free(s3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_dampening),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_sgd_maximize),
        cmocka_unit_test(test_sgd_positional_arguments),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adam_betas),
        cmocka_unit_test(test_adam_eps),
        cmocka_unit_test(test_adam_weight_decay),
        cmocka_unit_test(test_adam_amsgrad),
        cmocka_unit_test(test_adam_maximize),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_adamw_weight_decay),
        cmocka_unit_test(test_adamw_amsgrad),
        cmocka_unit_test(test_adamw_maximize),
        cmocka_unit_test(test_rmsprop),
        cmocka_unit_test(test_rmsprop_alpha),
        cmocka_unit_test(test_rmsprop_eps),
        cmocka_unit_test(test_rmsprop_weight_decay),
        cmocka_unit_test(test_rmsprop_momentum),
        cmocka_unit_test(test_rmsprop_centered),
        cmocka_unit_test(test_rmsprop_maximize),
        cmocka_unit_test(test_adagrad),
        cmocka_unit_test(test_adagrad_lr_decay),
        cmocka_unit_test(test_adagrad_weight_decay),
        cmocka_unit_test(test_adagrad_initial_accumulator_value),
        cmocka_unit_test(test_adagrad_eps),
        cmocka_unit_test(test_adagrad_maximize),
        cmocka_unit_test(test_f64_parameters),
        cmocka_unit_test(test_f32_parameters_use_f32_arithmetic),
        cmocka_unit_test(test_accumulate_averages_k_batches),
        cmocka_unit_test(test_accumulate_flush_averages_what_was_fed),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_clip_grad_value),
        cmocka_unit_test(test_clip_grad_norm_of_accumulated_mean),
        cmocka_unit_test(test_groups_weight_decay_and_lr),
        cmocka_unit_test(test_state_names_and_shapes),
        cmocka_unit_test(test_state_tensors_are_the_buffers),
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_is_fused),
        cmocka_unit_test(test_same_bits_for_any_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
