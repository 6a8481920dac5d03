/*
 * program.c — is the main executable a Go program?
 *
 * Every Go executable that loads shared libraries (cgo: the only kind an
 * LD_PRELOAD reaches) exports its runtime's cgo entry points, among them
 * `_cgo_topofstack`, in its dynamic symbol table. The symbol must lie in the
 * main executable itself: a C program that links a Go library (c-shared)
 * makes its own connects through libc. dl_iterate_phdr lists the main
 * executable first; its PT_LOAD segments say whether the address is its.
 */
#include "libc/program.h"

#include <dlfcn.h>
#include <link.h>
#include <stdint.h>

struct lookup {
    uintptr_t addr;
    int in_main;        /* -1: not decided yet */
};

static int in_first_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct lookup *l = arg;
    l->in_main = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && l->addr >= start && l->addr - start < ph->p_memsz)
            l->in_main = 1;
    }
    return 1;           /* the first object only: the main executable */
}

static bool decide(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "_cgo_topofstack");
    if (!sym)
        return false;
    struct lookup l = { .addr = (uintptr_t)sym, .in_main = -1 };
    dl_iterate_phdr(in_first_object, &l);
    return l.in_main == 1;
}

bool program_is_go(void)
{
    /* 0: not decided; 1: no; 2: yes. Racing threads decide alike. */
    static int verdict;
    int v = __atomic_load_n(&verdict, __ATOMIC_RELAXED);
    if (!v) {
        v = decide() ? 2 : 1;
        __atomic_store_n(&verdict, v, __ATOMIC_RELAXED);
    }
    return v == 2;
}
