/* fe.h: the frontend's internal header: tokens and the lexer (lex_), the AST and the parser (parse_), the
   values and the staging evaluator (sema_), which runs the AST and builds IR as it goes. Only the frontend's .c files
   and the frontend's unit tests include it; other folders use frontend.h. */
#ifndef LATHE_FE_H
#define LATHE_FE_H

#include "frontend.h"

/* Limits that keep every recursion bounded whatever a model file says. */
#define FE_MAX_CALL_DEPTH 200  /* nested calls of defs, forwards and layer constructors */
#define FE_MAX_EXPR_DEPTH 256  /* nested expressions within one parse */
#define FE_MAX_EVAL_DEPTH 3000 /* nested expression evaluations across calls */
/* Evaluations in all, loop iterations and range items included: defs or layers that each call the next
   twice stay within the depth limits but take 2^depth steps, and nested loops multiply; this bound turns
   such a file into an error instead of a hang. Real models take thousands (resnet20: about 14000); each
   step may keep a few hundred bytes, so the bound also keeps the memory of a runaway file near 500 MB. */
#define FE_MAX_EVAL_STEPS 1000000
/* Names in one declaration, call, body or file (members, parameters, keyword arguments, statements, train
   settings, declarations): the parser checks them for duplicates pairwise. */
#define FE_MAX_NAMES 4096

/* ---------------------------------------------------------------- tokens (lex.c) */
typedef enum { TK_IDENT, TK_KEYWORD, TK_INT, TK_FLOAT, TK_STR, TK_PUNCT, TK_EOF } TokenKind;

typedef struct Token {
    TokenKind kind;
    const char *text; /* the token as written (not NUL-terminated): len bytes */
    int len;
    int64_t ival;     /* TK_INT */
    double fval;      /* TK_FLOAT */
    const char *str;  /* TK_STR: the unescaped contents; TK_IDENT, TK_KEYWORD, TK_PUNCT: the text */
    Loc loc;
} Token;

/* Splits text into tokens ending with TK_EOF. NULL after reporting the first bad character. */
Token *lex_tokenize(Arena *a, Diag *d, const char *file, const char *text, int *ntokens);
bool lex_is(const Token *t, const char *s); /* a keyword or punctuator spelled s */

/* ---------------------------------------------------------------- the AST (parse.c) */
typedef enum {
    E_INT, E_FLOAT, E_STR, E_BOOL, E_IDENT, E_LIST,
    E_NEG,    /* -lhs */
    E_BINARY, /* lhs op rhs */
    E_CALL,   /* lhs(items, keys[i] = items[i]) */
    E_ATTR,   /* lhs.name */
    E_INDEX,  /* lhs[items, ...]; rhs is items[0] */
    E_NONE,   /* none */
    E_NOT,    /* not lhs */
    E_AND,    /* lhs and rhs (Python's: the first falsy operand, else the last) */
    E_OR,     /* lhs or rhs */
    E_COMP,   /* [lhs for name in rhs] */
    E_SLICE,  /* start:stop:step inside an index: items[0..2], each NULL when absent */
    E_ELLIPSIS, /* ... inside an index */
} ExprKind;

typedef enum { B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_ADD, B_SUB, B_MUL, B_DIV, B_MATMUL, B_MOD, B_POW, B_FLOORDIV } BinOp;

typedef struct Expr Expr;
struct Expr {
    ExprKind kind;
    Loc loc;          /* a binary expression: its operator; a call: its callee */
    int64_t ival;     /* E_INT */
    double fval;      /* E_FLOAT */
    bool bval;        /* E_BOOL */
    const char *name; /* E_IDENT, E_ATTR: the name; E_STR: the text */
    BinOp op;         /* E_BINARY */
    Expr *lhs, *rhs;
    Expr **items;     /* E_LIST items, E_CALL arguments */
    const char **keys; /* E_CALL: keyword of each argument, NULL when positional */
    int nitems;
    int height;       /* 1 + the height of the deepest operand: bounded by FE_MAX_EXPR_DEPTH */
};

typedef enum { TY_INT, TY_FLOAT, TY_BOOL, TY_TENSOR } TypeKind;

typedef struct TypeExpr {
    TypeKind kind;
    Loc loc;
    DType dtype; /* TY_TENSOR */
    Expr **dims; /* TY_TENSOR: each an int expression or N */
    int ndims;
} TypeExpr;

