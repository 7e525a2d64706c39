/* main.c: the entry point of every produced executable, and rt_main, the one reference to the generated
   code's symbols. It sits alone in its object file so that the runtime tests, which bring their own main,
   do not pull it out of liblathe_rt.a, and so that `lathe run`, which links the driver and finds the entries
   in its JIT, needs no lathe_train of its own. */
#include "rt.h"

int rt_main(int argc, char **argv) {
    RtEntries fns = {lathe_train, lathe_grads, lathe_eval, lathe_predict};
    return rt_run_entries(lathe_manifest, &fns, argc, argv);
}

int main(int argc, char **argv) { return rt_main(argc, argv); }
