/*
 * sigdefer.h — the program's signal handlers, entered in the kernel through
 * the shim's trampoline, so that they wait while the shim works in the
 * thread (jumpguard.h, signals_hold).
 *
 * What the program sets with sigaction(), signal() and their kin is kept
 * here and is what it reads back; the kernel holds the trampoline with the
 * program's flags (and SA_SIGINFO) and mask. SIG_DFL and SIG_IGN go to the
 * kernel as they are. The trampoline runs the program's handler at once,
 * unless the thread is in a section of the shim's and not in one of its
 * waits: then the signal is queued again to the thread with its siginfo
 * (rt_tgsigqueueinfo), stays blocked from the trampoline's return (the
 * mask in its ucontext, which sigreturn puts in force), and the section's
 * end unblocks it (signals_let_in): the kernel delivers it again, to the
 * program's handler, with the program's mask, flags and context.
 *
 * Not deferred: the faults a thread raises itself (signal_is_synchronous),
 * and handlers set without these calls (a raw rt_sigaction system call):
 * those run at once, as without the shim.
 */
#ifndef MESHIM_LIBC_SIGDEFER_H
#define MESHIM_LIBC_SIGDEFER_H

#include <pthread.h>
#include <signal.h>

/* sigaction() as the program calls it. */
int sigdefer_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

/* signal(), bsd_signal(), sysv_signal() and sigset() as glibc's, over the
 * program's sigaction `set` (the hook's: termsig's for the signals it
 * covers, else the one above). */
typedef int (*sigaction_fn)(int sig, const struct sigaction *act, struct sigaction *old);
sighandler_t sigdefer_signal(sigaction_fn set, int sig, sighandler_t handler);
sighandler_t sigdefer_sysv_signal(sigaction_fn set, int sig, sighandler_t handler);
sighandler_t sigdefer_sigset(sigaction_fn set, int sig, sighandler_t disp);
/* siginterrupt(): SA_RESTART off (interrupt) or on for the handler sig has,
 * and remembered, as glibc's: a signal() or bsd_signal() of sig after it
 * sets no SA_RESTART. */
int sigdefer_siginterrupt(sigaction_fn set, int sig, int interrupt);

/* A lock the program's calls take (this module's, termsig's): taken with
 * every signal blocked in the thread, since a handler that made the same
 * call on a thread holding it would wait for it forever. */
void lock_signals_blocked(pthread_mutex_t *lock, sigset_t *saved);
void unlock_signals_blocked(pthread_mutex_t *lock, const sigset_t *saved);

/* A fork's child: the lock is new (a parent's thread may have held it). */
void sigdefer_atfork_child(void);

#endif
