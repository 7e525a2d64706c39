/* rexpr.h: recipe expressions (rexpr.c). A value of the train block travels in the manifest as JSON (see
   lathe_rt.h); `--set KEY=EXPR` writes the same values in the model language's own syntax, and a few keys
   hold expressions over run-time names (LambdaLR's `0.95 ** epoch`, a generated source's `2 * x + 1`). This
   file parses that syntax into the manifest's JSON and evaluates such expressions. */
#ifndef LATHE_RT_REXPR_H
#define LATHE_RT_REXPR_H

#include "rt.h"

/* Parses text written as in a train block: a number as the model language writes it (64, 1e-3, 0.5: digits
   on both sides of a '.'), a string ("a.csv" or 'a.csv', with the escapes \" \' \\ \n),
   true/false, none (JSON null), an identifier, a list [a, b], a call f(a, key = b) (positional arguments
   first), arithmetic + - * / // % ** with unary -, comparisons are not needed, and parentheses. The JSON is
   the manifest's recipe form: numbers as JSON integers or reals (an integer literal stays an integer; 1 / 255
   folds to a real), strings, booleans, lists as arrays, an identifier as {"ident": "accuracy"}, a call as
   {"call": "SGD", "args": [...], "kwargs": {"lr": 0.001}} (kwargs in the order written). Arithmetic over
   constants folds to a number, with Python's meaning (// floors, % takes the divisor's sign, ** of ints is an
   int when the exponent is not negative). Arithmetic that reads a name stays a call tree whose callee is the
   operator: {"call": "pow", "args": [0.95, {"ident": "epoch"}]}; the operators: add sub mul div floordiv mod
   pow neg. NULL with e set on a mistake, naming the column: "column 14: expected an expression after '='". */
json_t *rt_rexpr_parse(const char *text, RtErr *e);

/* Evaluates v as a number with the variables names[0..nvars) bound to vals. v is a number, an identifier
   (a variable, or the constants pi and e), or a call: an operator above, or one of exp log sqrt sin cos tan
   tanh abs floor ceil min max (two or more arguments) round (half to even). RT_ERR naming what is wrong
   ("unknown name 'epochs' (the names here: epoch, step, pi, e)", "cos takes 1 argument", a division by
   zero, a result that is not finite: "'log(x)' gives -inf with x = 0"). nvars may be 0 (names NULL). */
int rt_rexpr_eval(const json_t *v, const char *const *names, const double *vals, int nvars, double *out,
                  RtErr *e);

/* Whether v evaluates with the variables names[0..nvars) bound: what rt_rexpr_eval would refuse for every
   binding (an unknown name or function, a wrong argument count, a string), without evaluating. */
int rt_rexpr_check(const json_t *v, const char *const *names, int nvars, RtErr *e);

/* v printed back in the model language's syntax (what `info` and the logs show): a malloc'd string. */
char *rt_rexpr_text(const json_t *v);

#endif
