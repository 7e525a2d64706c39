/* textdata.c: the data sources read from whole files: text(file, context, stride, tokens, lines, pad), where
   bytes or UTF-8 characters are tokens and each sample's labels are the tokens that follow its inputs (a
   character language model), running windows over the file or one sample a line, and
   csv(file, header, label_column, regression, features, labels, delimiter), records of numeric features and a
   label that is a number or a class name. Both read plain or gzip files; every bad file is one message with
   the file and the byte offset or line. */
#include "rt.h"
#include "budget.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* 16 GiB, as for IDX: far beyond what this runtime keeps in memory */
#define DATA_MAX_BYTES (1ll << 34)
#define CHUNK (1 << 20)

/* zlib's message without the "<fd:3>: " that it puts before it */
static const char *gz_reason(gzFile gz) {
    int errnum = Z_OK;
    const char *msg = gzerror(gz, &errnum), *colon = strstr(msg, ": ");
    return errnum == Z_ERRNO ? strerror(errno) : colon ? colon + 2 : msg;
}

int rt_read_file(const char *path, int64_t max, uint8_t **data, int64_t *size, RtErr *e) {
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_errf(e, "%s: cannot open: %s", path, strerror(errno));
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return rt_errf(e, "%s: cannot open: out of memory", path);
    }
    gzbuffer(gz, 1 << 17);
    /* a plain file's size (gzip's is a start): the buffer, and what the budget counts, grows only past it */
    struct stat st;
    int64_t hint = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < max ? (int64_t)st.st_size + 1 : CHUNK;
    int64_t cap = hint < max ? hint : max, got = 0;
    uint8_t *buf = rt_budget_malloc((size_t)cap + 1, path, "the file", e);
    int rc = buf ? RT_OK : RT_ERR;
    while (rc == RT_OK) {
        if (got == cap) {
            if (cap >= max) {
                rc = rt_errf(e, "%s: larger than %lld bytes, more than this runtime reads into memory", path,
                             (long long)max);
                break;
            }
            int64_t old = cap;
            cap = cap * 2 < max ? cap * 2 : max;
            uint8_t *nb = rt_budget_realloc(buf, (size_t)old + 1, (size_t)cap + 1, path, "the file", e);
            if (!nb) {
                rc = RT_ERR;
                break;
            }
            buf = nb;
        }
        int64_t want = cap - got < CHUNK ? cap - got : CHUNK;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r < 0) {
            rc = rt_errf(e, "%s: read error at byte offset %lld: %s", path, (long long)got, gz_reason(gz));
        } else if (r == 0) {
            /* zlib reports a gzip stream cut short as the end of the data with an error set */
            int errnum = Z_OK;
            gzerror(gz, &errnum);
            if (errnum != Z_OK)
                rc = rt_errf(e, "%s: truncated at byte offset %lld of the uncompressed data: %s", path,
                             (long long)got, gz_reason(gz));
            break;
        }
        got += r > 0 ? r : 0;
    }
    gzclose(gz);
    if (rc != RT_OK) {
        free(buf);
        return rc;
    }
    /* to the size read, so that the budget counts size + 1 bytes, which the callers give back as they free */
    uint8_t *fit = realloc(buf, (size_t)got + 1);
    if (fit) {
        rt_budget_give(cap - got);
        buf = fit;
    }
    buf[got] = 0;
    *data = buf;
    *size = got;
    return RT_OK;
}

/* ---------------------------------------------------------------- text */

/* The code point of the UTF-8 sequence at s[0..n) into *cp and its length into *len; false when the bytes
   are not valid UTF-8 (an overlong form, a surrogate, beyond U+10FFFF, a cut sequence). */
static bool utf8_next(const uint8_t *s, int64_t n, uint32_t *cp, int *len) {
    uint8_t c = s[0];
    int k;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        *len = 1;
        return true;
    } else if ((c & 0xe0) == 0xc0) {
        k = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        k = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        k = 4, v = c & 0x07, min = 0x10000;
    } else {
        return false;
    }
    if (n < k)
        return false;
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return false;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return false;
    *cp = v;
    *len = k;
    return true;
}

/* The segments of the text that hold tokens: the whole file, or with lines each line without its "\n" (and
   a "\r" before it). */
typedef struct Segments {
    const uint8_t *text;
    int64_t size, at, line;
    bool lines;
} Segments;

static bool next_segment(Segments *g, int64_t *start, int64_t *end) {
    if (g->at >= g->size && !(g->at == 0 && !g->lines))
        return false;
    if (!g->lines) {
        *start = 0;
        *end = g->size;
        g->at = g->size + 1;
        return true;
    }
    const uint8_t *nl = memchr(g->text + g->at, '\n', (size_t)(g->size - g->at));
    int64_t e = nl ? nl - g->text : g->size;
    *start = g->at;
    *end = e > g->at && g->text[e - 1] == '\r' ? e - 1 : e;
    g->at = e + 1;
    g->line++;
    return true;
}

