/* rexpr.c: recipe expressions. A recursive-descent parser of the model language's value syntax into the
   manifest's JSON (with Python's precedence and constant folding), an evaluator of arithmetic over run-time
   names (LambdaLR's `0.95 ** epoch`), and the printer back into the model language's syntax. */
#include "rexpr.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Parentheses, lists and calls nest at most this deep; one text makes at most REXPR_MAX_OPS operator nodes
   (a long chain a + b + c ... nests on the left), so that every walk of a tree recurses a bounded depth. */
#define REXPR_MAX_DEPTH 200
#define REXPR_MAX_OPS 4096
/* Trees from the manifest are bounded by jansson's parser (2048 levels); this bound covers both. */
#define REXPR_MAX_WALK (REXPR_MAX_OPS + 2 * REXPR_MAX_DEPTH)

/* ---------------------------------------------------------------- operators */

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_NEG, OP_NONE } RexOp;

/* Binding strength, as Python's: + - < * / // % < unary - < ** < an atom. */
enum { PREC_ADD = 1, PREC_MUL = 2, PREC_UNARY = 3, PREC_POW = 4, PREC_ATOM = 5 };

static const struct {
    const char *name, *sym;
    int prec;
} ops[] = {
    [OP_ADD] = {"add", "+", PREC_ADD},         [OP_SUB] = {"sub", "-", PREC_ADD},
    [OP_MUL] = {"mul", "*", PREC_MUL},         [OP_DIV] = {"div", "/", PREC_MUL},
    [OP_FLOORDIV] = {"floordiv", "//", PREC_MUL}, [OP_MOD] = {"mod", "%", PREC_MUL},
    [OP_POW] = {"pow", "**", PREC_POW},        [OP_NEG] = {"neg", "-", PREC_UNARY},
};

static RexOp op_of(const char *name) {
    for (int i = 0; i < OP_NONE; i++)
        if (name && strcmp(name, ops[i].name) == 0)
            return (RexOp)i;
    return OP_NONE;
}

/* Python's float floor division and modulo (divmod): the quotient is floored, the remainder takes the
   divisor's sign and q * y + r == x as closely as doubles allow (1 // 0.1 is 9.0, not floor(10.0)). */
static void py_divmod(double x, double y, double *q, double *r) {
    double mod = fmod(x, y), div = (x - mod) / y;
    if (mod != 0) {
        if ((y < 0) != (mod < 0)) {
            mod += y;
            div -= 1;
        }
    } else {
        mod = copysign(0.0, y);
    }
    double fl = 0;
    if (div != 0) {
        fl = floor(div);
        if (div - fl > 0.5)
            fl += 1;
    } else {
        fl = copysign(0.0, x / y);
    }
    *q = fl;
    *r = mod;
}

/* x OP y in doubles; false for a division by zero (and 0 ** negative, which Python refuses the same way). */
static bool apply_real(RexOp op, double x, double y, double *out) {
    double q, r;
    switch (op) {
    case OP_ADD: *out = x + y; return true;
    case OP_SUB: *out = x - y; return true;
    case OP_MUL: *out = x * y; return true;
    case OP_NEG: *out = -x; return true;
    case OP_DIV:
        if (y == 0)
            return false;
        *out = x / y;
        return true;
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0)
            return false;
        py_divmod(x, y, &q, &r);
        *out = op == OP_MOD ? r : q;
        return true;
    case OP_POW:
        if (x == 0 && y < 0)
            return false;
        *out = pow(x, y);
        return true;
    case OP_NONE: break;
    }
    return false;
}

/* ---------------------------------------------------------------- the lexer */

typedef enum { TOK_END, TOK_INT, TOK_REAL, TOK_STR, TOK_IDENT, TOK_PUNCT } TokKind;

typedef struct Tok {
    TokKind kind;
    const char *start;
    int len, col;
    json_int_t ival;
    double rval;
} Tok;

