/* SIMULATION SHIM of the pod runner: gives a pod's processes a network address of their own.
 *
 * On a node every pod has its own network namespace, so two pods may both listen on 0.0.0.0:8080.
 * Here pods share the host's loopback, so this LD_PRELOAD library turns a bind to the wildcard
 * address (0.0.0.0, or :: on a dual-stack socket) into a bind to the pod's own 127.x address
 * ($MLWORKLOADS_POD_IP). A connection from an unbound socket to another pod's address leaves
 * from the pod's address too (a node's pod would have no other): peers that learn a worker's
 * address from the connection it made (XGBoost's tracker does) reach it there. A connection to
 * 127.0.0.1, the pod's own localhost, goes to the pod's address when this process moved a
 * wildcard bind of that port there (in a pod, 0.0.0.0 includes its localhost: XGBoost's worker
 * signals its own error socket that way); any other goes to 127.0.0.1 as asked.
 * Limits: it acts on programs linked against libc (Python, torch, sh);
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
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

/* The ports (network order) of the wildcard binds this process moved to the pod's address. */
#define MAX_MOVED_PORTS 1024
static unsigned short moved_ports[MAX_MOVED_PORTS];
static int moved_count;

static void remember_port(int fd) {
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) return;
    unsigned short port = bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port;
    int slot = __sync_fetch_and_add(&moved_count, 1);
    if (slot < MAX_MOVED_PORTS) moved_ports[slot] = port;
}

static int was_moved(unsigned short port) {
    int count = moved_count < MAX_MOVED_PORTS ? moved_count : MAX_MOVED_PORTS;
    for (int i = 0; i < count; i++)
        if (moved_ports[i] == port) return 1;
    return 0;
}

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
            int result = real_bind(fd, (struct sockaddr *)&a, sizeof a);
            if (result == 0) remember_port(fd);
            return result;
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
            int result = real_bind(fd, (struct sockaddr *)&a, sizeof a);
            if (result == 0) remember_port(fd);
            return result;
        }
    }
    return real_bind(fd, addr, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static connect_fn real_connect;
    if (!real_connect) real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    const char *pod_ip = getenv("MLWORKLOADS_POD_IP");
    struct in_addr ip;
    if (pod_ip && addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in) &&
        inet_pton(AF_INET, pod_ip, &ip) == 1) {
        struct sockaddr_in to, self;
        socklen_t self_len = sizeof self;
        memcpy(&to, addr, sizeof to);
        if (to.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && was_moved(to.sin_port)) {
            to.sin_addr = ip;
            return real_connect(fd, (struct sockaddr *)&to, sizeof to);
        }
        int in_pod_network = (ntohl(to.sin_addr.s_addr) >> 24) == 127 && to.sin_addr.s_addr != htonl(INADDR_LOOPBACK);
        int unbound = getsockname(fd, (struct sockaddr *)&self, &self_len) == 0 && self.sin_family == AF_INET &&
                      self.sin_port == 0 && self.sin_addr.s_addr == htonl(INADDR_ANY);
        if (in_pod_network && unbound) {
            struct sockaddr_in source = {.sin_family = AF_INET, .sin_port = 0, .sin_addr = ip};
            bind(fd, (struct sockaddr *)&source, sizeof source); /* if it fails, the kernel picks as before */
        }
    }
    return real_connect(fd, addr, len);
}
