/* optim.c: torch.optim's SGD, Adam, AdamW, RMSprop and Adagrad on the gradients the runtime receives, with
   gradient accumulation, clipping and parameter groups (optim.h). Each formula is PyTorch 1.13's
   single-tensor one, operation by operation and in the same order, rounded to the parameter's dtype after
   each operation as PyTorch's kernels round; the recipe's reading comes first, the arithmetic after it. */
#include "optim.h"

#include "lathe_kern.h"

#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the recipe */

static const char *const kind_names[] = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"};
enum { NKINDS = sizeof kind_names / sizeof kind_names[0] };

/* Every argument of the five optimizers: how it is read and where it goes. */
typedef enum { ARG_NUM, ARG_BOOL, ARG_BETAS } ArgType;
typedef struct ArgDef {
    const char *name;
    ArgType type;
    size_t off; /* of its double or bool in RtOptHyper (betas: beta1, beta2 follows) */
    double min;
} ArgDef;

#define HYP(f) offsetof(RtOptHyper, f)
static const ArgDef args[] = {
    {"lr", ARG_NUM, HYP(lr), 0},
    {"momentum", ARG_NUM, HYP(momentum), 0},
    {"dampening", ARG_NUM, HYP(dampening), -HUGE_VAL},
    {"weight_decay", ARG_NUM, HYP(weight_decay), 0},
    {"nesterov", ARG_BOOL, HYP(nesterov), 0},
    {"maximize", ARG_BOOL, HYP(maximize), 0},
    {"betas", ARG_BETAS, HYP(beta1), 0},
    {"eps", ARG_NUM, HYP(eps), 0},
    {"amsgrad", ARG_BOOL, HYP(amsgrad), 0},
    {"alpha", ARG_NUM, HYP(alpha), 0},
    {"centered", ARG_BOOL, HYP(centered), 0},
    {"lr_decay", ARG_NUM, HYP(lr_decay), 0},
    {"initial_accumulator_value", ARG_NUM, HYP(initial_accumulator_value), 0},
};
enum { A_LR, A_MOMENTUM, A_DAMPENING, A_WEIGHT_DECAY, A_NESTEROV, A_MAXIMIZE, A_BETAS, A_EPS, A_AMSGRAD, A_ALPHA,
       A_CENTERED, A_LR_DECAY, A_INITIAL, A_END = -1 };

/* Each optimizer's arguments in torch's positional order (after params); the first npositional may be
   given by position, the rest (maximize) only by keyword, as in torch. */
static const struct {
    int args[8];
    int npositional;
    const char *sig;
} kinds[] = {
    [RT_OPT_SGD] = {{A_LR, A_MOMENTUM, A_DAMPENING, A_WEIGHT_DECAY, A_NESTEROV, A_MAXIMIZE, A_END}, 5,
                    "SGD(lr, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false)"},
    [RT_OPT_ADAM] = {{A_LR, A_BETAS, A_EPS, A_WEIGHT_DECAY, A_AMSGRAD, A_MAXIMIZE, A_END}, 5,
                     "Adam(lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weight_decay = 0, amsgrad = false, "
                     "maximize = false)"},
    [RT_OPT_ADAMW] = {{A_LR, A_BETAS, A_EPS, A_WEIGHT_DECAY, A_AMSGRAD, A_MAXIMIZE, A_END}, 5,
                      "AdamW(lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weight_decay = 1e-2, amsgrad = false, "
                      "maximize = false)"},
    [RT_OPT_RMSPROP] = {{A_LR, A_ALPHA, A_EPS, A_WEIGHT_DECAY, A_MOMENTUM, A_CENTERED, A_MAXIMIZE, A_END}, 6,
                        "RMSprop(lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0, "
                        "centered = false, maximize = false)"},
    [RT_OPT_ADAGRAD] = {{A_LR, A_LR_DECAY, A_WEIGHT_DECAY, A_INITIAL, A_EPS, A_MAXIMIZE, A_END}, 5,
                        "Adagrad(lr = 1e-2, lr_decay = 0, weight_decay = 0, initial_accumulator_value = 0, "
                        "eps = 1e-10, maximize = false)"},
};

static RtOptHyper defaults(RtOptKind kind) {
    RtOptHyper h = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .alpha = 0.99};
    switch (kind) {
    case RT_OPT_SGD: break;
    case RT_OPT_ADAM: h.lr = 1e-3; break;
    case RT_OPT_ADAMW: h.lr = 1e-3, h.weight_decay = 1e-2; break;
    case RT_OPT_RMSPROP: h.lr = 1e-2; break;
    case RT_OPT_ADAGRAD: h.lr = 1e-2, h.eps = 1e-10; break;
    }
    return h;
}

static int unknown_name(RtErr *e, const char *key, const char *what, const char *s, const char *const *names,
                        int n, const char *list) {
    const char *near = rt_closest(s, names, n);
    if (near)
        return rt_errf(e, "recipe key %s: %s '%s' (did you mean '%s'?)", key, what, s, near);
    return rt_errf(e, "recipe key %s: %s '%s' (%s)", key, what, s, list);
}

