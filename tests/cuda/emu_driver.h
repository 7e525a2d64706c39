/* emu_driver.h: an RtCudaDriver (runtime/cuda.h) on the host, for the tests: device memory is host memory
   (a device address is the pointer), and a launch calls NAME__emu of a shared object that g++ compiled from
   the generated CUDA C with the emulation (emu/lathe_cuda_emu.h). Each allocation is filled with garbage and
   followed by a guard, so that reading before writing shows and writing past the end is caught. */
#ifndef LATHE_TESTS_CUDA_EMU_DRIVER_H
#define LATHE_TESTS_CUDA_EMU_DRIVER_H

#include "../../runtime/cuda.h"

/* The kernels of the shared object at so_path (dlopen'd); false with the reason in err. */
bool emu_driver_open(RtCudaDriver *drv, const char *so_path, char *err, size_t err_size);
/* max_grid > 0: every launch runs on at most that many blocks (the kernels must be correct for any grid),
   0: as asked; reverse: a block's threads run last to first between barriers (a race on shared memory that
   the first-to-last order hides shows). False when the module cannot reverse (no lathe_emu_set_reverse). */
bool emu_driver_set_schedule(RtCudaDriver *drv, unsigned max_grid, bool reverse);
/* Whether every live allocation's guard is intact; else false with what was overwritten in err. */
bool emu_driver_guards_ok(const RtCudaDriver *drv, char *err, size_t err_size);
void emu_driver_close(RtCudaDriver *drv);

#endif
