/*
 * early — a program whose own shared library (libearly.so, built from the
 * same file with -DEARLY_LIB) calls hooked functions from its constructor,
 * which may run before the shim's. Those calls must work (pass through);
 * afterwards main() sees the mesh as usual. Prints "ctor=ok name=VIP".
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef EARLY_LIB
__attribute__((visibility("default"))) int early_result = -1;

__attribute__((constructor)) static void early_ctor(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        return;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
        return;
    int s = accept(l, NULL, NULL);
    struct addrinfo *ai;
    int rc = getaddrinfo("localhost", "80", NULL, &ai);
    if (rc == 0)
        freeaddrinfo(ai);
    int d = dup(c);
    close(d);
    close(s);
    close(c);
    close(l);
    early_result = rc == 0 && s >= 0 ? 0 : 1;
}
#else
extern int early_result;

int main(int argc, char **argv)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    char text[INET_ADDRSTRLEN] = "none";
    if (argc > 1 && getaddrinfo(argv[1], "80", &hints, &ai) == 0) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, text, sizeof(text));
        freeaddrinfo(ai);
    }
    printf("ctor=%s name=%s\n", early_result == 0 ? "ok" : "failed", text);
    return early_result == 0 ? 0 : 1;
}
#endif
