# Functions localstack/up, localstack/restart and localstack/down share. Needs STACK_DIR.

# The variables the stack's processes are given, with their values when `start` runs (and any
# BRONZE_* setting): nothing else of the caller's environment is written under STACK_DIR or
# passed on.
STACK_VARIABLES=(
  PATH HOME USER LANG LC_ALL TZ TMPDIR RUST_LOG RUST_BACKTRACE
  AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION
  AWS_ENDPOINT_URL AWS_ENDPOINT AWS_ALLOW_HTTP AWS_CA_BUNDLE SSL_CERT_FILE
  AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
  LAKE_URI LAKE_TIMEOUT_SECONDS FUNNEL_STEPS VACUUM_RETENTION_HOURS
  KAFKA_BROKERS KAFKA_TOPIC LAMBDA_ENDPOINT
  INVOKE_TIMEOUT_SECONDS SCHEDULE_SPEEDUP ASYNC_RETRY_DELAY_MS BRIDGE_POLL_MS
)

# process_started PID: when process PID started (clock ticks after boot, /proc/PID/stat's 22nd
# field); nothing when there is no such process.
process_started() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  # The fields after the command name, which may hold spaces: the start time is the 20th.
  echo "${stat##*) }" | awk '{ print $20 }'
}

# is_stack_process NAME PID: true when PID is still the process `start` recorded for NAME (and
# not a later one that reused its PID).
is_stack_process() {
  local started="$STACK_DIR/pids/$1.started"
  [ -f "$started" ] && [ -n "$(process_started "$2")" ] &&
    [ "$(process_started "$2")" = "$(cat "$started")" ]
}

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

# start NAME [--port PORT] [--supervised] COMMAND...: saves COMMAND with the STACK_VARIABLES as
# STACK_DIR/cmd/NAME (so localstack/restart can start it again the same way) and runs it in the
# background with those variables only, appending to logs/NAME.log; with --port, waits for PORT
# to open. --supervised starts
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
    local variable
    # (compgen fails when nothing matches: `|| true`, or up's ERR trap would fire in the subshell.)
    for variable in "${STACK_VARIABLES[@]}" $(compgen -v BRONZE_ || true); do
      [ -z "${!variable+set}" ] || printf 'export %s=%q\n' "$variable" "${!variable}"
    done
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

# run_saved NAME: runs STACK_DIR/cmd/NAME in the background as start does, recording its PID and
# start time (pids/NAME.pid, pids/NAME.started).
run_saved() {
  local name="$1"
  env -i bash "$STACK_DIR/cmd/$name" >>"$STACK_DIR/logs/$name.log" 2>&1 &
  echo $! >"$STACK_DIR/pids/$name.pid"
  process_started $! >"$STACK_DIR/pids/$name.started"
  if [ -f "$STACK_DIR/cmd/$name.port" ]; then
    wait_for_port "$name" "$(cat "$STACK_DIR/cmd/$name.port")" "$!"
  fi
}
