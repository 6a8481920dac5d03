/*
 * termsig.h — a signal that would end the process by its default action
 * (SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2: those that
 * end it without a core dump) lets the relays send what the application
 * wrote before the process ends, as the kernel sends what sits in a TCP
 * socket's buffer when a process is killed.
 *
 * Without it, bytes a program wrote on a relayed (mTLS) connection just
 * before `kill` were lost with the process, and its peer saw the stream end
 * cleanly, short. Kubernetes, systemd and docker stop all end a program with
 * SIGTERM, and many programs leave SIGTERM at its default.
 *
 * Armed when the first relay starts, and only for those signals the program
 * has left at SIG_DFL. The program's own sigaction() and signal() calls on
 * them still decide: a handler or SIG_IGN it sets replaces the shim's, and
 * what it reads back is what it set (SIG_DFL where the shim's handler is).
 * The handler flushes (relay_exit: bounded, async-signal-safe), puts SIG_DFL
 * back and raises the signal again, so the process ends by that signal.
 * A raise() that ends the process at SIG_DFL flushes too: that is how a
 * program's own one-shot handler (SA_RESETHAND: node's) ends it.
 */
#ifndef MESHIM_TERMSIG_H
#define MESHIM_TERMSIG_H

#include <signal.h>
#include <stdbool.h>

/* Is sig one of the signals the shim may take over (those above)? */
bool termsig_covers(int sig);

/* True once armed: from then on the program's sigaction() and signal()
 * calls on covered signals go through termsig_sigaction. */
bool termsig_armed(void);

/* A relay or an HTTP proxy starts: install the handler on each covered
 * signal still at SIG_DFL. */
void termsig_arm(void);

/* The program's sigaction() and signal() on a covered signal, once armed. */
int termsig_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

/* The program's raise() of a covered signal, once armed: when it ends the
 * process (SIG_DFL, not blocked), the relays flush first. */
void termsig_before_raise(int sig);

/* The child of fork: the lock may have been held by another thread. */
void termsig_atfork_child(void);

#endif
