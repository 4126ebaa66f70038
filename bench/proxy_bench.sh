#!/usr/bin/env bash
# kalkan's proxy against squid (alone and with squidGuard on the same UT1 lists) and stock
# `mitmdump -q` with a trivial addon, one after another, against one local nginx origin on
# loopback. Measures, checks nothing; prints `ratio kalkan/squid ...` and
# `ratio kalkan/mitmdump ...` lines. Installs squid, squidguard, wrk, nginx-light and curl from
# Debian when missing (as root). Only 127.0.0.1/::1 are used; every load ends by itself.
#
#   bash bench/proxy_bench.sh            # about 4 minutes on a 2-core machine
#   SECONDS_PER_RUN=4 bash bench/proxy_bench.sh
#   ROUNDS=3 bash bench/proxy_bench.sh   # the whole comparison three times (noisy machines)
#   KALKAN_WORKERS=1 bash bench/proxy_bench.sh   # default: proxy.workers (one per core)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
KALKAN=${KALKAN:-$ROOT/.venv/bin/kalkan}
MITMDUMP=${MITMDUMP:-$ROOT/.venv/bin/mitmdump}
RUN=${SECONDS_PER_RUN:-8}
KALKAN_WORKERS=${KALKAN_WORKERS:-$(nproc)}  # as proxy.workers: 0 (the default): one per core
ROUNDS=${ROUNDS:-1}
WORK=$(mktemp -d /tmp/kalkan-proxy-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

need=()
command -v squid >/dev/null || need+=(squid)
command -v squidGuard >/dev/null || need+=(squidguard)
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

wait_port() {  # wait until something listens on 127.0.0.1:$1
  for _ in $(seq 1 200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && { exec 3>&- 3<&-; return 0; }
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; return 1
}

# --- the origin: nginx with a 1 KB page and a 100 MB file, HTTP and HTTPS -----------------
ORIGIN_HTTP=18080; ORIGIN_HTTPS=18443
mkdir -p "$WORK/www" "$WORK/nginx"
head -c 1024 /dev/zero | tr '\0' 'k' > "$WORK/www/1k"
head -c $((100 * 1024 * 1024)) /dev/urandom > "$WORK/www/100m"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$WORK/origin.key" -out "$WORK/origin.pem" 2>/dev/null
cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  sendfile on;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$ORIGIN_HTTP; listen [::1]:$ORIGIN_HTTP;
    listen 127.0.0.1:$ORIGIN_HTTPS ssl; listen [::1]:$ORIGIN_HTTPS ssl;
    ssl_certificate $WORK/origin.pem; ssl_certificate_key $WORK/origin.key;
    root $WORK/www;
  }
}
EOF
nginx -c "$WORK/nginx.conf" -g 'daemon off;' & PIDS+=($!)
wait_port $ORIGIN_HTTP; wait_port $ORIGIN_HTTPS

cat > "$WORK/absolute.lua" <<EOF
-- explicit-proxy requests: absolute-form URL to the origin, sent to the proxy's port
request = function() return wrk.format("GET", "http://localhost:$ORIGIN_HTTP/1k",
                                       {Host = "localhost:$ORIGIN_HTTP"}) end
EOF

declare -A REQS CONNS MBS P99 P50 D99 D50 RSS CPU_REQ CPU_CONN CPU_MB

