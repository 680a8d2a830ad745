# Functions localstack/up and localstack/restart share. Needs STACK_DIR.

# wait_for_port NAME PORT PID: waits until PORT accepts connections; fails if PID exits first or
# after 30 s.
wait_for_port() {
  local name="$1" port="$2" pid="$3"
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited; see $STACK_DIR/logs/$name.log" >&2
      tail -n 20 "$STACK_DIR/logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  echo "$name did not open port $port within 30 s; see $STACK_DIR/logs/$name.log" >&2
  return 1
}

# start NAME [--port PORT] [--supervised] COMMAND...: saves COMMAND with the current environment
# as STACK_DIR/cmd/NAME (so localstack/restart can start it again the same way) and runs it in the
# background, appending to logs/NAME.log; with --port, waits for PORT to open. --supervised starts
# it again whenever it exits, as Lambda starts a new execution environment after one dies: the
# supervisor's PID goes in pids/NAME.pid, the process's in pids/NAME.process.
start() {
  local name="$1" port="" supervised=""
  shift
  while [ "${1:-}" = --port ] || [ "${1:-}" = --supervised ]; do
    case "$1" in
      --port) port="$2"; shift 2 ;;
      --supervised) supervised=1; shift ;;
    esac
  done
  mkdir -p "$STACK_DIR/cmd"
  {
    export -p
    printf 'cd %q\n' "$PWD"
    printf 'exec'
    if [ -n "$supervised" ]; then
      printf ' %q' "$PWD/localstack/supervise" "$STACK_DIR/pids/$name.process"
    fi
    printf ' %q' "$@"
    echo
  } >"$STACK_DIR/cmd/$name"
  [ -z "$port" ] || echo "$port" >"$STACK_DIR/cmd/$name.port"
  run_saved "$name"
}

# run_saved NAME: runs STACK_DIR/cmd/NAME in the background as start does.
run_saved() {
  local name="$1"
  bash "$STACK_DIR/cmd/$name" >>"$STACK_DIR/logs/$name.log" 2>&1 &
  echo $! >"$STACK_DIR/pids/$name.pid"
  if [ -f "$STACK_DIR/cmd/$name.port" ]; then
    wait_for_port "$name" "$(cat "$STACK_DIR/cmd/$name.port")" "$!"
  fi
}
