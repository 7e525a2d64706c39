/* emu_driver.c: the host emulation's RtCudaDriver (emu_driver.h). */
#include "emu_driver.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { GUARD = 64, GUARD_BYTE = 0x5a, GARBAGE_BYTE = 0xab, MAX_ALLOCS = 4096 };

typedef void (*EmuKernel)(void **params, unsigned grid, unsigned block);

typedef struct Emu {
    void *so;
    unsigned max_grid;
    char err[512];
    /* the live allocations, for the guards */
    int nallocs;
    uint8_t *ptr[MAX_ALLOCS];
    size_t bytes[MAX_ALLOCS];
} Emu;

static int fail(Emu *m, const char *fmt, const char *arg) {
    snprintf(m->err, sizeof m->err, fmt, arg);
    return 1;
}

static int emu_alloc(void *ctx, size_t bytes, uint64_t *dptr) {
    Emu *m = ctx;
    if (m->nallocs == MAX_ALLOCS)
        return fail(m, "%s", "too many allocations");
    uint8_t *p = aligned_alloc(256, (bytes + GUARD + 255) / 256 * 256);
    if (!p)
        return fail(m, "%s", "out of memory");
    memset(p, GARBAGE_BYTE, bytes);
    memset(p + bytes, GUARD_BYTE, GUARD);
    m->ptr[m->nallocs] = p;
    m->bytes[m->nallocs++] = bytes;
    *dptr = (uint64_t)(uintptr_t)p;
    return 0;
}

static void emu_release(void *ctx, uint64_t dptr) {
    Emu *m = ctx;
    for (int i = 0; i < m->nallocs; i++)
        if (m->ptr[i] == (uint8_t *)(uintptr_t)dptr) {
            free(m->ptr[i]);
            m->ptr[i] = m->ptr[--m->nallocs];
            m->bytes[i] = m->bytes[m->nallocs];
            return;
        }
}

static int emu_to_device(void *ctx, uint64_t dst, const void *src, size_t bytes) {
    memcpy((void *)(uintptr_t)dst, src, bytes);
    return 0;
}

static int emu_to_host(void *ctx, void *dst, uint64_t src, size_t bytes) {
    memcpy(dst, (const void *)(uintptr_t)src, bytes);
    return 0;
}

static int emu_copy(void *ctx, uint64_t dst, uint64_t src, size_t bytes) {
    memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
    return 0;
}

static int emu_launch(void *ctx, const char *name, unsigned grid, unsigned block, void **params) {
    Emu *m = ctx;
    char sym[256];
    snprintf(sym, sizeof sym, "%s__emu", name);
    EmuKernel k = (EmuKernel)dlsym(m->so, sym);
    if (!k)
        return fail(m, "no kernel %s in the emulated module", sym);
    if (m->max_grid && grid > m->max_grid)
        grid = m->max_grid;
    k(params, grid, block);
    return 0;
}

static int emu_sync(void *ctx) {
    return 0;
}

static const char *emu_error(void *ctx) {
    return ((Emu *)ctx)->err;
}

bool emu_driver_open(RtCudaDriver *drv, const char *so_path, char *err, size_t err_size) {
    Emu *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    m->so = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!m->so) {
        snprintf(err, err_size, "%s", dlerror());
        free(m);
        return false;
    }
    *drv = (RtCudaDriver){NULL, emu_alloc, emu_release, emu_to_device, emu_to_host, emu_copy, emu_launch, emu_sync,
                          emu_error};
    drv->ctx = m;
    return true;
}

bool emu_driver_guards_ok(const RtCudaDriver *drv, char *err, size_t err_size) {
    const Emu *m = drv->ctx;
    for (int i = 0; i < m->nallocs; i++)
        for (size_t b = 0; b < GUARD; b++)
            if (m->ptr[i][m->bytes[i] + b] != GUARD_BYTE) {
                snprintf(err, err_size, "a buffer of %zu bytes was written past its end (byte %zu)", m->bytes[i],
                         m->bytes[i] + b);
                return false;
            }
    return true;
}

bool emu_driver_set_schedule(RtCudaDriver *drv, unsigned max_grid, bool reverse) {
    Emu *m = drv->ctx;
    m->max_grid = max_grid;
    void (*set_reverse)(int) = (void (*)(int))dlsym(m->so, "lathe_emu_set_reverse");
    if (!set_reverse)
        return false;
    set_reverse(reverse);
    return true;
}

void emu_driver_close(RtCudaDriver *drv) {
    Emu *m = drv->ctx;
    for (int i = 0; i < m->nallocs; i++)
        free(m->ptr[i]);
    dlclose(m->so);
    free(m);
}
