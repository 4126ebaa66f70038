#!/bin/sh
# Install kalkan on a Debian-like router from this source tree:
#   sudo ./install.sh [kalkan setup options]     e.g. --network 192.168.1.0/24 --language ru
#   sudo ./install.sh --uninstall [--purge]
# The application goes into its own virtualenv in /opt/kalkan (dependencies from PyPI, or
# from wherever pip is told: PIP_NO_INDEX / PIP_FIND_LINKS); then `kalkan setup` writes
# /etc/kalkan/kalkan.yaml, /var/lib/kalkan, the kalkan user and the systemd units.
# Running it again changes nothing unless the source tree or the options changed.
set -eu

PREFIX="${KALKAN_PREFIX:-/opt/kalkan}"
SOURCE="$(cd "$(dirname "$0")" && pwd)"

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run it as root: sudo $0 $*" >&2
  exit 1
fi

if [ "${1:-}" = "--uninstall" ]; then
  shift
  if [ ! -x "$PREFIX/bin/kalkan" ]; then
    echo "install.sh: kalkan is not installed in $PREFIX" >&2
    exit 1
  fi
  exec "$PREFIX/bin/kalkan" uninstall "$@"
fi

# What the router needs from Debian: Python's venv module and nftables.
missing=""
python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
if [ -n "$missing" ]; then
  echo "install.sh: installing$missing with apt-get"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

if [ ! -x "$PREFIX/bin/python" ]; then
  python3 -m venv "$PREFIX"
  echo "install.sh: made the virtualenv $PREFIX"
fi

# The digest of the source files decides whether pip has anything to do: a second run with
# the same tree leaves /opt/kalkan exactly as it is.
digest="$(cd "$SOURCE" && find . \( -name .git -o -name .venv -o -name var -o -name build \
  -o -name '*.egg-info' -o -name __pycache__ -o -name .pytest_cache -o -name .ruff_cache \
  -o -name tests -o -name bench \) -prune -o -type f -print | LC_ALL=C sort \
  | xargs -d '\n' sha256sum | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$PREFIX/.kalkan-source" 2>/dev/null || true)" != "$digest" ]; then
  # pip builds in a copy: the user's checkout gets no build/ or .egg-info from us.
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude=./var --exclude=./build \
    --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$work" -xf -
  if [ -f "$PREFIX/.kalkan-source" ] && [ -x "$PREFIX/bin/kalkan" ]; then
    # An older kalkan is installed: back up, install, migrate, restart (kalkan upgrade).
    "$PREFIX/bin/kalkan" --config "${KALKAN_CONFIG:-/etc/kalkan/kalkan.yaml}" upgrade "$work"
  else
    "$PREFIX/bin/pip" install --quiet --disable-pip-version-check "$work"
  fi
  echo "$digest" > "$PREFIX/.kalkan-source"
  echo "install.sh: installed kalkan from $SOURCE into $PREFIX"
else
  echo "install.sh: $PREFIX already holds this source tree (unchanged)"
fi

exec "$PREFIX/bin/kalkan" setup "$@"
