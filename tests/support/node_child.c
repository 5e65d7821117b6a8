/* node_child.c: see node_child.h. Test-only code, included by kinesis_server.c and
 * fault_proxy.c. */
#ifndef WEIR_TEST_NODE_CHILD_C
#define WEIR_TEST_NODE_CHILD_C

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node_child.h"

#define WEIR_TEST_NODE_STOP_GRACE_MS 5000

int64_t weir_test_node_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void weir_test_node_stop(pid_t *pid, int *stdin_fd) {
  int status;

  if (*stdin_fd >= 0) {
    close(*stdin_fd);
    *stdin_fd = -1;
  }
  if (*pid > 0) {
    int64_t deadline = weir_test_node_now_ms() + WEIR_TEST_NODE_STOP_GRACE_MS;

    kill(*pid, SIGTERM);
    while (waitpid(*pid, &status, WNOHANG) == 0) {
      if (weir_test_node_now_ms() > deadline) {
        kill(*pid, SIGKILL);
        waitpid(*pid, &status, 0);
        break;
      }
      usleep(20000);
    }
    *pid = 0;
  }
}

int weir_test_node_start(pid_t *pid, int *stdin_fd, const char *cwd_or_NULL,
                         const char *const argv[], int64_t timeout_ms, char *line, size_t cap,
                         const char *what, char *why, size_t why_cap) {
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
  size_t len = 0;
  int64_t deadline;

  *pid = 0;
  *stdin_fd = -1;
  if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0) {
    snprintf(why, why_cap, "pipe: %s", strerror(errno));
    goto fail;
  }
  *pid = fork();
  if (*pid < 0) {
    snprintf(why, why_cap, "fork: %s", strerror(errno));
    *pid = 0;
    goto fail;
  }
  if (*pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    close(in_pipe[0]);
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(out_pipe[1]);
    if (cwd_or_NULL != NULL && chdir(cwd_or_NULL) != 0)
      _exit(127);
    unsetenv("LD_PRELOAD");
    execvp("node", (char *const *)argv);
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  in_pipe[0] = out_pipe[1] = -1;
  *stdin_fd = in_pipe[1];
  in_pipe[1] = -1;
  fcntl(*stdin_fd, F_SETFD, FD_CLOEXEC);

  deadline = weir_test_node_now_ms() + timeout_ms;
  while (len == 0 || line[len - 1] != '\n') {
    struct pollfd pfd = {out_pipe[0], POLLIN, 0};
    int64_t left = deadline - weir_test_node_now_ms();
    ssize_t n;

    if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
      snprintf(why, why_cap, "%s did not report its port within %lld ms", what,
               (long long)timeout_ms);
      goto fail;
    }
    n = read(out_pipe[0], line + len, cap - 1 - len);
    if (n <= 0) {
      snprintf(why, why_cap, "%s exited before it was ready (see its stderr above)", what);
      goto fail;
    }
    len += (size_t)n;
    if (len >= cap - 1) {
      snprintf(why, why_cap, "%s printed an overlong line", what);
      goto fail;
    }
  }
  line[len] = '\0';
  close(out_pipe[0]);
  return 0;

fail:
  for (int i = 0; i < 2; i++) {
    if (in_pipe[i] >= 0)
      close(in_pipe[i]);
    if (out_pipe[i] >= 0)
      close(out_pipe[i]);
  }
  weir_test_node_stop(pid, stdin_fd);
  return -1;
}

#endif /* WEIR_TEST_NODE_CHILD_C */
