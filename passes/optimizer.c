/* optimizer.c: lowers the recipe's optimizer call into the train graph. The learning rate is a graph
   INPUT "lr" (one f32 scalar), not a constant, so that a binary's --lr flag changes it at run time; each
   "grad.NAME" output becomes an update output NAME carrying the parameter's new value. */
#include "passes.h"

#include <string.h>

/* SGD's other PyTorch arguments with the value that makes them a no-op: accepted at that value, a
   diagnostic otherwise, since silently training with a different rule would be worse than refusing. */
static const struct {
    const char *name;
    double neutral;
} sgd_later[] = {
    {"momentum", 0}, {"dampening", 0}, {"weight_decay", 0}, {"nesterov", 0}, {"maximize", 0},
};

static bool sgd_check(const RVal *call, Diag *d) {
    const RVal *v = rval_arg(call, "lr", 0);
    if (!v) {
        diag_error(d, call->loc, "SGD: missing the learning rate (SGD(lr = 1e-3))");
        return false;
    }
    if (v->kind != RV_NUM || !(v->num > 0)) {
        diag_error(d, v->loc, "SGD: lr must be a positive number");
        return false;
    }
    for (int i = 0, npos = 0, nlr = 0; i < call->nitems; i++) {
        const char *key = call->keys ? call->keys[i] : NULL;
        const RVal *a = call->items[i];
        if (!key && npos++ > 0) {
            diag_error(d, a->loc, "SGD: takes one positional argument (lr); name the others");
            return false;
        }
        if (!key || strcmp(key, "lr") == 0) {
            if (nlr++ > 0) {
                diag_error(d, a->loc, "SGD: lr is given twice");
                return false;
            }
            continue;
        }
        size_t k = 0;
        while (k < sizeof sgd_later / sizeof sgd_later[0] && strcmp(sgd_later[k].name, key) != 0)
            k++;
        if (k == sizeof sgd_later / sizeof sgd_later[0]) {
            diag_error(d, a->loc, "SGD: unknown argument %s", key);
            return false;
        }
        if ((a->kind != RV_NUM && a->kind != RV_BOOL) || a->num != sgd_later[k].neutral) {
            diag_error(d, a->loc, "SGD: %s is not supported yet", key);
            return false;
        }
    }
    return true;
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
    /* lr's value is the run's default, which the runtime reads from the recipe */
    if (!sgd_check(call, d))
        return false;
    if (ir_find_leaf(g, OP_INPUT, "lr")) {
        diag_error(d, call->loc, "optimizer: graph %s already has an input named \"lr\"", g->name);
        return false;
    }

    /* every gradient checked before anything is built, so that an error leaves the graph as it was */
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        if (o->update || strncmp(o->name, "grad.", 5) != 0)
            continue;
        Node *p = ir_find_leaf(g, OP_PARAM, o->name + 5);
        if (!p) {
            diag_error(d, o->value->loc, "optimizer: output %s has no parameter %s", o->name, o->name + 5);
            return false;
        }
        if (p->dtype != DT_F32 && p->dtype != DT_F64) {
            diag_error(d, p->loc, "optimizer: parameter %s is %s; SGD updates f32 and f64 parameters only",
                       o->name + 5, ir_dtype_name(p->dtype));
            return false;
        }
        /* autodiff gives every gradient its parameter's type; a hand-written graph may not */
        if (o->value->dtype != p->dtype || !ir_shape_eq(&o->value->shape, &p->shape)) {
            char have[256], want[256];
            diag_error(d, o->value->loc, "optimizer: output %s is %s, its parameter is %s", o->name,
                       ir_type_str(o->value->dtype, &o->value->shape, have, sizeof have),
                       ir_type_str(p->dtype, &p->shape, want, sizeof want));
            return false;
        }
        if (p->attr.frozen) {
            diag_error(d, o->value->loc, "optimizer: output %s is the gradient of the frozen parameter %s", o->name,
                       o->name + 5);
            return false;
        }
    }

    /* lr is an argument that the driver binds at run time (--lr), not a value of a model line: no location.
       The update of a parameter is placed at the parameter's own location. */
    Node *lr = ir_input(g, (Loc){0}, "lr", DT_F32, ir_shape_scalar());
    Node *lr64 = NULL; /* lr cast once for the f64 parameters */
    for (int i = 0; i < g->noutputs; i++) {
        Output *o = &g->outputs[i];
        if (o->update || strncmp(o->name, "grad.", 5) != 0)
            continue;
        const char *name = o->name + 5;
        Node *p = ir_find_leaf(g, OP_PARAM, name);
        Node *rate = lr;
        if (p->dtype == DT_F64) {
            if (!lr64)
                lr64 = ir_cast(g, (Loc){0}, lr, DT_F64);
            rate = lr64;
        }
        /* SGD: p <- p - lr * grad */
        Node *step = ir_binary(g, d, p->loc, OP_MUL, rate, o->value);
        Node *next = step ? ir_binary(g, d, p->loc, OP_SUB, p, step) : NULL;
        if (!next)
            LATHE_UNREACHABLE("the SGD update of a checked parameter does not type");
        o->name = name;
        o->value = next;
        o->update = true;
    }
    return true;
}
