/*
 * kernels/cpu/pool.c - the thread pool behind the fast CPU ops, and
 * per-thread scratch memory.
 *
 * kiln_parallel_for(n, fn, ctx) runs fn(ctx, task, thread) for task = 0 ..
 * n-1 on the pool's threads (the caller is thread 0 and takes tasks too)
 * and returns when every task has run. Tasks are handed out one at a time
 * from an atomic counter, so uneven tasks balance themselves.
 *
 * Threads: kiln_kernels_set_threads(n) sizes the pool (default: the CPUs
 * online). OpenBLAS is set to one thread once the pool exists, since every
 * GEMM the fast ops make is one task's share of the work; OpenBLAS's own
 * team would only fight the pool for the cores.
 *
 * Claiming: a job's tasks are claimed with a compare-and-swap on one
 * 64-bit ticket, (job generation << 32) | next task, so a worker that
 * wakes up late can never take a task of a later job; the caller waits for
 * its job's tasks to be done, not for the workers to check in. On a busy
 * machine where a worker is descheduled, the caller simply runs the tasks
 * itself.
 *
 * Waiting: a worker spins (with the CPU's pause hint) for up to 200 us
 * after each job before it sleeps on a condition variable, so that the
 * hundreds of small jobs of a decoder step do not pay a wake-up each; a
 * dispatcher wakes sleepers only when there are some. The caller spins a
 * little for the last tasks, then yields its CPU.
 *
 * One job runs at a time. A second caller (another thread) that finds the
 * pool busy, and any kiln_parallel_for() made from inside a task, runs its
 * tasks inline on its own thread: correct, just not parallel.
 *
 * Scratch: kiln_scratch(slot, n) returns a buffer of at least n floats
 * owned by the calling thread (slots 0..3 are independent). It grows and
 * is reused, never shrunk, and is freed when the thread exits.
 */
#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kiln/kernels.h"



#define KILN_POOL_MAX 256
#define KILN_POOL_SPIN_NS 200000L
#define KILN_SCRATCH_SLOTS 4

typedef struct kiln_pool_s {
    int n;                   /* threads including the caller */
    pthread_t th[KILN_POOL_MAX];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t ticket; /* (generation << 32) | next task */
    atomic_int done;         /* tasks of the current job finished */
    atomic_int n_sleeping;
    atomic_int stop;
    kiln_task_fn fn;
    void *ctx;
    int n_tasks;
} kiln_pool_t;

static pthread_mutex_t kiln_pool_job_lock_ = PTHREAD_MUTEX_INITIALIZER;
static kiln_pool_t *kiln_pool_;
static atomic_int kiln_pool_want_;  /* 0: CPUs online */
static atomic_int kiln_pool_size_;  /* threads of the running pool, 0 if none */
static _Thread_local int kiln_pool_in_task_;

