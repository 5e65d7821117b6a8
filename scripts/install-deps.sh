#!/usr/bin/env bash
# Installs weir's build and test dependencies from Debian packages.
# Idempotent: packages already present are not reinstalled, and apt's index is only refreshed
# when something is missing. Run as root (or with sudo) on Debian 12.
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libcurl4-openssl-dev libssl-dev
  libprotobuf-c-dev protobuf-c-compiler
  liblmdb-dev libjansson-dev libyaml-dev libxxhash-dev
  libcriterion-dev libmicrohttpd-dev libhttp-parser-dev
  clang-format clang libclang-rt-14-dev
  nodejs npm
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Node.js and npm may come from another source than Debian (a preinstalled toolchain); accept
# any working node >= 18 rather than pulling Debian's over it.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  keep=()
  for p in "${missing[@]}"; do
    case "$p" in nodejs|npm) ;; *) keep+=("$p") ;; esac
  done
  missing=("${keep[@]+"${keep[@]}"}")
fi

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
