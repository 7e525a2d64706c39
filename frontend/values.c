/* values.c: the evaluator's values and scopes (names bound to values, with a hash index once a scope grows),
   and its errors: where a node or a message points (the user's line, with a note at the library's), and
   the "did you mean" suggestions. */
#include <stdlib.h>
#include <string.h>

#include "fe.h"

/* ---------------------------------------------------------------- scopes and values */

Scope *sema_scope_new(Eval *E, Scope *parent) {
    Scope *s = arena_alloc(E->a, sizeof *s);
    s->parent = parent;
    return s;
}

/* Most scopes hold a few names and are searched in order; large ones (a model with thousands of members,
   the globals) are hashed so that building and searching them stays linear. */
static uint32_t name_hash(const char *name) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 16777619u;
    return h;
}

static void index_put(Scope *s, int i) {
    uint32_t mask = 2 * (uint32_t)s->cap - 1, h = name_hash(s->names[i]) & mask;
    while (s->index[h])
        h = (h + 1) & mask;
    s->index[h] = i + 1;
}

static int scope_find(const Scope *s, const char *name) {
    if (!s->index) {
        for (int i = 0; i < s->n; i++)
            if (strcmp(s->names[i], name) == 0)
                return i;
        return -1;
    }
    uint32_t mask = 2 * (uint32_t)s->cap - 1;
    for (uint32_t h = name_hash(name) & mask; s->index[h]; h = (h + 1) & mask)
        if (strcmp(s->names[s->index[h] - 1], name) == 0)
            return s->index[h] - 1;
    return -1;
}

void sema_scope_set(Eval *E, Scope *s, const char *name, Value *v) {
    int i = scope_find(s, name);
    if (i >= 0) {
        s->values[i] = v;
        return;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        s->names = arena_realloc(E->a, s->names, sizeof *s->names * s->cap, sizeof *s->names * cap);
        s->values = arena_realloc(E->a, s->values, sizeof *s->values * s->cap, sizeof *s->values * cap);
        s->cap = cap;
        if (cap > 8) {
            s->index = arena_alloc(E->a, sizeof *s->index * 2 * (size_t)cap);
            for (int j = 0; j < s->n; j++)
                index_put(s, j);
        }
    }
    s->names[s->n] = name;
    s->values[s->n] = v;
    if (s->index)
        index_put(s, s->n);
    s->n++;
}

Value *sema_scope_get_local(const Scope *s, const char *name) {
    int i = scope_find(s, name);
    return i >= 0 ? s->values[i] : NULL;
}

Value *sema_scope_get(const Scope *s, const char *name) {
    for (; s; s = s->parent) {
        Value *v = sema_scope_get_local(s, name);
        if (v)
            return v;
    }
    return NULL;
}

Value *sema_value(Eval *E, ValueKind k) {
    Value *v = arena_alloc(E->a, sizeof *v);
    v->kind = k;
    return v;
}

Value *sema_int(Eval *E, int64_t i) {
    Value *v = sema_value(E, V_INT);
    v->i = i;
    return v;
}

Value *sema_float(Eval *E, double f) {
    Value *v = sema_value(E, V_FLOAT);
    v->f = f;
    return v;
}

Value *sema_bool(Eval *E, bool b) {
    Value *v = sema_value(E, V_BOOL);
    v->b = b;
    return v;
}

Value *sema_none(Eval *E) { return sema_value(E, V_NONE); }

Value *sema_list(Eval *E, int n) {
    Value *v = sema_value(E, V_LIST);
    v->items = arena_alloc(E->a, sizeof(Value *) * (size_t)(n + 1));
    v->nitems = n;
    return v;
}

