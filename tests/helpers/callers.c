/*
 * callers — a small program whose connect() is made by a function of its
 * own, fetch_orders(), called from main(): the access log's caller stack
 * (access_log_callers = on) must name both, fetch_orders first.
 *
 *   callers SERVICE PORT    connects once, sends a line, reads the answer
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static int fetch_orders(const char *service, const char *port)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(service, port, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype, 0);
    int rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc < 0) {
        perror("connect");
        return -1;
    }
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    char buf[4096];
    if (write(fd, req, sizeof(req) - 1) < 0)
        return -1;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    close(fd);
    __asm__ volatile("" ::: "memory");      /* not a tail call: keep the frame */
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: callers SERVICE PORT\n");
        return 2;
    }
    int rc = fetch_orders(argv[1], argv[2]);
    return rc == 0 ? 0 : 1;
}
