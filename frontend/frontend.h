/* frontend.h: the model language. Lexing, parsing, name resolution, shape inference and lowering of a
   model file (with the embedded standard library, frontend/stdlib.lathe) into a Program: the parameters,
   the train, eval and predict graphs and the train block's recipe. */
#ifndef LATHE_FRONTEND_H
#define LATHE_FRONTEND_H

#include "../ir/ir.h"

/* Compiles the model file `file` whose text is `text` (NUL-terminated). Registers the text with d so that
   errors print the source line and a caret. Returns NULL after the first error, reported through d as
   file:line:col. The Program and everything it points to live in a. */
Program *fe_compile(Arena *a, Diag *d, const char *file, const char *text);

/* Reads a whole file into the arena (NUL-terminated); on failure reports "cannot read FILE: strerror". */
char *fe_read_file(Arena *a, Diag *d, const char *path, size_t *len);

#endif
