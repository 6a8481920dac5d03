/*
 * tests/uml/xstate.c: lets Debian's user-mode Linux 6.1 boot on hosts whose
 * CPUs have more register state than that kernel knows (AMX, AVX-512).
 *
 * Loaded with LD_PRELOAD into linux.uml only, never into anything meshim
 * ships. UML runs each guest process as a host process under ptrace and
 * restores its floating-point state with PTRACE_SETREGSET(NT_X86_XSTATE)
 * from a buffer of the size it was built with. Since Linux 5.16 the host
 * accepts only a whole XSAVE area of the CPU's full size and answers a
 * shorter one with EFAULT; UML then panics at the first guest process
 * ("ptrace set fp regs failed, errno = 14"). Later UML kernels size the
 * buffer at run time; this one does not.
 *
 * The fix: when that call fails with EFAULT, read the tracee's whole area,
 * lay UML's bytes over the part UML knows, keep the components beyond it as
 * the tracee has them (no guest process ever set them through UML), and
 * write back the whole area. Any other request is passed through unchanged.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#define XSAVE_HEADER 512            /* xstate_bv is the header's first word */
#define XSAVE_MAX_COMPONENTS 19
#define XSAVE_AREA_MAX (64 * 1024)

typedef long ptrace_fn(int, pid_t, void *, void *);

static ptrace_fn *real_ptrace(void)
{
    static ptrace_fn *fn;

    if (fn == NULL)
        fn = (ptrace_fn *)dlsym(RTLD_NEXT, "ptrace");
    return fn;
}

/* The XSAVE components (bit i of xstate_bv) that lie wholly inside the
 * first `len` bytes of the standard-format area. */
static uint64_t components_within(size_t len)
{
    uint64_t mask = 3;              /* x87 and SSE: the legacy region */
    unsigned a, b, c, d;

    for (unsigned i = 2; i < XSAVE_MAX_COMPONENTS; i++) {
        if (!__get_cpuid_count(0xd, i, &a, &b, &c, &d) || a == 0)
            continue;
        if ((size_t)b + a <= len)   /* a = size, b = offset */
            mask |= 1ULL << i;
    }
    return mask;
}

/* The full area's size, learnt from the host on the first failure (the
 * host trims iov_len to it on a read), and a buffer of that size per
 * thread: this runs on every return of a guest process to user space. */
static size_t whole_size;
static __thread unsigned char *whole_area;

static long set_whole_area(pid_t pid, const struct iovec *uml)
{
    if (whole_area == NULL && (whole_area = malloc(XSAVE_AREA_MAX)) == NULL)
        return -1;
    struct iovec whole = { whole_area, XSAVE_AREA_MAX };
    if (real_ptrace()(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &whole) != 0 ||
        whole.iov_len <= uml->iov_len)
        return -1;
    whole_size = whole.iov_len;

    static uint64_t ours;
    if (ours == 0)
        ours = components_within(uml->iov_len);
    uint64_t bv_uml, bv_cur;
    memcpy(&bv_cur, whole_area + XSAVE_HEADER, sizeof bv_cur);
    memcpy(whole_area, uml->iov_base, uml->iov_len);
    memcpy(&bv_uml, whole_area + XSAVE_HEADER, sizeof bv_uml);
    bv_uml = (bv_uml & ours) | (bv_cur & ~ours);
    memcpy(whole_area + XSAVE_HEADER, &bv_uml, sizeof bv_uml);
    return real_ptrace()(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
}

long ptrace(enum __ptrace_request request, ...)
{
    va_list ap;
    va_start(ap, request);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);

    int set_xstate = request == PTRACE_SETREGSET && (uintptr_t)addr == NT_X86_XSTATE &&
                     data != NULL && ((const struct iovec *)data)->iov_len > XSAVE_HEADER + 8;
    /* Known too short: straight to the whole area, no failing call first. */
    if (set_xstate && whole_size > ((const struct iovec *)data)->iov_len)
        return set_whole_area(pid, data) == 0 ? 0 : (errno = EFAULT, -1);
    long r = real_ptrace()(request, pid, addr, data);
    if (r < 0 && errno == EFAULT && set_xstate) {
        if (set_whole_area(pid, data) == 0)
            return 0;
        errno = EFAULT;
    }
    return r;
}
