/* A small fork-join team on pthreads. A region publishes its function and
 * bumps a generation counter; idle workers watch the counter for a short
 * while and then sleep on a condition variable. The short spin is the
 * point: a long one (libgomp's default, 300000 rounds) takes the core a
 * working thread needs whenever other processes share the machine, and a
 * spin of zero costs a wake-up at every one of a step's hundreds of
 * regions. TEAM_SPIN rounds is what the CLI used to ask of libgomp
 * (GOMP_SPINCOUNT=10000, docs/PERFORMANCE.md): tens to hundreds of
 * microseconds, longer than the gap between a step's regions, far shorter
 * than a scheduler's time slice. */
#include "team.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define TEAM_SPIN 10000

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct team team;

typedef struct member {
    team *t;
    int index;
    pthread_t tid;
} member;

struct team {
    int size; /* the caller and the workers started */
    member *members;
    pthread_mutex_t lock;
    pthread_cond_t wake, done, bar_wake;
    atomic_uint gen;     /* bumped once a region (or the quit) is published */
    atomic_int pending;  /* workers yet to finish the current region */
    atomic_int arrived;  /* at the current barrier */
    atomic_uint bar_gen; /* bumped when a barrier opens */
    int quit;
    team_part_fn *fn;
    void *ctx;
    int active; /* workers with a part in the current region */
};

/* The scope's team; the region this thread has a part in, if any. */
static _Thread_local team *bound;
static _Thread_local team *cur_team;
static _Thread_local int cur_count = 1, in_part;

static void run_part(team *t, team_part_fn *fn, void *ctx, int index, int count) {
    team *const st = cur_team;
    const int sc = cur_count, sp = in_part;
    cur_team = t, cur_count = count, in_part = 1;
    fn(ctx, index, count);
    cur_team = st, cur_count = sc, in_part = sp;
}

/* Until the generation moves past seen: spin, then sleep. */
static unsigned wait_gen(team *t, atomic_uint *gen, pthread_cond_t *cv, unsigned seen) {
    unsigned g;
    for (int i = 0; i < TEAM_SPIN; i++) {
        if ((g = atomic_load_explicit(gen, memory_order_acquire)) != seen) return g;
        relax();
    }
    pthread_mutex_lock(&t->lock);
    while ((g = atomic_load_explicit(gen, memory_order_acquire)) == seen) pthread_cond_wait(cv, &t->lock);
    pthread_mutex_unlock(&t->lock);
    return g;
}

static void *worker_main(void *arg) {
    member *m = arg;
    team *t = m->t;
    unsigned seen = 0;
    for (;;) {
        seen = wait_gen(t, &t->gen, &t->wake, seen);
        if (t->quit) return NULL;
        /* Every worker answers every region, those without a part too, so
         * none reads a later region's fields as this one's. */
        if (m->index < t->active) run_part(t, t->fn, t->ctx, m->index, t->active);
        if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&t->lock);
            pthread_cond_signal(&t->done);
            pthread_mutex_unlock(&t->lock);
        }
    }
}

/* Publishes fn (or the quit) to the workers, under the lock so that none
 * misses the broadcast between its last look and its sleep. */
static void publish(team *t, team_part_fn *fn, void *ctx, int active, int quit) {
    pthread_mutex_lock(&t->lock);
    t->fn = fn, t->ctx = ctx, t->active = active, t->quit = quit;
    atomic_store_explicit(&t->pending, t->size - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->gen, 1, memory_order_release);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
}

static team *team_new(int threads) {
    team *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->members = calloc((size_t)threads, sizeof *t->members);
    if (!t->members) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    pthread_cond_init(&t->done, NULL);
    pthread_cond_init(&t->bar_wake, NULL);
    t->size = 1;
    /* Workers block every signal: a process-directed signal goes to one of
     * the program's own threads, whose handlers and masks are its own. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 1; i < threads; i++) {
        member *m = &t->members[i];
        m->t = t, m->index = i;
        /* A thread that cannot start leaves a smaller team: the same bytes. */
        if (pthread_create(&m->tid, NULL, worker_main, m) != 0) break;
        t->size++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return t;
}

static void team_free(team *t) {
    if (!t) return;
    if (t->size > 1) {
        publish(t, NULL, NULL, 0, 1);
        for (int i = 1; i < t->size; i++) pthread_join(t->members[i].tid, NULL);
    }
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->wake);
    pthread_cond_destroy(&t->done);
    pthread_cond_destroy(&t->bar_wake);
    free(t->members);
    free(t);
}

void team_enter(team_scope *scope, int threads) {
    scope->made = NULL;
    if (bound || in_part) return;
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads <= 1) return;
    bound = scope->made = team_new(threads);
}

void team_leave(team_scope *scope) {
    if (!scope->made) return;
    bound = NULL;
    team_free(scope->made);
    scope->made = NULL;
}

void team_run(int threads, team_part_fn *fn, void *ctx) {
    if (threads <= 1 || in_part) {
        run_part(NULL, fn, ctx, 0, 1);
        return;
    }
    team *t = bound, *own = NULL;
    if (!t) t = own = team_new(threads); /* outside any scope: for this call */
    const int active = !t ? 1 : threads < t->size ? threads : t->size;
    if (active <= 1) {
        run_part(NULL, fn, ctx, 0, 1);
    } else {
        publish(t, fn, ctx, active, 0);
        run_part(t, fn, ctx, 0, active);
        for (int i = 0; i < TEAM_SPIN && atomic_load_explicit(&t->pending, memory_order_acquire) > 0; i++) relax();
        if (atomic_load_explicit(&t->pending, memory_order_acquire) > 0) {
            pthread_mutex_lock(&t->lock);
            while (atomic_load_explicit(&t->pending, memory_order_acquire) > 0) pthread_cond_wait(&t->done, &t->lock);
            pthread_mutex_unlock(&t->lock);
        }
    }
    team_free(own);
}

typedef struct loop {
    team_range_fn *fn;
    void *ctx;
    size_t n;
} loop;

static void loop_part(void *p, int worker, int workers) {
    const loop *l = p;
    const size_t from = l->n * (size_t)worker / (size_t)workers, to = l->n * (size_t)(worker + 1) / (size_t)workers;
    if (from < to) l->fn(l->ctx, from, to, worker);
}

void team_for(int threads, size_t n, team_range_fn *fn, void *ctx) {
    if (n == 0) return;
    if ((size_t)threads > n) threads = (int)n;
    loop l = {fn, ctx, n};
    team_run(threads, loop_part, &l);
}

void team_barrier(void) {
    team *t = cur_team;
    if (!t || cur_count <= 1) return;
    const unsigned g = atomic_load_explicit(&t->bar_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&t->arrived, 1, memory_order_acq_rel) == cur_count - 1) {
        atomic_store_explicit(&t->arrived, 0, memory_order_relaxed);
        pthread_mutex_lock(&t->lock);
        atomic_fetch_add_explicit(&t->bar_gen, 1, memory_order_release);
        pthread_cond_broadcast(&t->bar_wake);
        pthread_mutex_unlock(&t->lock);
    } else {
        wait_gen(t, &t->bar_gen, &t->bar_wake, g);
    }
}
