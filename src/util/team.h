/* The library's own thread team (team.c): parallel regions and loops on
 * pthreads the library starts and joins itself, so that nothing about them
 * (spin, wait policy, thread counts) is a setting of the process's OpenMP
 * runtime or leaks into the calling program. docs/ARCHITECTURE.md
 * ("Threads and determinism") says why it replaced OpenMP. */
#ifndef DD_TEAM_H
#define DD_TEAM_H

#include <stddef.h>

/* One thread's part of a region: worker in [0, workers). */
typedef void team_part_fn(void *ctx, int worker, int workers);
/* One thread's share [from, to) of a loop's n units. */
typedef void team_range_fn(void *ctx, size_t from, size_t to, int worker);

/* fn on up to threads threads at once (the caller is worker 0), returning
 * when all are done: OpenMP's `parallel num_threads(threads)`. Inside a
 * part, or with threads <= 1, fn runs once on the calling thread as worker
 * 0 of 1 (nested regions are serial, as OpenMP's were). The team is the
 * one a team_enter on this thread opened, else one made for this call. */
void team_run(int threads, team_part_fn *fn, void *ctx);
/* The loop 0..n-1 in contiguous shares, in worker order, one per thread:
 * OpenMP's `parallel for schedule(static)`. */
void team_for(int threads, size_t n, team_range_fn *fn, void *ctx);
/* Inside a part: waits for every worker of the region to reach it. */
void team_barrier(void);

/* Around a public call: the team its regions run on, threads - 1 workers
 * started here and joined by team_leave, so no library thread outlives the
 * call. A call already inside a scope on this thread keeps that team.
 * threads <= 0 means one per online core. */
typedef struct team_scope {
    struct team *made;
} team_scope;
void team_enter(team_scope *scope, int threads);
void team_leave(team_scope *scope);

#endif
