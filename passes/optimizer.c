/* optimizer.c: lowers the recipe's optimizer call into the train graph. The learning rate is a graph
   INPUT "lr" (one f32 scalar), not a constant, so that a binary's --lr flag changes it at run time; each
   "grad.NAME" output becomes an update output NAME carrying the parameter's new value, and SGD's momentum
   buffer is a STATE "optimizer.NAME.momentum_buffer" rewritten in place by an update output of its own. */
#include "passes.h"

#include <math.h>
#include <string.h>

/* torch.optim.SGD's arguments, with PyTorch's defaults. */
typedef struct Sgd {
    double lr, momentum, dampening, weight_decay;
    bool nesterov, maximize;
} Sgd;

/* The keywords in torch's positional order (SGD(params, lr, momentum, dampening, weight_decay, nesterov));
   maximize is keyword-only there and here. */
static const char *const sgd_keys[] = {"lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"};
enum { SGD_NKEYS = sizeof sgd_keys / sizeof sgd_keys[0], SGD_NPOSITIONAL = 5 };

/* The argument of key k (NULL when absent); a keyword given also by position is an error. */
static bool sgd_arg(const RVal *call, int k, const RVal **out, Diag *d) {
    const RVal *kw = rval_arg(call, sgd_keys[k], -1);
    const RVal *pos = NULL;
    int npos = 0;
    for (int i = 0; i < call->nitems; i++)
        if (!call->keys || !call->keys[i]) {
            if (npos == k && k < SGD_NPOSITIONAL)
                pos = call->items[i];
            npos++;
        }
    if (kw && pos) {
        diag_error(d, kw->loc, "SGD: %s is given twice", sgd_keys[k]);
        return false;
    }
    *out = kw ? kw : pos;
    return true;
}

static bool sgd_number(const RVal *v, const char *key, double min, double *out, Diag *d) {
    if (v->kind != RV_NUM || !isfinite(v->num)) {
        diag_error(d, v->loc, "SGD: %s must be a number", key);
        return false;
    }
    if (v->num < min) {
        diag_error(d, v->loc, "SGD: %s must not be negative (got %g)", key, v->num);
        return false;
    }
    *out = v->num;
    return true;
}

/* Reads the call's arguments into o, refusing what torch.optim.SGD refuses, at the argument's location. */
static bool sgd_parse(const RVal *call, Sgd *o, Diag *d) {
    *o = (Sgd){0};
    int npos = 0;
    for (int i = 0; i < call->nitems; i++) {
        const char *key = call->keys ? call->keys[i] : NULL;
        if (!key) {
            if (npos++ == SGD_NPOSITIONAL) {
                diag_error(d, call->items[i]->loc, "SGD: takes at most %d positional arguments (lr, momentum, "
                           "dampening, weight_decay, nesterov)", SGD_NPOSITIONAL);
                return false;
            }
            continue;
        }
        int k = 0;
        while (k < SGD_NKEYS && strcmp(sgd_keys[k], key) != 0)
            k++;
        if (k == SGD_NKEYS) {
            diag_error(d, call->items[i]->loc, "SGD: unknown argument %s", key);
            return false;
        }
        for (int j = 0; j < i; j++)
            if (call->keys[j] && strcmp(call->keys[j], key) == 0) {
                diag_error(d, call->items[i]->loc, "SGD: %s is given twice", key);
                return false;
            }
    }
    const RVal *v[SGD_NKEYS];
    for (int k = 0; k < SGD_NKEYS; k++)
        if (!sgd_arg(call, k, &v[k], d))
            return false;
    if (!v[0]) {
        diag_error(d, call->loc, "SGD: missing the learning rate (SGD(lr = 1e-3))");
        return false;
    }
    if (!sgd_number(v[0], "lr", 0, &o->lr, d) || (v[1] && !sgd_number(v[1], "momentum", 0, &o->momentum, d)) ||
        (v[2] && !sgd_number(v[2], "dampening", -INFINITY, &o->dampening, d)) ||
        (v[3] && !sgd_number(v[3], "weight_decay", 0, &o->weight_decay, d)))
        return false;
    for (int k = 4; k < SGD_NKEYS; k++) {
        if (!v[k])
            continue;
        if (v[k]->kind != RV_BOOL) {
            diag_error(d, v[k]->loc, "SGD: %s must be true or false", sgd_keys[k]);
            return false;
        }
        *(k == 4 ? &o->nesterov : &o->maximize) = v[k]->num != 0;
    }
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0)) {
        diag_error(d, v[4]->loc, "SGD: nesterov momentum requires a momentum and zero dampening");
        return false;
    }
    return true;
}

