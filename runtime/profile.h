/* profile.h: --profile FILE (profile.c). While a profile is open every graph call and every kernel call
   is timed: the graph entries call their kernels through lathe_profile_kernel (lathe_kern.h), and the
   manifest's "kernel_list" of each graph names each kernel, its model lines and its FLOPs and bytes.

   At the end the profile writes FILE, a Chrome trace (the JSON trace-event format that Perfetto and
   chrome://tracing open), atomically: one "X" event per graph call and one per kernel call for calls
   first..last of each graph (by default 2..6: the first call is a warm-up, its page faults and OpenBLAS's
   start-up are not the model's), or the first call of a graph called fewer than first times (predict). It
   then prints a table: the time of each model line, slowest first (a kernel's time split among its lines by
   their share of its FLOPs), and the slowest kernels with their GFLOP/s and GB/s, over every call of each
   graph but its first (its only one when there is just one). */
#ifndef LATHE_RT_PROFILE_H
#define LATHE_RT_PROFILE_H

#include "rt.h"

#define RT_PROFILE_FIRST 2 /* the default calls traced */
#define RT_PROFILE_LAST 6
#define RT_PROFILE_MAX_EVENTS 1000000 /* beyond this the trace stops and says it was cut */

/* Starts profiling m's graphs (first, last: the calls traced, 0 for the default): checks that path can be
   written by creating and removing a file beside it, so that a bad path fails before any work, then
   replaces m's graph entries by timed ones and turns on lathe_profile_on. One profile at a time. */
int rt_profile_open(RtManifest *m, const char *path, int64_t first, int64_t last, RtErr *e);
/* Ends the open profile (nothing to do when none is): gives m its entries back, writes the trace (not when
   no graph ran) and prints the table to table (NULL: none). RT_ERR when the trace cannot be written, with
   nothing left behind. */
int rt_profile_close(RtManifest *m, FILE *table, RtErr *e);

/* s as a JSON string, quotes included: '"' and '\' escaped, control characters as \n, \t or \u00XX. */
void rt_profile_json_string(FILE *f, const char *s);

#endif