typedef struct Parser {
    const char *text, *p;
    Tok tok, prev; /* prev.start is NULL before the first token */
    char *str;     /* the current string token's value */
    size_t str_len, str_cap;
    int depth, nops;
    bool failed;
    RtErr *e;
} Parser;

/* Words of the model language that cannot be names. */
static const char *const keywords[] = {
    "model", "layer", "def", "train", "param", "init", "forward", "return",
    "if", "else", "for", "and", "or", "not",
};

static const char *const puncts[] = {"**", "//", "+", "-", "*", "/", "%", "=", "(", ")", "[", "]", ","};

/* The first mistake wins; every later one follows from it. */
static json_t *fail(Parser *P, int col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static json_t *fail(Parser *P, int col, const char *fmt, ...) {
    if (!P->failed) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        rt_errf(P->e, "column %d: %s", col, msg);
        P->failed = true;
    }
    return NULL;
}

static int col_of(const Parser *P, const char *at) { return (int)(at - P->text) + 1; }

/* "'lr'", "the end": a token as messages name it. */
static const char *tok_desc(const Tok *t, char *buf, size_t n) {
    if (t->kind == TOK_END)
        return "the end";
    snprintf(buf, n, "'%.*s%s'", t->len > 24 ? 24 : t->len, t->start, t->len > 24 ? "..." : "");
    return buf;
}

static bool is_ident_char(int c) { return isalnum(c) || c == '_'; }

static bool push_char(Parser *P, char c) {
    if (P->str_len + 2 > P->str_cap) {
        size_t cap = P->str_cap ? 2 * P->str_cap : 32;
        char *s = realloc(P->str, cap);
        if (!s)
            return false;
        P->str = s;
        P->str_cap = cap;
    }
    P->str[P->str_len++] = c;
    P->str[P->str_len] = 0;
    return true;
}

/* A number as the model language's lexer reads it: digits, then an optional fraction (digits on both sides
   of the '.') and exponent; a letter or a '.' right after it is a mistake (1.e5, 2x, 0x10). */
static bool lex_number(Parser *P, Tok *t) {
    const char *q = P->p;
    bool real = false;
    while (isdigit((unsigned char)*q))
        q++;
    if (*q == '.' && isdigit((unsigned char)q[1])) {
        real = true;
        for (q++; isdigit((unsigned char)*q);)
            q++;
    }
    if (*q == 'e' || *q == 'E') {
        const char *x = q + 1;
        if (*x == '+' || *x == '-')
            x++;
        if (isdigit((unsigned char)*x)) {
            real = true;
            for (q = x; isdigit((unsigned char)*q);)
                q++;
        }
    }
    if (is_ident_char((unsigned char)*q) || *q == '.') {
        const char *end = q + 1;
        while (is_ident_char((unsigned char)*end) || *end == '.')
            end++;
        return fail(P, t->col, "invalid number literal '%.*s'", (int)(end - P->p), P->p), false;
    }
    t->kind = real ? TOK_REAL : TOK_INT;
    t->len = (int)(q - P->p);
    char buf[400];
    if (t->len >= (int)sizeof buf)
        return fail(P, t->col, "number literal '%.20s...' is too long", P->p), false;
    memcpy(buf, P->p, (size_t)t->len);
    buf[t->len] = 0;
    errno = 0;
    if (real) {
        t->rval = strtod(buf, NULL);
        if (!isfinite(t->rval))
            return fail(P, t->col, "number literal '%s' is too large", buf), false;
    } else {
        t->ival = strtoll(buf, NULL, 10);
        if (errno == ERANGE)
            return fail(P, t->col, "integer literal '%s' is too large", buf), false;
    }
    P->p = q;
    return true;
}

