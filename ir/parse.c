/* parse.c: reads the text IR that print.c writes, one statement a line, by recursive descent:

       file   = { graph }
       graph  = "graph" IDENT "{" { stmt } "}"
       stmt   = "optimizer" "=" rval
              | VALUE "=" OPNAME [ operands ] [ "{" attr { "," attr } "}" ] ":" type [ "#" FILE:LINE:COL ]
              | ( "output" | "update" ) STRING "=" VALUE
       rval   = NUMBER | STRING | "true" | "false" | IDENT [ "(" [ arg { "," arg } ] ")" ] | "[" ... "]"

   Every node goes through ir_make, so a hand-written file gets the same shape checks as the builder, and a
   declared type that disagrees with the inferred one is an error at its column. */
#include "ir.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#define MAX_VALUE_ID (1 << 24)

typedef struct Parser {
    Arena *a;
    Diag *d;
    const char *file;
    const char *p;          /* cursor */
    const char *line_start;
    int line;
    Graph *g;
    Node **by_id; /* text id -> node, for the graph being read */
    int by_id_cap;
    int64_t by_id_used; /* one past the highest id defined in the graph being read */
    const char **files; /* interned location files */
    int nfiles;
    int nperm; /* entries of the last perm=[...], checked against the operand's rank */
    Loc perm_loc;
    int nstart, nstep; /* entries of start=[...] and step=[...] (slice, pad), -1 when absent */
    Loc start_loc, step_loc;
    bool has_stride; /* window ops: stride given (else 1, or the window for pooling) */
    /* " in %R" group references of the graph being read, resolved at its end (the root comes later) */
    struct GroupRef {
        Node *member;
        int64_t root;
        Loc loc;
    } *grefs;
    int ngrefs, grefs_cap;
} Parser;

static Loc here(const Parser *ps)
{
    return (Loc){ps->file, ps->line, (int)(ps->p - ps->line_start) + 1};
}

static bool error_at(Parser *ps, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool error_at(Parser *ps, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(ps->d, loc, fmt, ap);
    va_end(ap);
    return false;
}

static void skip_blanks(Parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r')
        ps->p++;
}

static bool at_eol(Parser *ps)
{
    skip_blanks(ps);
    return *ps->p == '\n' || *ps->p == '\0' || *ps->p == '#';
}

/* Moves to the start of the next line that holds something other than blanks and comments. */
static void next_line(Parser *ps)
{
    for (;;) {
        while (*ps->p && *ps->p != '\n')
            ps->p++;
        if (!*ps->p)
            return;
        ps->p++;
        ps->line++;
        ps->line_start = ps->p;
        if (!at_eol(ps) || *ps->p == '\0')
            return;
    }
}

static bool expect(Parser *ps, char c)
{
    skip_blanks(ps);
    if (*ps->p != c)
        return error_at(ps, here(ps), "expected '%c'", c);
    ps->p++;
    return true;
}

static bool accept(Parser *ps, char c)
{
    skip_blanks(ps);
    if (*ps->p != c)
        return false;
    ps->p++;
    return true;
}

static bool is_ident_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static bool is_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.';
}

/* An identifier, interned in the arena; NULL (without a message) when there is none. */
static const char *ident(Parser *ps)
{
    skip_blanks(ps);
    if (!is_ident_start(*ps->p))
        return NULL;
    const char *s = ps->p;
    while (is_ident_char(*ps->p))
        ps->p++;
    return arena_strndup(ps->a, s, (size_t)(ps->p - s));
}

static bool keyword(Parser *ps, const char *kw)
{
    skip_blanks(ps);
    size_t n = strlen(kw);
    if (strncmp(ps->p, kw, n) != 0 || is_ident_char(ps->p[n]))
        return false;
    ps->p += n;
    return true;
}

static const char *string(Parser *ps)
{
    skip_blanks(ps);
    Loc loc = here(ps);
    if (*ps->p != '"') {
        error_at(ps, loc, "expected a string");
        return NULL;
    }
    ps->p++;
    size_t cap = 16, n = 0;
    char *buf = arena_alloc(ps->a, cap);
    for (; *ps->p != '"'; ps->p++) {
        char c = *ps->p;
        if (c == '\0' || c == '\n') {
            error_at(ps, loc, "unterminated string");
            return NULL;
        }
        if (c == '\\') {
            c = *++ps->p;
            if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
            else if (c != '"' && c != '\\') {
                error_at(ps, here(ps), "unknown escape in string");
                return NULL;
            }
        }
        if (n + 1 >= cap) {
            buf = arena_realloc(ps->a, buf, cap, cap * 2);
            cap *= 2;
        }
        buf[n++] = c;
    }
    ps->p++;
    buf[n] = '\0';
    return buf;
}

