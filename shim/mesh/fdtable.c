/*
 * fdtable.c — the per-descriptor table (see fdtable.h).
 */
#include "mesh/fdtable.h"

#include "libc/jumpguard.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_CHUNKS 1024                 /* 2^20 descriptors: Linux's nr_open default */

/* The first chunk of each is static: a program's socket() or connect()
 * then allocates nothing for its first 1024 descriptors. A signal
 * handler's jump out of an allocation in socket() (legal: socket() is
 * async-signal-safe) left malloc's lock held, and the next one hung. */
static struct conn *chunk0[CHUNK_SLOTS];
static uint8_t kinds0[CHUNK_SLOTS];
static struct conn **chunks[MAX_CHUNKS] = { chunk0 };
static uint8_t *kinds[MAX_CHUNKS] = { kinds0 };     /* enum fd_kind, a byte per descriptor */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static struct conn **slot_of(int fd, bool create)
{
    if (fd < 0 || (unsigned)fd >= MAX_CHUNKS * CHUNK_SLOTS)
        return NULL;
    struct conn ***chunk = &chunks[(unsigned)fd >> CHUNK_BITS];
    struct conn **slots = __atomic_load_n(chunk, __ATOMIC_ACQUIRE);
    if (!slots && create) {
        /* Called under table_lock: no one else creates it meanwhile. */
        slots = calloc(CHUNK_SLOTS, sizeof(*slots));
        if (!slots)
            return NULL;
        __atomic_store_n(chunk, slots, __ATOMIC_RELEASE);
    }
    return slots ? &slots[(unsigned)fd & (CHUNK_SLOTS - 1)] : NULL;
}

/* Lock-free test for the common case: nothing meshed at fd. */
static bool empty(int fd)
{
    struct conn **slot = slot_of(fd, false);
    return !slot || !__atomic_load_n(slot, __ATOMIC_ACQUIRE);
}

void fdtable_set(int fd, struct conn *c)
{
    pthread_mutex_lock(&table_lock);
    struct conn **slot = slot_of(fd, true);
    struct conn *old = NULL;
    if (slot) {
        old = *slot;
        __atomic_store_n(slot, c, __ATOMIC_RELEASE);
        if (c)
            __atomic_store_n(&c->fd_hint, fd, __ATOMIC_RELAXED);
    } else {
        old = c;        /* out of memory or fd out of range: not tracked */
    }
    pthread_mutex_unlock(&table_lock);
    conn_unref(old);
}

struct conn *fdtable_take(int fd)
{
    if (empty(fd))
        return NULL;
    pthread_mutex_lock(&table_lock);
    struct conn **slot = slot_of(fd, false);
    struct conn *c = __atomic_exchange_n(slot, NULL, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&table_lock);
    return c;
}

struct conn *fdtable_get(int fd)
{
    if (empty(fd))
        return NULL;
    pthread_mutex_lock(&table_lock);
    struct conn *c = *slot_of(fd, false);
    if (c)
        conn_ref(c);
    pthread_mutex_unlock(&table_lock);
    return c;
}