static const char *momentum_name(Graph *g, const char *param) {
    return arena_printf(g->arena, "optimizer.%s.momentum_buffer", param);
}

/* Everything checked before anything is built, so that an error leaves the graph as it was. */
static bool check_graph(Graph *g, const Sgd *o, const RVal *call, Diag *d) {
    if (ir_find_leaf(g, OP_INPUT, "lr")) {
        diag_error(d, call->loc, "optimizer: graph %s already has an input named \"lr\"", g->name);
        return false;
    }
    const Node *step = ir_find_leaf(g, OP_INPUT, "step");
    if (step && (step->dtype != DT_I64 || step->shape.rank != 0)) {
        char t[256];
        diag_error(d, step->loc, "optimizer: the input \"step\" must be i64[] (the steps done), not %s",
                   ir_type_str(step->dtype, &step->shape, t, sizeof t));
        return false;
    }
    for (int i = 0; i < g->noutputs; i++) {
        const Output *out = &g->outputs[i];
        if (out->update || strncmp(out->name, "grad.", 5) != 0)
            continue;
        const char *name = out->name + 5;
        Node *p = ir_find_leaf(g, OP_PARAM, name);
        if (!p) {
            diag_error(d, out->value->loc, "optimizer: output %s has no parameter %s", out->name, name);
            return false;
        }
        if (p->dtype != DT_F32 && p->dtype != DT_F64) {
            diag_error(d, p->loc, "optimizer: parameter %s is %s; SGD updates f32 and f64 parameters only", name,
                       ir_dtype_name(p->dtype));
            return false;
        }
        /* autodiff gives every gradient its parameter's type; a hand-written graph may not */
        if (out->value->dtype != p->dtype || !ir_shape_eq(&out->value->shape, &p->shape)) {
            char have[256], want[256];
            diag_error(d, out->value->loc, "optimizer: output %s is %s, its parameter is %s", out->name,
                       ir_type_str(out->value->dtype, &out->value->shape, have, sizeof have),
                       ir_type_str(p->dtype, &p->shape, want, sizeof want));
            return false;
        }
        if (p->attr.frozen) {
            diag_error(d, out->value->loc, "optimizer: output %s is the gradient of the frozen parameter %s",
                       out->name, name);
            return false;
        }
        if (o->momentum != 0 && ir_find_leaf(g, OP_STATE, momentum_name(g, name))) {
            diag_error(d, p->loc, "optimizer: graph %s already has a state named \"%s\"", g->name,
                       momentum_name(g, name));
            return false;
        }
    }
    return true;
}

/* The scalars of one parameter's update, at the parameter's location: a constant per parameter keeps every
   node of an update on its own model line. */
typedef struct Scalars {
    Node *lr, *momentum, *one_minus_dampening, *weight_decay;
} Scalars;

static Scalars scalars_for(Graph *g, Node *lr, const Sgd *o, const Node *p) {
    Scalars s = {.lr = lr};
    Shape one = ir_shape_scalar();
    if (o->momentum != 0)
        s.momentum = ir_const(g, p->loc, p->dtype, one, o->momentum);
    if (o->dampening != 0)
        s.one_minus_dampening = ir_const(g, p->loc, p->dtype, one, 1 - o->dampening);
    if (o->weight_decay != 0)
        s.weight_decay = ir_const(g, p->loc, p->dtype, one, o->weight_decay);
    return s;
}

static Node *must(Node *n) {
    if (!n)
        LATHE_UNREACHABLE("the SGD update of a checked parameter does not type");
    return n;
}