/* Reads the arguments of call (the optimizer's, or a group's: positional false) over h. A keyword wins
   over the same argument given by position: the compiler refuses both in a model file, so both here come
   from --set optimizer.ARG=X, which must change the argument. */
static int read_hyper(const json_t *call, RtOptKind kind, const char *key, bool positional, RtOptHyper *h,
                      RtErr *e) {
    const char *name = kind_names[kind];
    const char *names[8];
    int nargs = 0;
    while (kinds[kind].args[nargs] != A_END)
        names[nargs] = args[kinds[kind].args[nargs]].name, nargs++;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(call, "kwargs"), k, v) {
        int i = 0;
        while (i < nargs && strcmp(names[i], k) != 0)
            i++;
        if (i == nargs) {
            char what[64];
            snprintf(what, sizeof what, "%s has no argument", name);
            return unknown_name(e, key, what, k, names, nargs, kinds[kind].sig);
        }
    }
    if (positional &&
        rt_call_check(call, key, name, names, nargs, kinds[kind].npositional, e) != RT_OK)
        return RT_ERR;
    for (int i = 0; i < nargs; i++) {
        const ArgDef *a = &args[kinds[kind].args[i]];
        int pos = positional && i < kinds[kind].npositional ? i : -1;
        char *field = (char *)h + a->off;
        if (a->type == ARG_NUM) {
            if (rt_call_num(call, key, a->name, pos, *(double *)field, a->min, HUGE_VAL, (double *)field, e) != RT_OK)
                return RT_ERR;
        } else if (a->type == ARG_BOOL) {
            if (rt_call_bool(call, key, a->name, pos, *(bool *)field, (bool *)field, e) != RT_OK)
                return RT_ERR;
        } else {
            json_t *b = rt_call_arg(call, a->name, pos);
            if (!b)
                continue;
            if (!json_is_array(b) || json_array_size(b) != 2 || !json_is_number(json_array_get(b, 0)) ||
                !json_is_number(json_array_get(b, 1)))
                return rt_errf(e, "recipe key %s: betas must be a list of two numbers, such as [0.9, 0.999]", key);
            for (int j = 0; j < 2; j++) {
                double beta = json_number_value(json_array_get(b, (size_t)j));
                if (!(beta >= 0 && beta < 1))
                    return rt_errf(e, "recipe key %s: betas[%d] must be at least 0 and below 1 (got %g)", key, j,
                                   beta);
                if (j == 0)
                    h->beta1 = beta;
                else
                    h->beta2 = beta;
            }
        }
    }
    if (kind == RT_OPT_SGD && h->nesterov && (h->momentum <= 0 || h->dampening != 0))
        return rt_errf(e, "recipe key %s: SGD's nesterov momentum requires a momentum and zero dampening "
                       "(momentum = %g, dampening = %g)", key, h->momentum, h->dampening);
    return RT_OK;
}

static int parse_optimizer(const json_t *call, RtOptimSpec *s, RtErr *e) {
    const char *key = "optimizer";
    if (!call)
        return rt_errf(e, "recipe key %s: missing (the train block needs `optimizer = SGD(lr = 0.1)` or another "
                       "of SGD, Adam, AdamW, RMSprop, Adagrad)", key);
    const char *name = json_string_value(json_object_get(call, "call"));
    if (!json_is_object(call) || !name)
        return rt_errf(e, "recipe key %s: expected a call such as Adam(lr = 1e-3)", key);
    int kind = 0;
    while (kind < NKINDS && strcmp(kind_names[kind], name) != 0)
        kind++;
    if (kind == NKINDS)
        return unknown_name(e, key, "unknown optimizer", name, kind_names, NKINDS,
                            "the optimizers are SGD, Adam, AdamW, RMSprop and Adagrad");
    s->kind = (RtOptKind)kind;
    RtOptHyper *h = &s->groups[0].h;
    *h = defaults(s->kind);
    if (s->kind == RT_OPT_SGD && !rt_call_arg(call, "lr", 0))
        return rt_errf(e, "recipe key %s: SGD needs a learning rate (SGD(lr = 0.1))", key);
    return read_hyper(call, s->kind, key, true, h, e);
}