typedef struct Param {
    const char *name;
    Loc loc;
    TypeExpr *type; /* NULL: any value */
    Expr *dflt;     /* NULL: required */
} Param;

typedef enum {
    S_ASSIGN, /* name = value */
    S_RETURN, /* return value */
    S_EXPR,   /* value (a call), its result dropped */
    S_IF,     /* if value { body } else { orelse }; `else if` is an S_IF alone in orelse */
    S_FOR,    /* for name in value { body } */
} StmtKind;

typedef struct Stmt Stmt;
struct Stmt {
    StmtKind kind;
    Loc loc;
    const char *name; /* S_ASSIGN; S_FOR: the loop variable */
    Expr *value;      /* S_IF: the condition; S_FOR: the iterable */
    Stmt *body;       /* S_IF, S_FOR */
    int nbody;
    Stmt *orelse;     /* S_IF */
    int norelse;
};

/* A def or a forward. */
typedef struct Func {
    const char *name; /* "flatten", "forward" */
    Loc loc;
    Param *params;
    int nparams;
    TypeExpr *ret; /* NULL: not declared */
    Stmt *body;
    int nbody;
} Func;

typedef enum {
    M_PARAM,   /* name = param TYPE (init EXPR)? */
    M_BUFFER,  /* name = buffer TYPE (init EXPR)? */
    M_ASSIGN,  /* name = EXPR */
    M_FORWARD, /* forward(...) { ... } */
    M_IF,      /* if value { members } else { orelse } */
    M_FREEZE,  /* freeze path */
    M_INIT,    /* init path = EXPR */
} MemberKind;

typedef struct Member Member;
struct Member {
    MemberKind kind;
    Loc loc;
    const char *name; /* M_PARAM, M_BUFFER, M_ASSIGN, M_FORWARD; NULL for the others */
    TypeExpr *type;   /* M_PARAM, M_BUFFER */
    Expr *init;       /* M_PARAM, M_BUFFER: NULL means zeros; M_INIT */
    Expr *value;      /* M_ASSIGN; M_IF: the condition */
    Func *forward;    /* M_FORWARD */
    Member *members;  /* M_IF: the members of each branch */
    int nmembers;
    Member *orelse;
    int norelse;
    const char **path; /* M_FREEZE, M_INIT: the segments of `fc1.weight` */
    Loc *path_locs;
    int npath;
};

typedef struct TrainEntry {
    const char *key;
    Loc loc;
    Expr *value;
} TrainEntry;

typedef enum { D_MODEL, D_LAYER, D_DEF, D_TRAIN } DeclKind;

typedef struct Decl {
    DeclKind kind;
    Loc loc;          /* the name */
    const char *name; /* D_TRAIN: the model's name */
    Param *params;    /* D_LAYER */
    int nparams;
    Member *members;  /* D_MODEL, D_LAYER */
    int nmembers;
    Func *func;       /* D_DEF */
    TrainEntry *entries; /* D_TRAIN */
    int nentries;
} Decl;

typedef struct Module {
    const char *file;
    Decl *decls;
    int ndecls;
} Module;

/* Parses a whole file. NULL after reporting the first syntax error. */
Module *parse_file(Arena *a, Diag *d, const char *file, const char *text);
const char *parse_binop_name(BinOp op); /* "+", "@", ... */

/* ---------------------------------------------------------------- values and the evaluator (eval.c) */
typedef struct Value Value;
typedef struct Scope Scope;
typedef struct Instance Instance;
typedef struct Eval Eval;
typedef struct Builtin Builtin;

typedef enum {
    V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_LIST, V_DTYPE,
    V_DIMN,     /* the symbolic batch dimension N */
    V_TENSOR,   /* a node of the graph being built */
    V_PARAM,    /* a parameter of a layer instance; becomes a PARAM node when a graph uses it */
    V_INSTANCE, /* a layer instance */
    V_LAYER,    /* a layer or model declaration: calling it instantiates */
    V_FUNC,     /* a def */
    V_BUILTIN,
    V_INIT,     /* an initialiser: zeros(), uniform(a, b), ... */
} ValueKind;

