/* lex.c: the lexer. Turns a model file into an array of tokens at once, so that the parser can look ahead
   freely. Newlines are whitespace; '#' starts a comment to the end of the line. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"

static const char *const keywords[] = {
    "model", "layer", "def", "train", "param", "init", "forward", "return", "true", "false",
    "if", "else", "for", "none", "and", "or", "not",
};

/* What keeps a hostile model file cheap: a name or number longer than any real one, or a string longer than
   any path, is an error at its start rather than a token to copy and compare. */
#define LEX_MAX_NAME 256
#define LEX_MAX_STRING 4096

/* Longest first, so that "**" wins over "*". */
static const char *const puncts[] = {
    "...", "==", "!=", "<=", ">=", "->", "**", "//", "+", "-", "*", "/", "@", "%", "<", ">", "=",
    "(", ")", "[", "]", "{", "}", ",", ":", ".",
};

typedef struct Lexer {
    Arena *a;
    Diag *d;
    const char *file;
    const char *p;
    int line, col;
    Token *toks;
    int n, cap;
} Lexer;

static Loc here(const Lexer *L) { return (Loc){L->file, L->line, L->col}; }

static void advance(Lexer *L, int n) {
    for (int i = 0; i < n && *L->p; i++, L->p++) {
        if (*L->p == '\n') {
            L->line++;
            L->col = 1;
        } else {
            L->col++;
        }
    }
}

static Token *push(Lexer *L, TokenKind k, const char *start, int len, Loc loc) {
    if (L->n == L->cap) {
        int cap = L->cap ? L->cap * 2 : 256; /* in range: lex_tokenize bounds the text, and so the tokens */
        L->toks = arena_realloc(L->a, L->toks, sizeof(Token) * (size_t)L->cap, sizeof(Token) * (size_t)cap);
        L->cap = cap;
    }
    Token *t = &L->toks[L->n++];
    *t = (Token){.kind = k, .text = start, .len = len, .loc = loc};
    if (k != TK_STR)
        t->str = arena_strndup(L->a, start, (size_t)len); /* len >= 0: a distance forward in the text */
    return t;
}

static bool is_ident_start(int c) { return isalpha(c) || c == '_'; }
static bool is_ident_char(int c) { return isalnum(c) || c == '_'; }

/* Whether the last token is a '.' right before the current character: then digits are a member name in a
   path (layers.0.weight), an int that may be followed by another '.'. */
static bool after_dot(const Lexer *L) {
    const Token *t = L->n ? &L->toks[L->n - 1] : NULL;
    return t && t->kind == TK_PUNCT && t->len == 1 && t->text[0] == '.' && t->text + 1 == L->p;
}

static bool number(Lexer *L) {
    Loc loc = here(L);
    const char *start = L->p, *q = L->p;
    bool is_float = false, member = after_dot(L);
    while (isdigit((unsigned char)*q))
        q++;
    if (member) {
        /* a path segment: only digits */
    } else if (*q == '.' && isdigit((unsigned char)q[1])) {
        is_float = true;
        for (q++; isdigit((unsigned char)*q);)
            q++;
    }
    if (!member && (*q == 'e' || *q == 'E')) {
        const char *e = q + 1;
        if (*e == '+' || *e == '-')
            e++;
        if (isdigit((unsigned char)*e)) {
            is_float = true;
            for (q = e; isdigit((unsigned char)*q);)
                q++;
        }
    }
    if (is_ident_char((unsigned char)*q) || (*q == '.' && !member)) {
        diag_error(L->d, loc, "invalid number literal '%.*s'", (int)(q - start + 1), start);
        return false;
    }
    if (q - start > LEX_MAX_NAME) {
        diag_error(L->d, loc, "number literal of %ld characters (%d at most)", (long)(q - start), LEX_MAX_NAME);
        return false;
    }
    Token *t = push(L, is_float ? TK_FLOAT : TK_INT, start, (int)(q - start), loc);
    errno = 0;
    if (is_float) {
        t->fval = strtod(t->str, NULL);
        if (!isfinite(t->fval)) {
            diag_error(L->d, loc, "number literal '%s' is too large", t->str);
            return false;
        }
    } else {
        long long v = strtoll(t->str, NULL, 10);
        if (errno == ERANGE) {
            diag_error(L->d, loc, "integer literal '%s' is too large", t->str);
            return false;
        }
        t->ival = v;
    }
    advance(L, (int)(q - start));
    return true;
}