bool sema_truth(Eval *E, Value *v, const char *what, Loc loc, bool *out) {
    switch (v->kind) {
    case V_NONE: *out = false; break;
    case V_BOOL: *out = v->b; break;
    case V_INT: *out = v->i != 0; break;
    case V_FLOAT: *out = v->f != 0; break;
    case V_STR: *out = v->s[0] != '\0'; break;
    case V_LIST: *out = v->nitems > 0; break;
    case V_TENSOR:
    case V_PARAM:
        sema_error(E, loc, "%s must be known at compile time (a bool, an int or none), got %s: use where(c, a, b) "
                   "for a choice per element", what, sema_kind_name(E, v));
        return false;
    default: *out = true; break;
    }
    return true;
}

Value *sema_tensor(Eval *E, Node *n) {
    Value *v = sema_value(E, V_TENSOR);
    v->node = n;
    return v;
}

const char *sema_type_str(Eval *E, DType t, const Shape *s) {
    char buf[160];
    return arena_strdup(E->a, ir_type_str(t, s, buf, sizeof buf));
}

const char *sema_kind_name(Eval *E, const Value *v) {
    char buf[256], ty[160];
    switch (v->kind) {
    case V_NONE: return "nothing";
    case V_INT: return "an int";
    case V_FLOAT: return "a float";
    case V_BOOL: return "a bool";
    case V_STR: return "a string";
    case V_LIST: return "a list";
    case V_DTYPE: return "a dtype";
    case V_DIMN: return "the batch dimension N";
    case V_TENSOR:
        snprintf(buf, sizeof buf, "a tensor %s", ir_type_str(v->node->dtype, &v->node->shape, ty, sizeof ty));
        break;
    case V_PARAM:
        snprintf(buf, sizeof buf, "a parameter %s", ir_type_str(v->param->dtype, &v->param->shape, ty, sizeof ty));
        break;
    case V_INSTANCE: snprintf(buf, sizeof buf, "a '%s' layer", v->inst->type_name); break;
    case V_LAYER: snprintf(buf, sizeof buf, "layer '%s'", v->decl->name); break;
    case V_FUNC: snprintf(buf, sizeof buf, "function '%s'", v->decl->name); break;
    case V_BUILTIN: snprintf(buf, sizeof buf, "builtin '%s'", v->builtin->name); break;
    case V_INIT: return "an initialiser";
    default: return "a value";
    }
    return arena_strdup(E->a, buf);
}

/* ---------------------------------------------------------------- errors and locations */

static bool in_library(const Eval *E, Loc loc) { return loc.file == E->stdlib_file && E->site.file; }

Loc sema_node_loc(const Eval *E, Loc loc) { return in_library(E, loc) ? E->site : loc; }

void sema_note_library(Eval *E, Loc loc) {
    if (in_library(E, loc))
        diag_note(E->d, loc, "inside the standard library here");
}

Value *sema_error(Eval *E, Loc loc, const char *fmt, ...) {
    if (E->failed)
        return NULL;
    E->failed = true;
    va_list ap;
    va_start(ap, fmt);
    diag_verror(E->d, sema_node_loc(E, loc), fmt, ap);
    va_end(ap);
    sema_note_library(E, loc);
    return NULL;
}

/* The result of an ir_* builder: NULL means it reported a shape error at the node's location. */
Value *sema_made(Eval *E, Node *n, Loc loc) {
    if (!n) {
        if (!E->failed)
            sema_note_library(E, loc);
        E->failed = true;
        return NULL;
    }
    return sema_tensor(E, n);
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 1000;
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The candidate closest to name, when it is close enough to be a likely typo. */
const char *sema_closest(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int best_d = 1000, limit = (int)strlen(name) / 3 + 1;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, cands[i]);
        if (d < best_d && d <= limit && strcmp(name, cands[i]) != 0) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

const char *sema_suggest(const Scope *s, const char *name) {
    const char *best = NULL;
    for (; s && !best; s = s->parent)
        best = sema_closest(name, s->names, s->n);
    return best;
}

const char *sema_did_you_mean(Eval *E, const char *close) {
    return close ? arena_printf(E->a, " (did you mean '%s'?)", close) : "";
}