static int bad_utf8(const char *path, const uint8_t *text, int64_t at, RtErr *e) {
    return rt_errf(e, "%s: byte offset %lld: invalid UTF-8 (byte 0x%02x); text(..., tokens = \"bytes\") reads any "
                   "file", path, (long long)at, text[at]);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* tokens = "chars": the distinct code points of the segments, ascending, into d->vocab (ids 0..V-1), and
   each as UTF-8 into d->class_names, so that predict can print them. */
static int build_vocab(RtDataset *d, const uint8_t *text, int64_t size, bool lines, int64_t *ntokens, RtErr *e) {
    uint8_t *seen = rt_budget_calloc(0x110000 / 8, 1, d->images_path, "the characters", e);
    if (!seen)
        return RT_ERR;
    Segments g = {.text = text, .size = size, .lines = lines};
    int64_t s, end, n = 0, v = 0;
    while (next_segment(&g, &s, &end))
        for (int64_t i = s; i < end;) {
            uint32_t cp;
            int len;
            if (!utf8_next(text + i, end - i, &cp, &len)) {
                free(seen);
                return bad_utf8(d->images_path, text, i, e);
            }
            if (!(seen[cp >> 3] & (1u << (cp & 7))))
                v++;
            seen[cp >> 3] |= (uint8_t)(1u << (cp & 7));
            i += len;
            n++;
        }
    d->vocab = rt_budget_malloc((size_t)(v ? v : 1) * sizeof *d->vocab, d->images_path, "the characters", e);
    d->class_names = d->vocab ? rt_budget_calloc((size_t)(v ? v : 1), sizeof *d->class_names, d->images_path,
                                                 "the characters", e)
                              : NULL;
    if (!d->class_names) {
        free(seen);
        return RT_ERR;
    }
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (!seen[cp >> 3]) { /* eight code points at once where none was seen: most of them */
            cp |= 7;
            continue;
        }
        if (seen[cp >> 3] & (1u << (cp & 7)))
            d->vocab[d->nvocab++] = cp;
    }
    free(seen);
    rt_budget_give(0x110000 / 8);
    for (int64_t i = 0; i < d->nvocab; i++) {
        uint32_t c = d->vocab[i];
        char *u = rt_budget_malloc(5, d->images_path, "the characters", e);
        if (!u)
            return RT_ERR;
        if (c < 0x80)
            u[0] = (char)c, u[1] = 0;
        else if (c < 0x800)
            u[0] = (char)(0xc0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3f)), u[2] = 0;
        else if (c < 0x10000)
            u[0] = (char)(0xe0 | c >> 12), u[1] = (char)(0x80 | (c >> 6 & 0x3f)), u[2] = (char)(0x80 | (c & 0x3f)),
            u[3] = 0;
        else
            u[0] = (char)(0xf0 | c >> 18), u[1] = (char)(0x80 | (c >> 12 & 0x3f)),
            u[2] = (char)(0x80 | (c >> 6 & 0x3f)), u[3] = (char)(0x80 | (c & 0x3f)), u[4] = 0;
        d->class_names[d->nclass_names++] = u;
    }
    *ntokens = n;
    return RT_OK;
}

/* The tokens of the segments into d->images (bytes, or code point ids), and with lines the samples: each
   line of at least two tokens (one to read, one to predict) with its first token's index in d->offsets. */
static int tokenize(RtDataset *d, uint8_t *text, int64_t size, bool lines, int64_t ntokens, RtErr *e) {
    bool chars = d->vocab != NULL;
    uint8_t *out = text; /* bytes: written in place, never ahead of the reading */
    if (chars) {
        d->images_dtype = d->nvocab <= 256 ? RT_U8 : RT_I32;
        out = rt_budget_malloc((size_t)(ntokens ? ntokens : 1) * rt_dtype_size(d->images_dtype), d->images_path,
                               "the tokens", e);
        if (!out)
            return RT_ERR;
    }
    int64_t ocap = 0, lcap = 0, n = 0, count = 0;
    Segments g = {.text = text, .size = size, .lines = lines};
    int64_t s, end;
    while (next_segment(&g, &s, &end)) {
        int64_t first = n;
        for (int64_t i = s; i < end;) {
            if (!chars) {
                out[n++] = text[i++];
                continue;
            }
            uint32_t cp;
            int len;
            utf8_next(text + i, end - i, &cp, &len); /* valid: build_vocab read it */
            uint32_t *hit = bsearch(&cp, d->vocab, (size_t)d->nvocab, sizeof cp, cmp_u32);
            rt_store(d->images_dtype, out, n++, (double)(hit - d->vocab));
            i += len;
        }
        if (!lines)
            continue;
        if (n - first < 2) { /* nothing to predict */
            n = first;
            continue;
        }
        if (count + 2 > ocap || count + 1 > lcap) {
            int64_t cap = ocap ? 2 * ocap : 1024;
            size_t was = (size_t)ocap * sizeof(int64_t), bytes = (size_t)cap * sizeof(int64_t);
            int64_t *o = rt_budget_realloc(d->offsets, was, bytes, d->images_path, "the lines", e);
            if (o)
                d->offsets = o;
            int64_t *l = o ? rt_budget_realloc(d->lines, was, bytes, d->images_path, "the lines", e) : NULL;
            if (l)
                d->lines = l;
            if (!o || !l) {
                if (chars)
                    free(out);
                return RT_ERR;
            }
            ocap = lcap = cap;
        }
        d->offsets[count] = first;
        d->offsets[count + 1] = n;
        d->lines[count] = g.line;
        count++;
    }
    if (chars) {
        free(text);
        rt_budget_give(size + 1);
    }
    d->images = out;
    d->size = n;
    d->count = count;
    return RT_OK;
}

