/*
 * gaia.c — looks names up with glibc's getaddrinfo_a, all in one call, as
 * vibe.d's and OpenThread's resolvers do, and prints "NAME ADDRESS" (its
 * first answer) or "NAME error TEXT" for each.
 *
 *   gaia MODE NAME...
 *
 * MODE: wait (GAI_WAIT); thread (GAI_NOWAIT, SIGEV_THREAD: its function
 * posts a semaphore); signal (GAI_NOWAIT, SIGEV_SIGNAL: SIGRTMIN, blocked
 * and taken with sigtimedwait); poll (GAI_NOWAIT, SIGEV_NONE: gai_suspend
 * until no request is in progress). A notification that does not come in
 * 10 s is an error (exit 2).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sem_t done;

static void notified(union sigval v)
{
    (void)v;
    sem_post(&done);
}

static int wait_notice(const char *mode)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    if (strcmp(mode, "thread") == 0) {
        while (sem_timedwait(&done, &deadline) != 0)
            if (errno != EINTR)
                return -1;
    } else if (strcmp(mode, "signal") == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGRTMIN);
        struct timespec ten = { 10, 0 };
        if (sigtimedwait(&set, NULL, &ten) != SIGRTMIN)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gaia wait|thread|signal|poll NAME...\n");
        return 64;
    }
    const char *mode = argv[1];
    int n = argc - 2;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct gaicb *reqs = calloc((size_t)n, sizeof(*reqs));
    struct gaicb **list = calloc((size_t)n, sizeof(*list));
    if (!reqs || !list)
        return 1;
    for (int i = 0; i < n; i++) {
        reqs[i] = (struct gaicb){ .ar_name = argv[i + 2], .ar_service = "80", .ar_request = &hints };
        list[i] = &reqs[i];
    }
    sem_init(&done, 0, 0);
    sigset_t rt;
    sigemptyset(&rt);
    sigaddset(&rt, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &rt, NULL);
    struct sigevent sev = { .sigev_notify = SIGEV_NONE };
    if (strcmp(mode, "thread") == 0) {
        sev.sigev_notify = SIGEV_THREAD;
        sev.sigev_notify_function = notified;
    } else if (strcmp(mode, "signal") == 0) {
        sev.sigev_notify = SIGEV_SIGNAL;
        sev.sigev_signo = SIGRTMIN;
    }
    int wait = strcmp(mode, "wait") == 0;
    int rc = getaddrinfo_a(wait ? GAI_WAIT : GAI_NOWAIT, list, n, wait ? NULL : &sev);
    if (rc) {
        printf("getaddrinfo_a: %s\n", gai_strerror(rc));
        return 1;
    }
    if (!wait && wait_notice(mode) != 0) {
        printf("no notification in 10 s\n");
        return 2;
    }
    for (int i = 0; i < n; i++) {       /* poll; for the others, all are done */
        const struct gaicb *one[] = { list[i] };
        struct timespec ten = { 10, 0 };
        if (gai_error(list[i]) == EAI_INPROGRESS && gai_suspend(one, 1, &ten) != 0) {
            printf("%s still in progress after 10 s\n", argv[i + 2]);
            return 2;
        }
    }
    for (int i = 0; i < n; i++) {
        int e = gai_error(list[i]);
        char text[INET6_ADDRSTRLEN] = "?";
        if (e) {
            printf("%s error %s\n", argv[i + 2], gai_strerror(e));
            continue;
        }
        const struct sockaddr *sa = list[i]->ar_result->ai_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, text, sizeof(text));
        else
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, text, sizeof(text));
        printf("%s %s\n", argv[i + 2], text);
        freeaddrinfo(list[i]->ar_result);
    }
    return 0;
}
