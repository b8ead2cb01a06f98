/*
 * The pod sandbox's "pause" process for the test cluster (harness/cluster.ts):
 * holds the pod's namespaces open, reaps zombies, exits on SIGINT/SIGTERM.
 * Built static (gcc -static) and packed as an image by test/tools/build-image.sh,
 * because no registry is reachable to pull Kubernetes' own.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  signal(SIGINT, quit);
  signal(SIGTERM, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