int rt_text_load(RtDataset *d, const RtDataSpec *spec, RtErr *e) {
    const char *path = d->images_path;
    int64_t t = spec->context, stride = spec->stride;
    if (t < 1 || (!spec->lines && stride < 1))
        return rt_errf(e, "%s: text(...) needs context >= 1 and stride >= 1 (got %lld and %lld)", path,
                       (long long)t, (long long)stride);
    uint8_t *text;
    int64_t size, ntokens = 0;
    if (rt_read_file(path, DATA_MAX_BYTES, &text, &size, e) != RT_OK)
        return RT_ERR;
    d->kind = RT_DATA_TEXT;
    d->images = text; /* freed with d from here on */
    d->images_dtype = RT_U8;
    d->size = size;
    if (size == 0)
        return rt_errf(e, "%s: empty file (text needs at least context + 1 = %lld tokens)", path, (long long)t + 1);
    if (spec->chars && build_vocab(d, text, size, spec->lines, &ntokens, e) != RT_OK)
        return RT_ERR;
    if ((spec->chars || spec->lines) && tokenize(d, text, size, spec->lines, ntokens, e) != RT_OK)
        return RT_ERR;
    d->per_sample = d->per_label = t;
    if (spec->lines) {
        d->pad = spec->pad;
        if (d->count == 0)
            return rt_errf(e, "%s: no line of two tokens or more (lines = true reads each line as a sample and "
                           "predicts its tokens after the first)", path);
        return RT_OK;
    }
    /* a sample is context tokens of input and the same window moved by one token as its labels */
    if (d->size < t + 1)
        return rt_errf(e, "%s: truncated at %s %lld: one sample of context %lld needs %lld %s (its inputs and the "
                       "%s after them)", path, spec->chars ? "character" : "byte offset", (long long)d->size,
                       (long long)t, (long long)t + 1, spec->chars ? "characters" : "bytes",
                       spec->chars ? "character" : "byte");
    d->count = (d->size - t - 1) / stride + 1;
    d->stride = stride;
    return RT_OK;
}

/* ---------------------------------------------------------------- csv
   Records as Python's csv module reads them (its default dialect, with the delimiter chosen): a cell that
   starts with '"' runs to the next lone '"' and may hold the delimiter, line ends and "" for a quote. Cells
   not quoted lose the spaces around them (pandas' numbers do too), and blank lines are skipped. */

/* A cell of the current record: bytes [at, at + len) of Csv.buf */
typedef struct Cell {
    int64_t at, len;
} Cell;

typedef struct Csv {
    const char *path;
    const char *p, *end; /* the text not read yet */
    char delim;
    int64_t line;        /* of the next byte to read, 1-based */
    int64_t rec_line;    /* the line the current record starts on */
    char *buf;           /* the current record's cells, unquoted */
    int64_t nbuf, bufcap;
    Cell *cells;
    int64_t ncells, cellcap;
    char **header;       /* the header line's cells (NULL: header = false) */
    int64_t nheader;
} Csv;

/* Grows *p (of *cap elements of size) to hold need elements, counted against the load's budget as what. */
static int grow(void **p, int64_t *cap, int64_t need, size_t size, const char *path, const char *what, RtErr *e) {
    if (need <= *cap)
        return RT_OK;
    int64_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)n, size, &bytes))
        return rt_errf(e, "%s: %s: the size overflows", path, what);
    void *q = rt_budget_realloc(*p, (size_t)*cap * size, bytes, path, what, e);
    if (!q)
        return RT_ERR;
    *p = q;
    *cap = n;
    return RT_OK;
}

/* Spaces around a cell: ' ', '\t' and '\r' unless the delimiter is one of them. */
static bool pad_byte(const Csv *c, char ch) {
    return (ch == ' ' || ch == '\t' || ch == '\r') && ch != c->delim;
}

static bool put_bytes(Csv *c, const char *s, int64_t n, RtErr *e) {
    if (grow((void **)&c->buf, &c->bufcap, c->nbuf + n + 1, 1, c->path, "a record's cells", e) != RT_OK)
        return false;
    memcpy(c->buf + c->nbuf, s, (size_t)n);
    c->nbuf += n;
    return true;
}

