/* The sandbox's placeholder process: waits for SIGTERM/SIGINT and, as the
 * init of the pod's PID namespace, reaps whatever exits under it. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    if (sigaction(SIGTERM, &sa, 0) != 0 || sigaction(SIGINT, &sa, 0) != 0) return 1;
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, 0) != 0) return 2;
    for (;;) pause();
}
