#!/usr/bin/env bash
# Starts and stops a local CNCF distribution registry (Debian's
# docker-registry package) for tests and the demo.
#
#   test/registry.sh start DIR PORT   # config, storage, pid and log in DIR; serves 127.0.0.1:PORT
#   test/registry.sh stop DIR
#
# start returns once http://127.0.0.1:PORT/v2/ answers (at most 20 s) and
# fails, printing the registry's log, if it does not. The Go e2e harness
# (test/harness_test.go) writes the same config when it starts its own.
set -euo pipefail

usage() {
	echo "usage: $0 start DIR PORT | stop DIR" >&2
	exit 2
}

alive() {
	[[ -f "$1/registry.pid" ]] && kill -0 "$(cat "$1/registry.pid")" 2>/dev/null
}

start() {
	local dir=$1 port=$2
	[[ "$port" =~ ^[0-9]+$ ]] || usage
	command -v docker-registry >/dev/null || {
		echo "registry.sh: docker-registry not found (apt-get install docker-registry)" >&2
		exit 1
	}
	mkdir -p "$dir/storage"
	dir=$(cd "$dir" && pwd)
	if alive "$dir"; then
		echo "registry.sh: a registry from $dir is already running (pid $(cat "$dir/registry.pid"))" >&2
		exit 1
	fi
	cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: devbox-test-registry
YAML
	# setsid: the registry outlives the shell that started it and is not hit
	# by a Ctrl-C meant for make. It execs in place, so $! is its pid.
	setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
	echo $! >"$dir/registry.pid"
	local i
	for ((i = 0; i < 100; i++)); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
			echo "registry.sh: serving 127.0.0.1:$port from $dir (pid $(cat "$dir/registry.pid"))"
			return 0
		fi
		if ! alive "$dir"; then
			break
		fi
		sleep 0.2
	done
	echo "registry.sh: registry on 127.0.0.1:$port did not answer; its log:" >&2
	cat "$dir/registry.log" >&2
	stop "$dir"
	exit 1
}

stop() {
	local dir=$1 pid i
	[[ -f "$dir/registry.pid" ]] || return 0
	pid=$(cat "$dir/registry.pid")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/registry.pid"
}

case "${1:-}" in
start)
	[[ $# -eq 3 ]] || usage
	start "$2" "$3"
	;;
stop)
	[[ $# -eq 2 ]] || usage
	stop "$2"
	;;
*) usage ;;
esac