/* param_groups = [group("*.bias", "*bn*.weight", weight_decay = 0), group("head.*", lr = 1e-2)] */
static int parse_groups(const json_t *list, RtOptimSpec *s, RtErr *e) {
    if (!list)
        return RT_OK;
    if (!json_is_array(list))
        return rt_errf(e, "recipe key param_groups: expected a list of group(...) calls, such as "
                       "[group(\"*.bias\", weight_decay = 0)]");
    if (json_array_size(list) > RT_OPT_MAX_GROUPS - 1)
        return rt_errf(e, "recipe key param_groups: at most %d groups (got %zu)", RT_OPT_MAX_GROUPS - 1,
                       json_array_size(list));
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *call = json_array_get(list, i);
        char key[64];
        snprintf(key, sizeof key, "param_groups[%zu]", i);
        const char *name = json_string_value(json_object_get(call, "call"));
        if (!json_is_object(call) || !name || strcmp(name, "group") != 0)
            return rt_errf(e, "recipe key %s: expected a call group(\"PATTERN\", ..., KEYWORD = VALUE), such as "
                           "group(\"*.bias\", weight_decay = 0)", key);
        RtOptGroup *g = &s->groups[s->ngroups];
        const json_t *pats = json_object_get(call, "args");
        if (json_array_size(pats) == 0)
            return rt_errf(e, "recipe key %s: group needs at least one name pattern, such as "
                           "group(\"*.bias\", weight_decay = 0)", key);
        if (json_array_size(pats) > RT_OPT_MAX_PATTERNS)
            return rt_errf(e, "recipe key %s: at most %d patterns in a group (got %zu)", key, RT_OPT_MAX_PATTERNS,
                           json_array_size(pats));
        g->npatterns = (int)json_array_size(pats);
        for (int k = 0; k < g->npatterns; k++) {
            g->patterns[k] = json_string_value(json_array_get(pats, (size_t)k));
            if (!g->patterns[k])
                return rt_errf(e, "recipe key %s: pattern %d must be a string such as \"*.bias\"", key, k + 1);
        }
        g->h = s->groups[0].h;
        if (read_hyper(call, s->kind, key, false, &g->h, e) != RT_OK)
            return RT_ERR;
        s->ngroups++;
    }
    return RT_OK;
}

int rt_optim_spec_parse(const json_t *recipe, RtOptimSpec *s, RtErr *e) {
    memset(s, 0, sizeof *s);
    s->ngroups = 1;
    s->accumulate = 1;
    if (parse_optimizer(json_object_get(recipe, "optimizer"), s, e) != RT_OK ||
        parse_groups(json_object_get(recipe, "param_groups"), s, e) != RT_OK)
        return RT_ERR;
    static const char *const clip_keys[] = {"clip_grad_norm", "clip_grad_value"};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(recipe, clip_keys[i]);
        if (v && (!json_is_number(v) || json_number_value(v) < 0))
            return rt_errf(e, "recipe key %s: expected a positive number (0: no clipping)", clip_keys[i]);
        *(i ? &s->clip_grad_value : &s->clip_grad_norm) = v ? json_number_value(v) : 0;
    }
    const json_t *acc = json_object_get(recipe, "accumulate");
    if (acc && (!json_is_integer(acc) || json_integer_value(acc) < 1))
        return rt_errf(e, "recipe key accumulate: expected a whole number of batches of at least 1");
    if (acc)
        s->accumulate = json_integer_value(acc);
    return RT_OK;
}

bool rt_optim_is_fused(const RtOptimSpec *s, const RtOptimSpec *compiled) {
    if (s->kind != RT_OPT_SGD || compiled->kind != RT_OPT_SGD || s->ngroups != 1 || s->clip_grad_norm != 0 ||
        s->clip_grad_value != 0 || s->accumulate != 1)
        return false;
    const RtOptHyper *a = &s->groups[0].h, *b = &compiled->groups[0].h;
    return a->momentum == b->momentum && a->dampening == b->dampening && a->weight_decay == b->weight_decay &&
           a->nesterov == b->nesterov && a->maximize == b->maximize;
}

/* ---------------------------------------------------------------- the state */

