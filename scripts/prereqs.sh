# Sourced by the scripts in this folder: installs the build prerequisites a fresh Debian machine
# with only the Rust toolchain lacks. Idempotent and quiet when everything is present.

apt_install() { # apt_install PKG... (only those missing)
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} (Debian packages)" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# RocksDB's bindings are generated with bindgen, which needs libclang; its C++ needs g++.
apt_install libclang-dev g++ make
# etcd-client generates its gRPC code with protoc at build time.
apt_install protobuf-compiler