/* A parameter of an instance. Its name is assigned once the whole model is instantiated. */
typedef struct ParamObj {
    const char *name;
    const char *member; /* the member name, for messages before naming */
    DType dtype;
    Shape shape;
    InitSpec init;
    Loc loc;
    Graph *graph; /* the graph that node belongs to: one PARAM node per graph */
    Node *node;
    bool buffer;  /* a `buffer` member: no gradient, saved in checkpoints, rewritten by update() */
    bool frozen;  /* `freeze`: no gradient and no update */
    Graph *updated; /* the graph whose step already updates this buffer */
} ParamObj;

struct Value {
    ValueKind kind;
    int64_t i;          /* V_INT */
    double f;           /* V_FLOAT */
    bool b;             /* V_BOOL */
    const char *s;      /* V_STR */
    Value **items;      /* V_LIST */
    int nitems;
    DType dtype;        /* V_DTYPE */
    Node *node;         /* V_TENSOR */
    ParamObj *param;    /* V_PARAM */
    Instance *inst;     /* V_INSTANCE */
    const Decl *decl;   /* V_LAYER, V_FUNC */
    const Builtin *builtin; /* V_BUILTIN */
    InitSpec init;      /* V_INIT */
};

struct Scope {
    Scope *parent;
    const char **names;
    Value **values;
    int n, cap;
    int *index; /* once cap > 8: open addressing over names, 2 * cap slots holding i + 1 (0: empty) */
};

/* A layer instance: its constructor arguments and members in one scope, in declaration order. */
struct Instance {
    const char *type_name;  /* "Linear", "Sequential" */
    Loc loc;                /* where it was created */
    const Decl *decl;       /* NULL for Sequential */
    Scope *scope;
    Scope *members;         /* the names members set, in the order they were first set (state_dict order) */
    const Func *forward;    /* NULL: not callable (Sequential calls its children) */
    Value **children;       /* Sequential: the layers in order */
    int nchildren;
    bool named;             /* visited by the naming walk */
};

/* Evaluated call arguments. */
typedef struct Args {
    Value **pos;
    int npos;
    const char **keys;
    Value **kv;
    Loc *key_locs;
    int nkeys;
} Args;

struct Eval {
    Arena *a;
    Diag *d;
    const char *user_file;   /* the model file's name */
    const char *stdlib_file; /* the stdlib's name pointer: locations in it are the library's */
    Scope *global;
    Loc site;      /* the innermost call site in the user's file */
    int call_depth, eval_depth;
    long steps;    /* evaluations so far, bounded by FE_MAX_EVAL_STEPS */
    Graph *g;      /* the graph being built, or NULL outside forward */
    bool training; /* the graph being built is the train step (the name `training`) */
    uint32_t streams; /* RANDOM nodes made in g so far: the next one's stream */
    /* update(buffer, value) calls of the train graph, added as update outputs after the loss */
    ParamObj **updates;
    Node **update_values;
    int nupdates, updates_cap;
    bool failed;
};

/* Builtins: primitives and initialisers (builtins.c). */
typedef Value *(*BuiltinFn)(Eval *E, Value **args, Loc loc);
struct Builtin {
    const char *name;
    const char *const *params; /* parameter names */
    int nparams, nrequired;    /* the rest default to NULL in args */
    BuiltinFn fn;
};
void sema_register_builtins(Eval *E, Scope *s);
void sema_register_layer_builtins(Eval *E, Scope *s); /* builtins_layers.c */
/* Argument helpers of the builtins: an optional argument given (not absent, not none); the tensor argument
   `what` of builtin fn; an axis of x (negative from the end); a bool with a default. false/NULL after an
   error. */
bool sema_given(const Value *v);
Node *sema_tensor_arg(Eval *E, Value *v, const char *fn, const char *what, Loc loc);
bool sema_axis_of(Eval *E, Value *v, const Node *x, const char *fn, Loc loc, int *out);
bool sema_bool_arg(Eval *E, Value *v, bool dflt, const char *fn, const char *what, Loc loc, bool *out);

Scope *sema_scope_new(Eval *E, Scope *parent);
void sema_scope_set(Eval *E, Scope *s, const char *name, Value *v);   /* binds or rebinds in s */
Value *sema_scope_get(const Scope *s, const char *name);              /* searching parents; NULL */
Value *sema_scope_get_local(const Scope *s, const char *name);

