/* textdata.c: the data sources read from whole files: text(file, context, stride, tokens, lines, pad), where
   bytes or UTF-8 characters are tokens and each sample's labels are the tokens that follow its inputs (a
   character language model), running windows over the file or one sample a line, and
   csv(file, header, label_column, regression), numeric records of features and one label. Both read plain
   or gzip files; every bad file is one message with the file and the byte offset or line. */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
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
    int64_t cap = CHUNK < max ? CHUNK : max, got = 0;
    uint8_t *buf = malloc((size_t)cap + 1);
    int rc = buf ? RT_OK : rt_errf(e, "%s: out of memory", path);
    while (rc == RT_OK) {
        if (got == cap) {
            if (cap >= max) {
                rc = rt_errf(e, "%s: larger than %lld bytes, more than this runtime reads into memory", path,
                             (long long)max);
                break;
            }
            cap = cap * 2 < max ? cap * 2 : max;
            uint8_t *nb = realloc(buf, (size_t)cap + 1);
            if (!nb) {
                rc = rt_errf(e, "%s: out of memory after %lld bytes", path, (long long)got);
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
    uint8_t *seen = calloc(0x110000 / 8, 1);
    if (!seen)
        return rt_errf(e, "%s: out of memory", d->images_path);
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
    d->vocab = malloc((size_t)(v ? v : 1) * sizeof *d->vocab);
    d->class_names = calloc((size_t)(v ? v : 1), sizeof *d->class_names);
    if (!d->vocab || !d->class_names) {
        free(seen);
        return rt_errf(e, "%s: out of memory", d->images_path);
    }
    for (uint32_t cp = 0; cp < 0x110000; cp++)
        if (seen[cp >> 3] & (1u << (cp & 7)))
            d->vocab[d->nvocab++] = cp;
    free(seen);
    for (int64_t i = 0; i < d->nvocab; i++) {
        uint32_t c = d->vocab[i];
        char *u = malloc(5);
        if (!u)
            return rt_errf(e, "%s: out of memory", d->images_path);
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
        out = malloc((size_t)(ntokens ? ntokens : 1) * rt_dtype_size(d->images_dtype));
        if (!out)
            return rt_errf(e, "%s: out of memory for %lld characters", d->images_path, (long long)ntokens);
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
            int64_t *o = realloc(d->offsets, (size_t)cap * sizeof *o);
            if (o)
                d->offsets = o;
            int64_t *l = o ? realloc(d->lines, (size_t)cap * sizeof *l) : NULL;
            if (l)
                d->lines = l;
            if (!o || !l) {
                if (chars)
                    free(out);
                return rt_errf(e, "%s: out of memory at line %lld", d->images_path, (long long)g.line);
            }
            ocap = lcap = cap;
        }
        d->offsets[count] = first;
        d->offsets[count + 1] = n;
        d->lines[count] = g.line;
        count++;
    }
    if (chars)
        free(text);
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

/* ---------------------------------------------------------------- csv */

typedef struct Csv {
    const char *path;
    const char *p, *end; /* the text not read yet */
    int64_t line;        /* of the record being read, 1-based */
    double *row;         /* the cells of the current record */
    int ncols, cap;
} Csv;

static bool blank(const char *p, const char *q) {
    for (; p < q; p++)
        if (*p != ' ' && *p != '\t')
            return false;
    return true;
}

/* One cell [p, q) as a finite number into *out; the message names the line and the column. */
static int cell_number(const Csv *c, const char *p, const char *q, int col, double *out, RtErr *e) {
    while (p < q && (*p == ' ' || *p == '\t'))
        p++;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    if (q - p >= 2 && *p == '"' && q[-1] == '"')
        p++, q--;
    char buf[128];
    size_t n = (size_t)(q - p);
    if (n == 0)
        return rt_errf(e, "%s:%lld: column %d is empty (every cell must be a number)", c->path, (long long)c->line,
                       col + 1);
    if (n >= sizeof buf)
        return rt_errf(e, "%s:%lld: column %d: '%.20s...' is not a number", c->path, (long long)c->line, col + 1, p);
    memcpy(buf, p, n);
    buf[n] = 0;
    char *stop;
    errno = 0;
    double v = strtod(buf, &stop);
    if (*stop || memchr(buf, 0, n) || !isfinite(v)) {
        for (size_t i = 0; i < n; i++) /* the message stays one printable line */
            if ((unsigned char)buf[i] < 0x20)
                buf[i] = '?';
        return rt_errf(e, "%s:%lld: column %d: '%s' is not a %snumber", c->path, (long long)c->line, col + 1, buf,
                       *stop ? "" : "finite ");
    }
    *out = v;
    return RT_OK;
}

/* Reads the next record into c->row; returns 1 for a record, 0 at the end, RT_ERR on a bad line. Blank lines
   are skipped, as pandas does. */
static int next_record(Csv *c, RtErr *e) {
    while (c->p < c->end) {
        const char *eol = memchr(c->p, '\n', (size_t)(c->end - c->p));
        if (!eol)
            eol = c->end;
        const char *q = eol > c->p && eol[-1] == '\r' ? eol - 1 : eol;
        const char *p = c->p;
        c->p = eol + (eol < c->end);
        c->line++;
        if (blank(p, q))
            continue;
        int n = 0;
        for (;;) {
            const char *comma = memchr(p, ',', (size_t)(q - p));
            const char *ce = comma ? comma : q;
            if (n == c->cap) {
                int cap = c->cap ? 2 * c->cap : 16;
                double *nr = cap < (1 << 24) ? realloc(c->row, (size_t)cap * sizeof *nr) : NULL;
                if (!nr)
                    return rt_errf(e, "%s:%lld: too many columns", c->path, (long long)c->line);
                c->row = nr;
                c->cap = cap;
            }
            if (cell_number(c, p, ce, n, &c->row[n], e) != RT_OK)
                return RT_ERR;
            n++;
            if (!comma)
                break;
            p = comma + 1;
        }
        if (c->ncols && n != c->ncols)
            return rt_errf(e, "%s:%lld: %d cells, but the records before have %d", c->path, (long long)c->line, n,
                           c->ncols);
        c->ncols = n;
        return 1;
    }
    return 0;
}

/* Grows *p (of *cap elements of size) to hold need elements. */
static bool grow(void **p, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap)
        return true;
    int64_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)n, size, &bytes))
        return false;
    void *q = realloc(*p, bytes);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