/* Reads the next record's cells; returns 1 for a record, 0 at the end, RT_ERR on a bad record. */
static int next_record(Csv *c, RtErr *e) {
    const char *p = c->p, *end = c->end;
    for (;;) { /* blank lines */
        const char *q = p;
        while (q < end && pad_byte(c, *q))
            q++;
        if (q == end) {
            c->p = end;
            return 0;
        }
        if (*q != '\n')
            break;
        p = q + 1;
        c->line++;
    }
    c->rec_line = c->line;
    c->nbuf = c->ncells = 0;
    for (;;) {
        if (c->ncells >= (1 << 24))
            return rt_errf(e, "%s:%lld: too many cells", c->path, (long long)c->rec_line);
        if (grow((void **)&c->cells, &c->cellcap, c->ncells + 1, sizeof *c->cells, c->path, "a record's cells", e) !=
            RT_OK)
            return RT_ERR;
        Cell *cell = &c->cells[c->ncells++];
        while (p < end && pad_byte(c, *p))
            p++;
        cell->at = c->nbuf;
        if (p < end && *p == '"') {
            int64_t open = c->line;
            for (p++;; p++) {
                if (p == end)
                    return rt_errf(e, "%s:%lld: the quoted cell that starts on this line has no closing '\"'",
                                   c->path, (long long)open);
                if (*p == '"' && !(p + 1 < end && p[1] == '"'))
                    break;
                p += *p == '"'; /* "" is one quote */
                c->line += *p == '\n';
                if (!put_bytes(c, p, 1, e))
                    return RT_ERR;
            }
            p++;
        }
        /* up to the delimiter: a cell not quoted, or what follows a closing quote (Python keeps it too) */
        const char *s = p;
        while (p < end && *p != c->delim && *p != '\n')
            p++;
        const char *t = p;
        while (t > s && pad_byte(c, t[-1]))
            t--;
        if (!put_bytes(c, s, t - s, e))
            return RT_ERR;
        cell->len = c->nbuf - cell->at;
        if (p < end && *p == c->delim) {
            p++;
            continue;
        }
        if (p < end) { /* the line end */
            p++;
            c->line++;
        }
        break;
    }
    c->buf[c->nbuf] = 0;
    c->p = p;
    return 1;
}

/* The column's name for messages: " (feature column 'petal_width')", or nothing without a header. */
static const char *column_note(const Csv *c, int64_t col, const char *role, char *buf, size_t n) {
    if (!c->header || col >= c->nheader)
        return "";
    snprintf(buf, n, " (%s column '%.60s')", role, c->header[col]);
    return buf;
}

/* A cell as printed in messages: at most 60 bytes, control bytes as '?' so that the message stays one line. */
static const char *cell_text(const Csv *c, const Cell *cell, char *buf, size_t n) {
    size_t k = (size_t)cell->len < n - 4 ? (size_t)cell->len : n - 4;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)c->buf[cell->at + (int64_t)i];
        buf[i] = ch < 0x20 ? '?' : (char)ch;
    }
    strcpy(buf + k, (size_t)cell->len > k ? "..." : "");
    return buf;
}

/* The cell as a number into *out: false when it is not one (strtod must read all of it); *out may be
   infinite or NaN. */
static bool cell_value(const Csv *c, const Cell *cell, double *out) {
    char buf[128];
    if (cell->len == 0 || cell->len >= (int64_t)sizeof buf)
        return false;
    memcpy(buf, c->buf + cell->at, (size_t)cell->len);
    buf[cell->len] = 0;
    if (strlen(buf) != (size_t)cell->len)
        return false;
    char *stop;
    *out = strtod(buf, &stop);
    return *stop == 0;
}

/* A feature cell as a finite number; the message names the line and the column. */
static int cell_number(const Csv *c, int64_t col, double *out, RtErr *e) {
    const Cell *cell = &c->cells[col];
    char note[96], text[64];
    if (cell->len == 0)
        return rt_errf(e, "%s:%lld: column %lld is empty (every feature cell must be a number)%s", c->path,
                       (long long)c->rec_line, (long long)col + 1, column_note(c, col, "feature", note, sizeof note));
    if (!cell_value(c, cell, out) || !isfinite(*out)) {
        bool number = cell_value(c, cell, out);
        return rt_errf(e, "%s:%lld: column %lld: '%s' is not a %snumber%s", c->path, (long long)c->rec_line,
                       (long long)col + 1, cell_text(c, cell, text, sizeof text), number ? "finite " : "",
                       column_note(c, col, "feature", note, sizeof note));
    }
    return RT_OK;
}