/* "..." or '...', with the escapes \" \' \\ \n \t. */
static bool lex_string(Parser *P, Tok *t) {
    char quote = *P->p;
    const char *q = P->p + 1;
    P->str_len = 0;
    for (; *q != quote; q++) {
        char c = *q;
        if (c == 0 || c == '\n')
            return fail(P, t->col, "unterminated string"), false;
        if (c == '\\') {
            q++;
            if (*q == '"' || *q == '\'' || *q == '\\')
                c = *q;
            else if (*q == 'n')
                c = '\n';
            else if (*q == 't')
                c = '\t';
            else
                return fail(P, col_of(P, q - 1), "unknown escape sequence in string (only \\\" \\' \\\\ \\n \\t)"),
                       false;
        }
        if (!push_char(P, c))
            return fail(P, t->col, "out of memory"), false;
    }
    t->kind = TOK_STR;
    t->len = (int)(q + 1 - P->p);
    P->p = q + 1;
    return true;
}

/* Moves to the next token; false (with the message set) on a mistake. */
static bool next(Parser *P) {
    P->prev = P->tok;
    while (*P->p == ' ' || *P->p == '\t' || *P->p == '\n' || *P->p == '\r')
        P->p++;
    Tok *t = &P->tok;
    *t = (Tok){.start = P->p, .col = col_of(P, P->p)};
    unsigned char c = (unsigned char)*P->p;
    if (!c)
        return t->kind = TOK_END, true;
    if (isdigit(c))
        return lex_number(P, t);
    if (c == '"' || c == '\'')
        return lex_string(P, t);
    if (isalpha(c) || c == '_') {
        while (is_ident_char((unsigned char)*P->p))
            P->p++;
        t->kind = TOK_IDENT;
        t->len = (int)(P->p - t->start);
        return true;
    }
    for (size_t i = 0; i < sizeof puncts / sizeof *puncts; i++) {
        size_t n = strlen(puncts[i]);
        if (strncmp(P->p, puncts[i], n) == 0) {
            t->kind = TOK_PUNCT;
            t->len = (int)n;
            P->p += n;
            return true;
        }
    }
    if (isprint(c))
        return fail(P, t->col, "unexpected character '%c'", c), false;
    return fail(P, t->col, "unexpected character 0x%02x", c), false;
}

static bool tok_is(const Tok *t, const char *s) {
    return (t->kind == TOK_PUNCT || t->kind == TOK_IDENT) && (int)strlen(s) == t->len &&
           strncmp(t->start, s, (size_t)t->len) == 0;
}

static bool consume(Parser *P, const char *s) { return tok_is(&P->tok, s) && next(P); }

static bool expect(Parser *P, const char *s, const char *where) {
    if (tok_is(&P->tok, s))
        return next(P);
    char buf[40];
    fail(P, P->tok.col, "expected '%s'%s, found %s", s, where, tok_desc(&P->tok, buf, sizeof buf));
    return false;
}

/* ---------------------------------------------------------------- the parser */

static json_t *expr(Parser *P);

static const char *json_kind(const json_t *v) {
    if (json_is_string(v))
        return "a string";
    if (json_is_boolean(v))
        return "a boolean";
    if (json_is_null(v))
        return "none";
    if (json_is_array(v))
        return "a list";
    return "a value";
}

/* What arithmetic takes: a number, a name, a call or another operator's tree. */
static bool is_operand(const json_t *v) {
    return json_is_number(v) || json_object_get(v, "ident") || json_object_get(v, "call");
}

static json_t *op_call(RexOp op, json_t *a, json_t *b) {
    json_t *args = json_array();
    json_array_append_new(args, a);
    if (b)
        json_array_append_new(args, b);
    return json_pack("{s:s, s:o, s:o}", "call", ops[op].name, "args", args, "kwargs", json_object());
}

/* a OP b over integers, as Python computes it (false: a real result, left to the caller); the result must
   fit 64 bits, which Python's integers do not need, so an overflow is a mistake here. */
