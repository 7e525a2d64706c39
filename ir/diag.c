/* diag.c: diagnostics printed as clang does (file:line:col: error: message, the source line, a caret),
   with the first error kept for tests. A Diag owns copies of everything it keeps: sources and locations
   may come from arenas that die before it. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct Source {
    char *file;
    char *text;
    size_t len;
} Source;

struct Diag {
    FILE *out;
    Source *sources;
    int nsources;
    int nerrors;
    char *first_msg;
    char *first_file;
    Loc first_loc;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "lathe: out of memory\n");
        exit(1);
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

Diag *diag_new(FILE *out)
{
    Diag *d = xmalloc(sizeof(Diag));
    memset(d, 0, sizeof *d);
    d->out = out;
    return d;
}

void diag_free(Diag *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->nsources; i++) {
        free(d->sources[i].file);
        free(d->sources[i].text);
    }
    free(d->sources);
    free(d->first_msg);
    free(d->first_file);
    free(d);
}

void diag_add_source(Diag *d, const char *file, const char *text, size_t len)
{
    for (int i = 0; i < d->nsources; i++) {
        if (strcmp(d->sources[i].file, file) == 0) {
            free(d->sources[i].text);
            d->sources[i].text = xstrndup(text, len);
            d->sources[i].len = len;
            return;
        }
    }
    Source *s = realloc(d->sources, sizeof(Source) * (size_t)(d->nsources + 1));
    if (!s) {
        fprintf(stderr, "lathe: out of memory\n");
        exit(1);
    }
    d->sources = s;
    s[d->nsources].file = xstrndup(file, strlen(file));
    s[d->nsources].text = xstrndup(text, len);
    s[d->nsources].len = len;
    d->nsources++;
}

static const Source *find_source(const Diag *d, const char *file)
{
    for (int i = 0; i < d->nsources; i++)
        if (strcmp(d->sources[i].file, file) == 0)
            return &d->sources[i];
    return NULL;
}

/* The source line under loc and a caret under its column; tabs are kept so the caret lines up. */
static void print_source_line(const Diag *d, Loc loc)
{
    const Source *s = find_source(d, loc.file);
    if (!s || loc.line < 1)
        return;
    const char *p = s->text, *end = s->text + s->len;
    for (int line = 1; line < loc.line && p < end; p++)
        if (*p == '\n')
            line++;
    if (p >= end && loc.line > 1)
        return;
    const char *eol = p;
    while (eol < end && *eol != '\n' && *eol != '\r')
        eol++;
    fprintf(d->out, "%.*s\n", (int)(eol - p), p);
    if (loc.col < 1)
        return;
    for (int i = 0; i < loc.col - 1 && p + i < eol; i++)
        fputc(p[i] == '\t' ? '\t' : ' ', d->out);
    fputs("^\n", d->out);
}

static void report(Diag *d, Loc loc, const char *kind, const char *msg)
{
    if (!d->out)
        return;
    if (!loc.file)
        fprintf(d->out, "%s: %s\n", kind, msg);
    else if (loc.line < 1)
        fprintf(d->out, "%s: %s: %s\n", loc.file, kind, msg);
    else if (loc.col < 1)
        fprintf(d->out, "%s:%d: %s: %s\n", loc.file, loc.line, kind, msg);
    else
        fprintf(d->out, "%s:%d:%d: %s: %s\n", loc.file, loc.line, loc.col, kind, msg);
    if (loc.file)
        print_source_line(d, loc);
    fflush(d->out);
}

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    char *msg = xmalloc((size_t)n + 1);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    return msg;
}

void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap)
{
    char *msg = vformat(fmt, ap);
    if (!d) {
        /* No Diag means the caller promised the build cannot fail: a failure is a compiler bug. */
        fprintf(stderr, "internal error: %s\n", msg);
        abort();
    }
    report(d, loc, "error", msg);
    if (d->nerrors++ == 0) {
        d->first_msg = msg;
        d->first_loc = loc;
        if (loc.file) {
            d->first_file = xstrndup(loc.file, strlen(loc.file));
            d->first_loc.file = d->first_file;
        }
    } else {
        free(msg);
    }
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...)
{
    if (!d)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    report(d, loc, "note", msg);
    free(msg);
}

int diag_error_count(const Diag *d)
{
    return d ? d->nerrors : 0;
}

const char *diag_first_message(const Diag *d)
{
    return d && d->first_msg ? d->first_msg : "";
}

Loc diag_first_loc(const Diag *d)
{
    Loc none = {0};
    return d && d->nerrors ? d->first_loc : none;
}
