/* SIMULATION SHIM of the pod runner: gives a pod's processes a network address of their own.
 *
 * On a node every pod has its own network namespace, so two pods may both listen on 0.0.0.0:8080.
 * Here pods share the host's loopback, so this LD_PRELOAD library turns a bind to the wildcard
 * address (0.0.0.0, or :: on a dual-stack socket) into a bind to the pod's own 127.x address
 * ($MLWORKLOADS_POD_IP). Limits: it acts on programs linked against libc (Python, torch, sh);
 * Go programs make the system call themselves, so the pod runner's image table passes them
 * their bind addresses as flags instead.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    const char *pod_ip = getenv("MLWORKLOADS_POD_IP");
    struct in_addr ip;
    if (!pod_ip || !addr || inet_pton(AF_INET, pod_ip, &ip) != 1) return real_bind(fd, addr, len);

    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
            a.sin_addr = ip;
            return real_bind(fd, (struct sockaddr *)&a, sizeof a);
        }
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
            /* The pod's IPv4 address as a v4-mapped IPv6 one: the socket keeps its family. */
            int off = 0;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
            memset(&a.sin6_addr, 0, sizeof a.sin6_addr);
            a.sin6_addr.s6_addr[10] = 0xff;
            a.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&a.sin6_addr.s6_addr[12], &ip, 4);
            return real_bind(fd, (struct sockaddr *)&a, sizeof a);
        }
    }
    return real_bind(fd, addr, len);
}