static bool fold_int(RexOp op, json_int_t a, json_int_t b, json_int_t *r, bool *overflow) {
    *overflow = false;
    switch (op) {
    case OP_ADD: *overflow = __builtin_add_overflow(a, b, r); return true;
    case OP_SUB: *overflow = __builtin_sub_overflow(a, b, r); return true;
    case OP_MUL: *overflow = __builtin_mul_overflow(a, b, r); return true;
    case OP_NEG: *overflow = __builtin_sub_overflow((json_int_t)0, a, r); return true;
    case OP_FLOORDIV:
        if (a == INT64_MIN && b == -1)
            return *overflow = true;
        *r = a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
        return true;
    case OP_MOD:
        *r = b == -1 ? 0 : a % b;
        if (*r != 0 && (*r < 0) != (b < 0))
            *r += b;
        return true;
    case OP_POW: {
        if (b < 0)
            return false;
        json_int_t base = a, acc = 1;
        for (; b; b >>= 1) {
            if ((b & 1) && __builtin_mul_overflow(acc, base, &acc))
                return *overflow = true;
            if ((b >> 1) && __builtin_mul_overflow(base, base, &base))
                return *overflow = true;
        }
        *r = acc;
        return true;
    }
    case OP_DIV:
    case OP_NONE: break;
    }
    return false;
}

/* a OP b (b NULL for neg), folded to a number when both are numbers, else the operator's call tree. Takes
   the references of a and b; col is the operator's column. */
static json_t *make_op(Parser *P, RexOp op, int col, json_t *a, json_t *b) {
    if (!a || (op != OP_NEG && !b)) {
        json_decref(a);
        json_decref(b);
        return NULL;
    }
    json_t *bad = !is_operand(a) ? a : b && !is_operand(b) ? b : NULL;
    if (bad) {
        const char *kind = json_kind(bad);
        json_decref(a);
        json_decref(b);
        return fail(P, col, "'%s' needs numbers, got %s", ops[op].sym, kind);
    }
    if (!json_is_number(a) || (b && !json_is_number(b))) {
        if (++P->nops > REXPR_MAX_OPS) {
            json_decref(a);
            json_decref(b);
            return fail(P, col, "expression too long (more than %d operators over names)", REXPR_MAX_OPS);
        }
        return op_call(op, a, b);
    }
    bool ints = json_is_integer(a) && (!b || json_is_integer(b));
    double x = json_number_value(a), y = b ? json_number_value(b) : 0;
    json_int_t ia = ints ? json_integer_value(a) : 0, ib = ints && b ? json_integer_value(b) : 0;
    json_decref(a);
    json_decref(b);
    if ((op == OP_DIV || op == OP_FLOORDIV || op == OP_MOD) && y == 0)
        return fail(P, col, "division by zero");
    json_int_t ir;
    bool overflow;
    if (ints && fold_int(op, ia, ib, &ir, &overflow)) {
        if (overflow)
            return fail(P, col, "integer overflow in '%s'", ops[op].sym);
        return json_integer(ir);
    }
    double r;
    if (!apply_real(op, x, y, &r))
        return fail(P, col, "division by zero");
    if (isnan(r))
        return fail(P, col, "'%s' gives no real number", ops[op].sym);
    if (isinf(r))
        return fail(P, col, "'%s' overflows", ops[op].sym);
    return json_real(r);
}

/* Guards the recursion of nested parentheses, lists, calls and unary minus. */
static bool enter(Parser *P) {
    if (++P->depth > REXPR_MAX_DEPTH)
        return fail(P, P->tok.col, "expression nested too deeply (more than %d levels)", REXPR_MAX_DEPTH), false;
    return true;
}