static inline void kiln_pool_pause_(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long kiln_pool_now_ns_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

typedef struct {
    kiln_pool_t *p;
    int tid;
} kiln_pool_arg_t;

/*
 * Claims and runs the tasks of job generation g until none is left (or the
 * job has changed). fn, ctx and n are read after the ticket showed g: a
 * successful claim proves g was still running then, so they were g's.
 */
static void kiln_pool_run_(kiln_pool_t *p, uint32_t g, int tid) {
    kiln_task_fn fn = p->fn;
    void *ctx = p->ctx;
    int n = p->n_tasks;
    for (;;) {
        uint64_t cur = atomic_load(&p->ticket);
        if ((uint32_t)(cur >> 32) != g || (int)(uint32_t)cur >= n)
            return;
        if (!atomic_compare_exchange_weak(&p->ticket, &cur, cur + 1))
            continue;
        fn(ctx, (int)(uint32_t)cur, tid);
        atomic_fetch_add(&p->done, 1);
    }
}

static void *kiln_pool_worker_(void *arg) {
    kiln_pool_arg_t a = *(kiln_pool_arg_t *)arg;
    free(arg);
    kiln_pool_t *p = a.p;
    uint32_t seen = 0;
    kiln_pool_in_task_ = 1;
    for (;;) {
        uint32_t g = (uint32_t)(atomic_load(&p->ticket) >> 32);
        if (g == seen) {
            long t0 = kiln_pool_now_ns_();
            for (int i = 1; (g = (uint32_t)(atomic_load(&p->ticket) >> 32)) == seen &&
                            !atomic_load(&p->stop);
                 i++) {
                kiln_pool_pause_();
                if ((i & 255) == 0 && kiln_pool_now_ns_() - t0 > KILN_POOL_SPIN_NS)
                    break;
            }
        }
        if (g == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while ((g = (uint32_t)(atomic_load(&p->ticket) >> 32)) == seen &&
                   !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            break;
        seen = g;
        kiln_pool_run_(p, g, a.tid);
    }
    return NULL;
}

/* Stops and frees the pool; the caller holds the job lock. */
static void kiln_pool_stop_(void) {
    kiln_pool_t *p = kiln_pool_;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    kiln_pool_ = NULL;
    atomic_store(&kiln_pool_size_, 0);
}

static int kiln_pool_size_wanted_(void) {
    int n = atomic_load(&kiln_pool_want_);
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n > KILN_POOL_MAX ? KILN_POOL_MAX : n;
}

/* Starts the pool; the caller holds the job lock. @returns NULL on failure. */
static kiln_pool_t *kiln_pool_start_(void) {
    static int blas_once;
    if (!blas_once) {
        openblas_set_num_threads(1);
        blas_once = 1;
    }
    kiln_pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->n = kiln_pool_size_wanted_();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 1; i < p->n; i++) {
        kiln_pool_arg_t *a = malloc(sizeof(*a));
        if (a) {
            a->p = p;
            a->tid = i;
        }
        if (!a || pthread_create(&p->th[i], NULL, kiln_pool_worker_, a)) {
            free(a);
            p->n = i; /* run with the threads we got */
            break;
        }
    }
    kiln_pool_ = p;
    atomic_store(&kiln_pool_size_, p->n);
    return p;
}

void kiln_parallel_for(int n_tasks, kiln_task_fn fn, void *ctx) {
    if (n_tasks <= 0)
        return;
    if (n_tasks == 1 || kiln_pool_in_task_ || pthread_mutex_trylock(&kiln_pool_job_lock_)) {
        int saved = kiln_pool_in_task_;
        kiln_pool_in_task_ = 1;
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        kiln_pool_in_task_ = saved;
        return;
    }
    kiln_pool_t *p = kiln_pool_ ? kiln_pool_ : kiln_pool_start_();
    if (!p || p->n <= 1) {
        kiln_pool_in_task_ = 1;
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        kiln_pool_in_task_ = 0;
        pthread_mutex_unlock(&kiln_pool_job_lock_);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->done, 0);
    uint32_t g = (uint32_t)(atomic_load(&p->ticket) >> 32) + 1;
    atomic_store(&p->ticket, (uint64_t)g << 32);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    kiln_pool_in_task_ = 1;
    kiln_pool_run_(p, g, 0);
    kiln_pool_in_task_ = 0;
    for (int i = 1; atomic_load(&p->done) < n_tasks; i++) {
        if (i < 2000)
            kiln_pool_pause_();
        else
            sched_yield();
    }
    pthread_mutex_unlock(&kiln_pool_job_lock_);
}

void kiln_kernels_set_threads(int n) {
    if (n <= 0)
        return;
    pthread_mutex_lock(&kiln_pool_job_lock_);
    atomic_store(&kiln_pool_want_, n);
    if (kiln_pool_ && kiln_pool_->n != kiln_pool_size_wanted_())
        kiln_pool_stop_();
    pthread_mutex_unlock(&kiln_pool_job_lock_);
}

/* No lock: ops call this from inside tasks, while a job holds the pool. */
int kiln_kernels_threads(void) {
    int n = atomic_load(&kiln_pool_size_);
    return n > 0 ? n : kiln_pool_size_wanted_();
}

/* ---- per-thread scratch ------------------------------------------------ */

typedef struct {
    float *p[KILN_SCRATCH_SLOTS];
    size_t n[KILN_SCRATCH_SLOTS];
} kiln_scratch_t;

static pthread_key_t kiln_scratch_key_;
static pthread_once_t kiln_scratch_once_ = PTHREAD_ONCE_INIT;

static void kiln_scratch_free_(void *v) {
    kiln_scratch_t *s = v;
    for (int i = 0; i < KILN_SCRATCH_SLOTS; i++)
        free(s->p[i]);
    free(s);
}

static void kiln_scratch_init_(void) { pthread_key_create(&kiln_scratch_key_, kiln_scratch_free_); }

float *kiln_scratch(int slot, size_t n) {
    pthread_once(&kiln_scratch_once_, kiln_scratch_init_);
    kiln_scratch_t *s = pthread_getspecific(kiln_scratch_key_);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || pthread_setspecific(kiln_scratch_key_, s)) {
            free(s);
            return NULL;
        }
    }
    if (slot < 0 || slot >= KILN_SCRATCH_SLOTS)
        return NULL;
    if (s->n[slot] < n) {
        size_t want = n + n / 4 + 64;
        float *p = NULL;
        if (posix_memalign((void **)&p, 64, want * sizeof(float)))
            return NULL;
        free(s->p[slot]);
        s->p[slot] = p;
        s->n[slot] = want;
    }
    return s->p[slot];
}
