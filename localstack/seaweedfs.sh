# SeaweedFS, the local stack's default lake store (localstack/up). Needs STACK_DIR, S3_PORT,
# KAFKA_PORT, LAMBDA_PORT, AWS_API_PORT, BUCKET, WEED and localstack/lib.sh.

# SeaweedFS's parts find each other's gRPC port as the HTTP port + 10000 in places, so each part
# gets a free port below 55536 whose + 10000 is free too, and that as its gRPC port. A port from the
# whole ephemeral range (up to 60999) made a part dial an invalid port and the volume server never
# register: the stack failed to start. All of them, and the S3 gateway's gRPC port, are picked at
# once, distinct from each other and from the stack's other ports: a gRPC port picked on its own
# from the ephemeral range once equalled the filer's, and the gateway died at start.
weed_ports() {
  python3 - "$S3_PORT" "$KAFKA_PORT" "$LAMBDA_PORT" "$AWS_API_PORT" <<'PY'
import random, socket, sys
taken = {int(p) for p in sys.argv[1:]}
def free(ports):
    if taken & set(ports):
        return False
    held = []
    try:
        for p in ports:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in held:
            s.close()
args = []
for part in ("master", "volume", "filer"):
    while not free((port := random.randint(20000, 45000), port + 10000)):
        pass
    taken |= {port, port + 10000}
    args += [f"-{part}.port={port}", f"-{part}.port.grpc={port + 10000}"]
while not free((port := random.randint(20000, 45000),)):
    pass
args.append(f"-s3.port.grpc={port}")
taken.add(port)
while not free((port := random.randint(20000, 45000),)):
    pass
args.append(f"-metricsPort={port}")
print(" ".join(args))
PY
}

# start_seaweedfs: starts the store with the lake bucket, and returns once it takes writes. Its
# Prometheus metrics (requests by type: what `clickstream bench cost` counts) are served at
# S3_METRICS_URL.
start_seaweedfs() {
  read -r -a weed_ports <<<"$(weed_ports)"
  S3_METRICS_URL="http://127.0.0.1:${weed_ports[-1]#-metricsPort=}/metrics"
  # SeaweedFS as one process: master, volume server, filer and S3 gateway (`weed server`). Not
  # `weed mini`: it holds 1% of the disk back from writes and has no flag to change that, so on a
  # 250 GB disk with 2.5 GiB free its volume server took no writes and every PUT hung (CI,
  # 2026-12-01). Here the volume server holds back 256 MiB, volumes are at most 64 MiB (sparse
  # files, so a few slots cost nothing), and there is a fixed number of them.
  start s3 --port "$S3_PORT" "$WEED" -logdir="$STACK_DIR/data/weed-logs" server -dir="$STACK_DIR/data/s3" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.peers=none -master.telemetry=false -filer -s3 \
    "${weed_ports[@]}" -s3.port="$S3_PORT" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.volumeSizeLimitMB=64 -volume.max=64 -volume.minFreeSpace=256MiB -volume.preStopSeconds=1
  # The bucket, once the store answers: within 60 s, and only while its process lives (a part that
  # cannot start ends it; the loop would otherwise wait on a store that never comes).
  bucket_deadline=$((SECONDS + 60))
  until aws s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1 ||
    aws s3 mb "s3://$BUCKET" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$STACK_DIR/pids/s3.pid")" 2>/dev/null; then
      echo "the S3 store exited at start; see $STACK_DIR/logs/s3.log" >&2
      false
    fi
    if [ "$SECONDS" -ge "$bucket_deadline" ]; then
      echo "the S3 store answered no request within 60 s; see $STACK_DIR/logs/s3.log" >&2
      false
    fi
    sleep 0.3
  done
  aws s3api head-bucket --bucket "$BUCKET"
  # The bucket answers once the filer is up; object writes also need the volume server registered
  # with the master. The stack is up only when a write goes through (the broker writes at once).
  probe="$STACK_DIR/data/write-probe"
  echo "the stack's S3 store takes writes" >"$probe"
  probe_deadline=$((SECONDS + 60))
  until AWS_MAX_ATTEMPTS=1 aws s3api put-object --bucket "$BUCKET" --key .write-probe --body "$probe" \
    --cli-connect-timeout 5 --cli-read-timeout 10 >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$probe_deadline" ]; then
      echo "the S3 store took no write within 60 s; see $STACK_DIR/logs/s3.log and $STACK_DIR/data/weed-logs" >&2
      df -h "$STACK_DIR/data/s3" >&2
      false
    fi
    sleep 0.3
  done
  aws s3api delete-object --bucket "$BUCKET" --key .write-probe >/dev/null
}