/* args := (arg ("," arg)* ","?)?    arg := (IDENT "=")? expr;  the "(" is consumed, ")" ends it */
static json_t *call(Parser *P, const Tok *callee) {
    json_t *args = json_array(), *kwargs = json_object();
    json_t *c = json_pack("{s:s%, s:o, s:o}", "call", callee->start, (size_t)callee->len, "args", args, "kwargs",
                          kwargs);
    while (c && !tok_is(&P->tok, ")")) {
        char key[128] = "";
        Tok at = P->tok;
        if (at.kind == TOK_IDENT && P->p[strspn(P->p, " \t\r\n")] == '=' && P->p[strspn(P->p, " \t\r\n") + 1] != '=') {
            snprintf(key, sizeof key, "%.*s", at.len, at.start);
            if (at.len >= (int)sizeof key)
                return json_decref(c), fail(P, at.col, "keyword '%.20s...' is too long", at.start);
            if (json_object_get(kwargs, key))
                return json_decref(c), fail(P, at.col, "keyword argument '%s' given twice", key);
            if (!next(P) || !next(P))
                return json_decref(c), NULL;
        } else if (json_object_size(kwargs)) {
            return json_decref(c), fail(P, at.col, "positional argument after a keyword argument");
        }
        json_t *v = expr(P);
        if (!v)
            return json_decref(c), NULL;
        if (*key)
            json_object_set_new(kwargs, key, v);
        else
            json_array_append_new(args, v);
        if (!consume(P, ","))
            break;
    }
    if (P->failed || !expect(P, ")", " to close the argument list"))
        return json_decref(c), NULL;
    return c;
}

/* "[" (expr ("," expr)* ","?)? "]", the "[" consumed */
static json_t *list(Parser *P) {
    json_t *l = json_array();
    while (l && !tok_is(&P->tok, "]")) {
        json_t *v = expr(P);
        if (!v)
            return json_decref(l), NULL;
        json_array_append_new(l, v);
        if (!consume(P, ","))
            break;
    }
    if (P->failed || !expect(P, "]", " to close the list"))
        return json_decref(l), NULL;
    return l;
}

/* primary := INT | REAL | STR | "true" | "false" | "none" | IDENT ("(" args ")")? | "(" expr ")" | "[" list "]" */
static json_t *primary(Parser *P) {
    Tok t = P->tok;
    char buf[40];
    json_t *v = NULL;
    switch (t.kind) {
    case TOK_INT: return next(P) ? json_integer(t.ival) : NULL;
    case TOK_REAL: return next(P) ? json_real(t.rval) : NULL;
    case TOK_STR:
        if (!(v = json_stringn(P->str_len ? P->str : "", P->str_len)))
            return fail(P, t.col, "the string is not valid UTF-8");
        return next(P) ? v : (json_decref(v), NULL);
    case TOK_IDENT:
        if (!next(P))
            return NULL;
        if (tok_is(&t, "true") || tok_is(&t, "false"))
            return json_boolean(tok_is(&t, "true"));
        if (tok_is(&t, "none"))
            return json_null();
        for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
            if (tok_is(&t, keywords[i]))
                return fail(P, t.col, "'%s' is a keyword of the model language, not a name", keywords[i]);
        if (tok_is(&P->tok, "(")) {
            if (!enter(P) || !next(P))
                return NULL;
            v = call(P, &t);
            P->depth--;
            return v;
        }
        return json_pack("{s:s%}", "ident", t.start, (size_t)t.len);
    case TOK_PUNCT:
        if (tok_is(&t, "(") || tok_is(&t, "[")) {
            if (!enter(P) || !next(P))
                return NULL;
            if (tok_is(&t, "["))
                v = list(P);
            else if ((v = expr(P)) && !expect(P, ")", " to close the parenthesis"))
                v = (json_decref(v), NULL);
            P->depth--;
            return v;
        }
        break;
    case TOK_END: break;
    }
    if (P->prev.start)
        return fail(P, t.col, "expected an expression after %s, found %s", tok_desc(&P->prev, (char[40]){0}, 40),
                    tok_desc(&t, buf, sizeof buf));
    return fail(P, t.col, "expected an expression, found %s", tok_desc(&t, buf, sizeof buf));
}

static json_t *unary(Parser *P);

/* power := primary ("**" unary)?     right associative, and binds tighter than unary minus on its left */
static json_t *power(Parser *P) {
    json_t *v = primary(P);
    int col = P->tok.col;
    if (v && tok_is(&P->tok, "**")) {
        if (!enter(P) || !next(P))
            return json_decref(v), NULL;
        v = make_op(P, OP_POW, col, v, unary(P));
        P->depth--;
    }
    return v;
}