int rt_csv_load(RtDataset *d, const RtDataSpec *spec, RtErr *e) {
    const char *path = d->images_path;
    uint8_t *text;
    int64_t size;
    if (rt_read_file(path, DATA_MAX_BYTES, &text, &size, e) != RT_OK)
        return RT_ERR;
    Csv c = {.path = path, .p = (const char *)text, .end = (const char *)text + size};
    if (spec->header) { /* the first line names the columns */
        const char *eol = memchr(c.p, '\n', (size_t)(c.end - c.p));
        c.p = eol ? eol + 1 : c.end;
        c.line = 1;
    }
    int64_t fcap = 0, tcap = 0, lcap = 0, count = 0;
    int label = -1, rc = RT_OK, r;
    d->kind = RT_DATA_CSV;
    d->regression = spec->regression;
    while ((r = next_record(&c, e)) == 1) {
        if (label < 0) {
            int64_t lc = spec->label_column < 0 ? c.ncols + spec->label_column : spec->label_column;
            if (c.ncols < 2) {
                rc = rt_errf(e, "%s:%lld: a record needs at least two columns (features and a label), this one has "
                             "%d", path, (long long)c.line, c.ncols);
                break;
            }
            if (lc < 0 || lc >= c.ncols) {
                rc = rt_errf(e, "%s:%lld: label_column = %lld, but the records have %d columns", path,
                             (long long)c.line, (long long)spec->label_column, c.ncols);
                break;
            }
            label = (int)lc;
            d->per_sample = c.ncols - 1;
            d->per_label = 1;
        }
        double y = c.row[label];
        if (!spec->regression && (y < 0 || y != floor(y) || y > INT32_MAX)) {
            rc = rt_errf(e, "%s:%lld: column %d: label %g is not a class index (an integer >= 0); csv(..., "
                         "regression = true) reads real-valued labels", path, (long long)c.line, label + 1, y);
            break;
        }
        if (!grow((void **)&d->features, &fcap, (count + 1) * d->per_sample, sizeof *d->features) ||
            !grow((void **)&d->targets, &tcap, count + 1, sizeof *d->targets) ||
            !grow((void **)&d->lines, &lcap, count + 1, sizeof *d->lines)) {
            rc = rt_errf(e, "%s: out of memory at line %lld", path, (long long)c.line);
            break;
        }
        double *f = d->features + count * d->per_sample;
        for (int k = 0; k < c.ncols; k++)
            if (k != label)
                *f++ = c.row[k];
        d->targets[count] = y;
        d->lines[count] = c.line;
        count++;
    }
    if (r < 0)
        rc = RT_ERR;
    if (rc == RT_OK && count == 0)
        rc = rt_errf(e, "%s: no records%s", path, spec->header ? " after the header line" : "");
    free(c.row);
    free(text);
    d->count = count;
    return rc;
}
