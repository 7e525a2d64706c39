/* imgdir.c: the images(folder, scale, grayscale) source, torchvision's ImageFolder: FOLDER/CLASS/NAME.png or
   .pgm, one sub-folder a class, the classes numbered 0..C-1 in the sorted order of their names and the files
   of each in sorted order. PNGs go through libpng (palette, gray, alpha and 16 bits turned into 8-bit gray or
   RGB by its transforms); PGMs (P5 binary and P2 text, maxval up to 255) are read here. Pixels are stored as
   bytes, channel-major ([C, H, W], as ToTensor gives), and scaled when gathered. */
#include "rt.h"
#include "budget.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* 2^28 pixels: no image of a dataset held in memory is larger */
#define IMG_MAX_PIXELS (1ll << 28)

typedef struct Names {
    char **v;
    int n, cap;
} Names;

/* Adds a copy of name, an entry of folder (for messages), counted against the load's budget. */
static int names_add(Names *s, const char *name, const char *folder, RtErr *e) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        if (cap >= (1 << 28))
            return rt_errf(e, "%s: more than 2^27 entries", folder);
        char **v = rt_budget_realloc(s->v, (size_t)s->cap * sizeof *v, (size_t)cap * sizeof *v, folder, "its entries",
                                     e);
        if (!v)
            return RT_ERR;
        s->v = v;
        s->cap = cap;
    }
    size_t n = strlen(name) + 1;
    if (!(s->v[s->n] = rt_budget_malloc(n, folder, "its entries", e)))
        return RT_ERR;
    memcpy(s->v[s->n++], name, n);
    return RT_OK;
}

static void names_free(Names *s) {
    int64_t bytes = s->cap * (int64_t)sizeof *s->v;
    for (int i = 0; i < s->n; i++) {
        bytes += (int64_t)strlen(s->v[i]) + 1;
        free(s->v[i]);
    }
    free(s->v);
    rt_budget_give(bytes);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".pgm") == 0);
}

