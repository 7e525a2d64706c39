/* kern_table.c: every kernel of lathe_kern.h by name, for the test JIT. */
#include "lathe_kern.h"

#include <stddef.h>

const LatheKernSymbol lathe_kern_symbols[] = {
    {NULL, NULL},
};
