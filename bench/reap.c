/*
 * reap: runs a command and waits for every process it leaves behind, as their
 * subreaper, then exits with the command's status. bench/compare runs the
 * warm starts' peak-RSS samples under it, inside GNU time: time's %M is the
 * largest process that the process it runs waited for, and a tool whose pid 1
 * outlives its front end (devbox's front exits once it has the command's
 * status, while its Go pid 1 exits) would otherwise leave that pid 1 out.
 *
 * usage: reap COMMAND [ARG]...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2) {
		fputs("usage: reap COMMAND [ARG]...\n", stderr);
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		perror("reap: prctl");
		return 125;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("reap: fork");
		return 125;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		perror("reap: exec");
		_exit(127);
	}
	int status = 0, ws;
	pid_t got;
	while ((got = wait(&ws)) != -1 || errno == EINTR) {
		if (got == pid)
			status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	}
	return status;
}