static uint8_t *kind_slot(int fd, bool create)
{
    if (fd < 0 || (unsigned)fd >= MAX_CHUNKS * CHUNK_SLOTS)
        return NULL;
    uint8_t **chunk = &kinds[(unsigned)fd >> CHUNK_BITS];
    uint8_t *bytes = __atomic_load_n(chunk, __ATOMIC_ACQUIRE);
    if (!bytes && create) {
        uint8_t *fresh = calloc(CHUNK_SLOTS, 1);
        if (!fresh)
            return NULL;
        uint8_t *none = NULL;
        /* Lock-free: a thread that loses the race frees its chunk. */
        if (__atomic_compare_exchange_n(chunk, &none, fresh, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            bytes = fresh;
        else
            free(fresh), bytes = none;
    }
    return bytes ? &bytes[(unsigned)fd & (CHUNK_SLOTS - 1)] : NULL;
}

/* The kind's byte: the kind, and the dialing mark in its top bit. */
#define KIND_MASK 0x7f
#define DIALING_MARK 0x80

void fdtable_set_kind(int fd, enum fd_kind kind)
{
    uint8_t *k = kind_slot(fd, kind != FD_UNKNOWN);
    if (k)
        __atomic_store_n(k, (uint8_t)kind, __ATOMIC_RELEASE);
}

enum fd_kind fdtable_kind(int fd)
{
    uint8_t *k = kind_slot(fd, false);
    return k ? (enum fd_kind)(__atomic_load_n(k, __ATOMIC_RELAXED) & KIND_MASK) : FD_UNKNOWN;
}

void fdtable_set_dialing(int fd, bool on)
{
    uint8_t *k = kind_slot(fd, on);
    if (!k)
        return;
    if (on)
        __atomic_fetch_or(k, (uint8_t)DIALING_MARK, __ATOMIC_RELEASE);
    else
        __atomic_fetch_and(k, (uint8_t)KIND_MASK, __ATOMIC_RELEASE);
}

bool fdtable_dialing(int fd)
{
    uint8_t *k = kind_slot(fd, false);
    return k && (__atomic_load_n(k, __ATOMIC_ACQUIRE) & DIALING_MARK);
}

void fdtable_each_kind(enum fd_kind kind, void (*fn)(int fd))
{
    for (unsigned c = 0; c < MAX_CHUNKS; c++) {
        uint8_t *bytes = __atomic_load_n(&kinds[c], __ATOMIC_ACQUIRE);
        for (unsigned i = 0; bytes && i < CHUNK_SLOTS; i++)
            if ((__atomic_load_n(&bytes[i], __ATOMIC_RELAXED) & KIND_MASK) == kind)
                fn((int)(c * CHUNK_SLOTS + i));
    }
}

void fdtable_share(int from, int to)
{
    fdtable_set_kind(to, fdtable_kind(from));
    struct conn *c = fdtable_get(from);
    if (c)
        fdtable_set(to, c);
    else
        fdtable_drop(to);
}

void fdtable_drop(int fd)
{
    fdtable_set_kind(fd, FD_UNKNOWN);
    conn_unref(fdtable_take(fd));
}

void fdtable_fresh(int fd, enum fd_kind kind)
{
    struct signals_held held;
    signals_hold(&held);
    fdtable_drop(fd);
    if (kind != FD_UNKNOWN)
        fdtable_set_kind(fd, kind);
    signals_release(&held);
}

void fdtable_drop_range(unsigned first, unsigned last)
{
    unsigned limit = MAX_CHUNKS * CHUNK_SLOTS - 1;
    if (last > limit)
        last = limit;
    for (unsigned fd = first; fd <= last && fd >= first; fd++) {
        /* Skip whole chunks that were never allocated. */
        if (!__atomic_load_n(&chunks[fd >> CHUNK_BITS], __ATOMIC_ACQUIRE) &&
            !__atomic_load_n(&kinds[fd >> CHUNK_BITS], __ATOMIC_ACQUIRE)) {
            fd |= CHUNK_SLOTS - 1;
            continue;
        }
        fdtable_drop((int)fd);
    }
}

void fdtable_each(void (*fn)(int fd, struct conn *c))
{
    for (unsigned chunk = 0; chunk < MAX_CHUNKS; chunk++) {
        if (!__atomic_load_n(&chunks[chunk], __ATOMIC_ACQUIRE))
            continue;
        for (unsigned i = 0; i < CHUNK_SLOTS; i++) {
            int fd = (int)(chunk * CHUNK_SLOTS + i);
            struct conn *c = fdtable_get(fd);
            if (c) {
                fn(fd, c);
                conn_unref(c);
            }
        }
    }
}

int fdtable_find(const struct conn *c)
{
    /* Nearly always the number the application was given: one look, not a
     * walk of the table (a backend's crash resets all its connections). */
    int hint = __atomic_load_n(&c->fd_hint, __ATOMIC_RELAXED);
    struct conn **slot = slot_of(hint, false);
    if (slot && __atomic_load_n(slot, __ATOMIC_RELAXED) == c)
        return hint;
    for (unsigned chunk = 0; chunk < MAX_CHUNKS; chunk++) {
        struct conn **slots = __atomic_load_n(&chunks[chunk], __ATOMIC_ACQUIRE);
        for (unsigned i = 0; slots && i < CHUNK_SLOTS; i++)
            if (__atomic_load_n(&slots[i], __ATOMIC_RELAXED) == c)
                return (int)(chunk * CHUNK_SLOTS + i);
    }
    return -1;
}

void fdtable_forget(struct conn *c)
{
    for (int fd; (fd = fdtable_find(c)) >= 0;) {
        /* Only if the slot still holds c: the application may have closed
         * fd and been given the number again meanwhile. */
        struct conn *was = c;
        pthread_mutex_lock(&table_lock);
        struct conn **slot = slot_of(fd, false);
        bool took = slot && __atomic_compare_exchange_n(slot, &was, NULL, false, __ATOMIC_ACQ_REL,
                                                        __ATOMIC_ACQUIRE);
        pthread_mutex_unlock(&table_lock);
        if (took)
            conn_unref(c);
    }
}

void fdtable_atfork_prepare(void)
{
    pthread_mutex_lock(&table_lock);
}

void fdtable_atfork_parent(void)
{
    pthread_mutex_unlock(&table_lock);
}

void fdtable_atfork_child(void)
{
    pthread_mutex_init(&table_lock, NULL);
}