/* unary := "-" unary | power */
static json_t *unary(Parser *P) {
    if (!tok_is(&P->tok, "-"))
        return power(P);
    int col = P->tok.col;
    if (!enter(P) || !next(P))
        return NULL;
    json_t *v = make_op(P, OP_NEG, col, unary(P), NULL);
    P->depth--;
    return v;
}

/* mul := unary (("*" | "/" | "//" | "%") unary)* */
static json_t *mul(Parser *P) {
    json_t *v = unary(P);
    for (;;) {
        RexOp op = tok_is(&P->tok, "*") ? OP_MUL : tok_is(&P->tok, "/") ? OP_DIV
                 : tok_is(&P->tok, "//") ? OP_FLOORDIV : tok_is(&P->tok, "%") ? OP_MOD : OP_NONE;
        if (!v || op == OP_NONE)
            return v;
        int col = P->tok.col;
        if (!next(P))
            return json_decref(v), NULL;
        v = make_op(P, op, col, v, unary(P));
    }
}

/* expr := mul (("+" | "-") mul)* */
static json_t *expr(Parser *P) {
    json_t *v = mul(P);
    for (;;) {
        RexOp op = tok_is(&P->tok, "+") ? OP_ADD : tok_is(&P->tok, "-") ? OP_SUB : OP_NONE;
        if (!v || op == OP_NONE)
            return v;
        int col = P->tok.col;
        if (!next(P))
            return json_decref(v), NULL;
        v = make_op(P, op, col, v, mul(P));
    }
}

json_t *rt_rexpr_parse(const char *text, RtErr *e) {
    Parser P = {.text = text, .p = text, .e = e};
    json_t *v = next(&P) ? expr(&P) : NULL;
    if (v && P.tok.kind != TOK_END) {
        char buf[40];
        json_decref(v);
        v = fail(&P, P.tok.col, "unexpected %s after the expression", tok_desc(&P.tok, buf, sizeof buf));
    }
    if (!v && !P.failed) /* jansson out of memory */
        rt_errf(e, "out of memory");
    free(P.str);
    return v;
}

/* ---------------------------------------------------------------- evaluation */

typedef struct Env {
    const char *const *names;
    const double *vals;
    int n;
    bool check; /* names stand for 1, and nothing is computed: rt_rexpr_check */
} Env;

static const struct {
    const char *name;
    double (*fn)(double);
} funcs[] = {
    {"exp", exp},     {"log", log},   {"sqrt", sqrt},   {"sin", sin},   {"cos", cos},   {"tan", tan},
    {"tanh", tanh},   {"abs", fabs},  {"floor", floor}, {"ceil", ceil}, {"round", rint}, /* half to even */
};
#define NFUNCS ((int)(sizeof funcs / sizeof *funcs))

static const char *known_names(const Env *env, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < env->n && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s, ", env->names[i]);
    if (len < n)
        snprintf(buf + len, n - len, "pi, e");
    return buf;
}

/* The text of v for messages, cut to fit. */
static const char *short_text(const json_t *v, char *buf, size_t n) {
    char *s = rt_rexpr_text(v);
    snprintf(buf, n, "%s", s ? s : "?");
    if (s && strlen(s) >= n && n > 4)
        memcpy(buf + n - 4, "...", 4);
    free(s);
    return buf;
}