static bool integer(Parser *ps, int64_t lo, int64_t hi, int64_t *out)
{
    skip_blanks(ps);
    Loc loc = here(ps);
    const char *s = ps->p;
    if (*s == '-' || *s == '+')
        s++;
    if (!isdigit((unsigned char)*s))
        return error_at(ps, loc, "expected an integer");
    errno = 0;
    char *end;
    long long v = strtoll(ps->p, &end, 10);
    if (errno || v < lo || v > hi)
        return error_at(ps, loc, "integer out of range [%lld, %lld]", (long long)lo, (long long)hi);
    ps->p = end;
    *out = v;
    return true;
}

/* A double as %.17g prints it, inf and nan included. */
static bool number(Parser *ps, double *out, bool *is_int)
{
    skip_blanks(ps);
    const char *s = ps->p;
    char *end;
    if (!(isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.' || *s == 'i' || *s == 'n'))
        return error_at(ps, here(ps), "expected a number");
    *out = strtod(s, &end);
    if (end == s || is_ident_char(*end))
        return error_at(ps, here(ps), "expected a number");
    if (is_int) {
        *is_int = true;
        for (const char *q = s; q < end; q++)
            if (!isdigit((unsigned char)*q) && !(q == s && (*q == '-' || *q == '+')))
                *is_int = false;
    }
    ps->p = end;
    return true;
}

/* ---------------------------------------------------------------- recipe values */

static RVal *rval(Parser *ps, int depth);

static RVal *new_rval(Parser *ps, RValKind kind, Loc loc)
{
    RVal *v = arena_alloc(ps->a, sizeof(RVal));
    v->kind = kind;
    v->loc = loc;
    return v;
}

/* items of a list or call up to `close`; keys only in calls */
static bool rval_items(Parser *ps, RVal *v, char close, int depth)
{
    int cap = 0;
    if (accept(ps, close))
        return true;
    do {
        if (v->nitems == cap) {
            int ncap = cap ? cap * 2 : 4;
            v->items = arena_realloc(ps->a, v->items, sizeof(RVal *) * (size_t)cap, sizeof(RVal *) * (size_t)ncap);
            v->keys = arena_realloc(ps->a, v->keys, sizeof(char *) * (size_t)cap, sizeof(char *) * (size_t)ncap);
            cap = ncap;
        }
        const char *key = NULL;
        if (v->kind == RV_CALL) {
            const char *save = ps->p;
            key = ident(ps);
            if (key && !accept(ps, '=')) {
                key = NULL;
                ps->p = save;
            }
        }
        RVal *item = rval(ps, depth + 1);
        if (!item)
            return false;
        v->keys[v->nitems] = key;
        v->items[v->nitems++] = item;
    } while (accept(ps, ','));
    return expect(ps, close);
}

static RVal *rval(Parser *ps, int depth)
{
    skip_blanks(ps);
    Loc loc = here(ps);
    if (depth > 64) {
        error_at(ps, loc, "value nested too deeply");
        return NULL;
    }
    char c = *ps->p;
    if (c == '"') {
        RVal *v = new_rval(ps, RV_STR, loc);
        v->str = string(ps);
        return v->str ? v : NULL;
    }
    if (c == '[') {
        ps->p++;
        RVal *v = new_rval(ps, RV_LIST, loc);
        return rval_items(ps, v, ']', depth) ? v : NULL;
    }
    if (keyword(ps, "none"))
        return new_rval(ps, RV_NONE, loc);
    bool yes = keyword(ps, "true");
    if (yes || keyword(ps, "false")) {
        RVal *v = new_rval(ps, RV_BOOL, loc);
        v->num = yes;
        return v;
    }
    /* inf and nan are numbers, as %.17g prints them */
    bool special = strncmp(ps->p, "inf", 3) == 0 || strncmp(ps->p, "nan", 3) == 0;
    if (is_ident_start(c) && !(special && !is_ident_char(ps->p[3]))) {
        RVal *v = new_rval(ps, RV_IDENT, loc);
        v->str = ident(ps);
        if (accept(ps, '(')) {
            v->kind = RV_CALL;
            if (!rval_items(ps, v, ')', depth))
                return NULL;
        }
        return v;
    }
    RVal *v = new_rval(ps, RV_NUM, loc);
    return number(ps, &v->num, &v->is_int) ? v : NULL;
}

/* ---------------------------------------------------------------- nodes */

static bool type(Parser *ps, DType *dt, Shape *sh)
{
    skip_blanks(ps);
    Loc loc = here(ps);
    const char *s = ps->p;
    while (isalnum((unsigned char)*ps->p))
        ps->p++;
    char name[8] = {0};
    size_t len = (size_t)(ps->p - s);
    if (len < sizeof name)
        memcpy(name, s, len);
    if (len >= sizeof name || !ir_dtype_parse(name, dt))
        return error_at(ps, loc, "expected a dtype (f32, f64, i32, i64, u8)");
    if (!expect(ps, '['))
        return false;
    *sh = ir_shape_scalar();
    if (accept(ps, ']'))
        return true;
    do {
        if (sh->rank == IR_MAX_RANK)
            return error_at(ps, here(ps), "more than %d dimensions", IR_MAX_RANK);
        skip_blanks(ps);
        if (*ps->p == 'N' && !is_ident_char(ps->p[1])) {
            ps->p++;
            sh->dim[sh->rank++] = IR_DIM_N;
        } else if (!integer(ps, 0, INT64_MAX / 2, &sh->dim[sh->rank++])) {
            return false;
        }
    } while (accept(ps, ','));
    return expect(ps, ']');
}

static Node *value_ref(Parser *ps)
{
    skip_blanks(ps);
    Loc loc = here(ps);
    int64_t id;
    if (!expect(ps, '%') || !integer(ps, 0, MAX_VALUE_ID - 1, &id))
        return NULL;
    if (id >= ps->by_id_cap || !ps->by_id[id]) {
        error_at(ps, loc, "use of undefined value %%%lld", (long long)id);
        return NULL;
    }
    return ps->by_id[id];
}

static bool int_list(Parser *ps, int *v, int max, int *n, int64_t lo, int64_t hi)
{
    *n = 0;
    if (!expect(ps, '['))
        return false;
    if (accept(ps, ']'))
        return true;
    do {
        int64_t x;
        if (*n == max)
            return error_at(ps, here(ps), "too many entries");
        if (!integer(ps, lo, hi, &x))
            return false;
        v[(*n)++] = (int)x;
    } while (accept(ps, ','));
    return expect(ps, ']');
}

static bool int64_list(Parser *ps, int64_t *v, int max, int *n, int64_t lo, int64_t hi)
{
    *n = 0;
    if (!expect(ps, '['))
        return false;
    if (accept(ps, ']'))
        return true;
    do {
        if (*n == max)
            return error_at(ps, here(ps), "too many entries");
        if (!integer(ps, lo, hi, &v[(*n)++]))
            return false;
    } while (accept(ps, ','));
    return expect(ps, ']');
}

/* "[h,w]" of a window attribute: exactly two entries */
static bool int_pair(Parser *ps, int *v)
{
    Loc loc = here(ps);
    int n;
    if (!int_list(ps, v, 2, &n, 0, 1 << 20))
        return false;
    if (n != 2)
        return error_at(ps, loc, "expected two entries [h,w]");
    return true;
}

/* The window ops with a stride attribute: every one but adaptive pooling, whose output size decides. */
static bool has_stride(Op op)
{
    return ir_op_is_window(op) && op != OP_ADAPTIVE_AVG_POOL2D && op != OP_ADAPTIVE_AVG_POOL2D_BWD;
}

static bool is_conv(Op op)
{
    return op == OP_CONV2D || op == OP_CONV2D_BWD_INPUT || op == OP_CONV2D_BWD_WEIGHT;
}

/* Which attributes each op takes in the {...} block. */
static bool attr_allowed(Op op, const char *name)
{
    static const char *const conv[] = {"stride", "pad", "dilation", "groups", NULL};
    static const char *const max_pool[] = {"window", "stride", "pad", "dilation", "ceil_mode", NULL};
    static const char *const avg_pool[] = {"window", "stride", "pad", "ceil_mode", "count_include_pad", NULL};
    const char *const *names = NULL;
    switch (op) {
    case OP_PARAM: return strcmp(name, "frozen") == 0;
    case OP_CONST: return strcmp(name, "npow") == 0;
    case OP_REDUCE_SUM:
    case OP_REDUCE_MEAN:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN: return strcmp(name, "axes") == 0 || strcmp(name, "keepdim") == 0;
    case OP_ARGMAX:
    case OP_ARGMIN: return strcmp(name, "axis") == 0 || strcmp(name, "keepdim") == 0;
    case OP_MATMUL: return strcmp(name, "transpose_a") == 0 || strcmp(name, "transpose_b") == 0;
    case OP_TRANSPOSE: return strcmp(name, "perm") == 0;
    case OP_ONE_HOT: return strcmp(name, "classes") == 0;
    case OP_IOTA:
    case OP_CONCAT:
    case OP_GATHER:
    case OP_SCATTER_ADD: return strcmp(name, "axis") == 0;
    case OP_RANDOM: return strcmp(name, "stream") == 0;
    case OP_SLICE: return strcmp(name, "start") == 0 || strcmp(name, "step") == 0;
    case OP_PAD: return strcmp(name, "start") == 0 || strcmp(name, "step") == 0 || strcmp(name, "value") == 0;
    case OP_CONV2D:
    case OP_CONV2D_BWD_INPUT:
    case OP_CONV2D_BWD_WEIGHT: names = conv; break;
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_BWD: names = max_pool; break;
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BWD: names = avg_pool; break;
    default: return false;
    }
    for (; *names; names++)
        if (strcmp(name, *names) == 0)
            return true;
    return false;
}

static bool attribute(Parser *ps, Op op, Attr *a)
{
    skip_blanks(ps);
    Loc loc = here(ps);
    const char *name = ident(ps);
    if (!name)
        return error_at(ps, loc, "expected an attribute name");
    if (!attr_allowed(op, name))
        return error_at(ps, loc, "%s takes no attribute '%s'", ir_op_name(op), name);
    int64_t v;
    if (strcmp(name, "frozen") == 0)
        a->frozen = true;
    else if (strcmp(name, "keepdim") == 0)
        a->keepdim = true;
    else if (strcmp(name, "transpose_a") == 0)
        a->transpose_a = true;
    else if (strcmp(name, "transpose_b") == 0)
        a->transpose_b = true;
    else if (strcmp(name, "ceil_mode") == 0)
        a->ceil_mode = true;
    else if (strcmp(name, "count_include_pad") == 0)
        a->count_include_pad = true;
    else if (strcmp(name, "window") == 0 || strcmp(name, "stride") == 0 || strcmp(name, "pad") == 0 ||
             strcmp(name, "dilation") == 0) {
        int *v = strcmp(name, "window") == 0 ? a->window
                 : strcmp(name, "stride") == 0 ? a->stride
                 : strcmp(name, "pad") == 0    ? a->pad
                                               : a->dilation;
        ps->has_stride |= v == a->stride;
        if (!expect(ps, '=') || !int_pair(ps, v))
            return false;
    } else if (strcmp(name, "groups") == 0) {
        if (!expect(ps, '=') || !integer(ps, 1, INT32_MAX, &v))
            return false;
        a->groups = (int)v;
    } else if (strcmp(name, "stream") == 0) {
        if (!expect(ps, '=') || !integer(ps, 0, UINT32_MAX, &v))
            return false;
        a->stream = (uint32_t)v;
    } else if (strcmp(name, "value") == 0) {
        if (!expect(ps, '=') || !number(ps, &a->value, NULL))
            return false;
    } else if (strcmp(name, "start") == 0 || strcmp(name, "step") == 0) {
        bool start = strcmp(name, "start") == 0;
        if (start)
            ps->start_loc = loc;
        else
            ps->step_loc = loc;
        if (!expect(ps, '=') || !int64_list(ps, start ? a->start : a->step, IR_MAX_RANK,
                                              start ? &ps->nstart : &ps->nstep, 0, INT64_MAX / 2))
            return false;
    }
    else if (strcmp(name, "npow") == 0) {
        if (!expect(ps, '=') || !integer(ps, -64, 64, &v))
            return false;
        a->npow = (int)v;
    } else if (strcmp(name, "axis") == 0) {
        if (!expect(ps, '=') || !integer(ps, 0, IR_MAX_RANK, &v))
            return false;
        a->axis = (int)v;
    } else if (strcmp(name, "classes") == 0) {
        if (!expect(ps, '=') || !integer(ps, 0, INT64_MAX / 2, &v))
            return false;
        a->classes = v;
    } else if (strcmp(name, "axes") == 0) {
        int axes[IR_MAX_RANK], n;
        if (!expect(ps, '=') || !int_list(ps, axes, IR_MAX_RANK, &n, 0, IR_MAX_RANK - 1))
            return false;
        a->axes = 0;
        for (int i = 0; i < n; i++)
            a->axes |= 1u << axes[i];
    } else {
        ps->perm_loc = loc;
        if (!expect(ps, '=') || !int_list(ps, a->perm, IR_MAX_RANK, &ps->nperm, 0, IR_MAX_RANK - 1))
            return false;
    }
    return true;
}

static const char *intern_file(Parser *ps, const char *s, size_t n)
{
    for (int i = 0; i < ps->nfiles; i++)
        if (strlen(ps->files[i]) == n && strncmp(ps->files[i], s, n) == 0)
            return ps->files[i];
    ps->files = arena_realloc(ps->a, ps->files, sizeof(char *) * (size_t)ps->nfiles,
                              sizeof(char *) * (size_t)(ps->nfiles + 1));
    return ps->files[ps->nfiles++] = arena_strndup(ps->a, s, n);
}

/* "# file:line:col" after a node; any other trailing comment is only a comment. */
static Loc location_comment(Parser *ps)
{
    Loc loc = {0};
    skip_blanks(ps);
    if (*ps->p != '#')
        return loc;
    const char *s = ps->p + 1, *e = s;
    while (*s == ' ' || *s == '\t')
        s++;
    while (*e && *e != '\n')
        e++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    const char *c2 = e;
    while (c2 > s && isdigit((unsigned char)c2[-1]))
        c2--;
    if (c2 == e || c2 - 1 <= s || c2[-1] != ':')
        return loc;
    const char *c1 = c2 - 1;
    while (c1 > s && isdigit((unsigned char)c1[-1]))
        c1--;
    if (c1 == c2 - 1 || c1 - 1 <= s || c1[-1] != ':' || e - c2 > 9 || c2 - c1 > 10)
        return loc;
    loc.file = intern_file(ps, s, (size_t)(c1 - 1 - s));
    loc.line = atoi(c1);
    loc.col = atoi(c2);
    return loc;
}

/* Type-directed attributes: the parser takes them from the type after ':'. */
static void attr_from_type(Op op, DType dt, const Shape *sh, Attr *a)
{
    switch (op) {
    case OP_INPUT:
    case OP_PARAM:
    case OP_STATE:
    case OP_CONST:
        a->dtype = dt;
        a->shape = *sh;
        break;
    case OP_CAST:
    case OP_ONE_HOT: a->dtype = dt; break;
    case OP_IOTA:
        a->dtype = dt;
        a->shape = *sh;
        break;
    case OP_RESHAPE:
    case OP_BROADCAST:
    case OP_RANDOM:
    case OP_CONV2D_BWD_INPUT:
    case OP_CONV2D_BWD_WEIGHT:
    case OP_AVG_POOL2D_BWD:
    case OP_ADAPTIVE_AVG_POOL2D:
    case OP_ADAPTIVE_AVG_POOL2D_BWD:
    case OP_SLICE:
    case OP_PAD:
    case OP_SCATTER_ADD: a->shape = *sh; break;
    default: break;
    }
}

static bool define(Parser *ps, int64_t id, Node *n)
{
    if (id >= ps->by_id_cap) {
        int cap = ps->by_id_cap ? ps->by_id_cap : 64;
        while (cap <= id)
            cap *= 2;
        ps->by_id = arena_realloc(ps->a, ps->by_id, sizeof(Node *) * (size_t)ps->by_id_cap,
                                  sizeof(Node *) * (size_t)cap);
        ps->by_id_cap = cap;
    }
    ps->by_id[id] = n;
    if (ps->by_id_used <= id)
        ps->by_id_used = id + 1;
    return true;
}

static bool node_stmt(Parser *ps)
{
    Loc loc = here(ps);
    int64_t id;
    ps->p++; /* '%' */
    if (!integer(ps, 0, MAX_VALUE_ID - 1, &id))
        return false;
    if (id < ps->by_id_cap && ps->by_id[id])
        return error_at(ps, loc, "value %%%lld is defined twice", (long long)id);
    if (!expect(ps, '='))
        return false;
    skip_blanks(ps);
    Loc op_loc = here(ps);
    const char *opname = ident(ps);
    Op op;
    if (!opname || !ir_op_parse(opname, &op))
        return error_at(ps, op_loc, "unknown op '%s'", opname ? opname : "");
    Attr a = {0};
    Node *in[IR_MAX_CONCAT] = {0}; /* the arity checks below guarantee the operands that are read */
    int nin = 0;
    ps->nperm = ps->nstart = ps->nstep = -1;
    ps->has_stride = false;
    /* what printing leaves out: dilation 1, groups 1, start 0 and step 1 */
    a.dilation[0] = a.dilation[1] = a.groups = 1;
    for (int i = 0; i < IR_MAX_RANK; i++)
        a.step[i] = 1;
    if (op == OP_INPUT || op == OP_PARAM || op == OP_STATE) {
        if (!(a.name = string(ps)))
            return false;
    } else if (op == OP_CONST) {
        if (!number(ps, &a.value, NULL))
            return false;
    } else if (ir_op_arity(op) != 0) {
        do {
            if (nin == IR_MAX_CONCAT)
                return error_at(ps, here(ps), "too many operands");
            if (!(in[nin++] = value_ref(ps)))
                return false;
        } while (accept(ps, ','));
        if (ir_op_arity(op) >= 0 && nin != ir_op_arity(op))
            return error_at(ps, op_loc, "%s takes %d operand%s, not %d", opname, ir_op_arity(op),
                            ir_op_arity(op) == 1 ? "" : "s", nin);
    }
    if (accept(ps, '{')) {
        do
            if (!attribute(ps, op, &a))
                return false;
        while (accept(ps, ','));
        if (!expect(ps, '}'))
            return false;
    }
    if (op == OP_TRANSPOSE && ps->nperm >= 0 && ps->nperm != in[0]->shape.rank)
        return error_at(ps, ps->perm_loc, "perm has %d entries for an operand of rank %d", ps->nperm,
                        in[0]->shape.rank);
    if (ps->nstart >= 0 && ps->nstart != in[0]->shape.rank)
        return error_at(ps, ps->start_loc, "start has %d entries for an operand of rank %d", ps->nstart,
                        in[0]->shape.rank);
    if (ps->nstep >= 0 && ps->nstep != in[0]->shape.rank)
        return error_at(ps, ps->step_loc, "step has %d entries for an operand of rank %d", ps->nstep,
                        in[0]->shape.rank);
    if (has_stride(op) && !ps->has_stride) {
        a.stride[0] = is_conv(op) ? 1 : a.window[0];
        a.stride[1] = is_conv(op) ? 1 : a.window[1];
    }
    if (!expect(ps, ':'))
        return false;
    skip_blanks(ps);
    Loc type_loc = here(ps);
    DType dt;
    Shape sh;
    if (!type(ps, &dt, &sh))
        return false;
    attr_from_type(op, dt, &sh, &a);
    skip_blanks(ps);
    Loc group_loc = here(ps);
    int64_t group = -1;
    if (keyword(ps, "in")) {
        skip_blanks(ps);
        group_loc = here(ps);
        if (!expect(ps, '%') || !integer(ps, 0, MAX_VALUE_ID - 1, &group))
            return false;
    }
    Loc model_loc = location_comment(ps);
    if (!at_eol(ps))
        return error_at(ps, here(ps), "unexpected text after the type");
    Node *n = ir_make(ps->g, ps->d, op_loc, op, nin, in, &a);
    if (!n)
        return false;
    if (n->dtype != dt || !ir_shape_eq(&n->shape, &sh)) {
        char want[256], have[256];
        return error_at(ps, type_loc, "declared type %s differs from the inferred %s",
                        ir_type_str(dt, &sh, have, sizeof have), ir_type_str(n->dtype, &n->shape, want, sizeof want));
    }
    n->loc = model_loc;
    if (group >= 0) {
        if (ps->ngrefs == ps->grefs_cap) {
            int cap = ps->grefs_cap ? 2 * ps->grefs_cap : 64;
            ps->grefs = arena_realloc(ps->a, ps->grefs, sizeof *ps->grefs * (size_t)ps->grefs_cap,
                                      sizeof *ps->grefs * (size_t)cap);
            ps->grefs_cap = cap;
        }
        ps->grefs[ps->ngrefs++] = (struct GroupRef){n, group, group_loc};
    }
    return define(ps, id, n);
}

static bool output_stmt(Parser *ps, bool update)
{
    const char *name = string(ps);
    if (!name || !expect(ps, '='))
        return false;
    Node *v = value_ref(ps);
    if (!v)
        return false;
    if (!at_eol(ps))
        return error_at(ps, here(ps), "unexpected text after the output");
    ir_add_output(ps->g, name, v, update);
    return true;
}

static bool stmt(Parser *ps)
{
    skip_blanks(ps);
    Loc loc = here(ps);
    if (*ps->p == '%')
        return node_stmt(ps);
    if (keyword(ps, "output"))
        return output_stmt(ps, false);
    if (keyword(ps, "update"))
        return output_stmt(ps, true);
    if (keyword(ps, "optimizer")) {
        if (ps->g->optimizer)
            return error_at(ps, loc, "a second optimizer");
        if (!expect(ps, '='))
            return false;
        RVal *v = rval(ps, 0);
        if (!v)
            return false;
        if (!at_eol(ps))
            return error_at(ps, here(ps), "unexpected text after the optimizer");
        ps->g->optimizer = v;
        return true;
    }
    return error_at(ps, loc, "expected a node, an output, an update or '}'");
}

static Graph *graph(Parser *ps)
{
    Loc loc = here(ps);
    if (!keyword(ps, "graph")) {
        error_at(ps, loc, "expected 'graph'");
        return NULL;
    }
    const char *name = ident(ps);
    if (!name) {
        error_at(ps, here(ps), "expected the graph's name");
        return NULL;
    }
    if (!expect(ps, '{'))
        return NULL;
    if (!at_eol(ps)) {
        error_at(ps, here(ps), "expected the end of the line after '{'");
        return NULL;
    }
    ps->g = ir_graph_new(ps->a, name);
    /* only the ids the last graph used: one %16777215 must not make every later graph clear 128 MiB */
    if (ps->by_id)
        memset(ps->by_id, 0, sizeof(Node *) * (size_t)ps->by_id_used);
    ps->by_id_used = 0;
    ps->ngrefs = 0;
    for (;;) {
        next_line(ps);
        if (!*ps->p) {
            error_at(ps, loc, "graph %s is not closed with '}'", name);
            return NULL;
        }
        if (accept(ps, '}'))
            break;
        if (!stmt(ps))
            return NULL;
    }
    if (!at_eol(ps)) {
        error_at(ps, here(ps), "unexpected text after '}'");
        return NULL;
    }
    for (int i = 0; i < ps->ngrefs; i++) {
        const struct GroupRef *r = &ps->grefs[i];
        if (r->root >= ps->by_id_cap || !ps->by_id[r->root]) {
            error_at(ps, r->loc, "group root %%%lld is not a value of graph %s", (long long)r->root, name);
            return NULL;
        }
        r->member->group = ps->by_id[r->root]->id;
    }
    return ir_verify(ps->g, ps->d) ? ps->g : NULL;
}

int ir_parse(Arena *a, Diag *d, const char *file, const char *text, Graph ***out)
{
    Parser ps = {.a = a, .d = d, .file = file ? arena_strdup(a, file) : "<ir>", .p = text, .line = 1};
    ps.line_start = text;
    Graph **gs = NULL;
    int n = 0;
    if (at_eol(&ps))
        next_line(&ps);
    while (*ps.p) {
        Graph *g = graph(&ps);
        if (!g)
            return 0;
        gs = arena_realloc(a, gs, sizeof(Graph *) * (size_t)n, sizeof(Graph *) * (size_t)(n + 1));
        gs[n++] = g;
        next_line(&ps);
    }
    if (n == 0) {
        error_at(&ps, here(&ps), "no graph in the text");
        return 0;
    }
    *out = gs;
    return n;
}