/* The state keys of each optimizer, in PyTorch's order; slot k of a parameter's state is key k. */
enum { NSLOTS = 3 };
static const char *const slot_keys[][NSLOTS] = {
    [RT_OPT_SGD] = {"momentum_buffer"},
    [RT_OPT_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [RT_OPT_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [RT_OPT_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [RT_OPT_ADAGRAD] = {"sum"},
};
enum { SGD_BUF = 0, ADAM_M = 0, ADAM_V = 1, ADAM_VMAX = 2, RMS_SQ = 0, RMS_BUF = 1, RMS_GAVG = 2, ADAGRAD_SUM = 0 };

/* Whether PyTorch keeps slot k for a parameter of hyperparameters h. */
static bool slot_kept(RtOptKind kind, const RtOptHyper *h, int k) {
    switch (kind) {
    case RT_OPT_SGD: return k == SGD_BUF && h->momentum != 0;
    case RT_OPT_ADAM:
    case RT_OPT_ADAMW: return k == ADAM_M || k == ADAM_V || (k == ADAM_VMAX && h->amsgrad);
    case RT_OPT_RMSPROP: return k == RMS_SQ || (k == RMS_BUF && h->momentum > 0) || (k == RMS_GAVG && h->centered);
    case RT_OPT_ADAGRAD: return k == ADAGRAD_SUM;
    }
    return false;
}

struct RtOptState {
    void *slot[NSLOTS]; /* NULL where PyTorch keeps no such state */
    void *acc;          /* accumulate > 1: the sum of the gradients fed since the last step */
    int64_t numel;
};

/* Elements of one parameter that one range of the pool updates: large enough to pay for itself, small
   enough to share a layer between threads. */
#define BLOCK_ELEMS 16384

struct RtOptBlock {
    int param;
    int64_t lo, hi;
};

static int group_of(const RtOptimSpec *s, const char *name) {
    for (int g = 1; g < s->ngroups; g++)
        for (int k = 0; k < s->groups[g].npatterns; k++)
            if (fnmatch(s->groups[g].patterns[k], name, 0) == 0)
                return g;
    return 0;
}

int64_t rt_optim_state_bytes(const RtOptimSpec *s, const RtManifest *m) {
    int64_t total = 0;
    for (int i = 0; i < m->nparams; i++) {
        const RtParam *p = &m->params[i];
        int64_t numel;
        if (!p->trainable || !rt_numel(&p->t, 1, &numel))
            continue;
        const RtOptHyper *h = &s->groups[group_of(s, p->t.name)].h;
        int copies = s->accumulate > 1; /* the accumulated gradient */
        for (int k = 0; k < NSLOTS; k++)
            copies += slot_kept(s->kind, h, k);
        total += copies * numel * (int64_t)rt_dtype_size(p->t.dtype);
    }
    return total;
}

static int open_state(RtOptim *o, RtErr *e) {
    const RtManifest *m = o->m;
    const RtOptimSpec *s = &o->spec;
    size_t names_len = 0;
    int64_t nblocks = 0;
    int members[RT_OPT_MAX_GROUPS] = {0};
    for (int i = 0; i < m->nparams; i++) {
        const RtParam *p = &m->params[i];
        o->group[i] = -1;
        if (!p->trainable)
            continue;
        if (p->t.dtype != RT_F32 && p->t.dtype != RT_F64)
            return rt_errf(e, "recipe key optimizer: parameter %s is %s; the optimizers update f32 and f64 "
                           "parameters only", p->t.name, rt_dtype_name(p->t.dtype));
        int g = o->group[i] = group_of(s, p->t.name);
        members[g]++;
        RtOptState *st = &o->st[i];
        if (!rt_numel(&p->t, 1, &st->numel))
            return rt_errf(e, "recipe key optimizer: parameter %s is too large", p->t.name);
        nblocks += (st->numel + BLOCK_ELEMS - 1) / BLOCK_ELEMS;
        o->numel += st->numel;
        for (int k = 0; k < NSLOTS; k++)
            if (slot_kept(s->kind, &s->groups[g].h, k)) {
                o->ntensors++;
                names_len += strlen("optimizer...") + strlen(p->t.name) + strlen(slot_keys[s->kind][k]) + 1;
            }
    }
    for (int g = 1; g < s->ngroups; g++)
        if (members[g] == 0)
            return rt_errf(e, "recipe key param_groups[%d]: group(\"%s\"%s) takes no trained parameter (a "
                           "parameter takes the first group that matches its name)", g - 1,
                           s->groups[g].patterns[0], s->groups[g].npatterns > 1 ? ", ..." : "");

    o->norm_f32 = true;
    for (int i = 0; i < m->nparams; i++)
        if (o->group[i] >= 0 && m->params[i].t.dtype != RT_F32)
            o->norm_f32 = false;
    o->nblocks = nblocks;
    o->blocks = calloc((size_t)nblocks + 1, sizeof *o->blocks);
    o->block_sumsq = calloc((size_t)nblocks + 1, sizeof *o->block_sumsq);
    o->tensors = calloc((size_t)o->ntensors + 1, sizeof *o->tensors);
    o->names = malloc(names_len + 1);
    if (!o->blocks || !o->block_sumsq || !o->tensors || !o->names)
        return rt_errf(e, "recipe key optimizer: out of memory");

    char *name = o->names;
    int64_t b = 0;
    int t = 0;
    for (int i = 0; i < m->nparams; i++) {
        int g = o->group[i];
        if (g < 0)
            continue;
        const RtParam *p = &m->params[i];
        RtOptState *st = &o->st[i];
        size_t size = rt_dtype_size(p->t.dtype);
        for (int64_t lo = 0; lo < st->numel; lo += BLOCK_ELEMS)
            o->blocks[b++] = (RtOptBlock){i, lo, lo + BLOCK_ELEMS < st->numel ? lo + BLOCK_ELEMS : st->numel};
        for (int k = 0; k < NSLOTS; k++) {
            if (!slot_kept(s->kind, &s->groups[g].h, k))
                continue;
            st->slot[k] = calloc((size_t)st->numel + 1, size);
            if (!st->slot[k])
                return rt_errf(e, "recipe key optimizer: out of memory for the state of %s (%lld bytes)",
                               p->t.name, (long long)(st->numel * (int64_t)size));
            if (s->kind == RT_OPT_ADAGRAD) /* torch.full_like(p, initial_accumulator_value) */
                for (int64_t j = 0; j < st->numel; j++)
                    rt_store(p->t.dtype, st->slot[k], j, s->groups[g].h.initial_accumulator_value);
            RtTensor *ts = &o->tensors[t++];
            ts->name = name;
            name += sprintf(name, "optimizer.%s.%s", p->t.name, slot_keys[s->kind][k]) + 1;
            ts->dtype = p->t.dtype;
            ts->rank = p->t.rank;
            memcpy(ts->shape, p->t.shape, sizeof ts->shape);
            ts->data = st->slot[k];
        }
        if (s->accumulate > 1 && !(st->acc = calloc((size_t)st->numel + 1, size)))
            return rt_errf(e, "recipe key optimizer: out of memory for the accumulated gradient of %s", p->t.name);
    }
    return RT_OK;
}

int rt_optim_open(RtOptim *o, const RtOptimSpec *s, const RtManifest *m, RtErr *e) {
    memset(o, 0, sizeof *o);
    o->spec = *s;
    o->m = m;
    o->nparams = m->nparams;
    o->group = calloc((size_t)m->nparams + 1, sizeof *o->group);
    o->st = calloc((size_t)m->nparams + 1, sizeof *o->st);
    if (!o->group || !o->st) {
        rt_optim_close(o);
        return rt_errf(e, "recipe key optimizer: out of memory");
    }
    if (open_state(o, e) != RT_OK) {
        rt_optim_close(o);
        return RT_ERR;
    }
    return RT_OK;
}

void rt_optim_close(RtOptim *o) {
    for (int i = 0; o->st && i < o->nparams; i++) {
        for (int k = 0; k < NSLOTS; k++)
            free(o->st[i].slot[k]);
        free(o->st[i].acc);
    }
    free(o->st);
    free(o->group);
    free(o->blocks);
    free(o->block_sumsq);
    free(o->tensors);
    free(o->names);
    memset(o, 0, sizeof *o);
}

/* ---------------------------------------------------------------- the arithmetic

   Every value is held in a double and rounded to the parameter's dtype after each operation, as PyTorch's
   kernels round: for f32 this is f32 arithmetic exactly (a double holds more than twice a float's 24 bits,
   so +, -, *, / and sqrt rounded twice give the once-rounded float result). PyTorch's Python scalars (lr,
   1 - beta1, ...) enter its kernels converted to the tensor's dtype, and its CPU kernels (AVX2 and later)
   fuse a multiply into the add that follows it where the formula is add(x, y, alpha = a) (x + a y) or
   addcmul (x + v y z): FMA does the same here (for f32 the product of two floats is exact in a double, so
   one rounding to double then one to float; for f64 the C library's fma). The element loops are written
   once, inlined with f32 a constant, so that each dtype gets its own straight loop. Inside them R(x) rounds
   a scalar to the dtype; ADD, MUL, DIV and SQRT are the dtype's operations on values of the dtype (for f32
   the float instructions, which give the same bits as the double ones rounded); FMA(a, b, c) is a b + c
   rounded once. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE double rnd(double x, bool f32) { return f32 ? (double)(float)x : x; }
ALWAYS_INLINE double add(double a, double b, bool f32) { return f32 ? (double)((float)a + (float)b) : a + b; }
ALWAYS_INLINE double mul(double a, double b, bool f32) { return f32 ? (double)((float)a * (float)b) : a * b; }
ALWAYS_INLINE double dvd(double a, double b, bool f32) { return f32 ? (double)((float)a / (float)b) : a / b; }
ALWAYS_INLINE double root(double a, bool f32) { return f32 ? (double)sqrtf((float)a) : sqrt(a); }
ALWAYS_INLINE double fused(double a, double b, double c, bool f32) {
    return f32 ? (double)(float)(a * b + c) : fma(a, b, c);
}
#define R(x) rnd((x), f32)
#define ADD(a, b) add((a), (b), f32)
#define MUL(a, b) mul((a), (b), f32)
#define DIV(a, b) dvd((a), (b), f32)
#define SQRT(a) root((a), f32)
#define FMA(a, b, c) fused((a), (b), (c), f32)

ALWAYS_INLINE double ld(const void *p, int64_t i, bool f32) {
    return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
ALWAYS_INLINE void st(void *p, int64_t i, double v, bool f32) {
    if (f32)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}
/* torch.maximum: NaN in, NaN out */
ALWAYS_INLINE double max_nan(double a, double b) { return isnan(a) || a > b ? a : b; }

/* The step's scalars for one group, as PyTorch computes them in Python (doubles). */
typedef struct GroupStep {
    const RtOptHyper *h;
    double lr;
    double step_size, bc2_sqrt; /* Adam, AdamW: lr / (1 - beta1^t), sqrt(1 - beta2^t) */
    double clr;                 /* Adagrad: lr / (1 + (t - 1) lr_decay) */
} GroupStep;

typedef struct Step {
    RtOptim *o;
    void **params;
    void *const *grads; /* per param: one batch's gradient; NULL: the sums of n batches in the state's acc */
    int64_t n;          /* batches summed */
    double clip_coef;   /* clip_grad_norm_'s factor; 1: none */
    double clip_value;  /* 0: none */
    bool first;         /* the first step: SGD's momentum buffer is the gradient */
    GroupStep g[RT_OPT_MAX_GROUPS];
} Step;

ALWAYS_INLINE const void *grad_of(const Step *s, int pi) { return s->grads ? s->grads[pi] : s->o->st[pi].acc; }

/* Element i of the gradient averaged over the batches accumulated. */
ALWAYS_INLINE double mean_grad(const Step *s, const void *grad, int64_t i, bool f32) {
    double g = ld(grad, i, f32);
    return s->n > 1 ? DIV(g, R((double)s->n)) : g;
}

/* Element i of the gradient that the optimizer sees: the mean, scaled by clip_grad_norm_ (grad.mul_(coef)),
   clamped by clip_grad_value_, negated for maximize. */
ALWAYS_INLINE double grad_at(const Step *s, const void *grad, int64_t i, bool maximize, bool f32) {
    double g = mean_grad(s, grad, i, f32);
    if (s->clip_coef != 1)
        g = MUL(g, R(s->clip_coef));
    if (s->clip_value > 0) {
        double v = R(s->clip_value);
        g = g < -v ? -v : g > v ? v : g;
    }
    return maximize ? -g : g;
}

/* torch/optim/sgd.py, _single_tensor_sgd:
       d = grad + weight_decay p
       buf = d on the first step, momentum buf + (1 - dampening) d after it
       d = d + momentum buf (nesterov), or buf
       p = p - lr d */
/* The loop of sgd_range, with the common cases as constant arguments so that each becomes its own
   branch-free, vectorized loop: plain (the gradient as it is: one batch, no clipping, not maximized), wd_on
   and mom_on (weight decay and momentum present). The arithmetic is the same in every case. */
ALWAYS_INLINE void sgd_loop(const Step *s, const GroupStep *gs, int pi, int64_t lo, int64_t hi, bool f32, bool plain,
                            bool wd_on, bool mom_on, bool first, bool nesterov) {
    const RtOptHyper *h = gs->h;
    void *p = s->params[pi], *buf = s->o->st[pi].slot[SGD_BUF];
    const void *grad = grad_of(s, pi);
    double wd = R(h->weight_decay), mom = R(h->momentum), damp1 = R(1 - h->dampening), neg_lr = R(-gs->lr);
    for (int64_t i = lo; i < hi; i++) {
        double x = ld(p, i, f32), d = plain ? ld(grad, i, f32) : grad_at(s, grad, i, h->maximize, f32);
        if (wd_on)
            d = FMA(wd, x, d);
        if (mom_on) {
            double b = first ? d : FMA(damp1, d, MUL(ld(buf, i, f32), mom));
            st(buf, i, b, f32);
            d = nesterov ? FMA(mom, b, d) : b;
        }
        st(p, i, FMA(neg_lr, d, x), f32);
    }
}

ALWAYS_INLINE void sgd_range(const Step *s, const GroupStep *gs, int pi, int64_t lo, int64_t hi, bool f32) {
    const RtOptHyper *h = gs->h;
    bool plain = s->n == 1 && s->clip_coef == 1 && !(s->clip_value > 0) && !h->maximize;
    if (plain && h->weight_decay == 0 && h->momentum == 0)
        sgd_loop(s, gs, pi, lo, hi, f32, true, false, false, false, false);
    else if (plain && h->weight_decay == 0 && !h->nesterov && !s->first)
        sgd_loop(s, gs, pi, lo, hi, f32, true, false, true, false, false);
    else
        sgd_loop(s, gs, pi, lo, hi, f32, plain, h->weight_decay != 0, h->momentum != 0, s->first, h->nesterov);
}

/* torch/optim/adam.py and adamw.py, _single_tensor_adam(w), step t counted from 1:
       AdamW: p = p (1 - lr weight_decay);  Adam: grad = grad + weight_decay p
       m = beta1 m + (1 - beta1) grad;  v = beta2 v + (1 - beta2) grad grad;  amsgrad: vmax = max(vmax, v)
       p = p - lr / (1 - beta1^t) m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps) */
ALWAYS_INLINE void adam_range(const Step *s, const GroupStep *gs, int pi, int64_t lo, int64_t hi, bool f32) {
    const RtOptHyper *h = gs->h;
    bool decoupled = s->o->spec.kind == RT_OPT_ADAMW;
    void *p = s->params[pi], *const *slot = s->o->st[pi].slot;
    const void *grad = grad_of(s, pi);
    double wd = R(h->weight_decay), decay = R(1 - gs->lr * h->weight_decay);
    double b1 = R(h->beta1), b2 = R(h->beta2), one_b1 = R(1 - h->beta1), one_b2 = R(1 - h->beta2);
    double bc2_sqrt = R(gs->bc2_sqrt), eps = R(h->eps), neg_step = R(-gs->step_size);
    for (int64_t i = lo; i < hi; i++) {
        double x = ld(p, i, f32), g = grad_at(s, grad, i, h->maximize, f32);
        if (decoupled)
            x = MUL(x, decay);
        else if (h->weight_decay != 0)
            g = FMA(wd, x, g);
        double m = FMA(one_b1, g, MUL(ld(slot[ADAM_M], i, f32), b1));
        double v = FMA(MUL(one_b2, g), g, MUL(ld(slot[ADAM_V], i, f32), b2));
        st(slot[ADAM_M], i, m, f32);
        st(slot[ADAM_V], i, v, f32);
        if (h->amsgrad) {
            v = max_nan(ld(slot[ADAM_VMAX], i, f32), v);
            st(slot[ADAM_VMAX], i, v, f32);
        }
        double denom = ADD(DIV(SQRT(v), bc2_sqrt), eps);
        st(p, i, ADD(x, DIV(MUL(neg_step, m), denom)), f32);
    }
}

/* torch/optim/rmsprop.py, _single_tensor_rmsprop:
       grad = grad + weight_decay p;  sq = alpha sq + (1 - alpha) grad grad
       centered: ga = alpha ga + (1 - alpha) grad, avg = sqrt(sq - ga ga); else avg = sqrt(sq);  avg += eps
       momentum > 0: buf = momentum buf + grad / avg, p = p - lr buf;  else p = p - lr grad / avg */
ALWAYS_INLINE void rmsprop_range(const Step *s, const GroupStep *gs, int pi, int64_t lo, int64_t hi, bool f32) {
    const RtOptHyper *h = gs->h;
    void *p = s->params[pi], *const *slot = s->o->st[pi].slot;
    const void *grad = grad_of(s, pi);
    double wd = R(h->weight_decay), alpha = R(h->alpha), one_alpha = R(1 - h->alpha);
    double eps = R(h->eps), mom = R(h->momentum), neg_lr = R(-gs->lr);
    for (int64_t i = lo; i < hi; i++) {
        double x = ld(p, i, f32), g = grad_at(s, grad, i, h->maximize, f32);
        if (h->weight_decay != 0)
            g = FMA(wd, x, g);
        double sq = FMA(MUL(one_alpha, g), g, MUL(ld(slot[RMS_SQ], i, f32), alpha));
        st(slot[RMS_SQ], i, sq, f32);
        double avg;
        if (h->centered) {
            double ga = FMA(one_alpha, g, MUL(ld(slot[RMS_GAVG], i, f32), alpha));
            st(slot[RMS_GAVG], i, ga, f32);
            avg = SQRT(FMA(-ga, ga, sq));
        } else {
            avg = SQRT(sq);
        }
        avg = ADD(avg, eps);
        if (h->momentum > 0) {
            double b = ADD(MUL(ld(slot[RMS_BUF], i, f32), mom), DIV(g, avg));
            st(slot[RMS_BUF], i, b, f32);
            st(p, i, FMA(neg_lr, b, x), f32);
        } else {
            st(p, i, ADD(x, DIV(MUL(neg_lr, g), avg)), f32);
        }
    }
}

/* torch/optim/adagrad.py, _single_tensor_adagrad, step t counted from 1:
       grad = grad + weight_decay p;  sum = sum + grad grad
       p = p - lr / (1 + (t - 1) lr_decay) grad / (sqrt(sum) + eps) */
ALWAYS_INLINE void adagrad_range(const Step *s, const GroupStep *gs, int pi, int64_t lo, int64_t hi, bool f32) {
    const RtOptHyper *h = gs->h;
    void *p = s->params[pi], *sum = s->o->st[pi].slot[ADAGRAD_SUM];
    const void *grad = grad_of(s, pi);
    double wd = R(h->weight_decay), eps = R(h->eps), neg_clr = R(-gs->clr);
    for (int64_t i = lo; i < hi; i++) {
        double x = ld(p, i, f32), g = grad_at(s, grad, i, h->maximize, f32);
        if (h->weight_decay != 0)
            g = FMA(wd, x, g);
        double acc = FMA(g, g, ld(sum, i, f32));
        st(sum, i, acc, f32);
        double std = ADD(SQRT(acc), eps);
        st(p, i, ADD(x, DIV(MUL(neg_clr, g), std)), f32);
    }
}

ALWAYS_INLINE void update_range(const Step *s, const RtOptBlock *b, bool f32) {
    const GroupStep *gs = &s->g[s->o->group[b->param]];
    switch (s->o->spec.kind) {
    case RT_OPT_SGD: sgd_range(s, gs, b->param, b->lo, b->hi, f32); break;
    case RT_OPT_ADAM:
    case RT_OPT_ADAMW: adam_range(s, gs, b->param, b->lo, b->hi, f32); break;
    case RT_OPT_RMSPROP: rmsprop_range(s, gs, b->param, b->lo, b->hi, f32); break;
    case RT_OPT_ADAGRAD: adagrad_range(s, gs, b->param, b->lo, b->hi, f32); break;
    }
}

/* The element loops vectorize where the machine has AVX2 or AVX-512 (a clone for each, chosen at load time);
   optim.c is compiled with -fno-math-errno (sqrt as an instruction) and -ffp-contract=off (no multiply-add
   fused but those FMA() writes), so every clone gives the same bits. */
#ifndef LATHE_NO_CLONES /* ThreadSanitizer builds: an ifunc resolver would run before the TSan runtime starts */
#define OPTIM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OPTIM_CLONES
#endif

OPTIM_CLONES static void update_blocks(void *ctx, int64_t lo, int64_t hi) {
    const Step *s = ctx;
    for (int64_t k = lo; k < hi; k++) {
        const RtOptBlock *b = &s->o->blocks[k];
        if (s->o->m->params[b->param].t.dtype == RT_F32)
            update_range(s, b, true);
        else
            update_range(s, b, false);
    }
}

/* The sum of squares of a block's averaged gradient, in double: four running sums (element i into sum
   i % 4) so that the adds overlap, added up in a fixed order. */
ALWAYS_INLINE double sumsq_range(const Step *s, const RtOptBlock *b, bool f32) {
    const void *grad = grad_of(s, b->param);
    double sum[4] = {0, 0, 0, 0};
    int64_t i = b->lo;
    for (; i + 4 <= b->hi; i += 4)
        for (int k = 0; k < 4; k++) {
            double g = mean_grad(s, grad, i + k, f32);
            sum[k] += g * g;
        }
    for (; i < b->hi; i++) {
        double g = mean_grad(s, grad, i, f32);
        sum[0] += g * g;
    }
    return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

OPTIM_CLONES static void sumsq_blocks(void *ctx, int64_t lo, int64_t hi) {
    const Step *s = ctx;
    for (int64_t k = lo; k < hi; k++) {
        const RtOptBlock *b = &s->o->blocks[k];
        s->o->block_sumsq[k] = s->o->m->params[b->param].t.dtype == RT_F32 ? sumsq_range(s, b, true)
                                                                            : sumsq_range(s, b, false);
    }
}

typedef struct Accumulate {
    RtOptim *o;
    void *const *grads;
} Accumulate;

OPTIM_CLONES static void accumulate_blocks(void *ctx, int64_t lo, int64_t hi) {
    const Accumulate *a = ctx;
    for (int64_t k = lo; k < hi; k++) {
        const RtOptBlock *b = &a->o->blocks[k];
        void *acc = a->o->st[b->param].acc;
        const void *g = a->grads[b->param];
        bool f32 = a->o->m->params[b->param].t.dtype == RT_F32;
        for (int64_t i = b->lo; i < b->hi; i++)
            st(acc, i, a->o->pending == 0 ? ld(g, i, f32) : ADD(ld(acc, i, f32), ld(g, i, f32)), f32);
    }
}

/* The work of one block for the pool's split rule, in operations: per elements of a block on average. */
static int64_t block_cost(const RtOptim *o, int64_t per_element) {
    return o->nblocks ? o->numel / o->nblocks * per_element : 0;
}

/* torch.nn.utils.clip_grad_norm_'s norm: each gradient's 2-norm in its dtype, then the 2-norm of those,
   in f32 when every gradient is f32 (f64 otherwise, as torch.stack promotes). Each gradient's sum of
   squares is its blocks' sums added in order, so that the bits do not depend on the threads. */
static double global_norm(RtOptim *o, Step *s) {
    lathe_parallel_for(o->nblocks, block_cost(o, 4), sumsq_blocks, s);
    bool f32 = o->norm_f32;
    double total = 0;
    for (int64_t k = 0; k < o->nblocks;) {
        double sum = 0;
        int param = o->blocks[k].param;
        for (; k < o->nblocks && o->blocks[k].param == param; k++)
            sum += o->block_sumsq[k];
        double norm = R(sqrt(sum));
        total += norm * norm;
    }
    return R(sqrt(total));
}

/* clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, as tensor arithmetic in the norm's dtype
   (Python's max_norm / t is t.reciprocal() * max_norm); NaN stays NaN, as torch.clamp keeps it. */
static double clip_coef(double max_norm, double norm, bool f32) {
    double coef = MUL(DIV(1, ADD(norm, R(1e-6))), R(max_norm));
    return coef > 1 ? 1 : coef;
}

static void take_step(RtOptim *o, void **params, void *const *grads, int64_t n, const double *group_lr) {
    Step s = {.o = o, .params = params, .grads = grads, .n = n, .clip_coef = 1,
              .clip_value = o->spec.clip_grad_value, .first = o->steps == 0};
    double t = (double)(o->steps + 1);
    for (int g = 0; g < o->spec.ngroups; g++) {
        GroupStep *gs = &s.g[g];
        gs->h = &o->spec.groups[g].h;
        gs->lr = group_lr ? group_lr[g] : gs->h->lr;
        gs->step_size = gs->lr / (1 - pow(gs->h->beta1, t));
        gs->bc2_sqrt = sqrt(1 - pow(gs->h->beta2, t));
        gs->clr = gs->lr / (1 + (t - 1) * gs->h->lr_decay);
    }

    /* the norm costs a pass over every gradient: only where it clips or is asked for */
    o->last_norm = o->track_norm || o->spec.clip_grad_norm > 0 || o->spec.clip_grad_value > 0 ? global_norm(o, &s) : 0;
    if (o->spec.clip_grad_norm > 0)
        s.clip_coef = clip_coef(o->spec.clip_grad_norm, o->last_norm, o->norm_f32);

    lathe_parallel_for(o->nblocks, block_cost(o, 32), update_blocks, &s);
    o->steps++;
}

bool rt_optim_feed(RtOptim *o, void **params, void *const *grads, const double *group_lr) {
    if (o->spec.accumulate <= 1) {
        take_step(o, params, grads, 1, group_lr);
        return true;
    }
    Accumulate a = {o, grads};
    lathe_parallel_for(o->nblocks, block_cost(o, 2), accumulate_blocks, &a);
    if (++o->pending < o->spec.accumulate)
        return false;
    return rt_optim_flush(o, params, group_lr);
}

bool rt_optim_flush(RtOptim *o, void **params, const double *group_lr) {
    if (o->pending == 0)
        return false;
    take_step(o, params, NULL, o->pending, group_lr);
    o->pending = 0;
    return true;
}

double rt_optim_last_grad_norm(const RtOptim *o) { return o->last_norm; }