static int walk(const json_t *v, const Env *env, int depth, double *out, RtErr *e) {
    char buf[160];
    *out = 0;
    if (depth > REXPR_MAX_WALK)
        return rt_errf(e, "expression nested too deeply (more than %d levels)", REXPR_MAX_WALK);
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return RT_OK;
    }
    const char *id = json_string_value(json_object_get(v, "ident"));
    if (id) {
        for (int i = 0; i < env->n; i++)
            if (strcmp(id, env->names[i]) == 0) {
                *out = env->check ? 1 : env->vals[i];
                return RT_OK;
            }
        if (strcmp(id, "pi") == 0 || strcmp(id, "e") == 0) {
            *out = id[0] == 'e' ? exp(1.0) : acos(-1.0);
            return RT_OK;
        }
        return rt_errf(e, "unknown name '%s' (the names here: %s)", id, known_names(env, buf, sizeof buf));
    }
    const char *f = json_string_value(json_object_get(v, "call"));
    if (!f)
        return rt_errf(e, "expected a number, got %s%s%s", json_is_null(v) ? "" : json_kind(v),
                       json_is_null(v) ? "" : " ", short_text(v, buf, sizeof buf));
    json_t *args = json_object_get(v, "args");
    int nargs = (int)json_array_size(args);
    RexOp op = op_of(f);
    int fi = 0;
    while (fi < NFUNCS && strcmp(f, funcs[fi].name) != 0)
        fi++;
    bool minmax = strcmp(f, "min") == 0 || strcmp(f, "max") == 0;
    if (op == OP_NONE && fi == NFUNCS && !minmax)
        return rt_errf(e, "unknown function '%s' (the functions: exp log sqrt sin cos tan tanh abs floor ceil "
                       "round min max)", f);
    if (json_object_size(json_object_get(v, "kwargs")))
        return rt_errf(e, "%s takes no keyword arguments", f);
    int want = op == OP_NEG || fi < NFUNCS ? 1 : 2;
    if (minmax ? nargs < 2 : nargs != want)
        return rt_errf(e, "%s takes %s%d argument%s", op == OP_NONE ? f : ops[op].sym, minmax ? "at least " : "",
                       want, want == 1 ? "" : "s");
    double x[2];
    for (int i = 0; i < nargs; i++) {
        double a;
        if (walk(json_array_get(args, (size_t)i), env, depth + 1, &a, e) != RT_OK)
            return RT_ERR;
        if (minmax)
            x[0] = i == 0 ? a : f[1] == 'i' ? fmin(x[0], a) : fmax(x[0], a);
        else
            x[i] = a;
    }
    if (minmax || env->check) {
        *out = x[0];
        return RT_OK;
    }
    if (fi < NFUNCS) {
        *out = funcs[fi].fn(x[0]);
        return RT_OK;
    }
    if (!apply_real(op, x[0], nargs > 1 ? x[1] : 0, out))
        return rt_errf(e, "division by zero in '%s'", short_text(v, buf, sizeof buf));
    return RT_OK;
}

int rt_rexpr_eval(const json_t *v, const char *const *names, const double *vals, int nvars, double *out,
                  RtErr *e) {
    Env env = {names, vals, nvars, false};
    if (walk(v, &env, 0, out, e) != RT_OK)
        return RT_ERR;
    if (!isfinite(*out)) {
        char buf[160], at[256] = "";
        size_t len = 0;
        for (int i = 0; i < nvars && len < sizeof at; i++)
            len += (size_t)snprintf(at + len, sizeof at - len, "%s%s = %g", i ? ", " : " with ", names[i], vals[i]);
        return rt_errf(e, "'%s' gives %s%s", short_text(v, buf, sizeof buf),
                       isnan(*out) ? "nan" : *out > 0 ? "inf" : "-inf", at);
    }
    return RT_OK;
}

int rt_rexpr_check(const json_t *v, const char *const *names, int nvars, RtErr *e) {
    Env env = {names, NULL, nvars, true};
    double unused;
    return walk(v, &env, 0, &unused, e);
}

/* ---------------------------------------------------------------- printing */

typedef struct Buf {
    char *s;
    size_t len, cap;
    bool oom;
} Buf;