measure() {  # measure NAME PORT PID: every figure of issue 7 for one proxy
  local name=$1 port=$2 pid=$3 c0 c1
  # CPU time of the proxy's processes per unit of work: what a busy machine disturbs least.
  c0=$("$PY" bench/proxy_load.py cpu "$pid")
  wrk -t2 -c32 -d"${RUN}s" -s "$WORK/absolute.lua" "http://127.0.0.1:$port" > "$WORK/$name.wrk" 2>&1 || true
  REQS[$name]=$(awk '/Requests\/sec/ {print int($2)}' "$WORK/$name.wrk")
  c1=$("$PY" bench/proxy_load.py cpu "$pid")
  CPU_REQ[$name]=$(awk -v a="$c0" -v b="$c1" '/requests in/ {printf "%.0f", (b - a) * 1e6 / $1}' "$WORK/$name.wrk")
  c0=$c1
  local non2xx; non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/$name.wrk")
  [ -n "$non2xx" ] && echo "  note: $name answered $non2xx non-2xx responses"
  read -r CONNS[$name] errors < <("$PY" bench/proxy_load.py conns "$port" $ORIGIN_HTTPS "$RUN" 32)
  [ "$errors" != 0 ] && echo "  note: $name: $errors failed HTTPS connections"
  c1=$("$PY" bench/proxy_load.py cpu "$pid")
  CPU_CONN[$name]=$(awk -v a="$c0" -v b="$c1" -v r="${CONNS[$name]}" -v t="$RUN" \
    'BEGIN { if (r > 0) printf "%.0f", (b - a) * 1e6 / (r * t); else print "n/a" }')
  c0=$c1
  local best=0 speed
  for _ in 1 2 3; do
    speed=$(curl -s -k -x "http://127.0.0.1:$port" -o /dev/null -w '%{speed_download}' \
      "https://localhost:$ORIGIN_HTTPS/100m" || echo 0)
    best=$(awk -v a="$best" -v b="$speed" 'BEGIN {print (b > a) ? b : a}')
  done
  MBS[$name]=$(awk -v b="$best" 'BEGIN {printf "%.0f", b / 1048576}')
  c1=$("$PY" bench/proxy_load.py cpu "$pid")
  CPU_MB[$name]=$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.0f", (b - a) * 1000 / 3}')
  # Added latency: the same paced load straight to the origin, just before, is the baseline
  # (the load generator shares the cores, so both runs pay for it alike).
  read -r D50[$name] D99[$name] _ < <("$PY" bench/proxy_load.py latency direct $ORIGIN_HTTP "$RATE" 5)
  read -r P50[$name] P99[$name] _ < <("$PY" bench/proxy_load.py latency "$port" $ORIGIN_HTTP "$RATE" 5)
  RSS[$name]=$("$PY" bench/proxy_load.py rss "$pid")
  printf '%-18s %6s req/s %5s conn/s %5s MB/s  p50 %6s (direct %s) p99 %7s (direct %s) ms  Pss %4s MB\n' \
    "$name" "${REQS[$name]}" "${CONNS[$name]}" "${MBS[$name]}" "${P50[$name]}" "${D50[$name]}" \
    "${P99[$name]}" "${D99[$name]}" "${RSS[$name]}"
  printf '%-18s CPU: %6s us per HTTP request, %6s us per new HTTPS connection, %5s ms per 100 MB passed through\n' \
    "" "${CPU_REQ[$name]}" "${CPU_CONN[$name]}" "${CPU_MB[$name]}"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# --- kalkan: its own data directory, the bundled UT1 lists, teachers' rules for 127.0.0.1 ---
mkdir -p "$WORK/kalkan"
cat > "$WORK/kalkan/kalkan.yaml" <<EOF
data_dir: "$WORK/kalkan"
policy:
  default_group: teachers
blocklists:
  auto_update: false
logging:
  level: warning
EOF
"$KALKAN" --config "$WORK/kalkan/kalkan.yaml" db upgrade >/dev/null
"$KALKAN" --config "$WORK/kalkan/kalkan.yaml" blocklists update >/dev/null
echo "kalkan: teachers' group (blocks adult, malware, phishing) over the bundled UT1 index"

# --- squid alone, then squid + squidGuard on the same lists ---------------------------------
mkdir -p "$WORK/squid" "$WORK/sg/db" "$WORK/sg/log"
tar xzf blocklists/data/ut1-school.tar.gz -C "$WORK/sg/db" --strip-components=1 \
  adult malware phishing 2>/dev/null || tar xzf blocklists/data/ut1-school.tar.gz -C "$WORK/sg/db" \
  --strip-components=1 blacklists/adult blacklists/malware blacklists/phishing
cat > "$WORK/sg/squidGuard.conf" <<EOF
dbhome $WORK/sg/db
logdir $WORK/sg/log
dest adult { urllist adult/urls }
dest malware { domainlist malware/domains }
dest phishing { domainlist phishing/domains }
acl { default { pass !adult !malware !phishing all
                redirect http://localhost:$ORIGIN_HTTP/blocked } }
EOF
squidGuard -c "$WORK/sg/squidGuard.conf" -C all >/dev/null 2>&1 || true
chown -R proxy:proxy "$WORK/sg" "$WORK/squid" 2>/dev/null || chmod -R a+rwX "$WORK/sg" "$WORK/squid"

squid_conf() {  # squid_conf PORT [squidGuard]
  cat <<EOF
http_port 127.0.0.1:$1
acl localnet src 127.0.0.0/8 ::1
http_access allow localnet
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log $WORK/squid/cache-$1.log
pid_filename $WORK/squid/squid-$1.pid
coredump_dir $WORK/squid
shutdown_lifetime 1 seconds
EOF
  if [ "${2:-}" = squidGuard ]; then
    echo "url_rewrite_program /usr/bin/squidGuard -c $WORK/sg/squidGuard.conf"
    echo "url_rewrite_children 16 startup=8 idle=4 concurrency=0"
  fi
}
squid_conf 13131 > "$WORK/squid/plain.conf"
squid_conf 13132 squidGuard > "$WORK/squid/guard.conf"

# --- stock mitmdump -q with a trivial addon ---------------------------------------------------
cat > "$WORK/trivial.py" <<'EOF'
# The trivial addon: looks at every request, and passes TLS through like kalkan's default.
def request(flow):
    pass


def tls_clienthello(data):
    data.ignore_connection = True
EOF
# --- the rounds: kalkan, squid, squid + squidGuard, mitmdump, one after another -------------
KNAME="kalkan(${KALKAN_WORKERS}w)"
DIRECT_MB=$(curl -s -k -o /dev/null -w '%{speed_download}' "https://localhost:$ORIGIN_HTTPS/100m" \
  | awk '{printf "%.0f", $1 / 1048576}')
echo "origin direct: HTTPS 100 MB at $DIRECT_MB MB/s"

start_kalkan() {
  "$KALKAN" --config "$WORK/kalkan/kalkan.yaml" proxy --listen 127.0.0.1:13129 \
    --workers "$KALKAN_WORKERS" > "$WORK/kalkan.log" 2>&1 & KPID=$!; PIDS+=($KPID)
  wait_port 13129; sleep 1
}

# The paced latency runs use 20 % of what kalkan sustains, measured once, then for all.
start_kalkan
wrk -t2 -c32 -d3s -s "$WORK/absolute.lua" "http://127.0.0.1:13129" > "$WORK/probe.wrk" 2>&1 || true
RATE=$(awk '/Requests\/sec/ {r = int($2 * 0.2); print (r < 20 ? 20 : r)}' "$WORK/probe.wrk")
stop $KPID
echo "paced latency runs at $RATE req/s (20 % of kalkan's rate), keep-alive, 4 clients"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

for round in $(seq 1 "$ROUNDS"); do
  echo
  [ "$ROUNDS" -gt 1 ] && echo "--- round $round of $ROUNDS"
  start_kalkan
  measure "$KNAME" 13129 $KPID
  stop $KPID

  squid -N -f "$WORK/squid/plain.conf" & SPID=$!; PIDS+=($SPID)
  wait_port 13131; sleep 1
  measure squid 13131 $SPID
  stop $SPID

  squid -N -f "$WORK/squid/guard.conf" & GPID=$!; PIDS+=($GPID)
  wait_port 13132; sleep 2
  measure squid+squidGuard 13132 $GPID
  stop $GPID

  "$MITMDUMP" -q --listen-host 127.0.0.1 -p 13130 -s "$WORK/trivial.py" \
    --set confdir="$WORK/mitmproxy" & MPID=$!; PIDS+=($MPID)
  wait_port 13130; sleep 1
  measure mitmdump 13130 $MPID
  stop $MPID

  echo
  echo "p99 added latency per allowed request at $RATE req/s (p99 through the proxy - p99 direct):" \
    "kalkan $(added "${P99[$KNAME]}" "${D99[$KNAME]}") ms," \
    "squid $(added "${P99[squid]}" "${D99[squid]}") ms," \
    "squid+squidGuard $(added "${P99[squid+squidGuard]}" "${D99[squid+squidGuard]}") ms," \
    "mitmdump $(added "${P99[mitmdump]}" "${D99[mitmdump]}") ms   (goal: kalkan <= 5 ms)"
  echo "ratio kalkan/squid HTTPS passthrough MB/s $(ratio "${MBS[$KNAME]}" "${MBS[squid]}")   (goal >= 0.8)"
  echo "ratio kalkan/squid new HTTPS connections/s $(ratio "${CONNS[$KNAME]}" "${CONNS[squid]}")   (goal >= 0.5)"
  echo "ratio kalkan/squid HTTP req/s $(ratio "${REQS[$KNAME]}" "${REQS[squid]}")"
  echo "ratio kalkan/squid+squidGuard HTTP req/s $(ratio "${REQS[$KNAME]}" "${REQS[squid+squidGuard]}")   (goal >= 0.25)"
  echo "ratio kalkan/squid memory (Pss) $(ratio "${RSS[$KNAME]}" "${RSS[squid+squidGuard]}")   (squid with squidGuard)"
  echo "ratio kalkan/mitmdump HTTP req/s $(ratio "${REQS[$KNAME]}" "${REQS[mitmdump]}")   (goal >= 2)"
  echo "ratio kalkan/mitmdump HTTPS passthrough MB/s $(ratio "${MBS[$KNAME]}" "${MBS[mitmdump]}")"
  echo "ratio kalkan/mitmdump new HTTPS connections/s $(ratio "${CONNS[$KNAME]}" "${CONNS[mitmdump]}")"
  echo "ratio kalkan/mitmdump memory (Pss) $(ratio "${RSS[$KNAME]}" "${RSS[mitmdump]}")"
  echo "ratio kalkan/squid+squidGuard CPU per HTTP request $(ratio "${CPU_REQ[$KNAME]}" "${CPU_REQ[squid+squidGuard]}")"
  echo "ratio kalkan/squid CPU per new HTTPS connection $(ratio "${CPU_CONN[$KNAME]}" "${CPU_CONN[squid]}")"
  echo "ratio kalkan/squid CPU per MB passed through $(ratio "${CPU_MB[$KNAME]}" "${CPU_MB[squid]}")"
  echo "ratio kalkan/mitmdump CPU per HTTP request $(ratio "${CPU_REQ[$KNAME]}" "${CPU_REQ[mitmdump]}")"
done
