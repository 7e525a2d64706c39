/* harness.h: the CUDA emulation harness (harness.c): graphs generated as CUDA C (codegen/cuda), compiled
   for the host with the emulation (emu/lathe_cuda_emu.h), run by the executor (runtime/cuda_exec.c) on the
   emulated driver (emu_driver.h), and compared with the interpreter. */
#ifndef LATHE_TESTS_CUDA_HARNESS_H
#define LATHE_TESTS_CUDA_HARNESS_H

/* A hand-written graph: text IR of one graph, with fusion groups where it has them (cases.c). */
typedef struct HarnessCase {
    const char *name;
    const char *text;
} HarnessCase;

extern const HarnessCase harness_cases[];
extern const int harness_ncases;

#endif
