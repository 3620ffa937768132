# Shared by up, down and demo (sourced, not run).
#
# DIR/pids holds one line per process we started: "<name> <pid> <start time>". The start time
# (field 22 of /proc/<pid>/stat) tells our process apart from a later one that reused its PID,
# so that `down` never signals a stranger.

proc_stat_tail() { # PID: the fields after the command name (which may itself contain spaces)
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  echo "${stat##*) }"
}

proc_start_time() { # PID
  local fields
  fields="$(proc_stat_tail "$1")" || return 1
  # shellcheck disable=SC2086
  set -- $fields
  echo "${20}"
}

# True while the recorded process runs; a zombie counts as gone (PID 1 may not reap orphans).
recorded_alive() { # PID START
  local fields
  fields="$(proc_stat_tail "$1")" || return 1
  # shellcheck disable=SC2086
  set -- $fields "$2"
  [ "$1" != Z ] && [ "${20}" = "${!#}" ]
}

record_pid() { # DIR NAME PID
  local start
  if ! start="$(proc_start_time "$3")"; then
    log_tail "$1" "$2"
    echo "$2 (pid $3) exited at once" >&2
    return 1
  fi
  echo "$2 $3 $start" >>"$1/pids"
}

# Names of recorded processes that are no longer running.
recorded_dead() { # DIR
  local name pid start
  [ -f "$1/pids" ] || return 0
  while read -r name pid start; do
    recorded_alive "$pid" "$start" || echo "$name"
  done <"$1/pids"
}

# Stops every live process recorded in DIR/pids, newest first, each with SIGTERM and, after 10 s,
# SIGKILL. One at a time: the API server needs etcd while it shuts down, and whatever talks to the
# API server should go before it. Only these PIDs are signalled, never a process found by name.
stop_recorded() { # DIR
  local dir=$1 name pid start line
  local -a lines
  [ -f "$dir/pids" ] || return 0
  mapfile -t lines < <(tac "$dir/pids")
  for line in "${lines[@]}"; do
    read -r name pid start <<<"$line"
    recorded_alive "$pid" "$start" || continue
    kill -TERM "$pid" 2>/dev/null || true
    await_exit "$pid" "$start" 100 && continue
    echo "down: $name ($pid) still running 10 s after SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    await_exit "$pid" "$start" 50 && continue
    echo "down: $name ($pid) survived SIGKILL (uninterruptible?); leaving $dir/pids in place" >&2
    return 1
  done
  mv "$dir/pids" "$dir/pids.stopped"
}

await_exit() { # PID START TENTHS_OF_A_SECOND
  local i
  for ((i = 0; i < $3; i++)); do
    recorded_alive "$1" "$2" || return 0
    sleep 0.1
  done
  ! recorded_alive "$1" "$2"
}

# Asks the kernel for N distinct free loopback ports (all bound at once, then released).
free_ports() { # N
  perl -MIO::Socket::INET -e '
    my @s = map { IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp", Listen => 1)
                  or die "cannot bind a loopback port: $!\n" } 1 .. $ARGV[0];
    print join(" ", map { $_->sockport } @s), "\n"' "$1"
}

# Exits with the log tails as soon as a recorded process has died (the caller's EXIT trap cleans up).
check_components() { # DIR
  local dead name
  dead="$(recorded_dead "$1")"
  [ -z "$dead" ] && return 0
  for name in $dead; do log_tail "$1" "$name"; done
  echo "$(basename "$0"): $(echo "$dead" | paste -sd' ') exited; logs are in $1" >&2
  exit 1
}

# Re-checks COMMAND every 0.1 s until it succeeds, failing early when a component dies.
wait_until() { # DIR WHAT SECONDS COMMAND...
  local dir=$1 what=$2 ticks=$(($3 * 10)) i=0
  shift 3
  until "$@" >/dev/null 2>&1; do
    check_components "$dir"
    if ((++i >= ticks)); then
      echo "$(basename "$0"): gave up after $((ticks / 10)) s waiting for $what" >&2
      exit 1
    fi
    sleep 0.1
  done
}

log_tail() { # DIR NAME
  echo "----- last lines of $1/$2.log -----" >&2
  tail -n 40 "$1/$2.log" >&2 2>/dev/null || true
  echo "-----" >&2
}