/* torch.optim.SGD on one parameter p with gradient grad (torch/optim/sgd.py, _single_tensor_sgd):
       d = grad + weight_decay p
       buf = d on the first step, momentum buf + (1 - dampening) d after it
       d = d + momentum buf (nesterov), or buf
       p = p - lr d (p + lr d with maximize)
   With dampening 0 a zero buffer gives d on the first step too, so the first step needs no test of "step". */
static Node *sgd_update(Graph *g, const Sgd *o, const Scalars *s, Node *p, Node *grad, Node *first, Node **buf_next) {
    Loc l = p->loc;
    Node *dp = grad;
    if (s->weight_decay)
        dp = must(ir_binary(g, NULL, l, OP_ADD, dp, must(ir_binary(g, NULL, l, OP_MUL, s->weight_decay, p))));
    *buf_next = NULL;
    if (s->momentum) {
        Node *buf = ir_state(g, l, momentum_name(g, p->attr.name), p->dtype, p->shape);
        Node *damped = s->one_minus_dampening ? must(ir_binary(g, NULL, l, OP_MUL, s->one_minus_dampening, dp)) : dp;
        Node *next = must(ir_binary(g, NULL, l, OP_ADD, must(ir_binary(g, NULL, l, OP_MUL, s->momentum, buf)), damped));
        if (first)
            next = must(ir_select(g, NULL, l, first, dp, next));
        *buf_next = next;
        dp = o->nesterov ? must(ir_binary(g, NULL, l, OP_ADD, dp, must(ir_binary(g, NULL, l, OP_MUL, s->momentum, next))))
                         : next;
    }
    Node *delta = must(ir_binary(g, NULL, l, OP_MUL, s->lr, dp));
    return must(ir_binary(g, NULL, l, o->maximize ? OP_ADD : OP_SUB, p, delta));
}

bool pass_optimizer(Graph *g, Diag *d) {
    const RVal *call = g->optimizer;
    if (!call) {
        diag_error(d, (Loc){0}, "graph %s has no optimizer (the train block needs `optimizer = SGD(lr = ...)`)",
                   g->name ? g->name : "?");
        return false;
    }
    if (call->kind != RV_CALL) {
        diag_error(d, call->loc, "optimizer must be a call such as SGD(lr = 1e-3)");
        return false;
    }
    if (strcmp(call->str, "SGD") != 0) {
        diag_error(d, call->loc, "optimizer %s is not supported yet (only SGD)", call->str);
        return false;
    }
    /* the values are the run's defaults for lr, and compiled in for the rest */
    Sgd o;
    if (!sgd_parse(call, &o, d) || !check_graph(g, &o, call, d))
        return false;

    Node *lr = ir_input(g, (Loc){0}, "lr", DT_F32, ir_shape_scalar());
    Node *first = NULL; /* u8[]: this is the first step (step == 0) */
    if (o.momentum != 0 && o.dampening != 0) {
        Node *step = ir_find_leaf(g, OP_INPUT, "step");
        if (!step)
            step = ir_input(g, (Loc){0}, "step", DT_I64, ir_shape_scalar());
        /* like lr, a value of the run rather than of a model line: no location */
        Node *zero = ir_const(g, (Loc){0}, DT_I64, ir_shape_scalar(), 0);
        first = must(ir_binary(g, NULL, (Loc){0}, OP_EQ, step, zero));
    }
    Node *lr64 = NULL; /* lr cast once for the f64 parameters */
    int nout = g->noutputs;
    for (int i = 0; i < nout; i++) {
        Output *out = &g->outputs[i];
        if (out->update || strncmp(out->name, "grad.", 5) != 0)
            continue;
        const char *name = out->name + 5;
        Node *p = ir_find_leaf(g, OP_PARAM, name);
        if (p->dtype == DT_F64 && !lr64)
            lr64 = ir_cast(g, (Loc){0}, lr, DT_F64);
        Scalars s = scalars_for(g, p->dtype == DT_F64 ? lr64 : lr, &o, p);
        Node *buf_next;
        Node *next = sgd_update(g, &o, &s, p, out->value, first, &buf_next);
        /* g->outputs may move when an output is added */
        g->outputs[i].name = name;
        g->outputs[i].value = next;
        g->outputs[i].update = true;
        if (buf_next)
            ir_add_output(g, momentum_name(g, name), buf_next, true);
    }
    return true;
}