Value *sema_value(Eval *E, ValueKind k);
Value *sema_int(Eval *E, int64_t i);
Value *sema_float(Eval *E, double f);
Value *sema_tensor(Eval *E, Node *n);
const char *sema_kind_name(Eval *E, const Value *v); /* "an int", "a tensor f32[N,10]" */
static inline bool sema_is_tensor(const Value *v) { return v->kind == V_TENSOR || v->kind == V_PARAM; }
static inline bool sema_is_number(const Value *v) { return v->kind == V_INT || v->kind == V_FLOAT; }
static inline double sema_num(const Value *v) { return v->kind == V_INT ? (double)v->i : v->f; }

/* Reports the first error: at loc when it lies in the user's file, else at the user's call site with a
   note at the library's line. Sets E->failed; returns NULL for the caller's convenience. */
Value *sema_error(Eval *E, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The location an IR node built at loc carries: loc in the user's file, else the user's call site. */
Loc sema_node_loc(const Eval *E, Loc loc);
/* After ir_make reported an error at sema_node_loc(loc): a note at the library's line, if loc is there. */
void sema_note_library(Eval *E, Loc loc);

Value *sema_eval(Eval *E, const Expr *e, Scope *s);
/* Python's truth of a compile-time value (false for none, 0, empty lists); false after an error, with
   what naming the construct for the message ("the condition of 'if'"). */
bool sema_truth(Eval *E, Value *v, const char *what, Loc loc, bool *out);
/* Counts n more evaluation steps (loop iterations, list items made) against FE_MAX_EVAL_STEPS: false and an
   error at loc past the bound, so that empty loops and big ranges cannot run or allocate without end. */
bool sema_charge(Eval *E, long n, Loc loc);
Value *sema_none(Eval *E);
Value *sema_bool(Eval *E, bool b);
Value *sema_list(Eval *E, int n); /* n items, to be filled */
Value *sema_call(Eval *E, Value *callee, Args *args, Loc loc);
/* The tensor a value stands for (a parameter becomes a PARAM node of E->g), or NULL when it is none. */
Node *sema_node(Eval *E, Value *v, Loc loc);
const char *sema_type_str(Eval *E, DType t, const Shape *s); /* "f32[N,10]" in the arena */
/* Wraps the node an ir_* builder returned; NULL means the builder reported an error at the node's
   location: sets E->failed and adds the library note. */
Value *sema_made(Eval *E, Node *n, Loc loc);
/* A number v as a rank-0 CONST of like's dtype (an error for a fractional float and an integer dtype). */
Node *sema_const_like(Eval *E, const Node *like, Value *v, Loc loc);
/* An elementwise binary op on two tensors or a tensor and a number (a rank-0 constant of the tensor's
   dtype); checks dtypes and broadcasting with a message naming both types. */
Value *sema_elementwise(Eval *E, Op op, const char *what, Value *a, Value *b, Loc loc);
/* What an index keeps of one dim: elements start, start + step, ... (size of them); index: an int index,
   the dim is dropped. */
typedef struct DimSel {
    bool index;
    int64_t start, step, size;
} DimSel;
/* lhs[items] of an E_INDEX (index.c): a list's item or slice, or a tensor's SLICE. */
Value *sema_subscript(Eval *E, const Expr *e, Scope *s);
/* Python's slice start:stop:step of x's dim d (each value NULL or none when absent); the N dim only whole. */
bool sema_slice_dim(Eval *E, const Node *x, int d, Value *start, Value *stop, Value *step, Loc loc, DimSel *out);
/* The SLICE (and the RESHAPE dropping indexed dims) that selects sel[0..rank) of x; x itself when whole. */
Value *sema_select(Eval *E, Node *x, const DimSel *sel, Loc loc);
/* Evaluates a tensor type's dims in s. false after an error. allow_n: N may appear. */
bool sema_eval_type(Eval *E, const TypeExpr *t, Scope *s, bool allow_n, DType *dt, Shape *shape);
/* Edit distance suggestion among the names visible from s: NULL when nothing is close. */
const char *sema_suggest(const Scope *s, const char *name);
const char *sema_closest(const char *name, const char *const *cands, int n);
const char *sema_did_you_mean(Eval *E, const char *close); /* " (did you mean 'close'?)", or "" for NULL */

#endif
