/*
 * sigdefer.h — the program's signal handlers, entered in the kernel through
 * the shim's trampoline, so that they wait while the shim works in the
 * thread (jumpguard.h, signals_hold).
 *
 * What the program sets with sigaction() or signal() is kept here and is
 * what it reads back; the kernel holds the trampoline with the program's
 * flags (and SA_SIGINFO) and mask. SIG_DFL and SIG_IGN go to the kernel as
 * they are. The trampoline runs the program's handler at once, unless the
 * thread is in a section of the shim's and not in one of its waits: then
 * the signal is queued again to the thread with its siginfo
 * (rt_tgsigqueueinfo), every asynchronous signal is blocked as the
 * trampoline returns (the mask in its ucontext, which sigreturn puts in
 * force), and the section's end lets them in (signals_let_in): the kernel
 * delivers it again, to the program's handler, with the program's mask,
 * flags and context.
 *
 * Not deferred: the faults a thread raises itself (signal_is_synchronous),
 * and handlers set without these calls (a raw rt_sigaction, glibc's own
 * sigset(), bsd_signal(), sysv_signal()): those run at once, as without
 * the shim.
 */
#ifndef MESHIM_LIBC_SIGDEFER_H
#define MESHIM_LIBC_SIGDEFER_H

#include <signal.h>

/* sigaction() and signal() as the program calls them. */
int sigdefer_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
sighandler_t sigdefer_signal(int sig, sighandler_t handler);

/* A fork's child: the lock is new (a parent's thread may have held it). */
void sigdefer_atfork_child(void);

#endif
