/* main.c: the entry point of every produced executable. It sits alone in its object file so that the
   runtime tests, which bring their own main, do not pull it out of liblathe_rt.a. */
#include "lathe_rt.h"

int main(int argc, char **argv) { return rt_main(argc, argv); }