/* The entries of folder that are folders (want_dirs) or image files, sorted by name. */
static int list(const char *folder, bool want_dirs, Names *out, RtErr *e) {
    DIR *dir = opendir(folder);
    if (!dir)
        return rt_errf(e, "%s: cannot open folder: %s", folder, strerror(errno));
    struct dirent *ent;
    int rc = RT_OK;
    size_t n = strlen(folder);
    while (rc == RT_OK && (errno = 0, ent = readdir(dir))) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        if (!want_dirs && !is_image_name(ent->d_name))
            continue;
        char *path = malloc(n + strlen(ent->d_name) + 2);
        if (!path) {
            rc = rt_errf(e, "%s: out of memory", folder);
            break;
        }
        sprintf(path, "%s/%s", folder, ent->d_name);
        struct stat st;
        bool keep = stat(path, &st) == 0 && (want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
        free(path);
        if (keep)
            rc = names_add(out, ent->d_name, folder, e);
    }
    if (rc == RT_OK && errno)
        rc = rt_errf(e, "%s: cannot read folder: %s", folder, strerror(errno));
    closedir(dir);
    if (rc == RT_OK && out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return rc;
}

/* ---------------------------------------------------------------- pixels */

/* An image decoded into 8-bit gray (channels 1) or RGB (channels 3), interleaved. */
typedef struct Pixels {
    int64_t w, h;
    int channels;
    uint8_t *p;
    int64_t counted; /* the bytes of p counted against the load's budget, given back when p is freed */
} Pixels;

/* Into out ([C, H, W] bytes): RGB to gray as PIL's convert("L") does (ITU-R 601-2 luma in 16-bit fixed point),
   gray to RGB by copying it into each channel. */
static void store_pixels(const Pixels *px, int channels, uint8_t *out) {
    int64_t plane = px->w * px->h;
    for (int64_t i = 0; i < plane; i++) {
        const uint8_t *s = px->p + i * px->channels;
        if (channels == 1)
            out[i] = px->channels == 1 ? s[0]
                                       : (uint8_t)((s[0] * 19595u + s[1] * 38470u + s[2] * 7471u + 0x8000u) >> 16);
        else
            for (int c = 0; c < 3; c++)
                out[c * plane + i] = px->channels == 1 ? s[0] : s[c];
    }
}

/* ---------------------------------------------------------------- PNG through libpng */

typedef struct PngRead {
    const char *path;
    RtErr *e;
    bool refused; /* the budget refused the pixels: e holds its message */
    FILE *f;
    int64_t offset; /* bytes handed to libpng so far: where a damaged file went wrong */
    char msg[200];
    jmp_buf jump;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    Pixels px;
} PngRead;

static void png_fail(png_structp png, png_const_charp msg) {
    PngRead *r = png_get_error_ptr(png);
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    longjmp(r->jump, 1);
}

static void png_quiet(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_read_cb(png_structp png, png_bytep data, size_t n) {
    PngRead *r = png_get_io_ptr(png);
    size_t got = fread(data, 1, n, r->f);
    r->offset += (int64_t)got;
    if (got < n)
        png_error(png, ferror(r->f) ? "read error" : "unexpected end of file");
}

/* Reads the header (size_only) or the whole image into r->px. Everything it allocates hangs off r, so that
   the caller frees it whether libpng returned or jumped; r lives in the caller's frame, outside this
   function's setjmp. */
static int png_decode(PngRead *r, bool size_only) {
    if (setjmp(r->jump))
        return RT_ERR;
    png_set_read_fn(r->png, r, png_read_cb);
    png_set_user_limits(r->png, 1u << 20, 1u << 20);
    png_read_info(r->png, r->info);
    png_uint_32 w, h;
    int depth, color;
    png_get_IHDR(r->png, r->info, &w, &h, &depth, &color, NULL, NULL, NULL);
    r->px.w = w;
    r->px.h = h;
    if ((int64_t)w * h > IMG_MAX_PIXELS) /* before the size is used to allocate a dataset */
        png_error(r->png, "image too large");
    if (size_only)
        return RT_OK;
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(r->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(r->png);
    if (depth == 16)
        png_set_strip_16(r->png);
    if (color & PNG_COLOR_MASK_ALPHA)
        png_set_strip_alpha(r->png);
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    r->px.channels = png_get_channels(r->png, r->info);
    size_t rowbytes = png_get_rowbytes(r->png, r->info);
    if ((r->px.channels != 1 && r->px.channels != 3) || rowbytes != (size_t)w * (size_t)r->px.channels)
        png_error(r->png, "unexpected pixel layout after conversion to 8-bit gray or RGB");
    int64_t bytes = (int64_t)(rowbytes * h + sizeof *r->rows * h);
    if (rt_budget_take(bytes, r->path, "the decoded pixels", r->e) != RT_OK) {
        r->refused = true;
        png_error(r->png, "past the read budget");
    }
    r->px.counted = bytes;
    r->px.p = malloc(rowbytes * h);
    r->rows = malloc(sizeof *r->rows * h);
    if (!r->px.p || !r->rows)
        png_error(r->png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        r->rows[y] = r->px.p + (size_t)y * rowbytes;
    png_read_image(r->png, r->rows);
    png_read_end(r->png, NULL);
    return RT_OK;
}

static int read_png(const char *path, bool size_only, Pixels *out, RtErr *e) {
    PngRead r = {.path = path, .e = e};
    if (!(r.f = fopen(path, "rb")))
        return rt_errf(e, "%s: cannot open: %s", path, strerror(errno));
    uint8_t sig[8];
    size_t got = fread(sig, 1, 8, r.f);
    if (got < 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(r.f);
        return got < 8 && png_sig_cmp(sig, 0, got) == 0
                   ? rt_errf(e, "%s: truncated at byte offset %zu: the PNG signature needs 8 bytes", path, got)
                   : rt_errf(e, "%s: byte 0: not a PNG file (bad signature)", path);
    }
    r.offset = 8;
    r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_fail, png_quiet);
    r.info = r.png ? png_create_info_struct(r.png) : NULL;
    int rc;
    if (!r.info) {
        rc = rt_errf(e, "%s: out of memory", path);
    } else {
        png_set_sig_bytes(r.png, 8);
        rc = png_decode(&r, size_only);
        if (rc != RT_OK && !r.refused)
            rt_errf(e, "%s: byte %lld: unreadable PNG: %s", path, (long long)r.offset, r.msg);
    }
    png_destroy_read_struct(&r.png, r.info ? &r.info : NULL, NULL);
    free(r.rows);
    fclose(r.f);
    if (rc != RT_OK) {
        free(r.px.p);
        rt_budget_give(r.px.counted);
        return RT_ERR;
    }
    *out = r.px;
    return RT_OK;
}

/* ---------------------------------------------------------------- PGM (netpbm's graymap) */

typedef struct Pgm {
    const char *path;
    const uint8_t *s;
    int64_t at, size;
    RtErr *e;
} Pgm;

/* Whitespace and # comments (to the end of the line), then a decimal number. */
static int pgm_number(Pgm *g, const char *what, int64_t max, int64_t *out) {
    for (;;) {
        while (g->at < g->size && isspace(g->s[g->at]))
            g->at++;
        if (g->at < g->size && g->s[g->at] == '#') {
            while (g->at < g->size && g->s[g->at] != '\n')
                g->at++;
            continue;
        }
        break;
    }
    if (g->at >= g->size)
        return rt_errf(g->e, "%s: truncated at byte offset %lld: expected the %s", g->path, (long long)g->at, what);
    if (!isdigit(g->s[g->at]))
        return rt_errf(g->e, "%s: byte %lld: expected the %s (a decimal number), got '%c'", g->path, (long long)g->at,
                       what, isprint(g->s[g->at]) ? g->s[g->at] : '?');
    int64_t start = g->at, v = 0;
    while (g->at < g->size && isdigit(g->s[g->at])) {
        v = v * 10 + (g->s[g->at++] - '0');
        if (v > max)
            return rt_errf(g->e, "%s: byte %lld: the %s is larger than %lld", g->path, (long long)start, what,
                           (long long)max);
    }
    *out = v;
    return RT_OK;
}

/* v of 0..maxval onto 0..255 as Pillow does, round(v / maxval * 255) with ties to even */
static uint8_t pgm_scale(int64_t v, int64_t maxval) {
    if (maxval == 255)
        return (uint8_t)v;
    int64_t num = 2 * v * 255 + maxval, den = 2 * maxval, q = num / den;
    if (num % den == 0 && (q & 1))
        q--;
    return (uint8_t)q;
}

static int read_pgm(const char *path, bool size_only, Pixels *out, RtErr *e) {
    uint8_t *buf;
    int64_t size;
    if (rt_read_file(path, IMG_MAX_PIXELS * 4 + 4096, &buf, &size, e) != RT_OK)
        return RT_ERR;
    Pgm g = {.path = path, .s = buf, .size = size, .e = e};
    int rc = RT_OK;
    int64_t w = 0, h = 0, maxval = 0;
    bool plain = size >= 2 && buf[0] == 'P' && buf[1] == '2';
    if (size < 2 || buf[0] != 'P' || (buf[1] != '5' && buf[1] != '2'))
        rc = rt_errf(e, "%s: byte 0: not a PGM file (expected the magic P5 or P2)", path);
    g.at = 2;
    if (rc == RT_OK && (pgm_number(&g, "width", 1 << 20, &w) || pgm_number(&g, "height", 1 << 20, &h) ||
                        pgm_number(&g, "maxval", 65535, &maxval)))
        rc = RT_ERR;
    if (rc == RT_OK && (maxval < 1 || maxval > 255))
        rc = rt_errf(e, "%s: maxval %lld: only 8-bit PGMs (maxval 1 to 255) are read", path, (long long)maxval);
    if (rc == RT_OK && (w == 0 || h == 0 || w * h > IMG_MAX_PIXELS))
        rc = rt_errf(e, "%s: a %lldx%lld image is not read", path, (long long)w, (long long)h);
    /* the pixels must fit in the file (a byte each at least: P5's after one whitespace, P2's digits), checked
       before the size is trusted: a header alone must not make a dataset allocate */
    if (rc == RT_OK && size - g.at - !plain < w * h)
        rc = rt_errf(e, "%s: truncated at byte offset %lld: a %lldx%lld image needs %s%lld bytes after the header", path,
                     (long long)size, (long long)w, (long long)h, plain ? "at least " : "", (long long)(w * h));
    out->w = w;
    out->h = h;
    out->channels = 1;
    out->p = NULL;
    out->counted = 0;
    if (rc == RT_OK && !size_only && !(out->p = rt_budget_malloc((size_t)(w * h), path, "the pixels", e)))
        rc = RT_ERR;
    if (rc != RT_OK || size_only) {
        free(buf);
        rt_budget_give(size + 1);
        return rc;
    }
    out->counted = w * h;
    if (!plain) {
        int64_t data = g.at + 1; /* one whitespace byte after maxval */
        if (size - data < w * h)
            rc = rt_errf(e, "%s: truncated at byte offset %lld: a %lldx%lld image needs %lld bytes after the header",
                         path, (long long)size, (long long)w, (long long)h, (long long)(w * h));
        for (int64_t i = 0; rc == RT_OK && i < w * h; i++) {
            if (buf[data + i] > maxval)
                rc = rt_errf(e, "%s: byte %lld: value %d exceeds maxval %lld", path, (long long)(data + i),
                             buf[data + i], (long long)maxval);
            else
                out->p[i] = pgm_scale(buf[data + i], maxval);
        }
    } else {
        char what[64];
        for (int64_t i = 0; rc == RT_OK && i < w * h; i++) {
            int64_t v;
            snprintf(what, sizeof what, "pixel %lld of %lld", (long long)i, (long long)(w * h));
            int64_t at = g.at;
            rc = pgm_number(&g, what, 1 << 20, &v);
            if (rc == RT_OK && v > maxval) {
                while (at < size && isspace(buf[at]))
                    at++;
                rc = rt_errf(e, "%s: byte %lld: value %lld exceeds maxval %lld", path, (long long)at, (long long)v,
                             (long long)maxval);
            }
            if (rc == RT_OK)
                out->p[i] = pgm_scale(v, maxval);
        }
    }
    free(buf);
    rt_budget_give(size + 1);
    if (rc != RT_OK) {
        free(out->p);
        rt_budget_give(out->counted);
        out->p = NULL;
    }
    return rc;
}

static int read_image(const char *path, bool size_only, Pixels *out, RtErr *e) {
    const char *dot = strrchr(path, '.');
    return strcasecmp(dot, ".png") == 0 ? read_png(path, size_only, out, e) : read_pgm(path, size_only, out, e);
}

/* ---------------------------------------------------------------- the source */

int rt_images_load(RtDataset *d, const RtDataSpec *spec, RtErr *e) {
    const char *root = d->images_path;
    Names classes = {0}, files = {0};
    char **paths = NULL;
    int32_t *labels = NULL;
    int64_t count = 0, cap = 0;
    int rc = list(root, true, &classes, e);
    if (rc == RT_OK && classes.n == 0)
        rc = rt_errf(e, "%s: no class folders (images(folder) reads FOLDER/CLASS/*.png and *.pgm)", root);
    for (int c = 0; rc == RT_OK && c < classes.n; c++) {
        char *folder = malloc(strlen(root) + strlen(classes.v[c]) + 2);
        if (!folder) {
            rc = rt_errf(e, "%s: out of memory", root);
            break;
        }
        sprintf(folder, "%s/%s", root, classes.v[c]);
        names_free(&files);
        rc = list(folder, false, &files, e);
        if (rc == RT_OK && files.n == 0)
            rc = rt_errf(e, "%s: no .png or .pgm files (every class folder needs an image)", folder);
        for (int i = 0; rc == RT_OK && i < files.n; i++) {
            if (count == cap) {
                size_t was = (size_t)cap;
                cap = cap ? 2 * cap : 256;
                char **p = rt_budget_realloc(paths, was * sizeof *p, (size_t)cap * sizeof *p, root, "the file list", e);
                if (p)
                    paths = p;
                int32_t *l = p ? rt_budget_realloc(labels, was * sizeof *l, (size_t)cap * sizeof *l, root, "the labels",
                                                   e)
                               : NULL;
                if (l)
                    labels = l;
                if (!p || !l) {
                    rc = RT_ERR;
                    break;
                }
            }
            if (!(paths[count] = rt_budget_malloc(strlen(folder) + strlen(files.v[i]) + 2, root, "the file list", e))) {
                rc = RT_ERR;
                break;
            }
            sprintf(paths[count], "%s/%s", folder, files.v[i]);
            labels[count++] = c;
        }
        free(folder);
    }
    names_free(&files);
    /* the size: the model's, or else the first image's */
    int channels = spec->grayscale ? 1 : 3;
    int64_t w = spec->width, h = spec->height;
    Pixels px = {0};
    if (rc == RT_OK && (w <= 0 || h <= 0)) {
        rc = read_image(paths[0], true, &px, e);
        w = px.w, h = px.h;
    }
    int64_t per = (int64_t)channels * w * h, total;
    if (rc == RT_OK && __builtin_mul_overflow(count, per, &total))
        rc = rt_errf(e, "%s: %lld images of %lld bytes pass 2^63 bytes", root, (long long)count, (long long)per);
    if (rc == RT_OK && !(d->images = rt_budget_malloc((size_t)total, root, "the images", e)))
        rc = RT_ERR;
    for (int64_t i = 0; rc == RT_OK && i < count; i++) {
        rc = read_image(paths[i], false, &px, e);
        if (rc == RT_OK && (px.w != w || px.h != h))
            rc = rt_errf(e, "%s: %lldx%lld pixels (width x height), but %s %lldx%lld", paths[i], (long long)px.w,
                         (long long)px.h, spec->width > 0 ? "the model's input takes" : "the first image has",
                         (long long)w, (long long)h);
        if (rc == RT_OK)
            store_pixels(&px, channels, d->images + i * per);
        free(px.p);
        rt_budget_give(px.counted);
        px.p = NULL;
    }
    for (int64_t i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
    d->labels = (uint8_t *)labels;
    d->class_names = classes.v;
    d->nclass_names = classes.n;
    if (rc != RT_OK)
        return RT_ERR;
    d->count = count;
    d->per_sample = per;
    d->per_label = 1;
    d->images_dtype = RT_U8;
    d->labels_dtype = RT_I32;
    return RT_OK;
}
