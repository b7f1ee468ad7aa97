/*
 * The pod sandbox's process for hack/node.sh's offline pause image: holds
 * the pod's namespaces open, reaps the zombies it inherits as PID 1, and
 * exits at once on SIGTERM or SIGINT so a pod stops without waiting out its
 * grace period. Built statically (the image has nothing else in it).
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  sigaction(SIGTERM, &stop, 0);
  sigaction(SIGINT, &stop, 0);
  sigaction(SIGCHLD, &child, 0);
  for (;;) {
    pause();
  }
}