static void put(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->oom || n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The operator a call prints as, or OP_NONE for a plain call. */
static RexOp infix_op(const json_t *v) {
    RexOp op = op_of(json_string_value(json_object_get(v, "call")));
    size_t want = op == OP_NEG ? 1 : 2;
    if (op == OP_NONE || json_array_size(json_object_get(v, "args")) != want ||
        json_object_size(json_object_get(v, "kwargs")))
        return OP_NONE;
    return op;
}

static int prec_of(const json_t *v) {
    if (json_is_number(v))
        return json_number_value(v) < 0 || signbit(json_number_value(v)) ? PREC_UNARY : PREC_ATOM;
    RexOp op = json_object_get(v, "call") ? infix_op(v) : OP_NONE;
    return op == OP_NONE ? PREC_ATOM : ops[op].prec;
}

/* The shortest digits that read back as the same double, with a '.' or an exponent so that they read back
   as a real. */
static void put_real(Buf *b, double x) {
    char s[40];
    if (!isfinite(x)) {
        put(b, "%s", isnan(x) ? "nan" : x > 0 ? "inf" : "-inf");
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*g", p, x);
        if (strtod(s, NULL) == x)
            break;
    }
    put(b, "%s%s", s, strpbrk(s, ".e") ? "" : ".0");
}

static void put_text(Buf *b, const json_t *v, int depth);

static void put_operand(Buf *b, const json_t *v, bool parens, int depth) {
    put(b, "%s", parens ? "(" : "");
    put_text(b, v, depth + 1);
    put(b, "%s", parens ? ")" : "");
}

static void put_text(Buf *b, const json_t *v, int depth) {
    if (depth > REXPR_MAX_WALK) {
        put(b, "...");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_NULL: put(b, "none"); return;
    case JSON_TRUE: put(b, "true"); return;
    case JSON_FALSE: put(b, "false"); return;
    case JSON_INTEGER:
        if (json_integer_value(v) == INT64_MIN) /* its digits without the sign do not fit an integer */
            put(b, "(-9223372036854775807 - 1)");
        else
            put(b, "%lld", (long long)json_integer_value(v));
        return;
    case JSON_REAL: put_real(b, json_real_value(v)); return;
    case JSON_STRING: {
        put(b, "\"");
        const char *s = json_string_value(v);
        for (size_t i = 0; i < json_string_length(v); i++)
            put(b, "%s", s[i] == '"' ? "\\\"" : s[i] == '\\' ? "\\\\" : s[i] == '\n' ? "\\n" : (char[2]){s[i], 0});
        put(b, "\"");
        return;
    }
    case JSON_ARRAY:
        put(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            put(b, "%s", i ? ", " : "");
            put_text(b, json_array_get(v, i), depth + 1);
        }
        put(b, "]");
        return;
    case JSON_OBJECT: break;
    }
    const char *id = json_string_value(json_object_get(v, "ident"));
    const char *f = json_string_value(json_object_get(v, "call"));
    if (id) {
        put(b, "%s", id);
        return;
    }
    if (!f) { /* not a recipe value: its JSON */
        char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        put(b, "%s", s ? s : "?");
        free(s);
        return;
    }
    json_t *args = json_object_get(v, "args");
    RexOp op = infix_op(v);
    if (op == OP_NEG) {
        const json_t *x = json_array_get(args, 0);
        put(b, "-");
        put_operand(b, x, prec_of(x) < PREC_UNARY, depth);
        return;
    }
    if (op != OP_NONE) {
        /* left-associative but **, which is right-associative and takes a unary minus on its right */
        const json_t *x = json_array_get(args, 0), *y = json_array_get(args, 1);
        int p = ops[op].prec;
        put_operand(b, x, op == OP_POW ? prec_of(x) <= p : prec_of(x) < p, depth);
        put(b, " %s ", ops[op].sym);
        put_operand(b, y, op == OP_POW ? prec_of(y) < PREC_UNARY : prec_of(y) <= p, depth);
        return;
    }
    put(b, "%s(", f);
    size_t i;
    for (i = 0; i < json_array_size(args); i++) {
        put(b, "%s", i ? ", " : "");
        put_text(b, json_array_get(args, i), depth + 1);
    }
    const char *k;
    json_t *a;
    json_object_foreach(json_object_get(v, "kwargs"), k, a) {
        put(b, "%s%s = ", i++ ? ", " : "", k);
        put_text(b, a, depth + 1);
    }
    put(b, ")");
}

char *rt_rexpr_text(const json_t *v) {
    Buf b = {0};
    put(&b, "%s", "");
    put_text(&b, v, 0);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
