/* arena.c: the bump allocator that holds all memory of one compilation. Chunks are calloc'ed, so fresh
   memory is already zero; nothing is freed before arena_free releases the whole chain. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_CHUNK (64 * 1024)

typedef struct Chunk Chunk;
struct Chunk {
    Chunk *next;
    size_t size, used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct Arena {
    Chunk *head;
    void *last; /* the most recent allocation, which arena_realloc can grow in place */
};

static void *xcalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p) {
        fprintf(stderr, "lathe: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

Arena *arena_new(void)
{
    return xcalloc(sizeof(Arena));
}

void arena_free(Arena *a)
{
    if (!a)
        return;
    for (Chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

static size_t round_up(size_t n)
{
    if (n > SIZE_MAX - ARENA_ALIGN) {
        fprintf(stderr, "lathe: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

void *arena_alloc(Arena *a, size_t size)
{
    size = round_up(size ? size : 1);
    Chunk *c = a->head;
    if (!c || c->size - c->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        c = xcalloc(sizeof(Chunk) + cap);
        c->size = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->last = p;
    return p;
}

void *arena_realloc(Arena *a, void *p, size_t old_size, size_t new_size)
{
    if (!p)
        return arena_alloc(a, new_size);
    if (new_size <= old_size)
        return p;
    /* Growing the latest allocation in place makes the usual push-and-double arrays cheap. */
    Chunk *c = a->head;
    if (p == a->last && c) {
        size_t start = (size_t)((unsigned char *)p - c->data);
        size_t need = round_up(new_size);
        if (c->size - start >= need) {
            c->used = start + need;
            memset((unsigned char *)p + old_size, 0, new_size - old_size);
            return p;
        }
    }
    void *q = arena_alloc(a, new_size);
    memcpy(q, p, old_size);
    return q;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(Arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

bool ir_mul_overflows(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    bool over = __builtin_mul_overflow(a, b, &r);
    if (out)
        *out = over ? 0 : r;
    return over;
}
