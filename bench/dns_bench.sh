#!/usr/bin/env bash
# kalkan's DNS resolver against dnsmasq on this machine (issue 6): see bench/dns_bench.py.
# Installs dnsmasq and dnsperf from Debian when they are missing. All traffic stays on the
# loopback. Options are passed on, e.g. `bench/dns_bench.sh --workers 2 --seconds 30`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# dnsmasq-base is the program without the system service, which would take port 53.
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

[ -x .venv/bin/kalkan ] || make install
exec .venv/bin/python bench/dns_bench.py "$@"