static bool string(Lexer *L) {
    Loc loc = here(L);
    const char *start = L->p;
    size_t cap = 16, n = 0;
    char *buf = arena_alloc(L->a, cap);
    advance(L, 1);
    for (;;) {
        char c = *L->p;
        if (c == '\0' || c == '\n') {
            diag_error(L->d, loc, "unterminated string");
            return false;
        }
        if (c == '"')
            break;
        if (n == LEX_MAX_STRING) {
            diag_error(L->d, loc, "string longer than %d bytes", LEX_MAX_STRING);
            return false;
        }
        if (c == '\\') {
            char e = L->p[1];
            if (e == '"' || e == '\\')
                c = e;
            else if (e == 'n')
                c = '\n';
            else if (e == 't') /* csv(..., delimiter = "\t") */
                c = '\t';
            else {
                Loc eloc = here(L);
                diag_error(L->d, eloc, "unknown escape sequence in string (only \\\" \\\\ \\n \\t)");
                return false;
            }
            advance(L, 1);
        }
        if (n + 2 > cap) {
            buf = arena_realloc(L->a, buf, cap, cap * 2);
            cap *= 2;
        }
        buf[n++] = c;
        advance(L, 1);
    }
    advance(L, 1);
    buf[n] = '\0';
    Token *t = push(L, TK_STR, start, (int)(L->p - start), loc);
    t->str = buf;
    return true;
}

Token *lex_tokenize(Arena *a, Diag *d, const char *file, const char *text, int *ntokens) {
    Lexer L = {.a = a, .d = d, .file = file, .p = text, .line = 1, .col = 1};
    /* Lengths, lines, columns and the token count are ints: a text under INT_MAX / 4 bytes keeps each one, and
       the token array's doubled capacity, in range (model files are read with a far smaller limit, lower.c). */
    if (strlen(text) >= INT_MAX / 4) {
        diag_error(d, here(&L), "the model text is too large (%d bytes at most)", INT_MAX / 4);
        return NULL;
    }
    while (*L.p) {
        unsigned char c = (unsigned char)*L.p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            advance(&L, 1);
            continue;
        }
        if (c == '#') {
            while (*L.p && *L.p != '\n' && *L.p != '\r') /* '\r' too: a file with old Mac line ends */
                advance(&L, 1);
            continue;
        }
        if (isdigit(c)) {
            if (!number(&L))
                return NULL;
            continue;
        }
        if (c == '"') {
            if (!string(&L))
                return NULL;
            continue;
        }
        if (is_ident_start(c)) {
            const char *q = L.p;
            while (is_ident_char((unsigned char)*q))
                q++;
            if (q - L.p > LEX_MAX_NAME) {
                diag_error(d, here(&L), "name of %ld characters (%d at most)", (long)(q - L.p), LEX_MAX_NAME);
                return NULL;
            }
            Token *t = push(&L, TK_IDENT, L.p, (int)(q - L.p), here(&L));
            for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
                if (strcmp(t->str, keywords[i]) == 0)
                    t->kind = TK_KEYWORD;
            advance(&L, (int)(q - L.p));
            continue;
        }
        size_t i;
        for (i = 0; i < sizeof puncts / sizeof *puncts; i++) {
            size_t len = strlen(puncts[i]);
            if (strncmp(L.p, puncts[i], len) == 0) {
                push(&L, TK_PUNCT, L.p, (int)len, here(&L));
                advance(&L, (int)len);
                break;
            }
        }
        if (i < sizeof puncts / sizeof *puncts)
            continue;
        if (isprint(c))
            diag_error(d, here(&L), "unexpected character '%c'", c);
        else
            diag_error(d, here(&L), "unexpected character 0x%02x", c);
        return NULL;
    }
    push(&L, TK_EOF, L.p, 0, here(&L));
    *ntokens = L.n;
    return L.toks;
}

bool lex_is(const Token *t, const char *s) {
    return (t->kind == TK_KEYWORD || t->kind == TK_PUNCT) && strcmp(t->str, s) == 0;
}