/* A column given by header name: its index, or an error that suggests the closest name. */
static int column_by_name(const Csv *c, const char *arg, const char *name, int64_t *out, RtErr *e) {
    if (!c->header)
        return rt_errf(e, "%s: csv(..., %s) names the column '%s', but with header = false the file has no column "
                       "names; give the column's index", c->path, arg, name);
    *out = -1;
    for (int64_t k = 0; k < c->nheader; k++) {
        if (strcmp(c->header[k], name) != 0)
            continue;
        if (*out >= 0)
            return rt_errf(e, "%s:1: the header names two columns '%s' (%lld and %lld); give csv(..., %s) the "
                           "column's index", c->path, name, (long long)*out, (long long)k, arg);
        *out = k;
    }
    if (*out >= 0)
        return RT_OK;
    const char *near = rt_closest(name, (const char *const *)c->header, c->nheader < INT32_MAX ? (int)c->nheader : 0);
    if (near)
        return rt_errf(e, "%s: csv(..., %s): the header has no column '%s' (did you mean '%s'?)", c->path, arg, name,
                       near);
    char list[256] = "";
    size_t n = 0;
    for (int64_t k = 0; k < c->nheader && n + 4 < sizeof list; k++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s'%s'", k ? ", " : "", c->header[k]);
    if (n >= sizeof list)
        strcpy(list + sizeof list - 4, "...");
    return rt_errf(e, "%s: csv(..., %s): the header has no column '%s' (its columns: %s)", c->path, arg, name, list);
}

/* A column given by index (negative from the end) or by name, checked against the ncols columns. */
static int column_of(const Csv *c, const char *arg, const json_t *v, int64_t index, int64_t ncols, int64_t *out,
                     RtErr *e) {
    if (json_is_string(v))
        return column_by_name(c, arg, json_string_value(v), out, e);
    int64_t k = index < 0 ? ncols + index : index;
    if (k < 0 || k >= ncols)
        return rt_errf(e, "%s:%lld: %s %lld, but the records have %lld columns (0 to %lld, or -1 to -%lld from the "
                       "end)", c->path, (long long)c->rec_line, strcmp(arg, "features") ? "label_column =" :
                       "features holds", (long long)index, (long long)ncols, (long long)ncols - 1, (long long)ncols);
    *out = k;
    return RT_OK;
}

/* The feature columns in their order and the label's column, from the spec and the first record (or the
   header): ncols columns in all. */
static int choose_columns(const Csv *c, const RtDataSpec *spec, int64_t ncols, int64_t **features, int64_t *nfeat,
                          int64_t *label, RtErr *e) {
    json_t *name = spec->label_name ? json_string(spec->label_name) : NULL;
    int rc = column_of(c, "label_column", name, spec->label_column, ncols, label, e);
    json_decref(name);
    if (rc != RT_OK)
        return RT_ERR;
    int64_t n = spec->features ? (int64_t)json_array_size(spec->features) : ncols - 1;
    if (n < 1)
        return rt_errf(e, "%s:%lld: a record needs at least two columns (features and a label), this one has %lld",
                       c->path, (long long)c->rec_line, (long long)ncols);
    int64_t *f = rt_budget_malloc((size_t)n * sizeof *f, c->path, "the feature columns", e);
    if (!f)
        return RT_ERR;
    for (int64_t i = 0, k = 0; i < n; i++) {
        if (!spec->features) {
            f[i] = k == *label ? ++k : k;
            k++;
            continue;
        }
        const json_t *v = json_array_get(spec->features, (size_t)i);
        if (column_of(c, "features", v, json_integer_value(v), ncols, &f[i], e) != RT_OK) {
            free(f);
            return RT_ERR;
        }
        int64_t col = f[i], twice = 0;
        for (int64_t j = 0; j < i; j++)
            twice += f[j] == col;
        if (col == *label || twice) {
            char note[96];
            rt_errf(e, "%s: csv(..., features) gives the column at index %lld%s %s", c->path, (long long)col,
                    column_note(c, col, "the", note, sizeof note), twice ? "twice" : "that is the label's (label_column)");
            free(f);
            return RT_ERR;
        }
    }
    *features = f;
    *nfeat = n;
    return RT_OK;
}

/* The distinct label strings: names[id], found by an open-addressing hash table of ids. */
typedef struct Names {
    char **names;
    int64_t n, cap;
    int32_t *slots; /* -1: empty */
    int64_t nslots;
} Names;

static uint64_t hash_bytes(const char *s, int64_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int64_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static bool names_rehash(Names *t, int64_t nslots, const char *path, RtErr *e) {
    int32_t *s = rt_budget_malloc((size_t)nslots * sizeof *s, path, "the class names", e);
    if (!s)
        return false;
    memset(s, 0xff, (size_t)nslots * sizeof *s);
    for (int64_t id = 0; id < t->n; id++) {
        uint64_t h = hash_bytes(t->names[id], (int64_t)strlen(t->names[id]));
        while (s[h & (uint64_t)(nslots - 1)] >= 0)
            h++;
        s[h & (uint64_t)(nslots - 1)] = (int32_t)id;
    }
    free(t->slots);
    rt_budget_give(t->nslots * (int64_t)sizeof *s);
    t->slots = s;
    t->nslots = nslots;
    return true;
}

/* The slot of the string s[0..n) (no NUL inside): the slot that holds its id, or the empty slot where it goes. */
static int64_t names_slot(const Names *t, const char *s, int64_t n) {
    for (uint64_t h = hash_bytes(s, n);; h++) {
        int64_t slot = (int64_t)(h & (uint64_t)(t->nslots - 1));
        int32_t id = t->slots[slot];
        if (id < 0 || (strncmp(t->names[id], s, (size_t)n) == 0 && t->names[id][n] == 0))
            return slot;
    }
}

/* The id of the string s[0..n), added when new; -1 with e filled when out of memory or past the budget. */
static int64_t names_intern(Names *t, const char *s, int64_t n, const char *path, RtErr *e) {
    if ((t->n + 1) * 2 > t->nslots && t->n >= INT32_MAX / 4) {
        rt_errf(e, "%s: more than 2^29 class names", path);
        return -1;
    }
    if ((t->n + 1) * 2 > t->nslots && !names_rehash(t, t->nslots ? 2 * t->nslots : 64, path, e))
        return -1;
    int64_t slot = names_slot(t, s, n);
    if (t->slots[slot] >= 0)
        return t->slots[slot];
    char *copy = rt_budget_malloc((size_t)n + 1, path, "the class names", e);
    if (!copy || grow((void **)&t->names, &t->cap, t->n + 1, sizeof *t->names, path, "the class names", e) != RT_OK) {
        free(copy);
        return -1;
    }
    memcpy(copy, s, (size_t)n);
    copy[n] = 0;
    t->slots[slot] = (int32_t)t->n;
    t->names[t->n] = copy;
    return t->n++;
}

static void names_free(Names *t) {
    for (int64_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->slots);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What the label column has held so far: where the first number and the first name were, for labels = "auto". */
typedef struct LabelSeen {
    int64_t number_line, name_line; /* 0: none yet */
    char first[64];                 /* the first label, as printed */
} LabelSeen;

/* The label of the current record into *y: a number, or with class names the id of its string in t. */
static int read_label(const Csv *c, const RtDataSpec *spec, int64_t col, Names *t, LabelSeen *seen, double *y,
                      RtErr *e) {
    const Cell *cell = &c->cells[col];
    char note[96], text[64];
    const char *nt = column_note(c, col, "label", note, sizeof note);
    if (cell->len == 0)
        return rt_errf(e, "%s:%lld: column %lld is empty (the record has no label)%s", c->path,
                       (long long)c->rec_line, (long long)col + 1, nt);
    cell_text(c, cell, text, sizeof text);
    bool number = cell_value(c, cell, y);
    RtLabelsKind kind = spec->regression ? RT_LABELS_NUMERIC : spec->labels_kind;
    if (kind == RT_LABELS_AUTO && (number ? seen->name_line : seen->number_line))
        return rt_errf(e, "%s:%lld: column %lld: the label '%s' is %sa number, but the label '%s' on line %lld is "
                       "%s; csv(..., labels = \"categorical\") reads every label as a class name%s", c->path,
                       (long long)c->rec_line, (long long)col + 1, text, number ? "" : "not ", seen->first,
                       (long long)(number ? seen->name_line : seen->number_line), number ? "not" : "one", nt);
    if (!seen->number_line && !seen->name_line)
        snprintf(seen->first, sizeof seen->first, "%s", text);
    if (number && kind != RT_LABELS_CATEGORICAL) {
        seen->number_line = seen->number_line ? seen->number_line : c->rec_line;
        if (!isfinite(*y))
            return rt_errf(e, "%s:%lld: column %lld: label '%s' is not a finite number%s", c->path,
                           (long long)c->rec_line, (long long)col + 1, text, nt);
        if (!spec->regression && (*y < 0 || *y != floor(*y) || *y > INT32_MAX))
            return rt_errf(e, "%s:%lld: column %lld: label %g is not a class index (an integer >= 0)%s; csv(..., "
                           "regression = true) reads real-valued labels, labels = \"categorical\" class names",
                           c->path, (long long)c->rec_line, (long long)col + 1, *y, nt);
        return RT_OK;
    }
    if (kind == RT_LABELS_NUMERIC)
        return rt_errf(e, "%s:%lld: column %lld: label '%s' is not a number%s; %s", c->path, (long long)c->rec_line,
                       (long long)col + 1, text, nt,
                       spec->regression ? "csv(..., regression = true) needs numbers"
                                        : "csv(..., labels = \"categorical\") reads class names");
    seen->name_line = seen->name_line ? seen->name_line : c->rec_line;
    if (memchr(c->buf + cell->at, 0, (size_t)cell->len))
        return rt_errf(e, "%s:%lld: column %lld: the label holds a NUL byte%s", c->path, (long long)c->rec_line,
                       (long long)col + 1, nt);
    int64_t id = names_intern(t, c->buf + cell->at, cell->len, c->path, e);
    if (id < 0)
        return RT_ERR;
    *y = (double)id;
    return RT_OK;
}

/* Class names: their ids in order of reading become the ranks of the names sorted byte by byte. */
static int sort_classes(RtDataset *d, Names *t, RtErr *e) {
    int64_t n = t->n;
    int64_t *rank = rt_budget_malloc((size_t)n * sizeof *rank, d->images_path, "the class names", e);
    char **sorted = rank ? rt_budget_malloc((size_t)n * sizeof *sorted, d->images_path, "the class names", e) : NULL;
    if (!sorted) {
        free(rank);
        return RT_ERR;
    }
    memcpy(sorted, t->names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_name);
    for (int64_t r = 0; r < n; r++)
        rank[t->slots[names_slot(t, sorted[r], (int64_t)strlen(sorted[r]))]] = r;
    for (int64_t i = 0; i < d->count; i++)
        d->targets[i] = (double)rank[(int64_t)d->targets[i]];
    free(rank);
    rt_budget_give(n * (int64_t)sizeof *rank);
    free(t->names); /* the strings now belong to d */
    t->names = NULL;
    t->n = 0;
    d->class_names = sorted;
    d->nclass_names = (int)n;
    return RT_OK;
}

/* The header line's cells into c->header. */
static int read_header(Csv *c, RtErr *e) {
    int r = next_record(c, e);
    if (r <= 0)
        return r < 0 ? RT_ERR : rt_errf(e, "%s: no records after the header line", c->path);
    c->header = rt_budget_calloc((size_t)c->ncells, sizeof *c->header, c->path, "the header", e);
    if (!c->header)
        return RT_ERR;
    c->nheader = c->ncells;
    for (int64_t k = 0; k < c->ncells; k++) {
        const Cell *cell = &c->cells[k];
        if (!(c->header[k] = rt_budget_malloc((size_t)cell->len + 1, c->path, "the header", e)))
            return RT_ERR;
        memcpy(c->header[k], c->buf + cell->at, (size_t)cell->len);
        c->header[k][cell->len] = 0; /* a NUL inside cuts the name there */
    }
    return RT_OK;
}

static void csv_free(Csv *c) {
    for (int64_t k = 0; c->header && k < c->nheader; k++)
        free(c->header[k]);
    free(c->header);
    free(c->buf);
    free(c->cells);
}

/* Reads the records after the header into d: the features of each, its label, its line. */
static int read_records(Csv *c, RtDataset *d, const RtDataSpec *spec, Names *names, RtErr *e) {
    int64_t fcap = 0, tcap = 0, lcap = 0, count = 0, ncols = c->header ? c->nheader : 0, nfeat = 0, label = -1;
    int64_t *feat = NULL;
    LabelSeen seen = {0};
    int rc = RT_OK, r;
    while ((r = next_record(c, e)) == 1) {
        if (ncols && c->ncells != ncols) {
            rc = rt_errf(e, "%s:%lld: %lld cells, but the %s %lld", c->path, (long long)c->rec_line,
                         (long long)c->ncells, count ? "records before have" : "header has", (long long)ncols);
            break;
        }
        ncols = c->ncells;
        if (!feat && choose_columns(c, spec, ncols, &feat, &nfeat, &label, e) != RT_OK) {
            rc = RT_ERR;
            break;
        }
        if (grow((void **)&d->features, &fcap, (count + 1) * nfeat, sizeof *d->features, c->path, "the features",
                 e) != RT_OK ||
            grow((void **)&d->targets, &tcap, count + 1, sizeof *d->targets, c->path, "the labels", e) != RT_OK ||
            grow((void **)&d->lines, &lcap, count + 1, sizeof *d->lines, c->path, "the line numbers", e) != RT_OK) {
            rc = RT_ERR;
            break;
        }
        double *f = d->features + count * nfeat;
        for (int64_t k = 0; k < nfeat && rc == RT_OK; k++)
            rc = cell_number(c, feat[k], &f[k], e);
        if (rc != RT_OK || read_label(c, spec, label, names, &seen, &d->targets[count], e) != RT_OK) {
            rc = RT_ERR;
            break;
        }
        d->lines[count] = c->rec_line;
        count++;
    }
    free(feat);
    if (r < 0)
        rc = RT_ERR;
    if (rc == RT_OK && count == 0)
        rc = rt_errf(e, "%s: no records%s", c->path, c->header ? " after the header line" : "");
    d->count = count;
    d->per_sample = nfeat;
    d->per_label = 1;
    return rc;
}

int rt_csv_load(RtDataset *d, const RtDataSpec *spec, RtErr *e) {
    const char *path = d->images_path;
    uint8_t *text;
    int64_t size;
    if (rt_read_file(path, DATA_MAX_BYTES, &text, &size, e) != RT_OK)
        return RT_ERR;
    Csv c = {.path = path, .p = (const char *)text, .end = (const char *)text + size, .line = 1,
             .delim = spec->delimiter ? spec->delimiter : ','};
    Names names = {0};
    d->kind = RT_DATA_CSV;
    d->regression = spec->regression;
    int rc = spec->header ? read_header(&c, e) : RT_OK;
    if (rc == RT_OK)
        rc = read_records(&c, d, spec, &names, e);
    if (rc == RT_OK && (names.n > 0 || spec->labels_kind == RT_LABELS_CATEGORICAL))
        rc = sort_classes(d, &names, e);
    names_free(&names);
    csv_free(&c);
    free(text);
    return rc;
}

static int cmp_name_ref(const void *a, const void *b) {
    return strcmp(**(char **const *)a, **(char **const *)b);
}

/* The line (csv) of the first of test's records of class k, 0 when none */
static int64_t first_line_of(const RtDataset *test, int64_t k) {
    for (int64_t i = 0; test->kind == RT_DATA_CSV && i < test->count; i++)
        if (test->targets[i] == (double)k)
            return test->lines[i];
    return 0;
}

static int unknown_class(const RtDataset *train, const RtDataset *test, int64_t k, RtErr *e) {
    const char *name = test->class_names[k];
    if (test->kind == RT_DATA_IMAGES)
        return rt_errf(e, "%s: class folder '%.80s' is not a class folder of the training data %s", test->images_path,
                       name, train->images_path);
    int64_t line = first_line_of(test, k);
    char at[32] = "";
    if (line)
        snprintf(at, sizeof at, ":%lld", (long long)line);
    return rt_errf(e, "%s%s: class '%.80s' is not a class of the training data %s (its %d classes: '%.40s' to "
                   "'%.40s'); the test file must hold the training data's class names", test->images_path, at,
                   name, train->images_path, train->nclass_names,
                   train->nclass_names ? train->class_names[0] : "",
                   train->nclass_names ? train->class_names[train->nclass_names - 1] : "");
}

int rt_dataset_same_classes(const RtDataset *train, RtDataset *test, RtErr *e) {
    bool csv = train->kind == RT_DATA_CSV && test->kind == RT_DATA_CSV;
    if (!csv && !(train->kind == RT_DATA_IMAGES && test->kind == RT_DATA_IMAGES))
        return RT_OK;
    if (csv && (train->class_names != NULL) != (test->class_names != NULL))
        return rt_errf(e, "%s: its labels are %s, but those of the training data %s are %s; csv(..., labels = "
                       "\"categorical\") reads both as class names", test->images_path,
                       test->class_names ? "class names" : "numbers", train->images_path,
                       train->class_names ? "class names" : "numbers");
    if (!test->class_names || !train->class_names)
        return RT_OK;
    /* train's names sorted, as references into train->class_names so that each gives its id */
    int64_t n = train->nclass_names, m = test->nclass_names;
    char **const *sorted = NULL;
    char ***refs = malloc((size_t)(n ? n : 1) * sizeof *refs);
    int64_t *map = malloc((size_t)(m ? m : 1) * sizeof *map);
    char **names = calloc((size_t)(n ? n : 1), sizeof *names);
    int rc = refs && map && names ? RT_OK : rt_errf(e, "%s: out of memory", test->images_path);
    for (int64_t id = 0; id < n && rc == RT_OK; id++)
        refs[id] = &train->class_names[id];
    if (rc == RT_OK) {
        qsort(refs, (size_t)n, sizeof *refs, cmp_name_ref);
        sorted = refs;
    }
    for (int64_t k = 0; k < m && rc == RT_OK; k++) {
        char **key = &test->class_names[k];
        char **const *hit = bsearch(&key, sorted, (size_t)n, sizeof *sorted, cmp_name_ref);
        map[k] = hit ? *hit - train->class_names : -1;
        if (!hit)
            rc = unknown_class(train, test, k, e);
    }
    for (int64_t id = 0; id < n && rc == RT_OK; id++)
        if (!(names[id] = strdup(train->class_names[id])))
            rc = rt_errf(e, "%s: out of memory", test->images_path);
    if (rc == RT_OK) {
        int64_t total = test->count * (csv ? 1 : test->per_label);
        for (int64_t i = 0; i < total; i++) {
            if (csv) {
                test->targets[i] = (double)map[(int64_t)test->targets[i]];
                continue;
            }
            double v = rt_load(test->labels_dtype, test->labels, i);
            if (v >= 0 && v < (double)m)
                rt_store(test->labels_dtype, test->labels, i, (double)map[(int64_t)v]);
        }
        /* test's names become train's, so that label k prints as train's class k */
        for (int64_t k = 0; k < m; k++)
            free(test->class_names[k]);
        free(test->class_names);
        test->class_names = names;
        test->nclass_names = (int)n;
        names = NULL;
    }
    for (int64_t id = 0; names && id < n; id++)
        free(names[id]);
    free(names);
    free(refs);
    free(map);
    return rc;
}
