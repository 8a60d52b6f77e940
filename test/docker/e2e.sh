#!/usr/bin/env bash
# End-to-end run of the Docker stack (docker-compose.yml): Keycloak issues a token bound to
# client-1's certificate (RFC 8705), HAProxy verifies the certificate and forwards it in
# x-client-cert, and Kong + mtls-pop let a request through only with the matching certificate.
#
#   bash test/docker/e2e.sh                 # needs docker with compose v2, curl, openssl, jq
#   KEEP_STACK=1 bash test/docker/e2e.sh    # leave a stack this script started running afterwards
#   KONG_IMAGE=kong/kong-gateway:3.9 bash test/docker/e2e.sh
#
# One compose project, the one the file names (`name: mtls-pop`), as every `docker compose` command
# in the READMEs: when that stack is already running, the script reuses it (`up` brings it to the
# current files) and leaves it running; when the script started it, it removes it on exit
# (docker compose down -v) unless KEEP_STACK=1. Containers of another project made from this
# directory (e.g. an old `-p` run) would hold the same subnet and host ports: the script stops
# with the command that removes them. Prints PASS/FAIL per step and exits non-zero when any fails.
set -euo pipefail

cd "$(dirname "$0")/../.."

# Every service this script relies on (also the ones whose logs it prints on failure).
E2E_SERVICES="certs keycloak echo kong haproxy"
HAPROXY_URL="https://localhost:${HAPROXY_PORT:-8443}"
KEYCLOAK_URL="https://localhost:${KEYCLOAK_PORT:-18443}"
KONG_URL="http://127.0.0.1:${KONG_PROXY_PORT:-8000}"
REALM=mtls-pop
ISSUER="https://keycloak:8443/realms/$REALM"
# Files the containers read through bind mounts, as users other than the file's owner (HAProxy
# runs as uid 99, Keycloak as 1000).
BIND_MOUNTED="docker/gen-certs.sh kong.yml docker/haproxy.cfg docker/keycloak/realm-mtls-pop.json"

for tool in docker curl openssl jq base64; do
  command -v "$tool" >/dev/null 2>&1 || { echo "e2e: $tool is required" >&2; exit 2; }
done
docker compose version >/dev/null 2>&1 || { echo "e2e: docker compose (v2) is required" >&2; exit 2; }

# No -p: the project is the file's `name:` (or COMPOSE_PROJECT_NAME, as for any compose command).
compose() { docker compose -f docker-compose.yml "$@"; }
PROJECT=$(compose config --format json | jq -er .name)

# A checkout made with umask 077 leaves these files unreadable inside the containers.
for f in $BIND_MOUNTED; do
  if [ ! -r "$f" ] || [ -z "$(find "$f" -perm -o+r)" ]; then
    echo "e2e: $f is not world-readable; the containers read it as another user: chmod a+r $BIND_MOUNTED" >&2
    exit 2
  fi
done
if command -v getenforce >/dev/null 2>&1 && [ "$(getenforce 2>/dev/null)" = Enforcing ]; then
  echo "e2e: SELinux is enforcing: relabel the bind-mounted files once (chcon -t container_file_t $BIND_MOUNTED) or add :z to their mounts (docker/README.md)"
fi

others=$(docker ps -a --filter "label=com.docker.compose.project.working_dir=$PWD" \
  --format '{{.Label "com.docker.compose.project"}}' | sort -u | grep -vxF "$PROJECT" || true)
if [ -n "$others" ]; then
  echo "e2e: containers of another compose project from this directory hold the subnet and ports:" >&2
  for other in $others; do echo "  docker compose -p $other down -v" >&2; done
  exit 2
fi

if [ -n "$(compose ps --status running --quiet)" ]; then
  STARTED_HERE=0
  echo "== reusing the running stack (project $PROJECT); it stays up afterwards"
else
  STARTED_HERE=1
fi

WORK=$(mktemp -d)
passed=0
failed=0

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
    echo "== logs (last 100 lines per service)"
    # shellcheck disable=SC2086 # the service list is split on purpose
    compose logs --no-color --tail=100 $E2E_SERVICES || true
  fi
  if [ "$STARTED_HERE" = 0 ]; then
    echo "the stack was running before: left running (docker compose down -v removes it)"
  elif [ "${KEEP_STACK:-0}" = 1 ]; then
    echo "KEEP_STACK=1: the stack is still running (docker compose down -v removes it)"
  else
    compose down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected $2, got $3)"; fi
}

# http_status CURL_ARGS...: the response status ("000" when no HTTP response, e.g. a TLS failure);
# the body and headers are left in $WORK/body and $WORK/headers.
http_status() {
  local code
  : >"$WORK/body"
  : >"$WORK/headers"
  code=$(curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" 2>"$WORK/curl-stderr") || true
  printf '%s' "${code:-000}"
}

# check_401 NAME CURL_ARGS...: 401 with an RFC 6750 Bearer challenge.
check_401() {
  local name=$1 code challenge
  shift
  code=$(http_status "$@")
  challenge=$(grep -i '^www-authenticate:' "$WORK/headers" | head -n1 | tr -d '\r' | cut -d' ' -f2 || true)
  check "$name" "401 Bearer" "$code ${challenge:-<no WWW-Authenticate>}"
}

# token CLIENT_ID CERT KEY: client_credentials over mTLS (client-x509 authentication).
token() {
  curl -sS --fail-with-body --cacert "$WORK/ca.pem" --cert "$2" --key "$3" \
    --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$1" \
    "$KEYCLOAK_URL/realms/$REALM/protocol/openid-connect/token" | jq -er .access_token
}

# jwt_payload JWT: the decoded payload (JSON).
jwt_payload() {
  local p
  p=$(printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+')
  while [ $((${#p} % 4)) -ne 0 ]; do p="$p="; done
  printf '%s' "$p" | base64 -d
}

# thumbprint PEM: base64url(SHA-256(DER)), the x5t#S256 value (RFC 8705 section 3.1).
thumbprint() {
  openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n'
}

der_base64() {
  openssl x509 -in "$1" -outform DER | base64 | tr -d '\n'
}

echo "== docker compose up (project $PROJECT: build, wait for health)"
compose up -d --build --wait --wait-timeout 600

echo "== client certificates from the certs volume"
compose run --rm --no-deps -T certs \
  tar -C /certs -cf - ca.pem client-1.pem client-1.key client-2.pem client-2.key | tar -C "$WORK" -xf -
C1=("$WORK/client-1.pem" "$WORK/client-1.key")
C2=("$WORK/client-2.pem" "$WORK/client-2.key")
openssl x509 -in "$WORK/client-1.pem" -noout -subject -fingerprint -sha256

echo "== tokens from Keycloak over mTLS"
T1=$(token mtls-client "${C1[@]}") || { fail "token for mtls-client (client-1's certificate)"; exit 1; }
T2=$(token mtls-client-2 "${C2[@]}") || { fail "token for mtls-client-2 (client-2's certificate)"; exit 1; }
echo "mtls-client token claims:"
jwt_payload "$T1" | jq -c '{iss, azp, exp, cnf}'
check "token iss is the issuer Kong is configured with" "$ISSUER" "$(jwt_payload "$T1" | jq -r .iss)"
check "mtls-client token is bound to client-1 (cnf.x5t#S256)" \
  "$(thumbprint "$WORK/client-1.pem")" "$(jwt_payload "$T1" | jq -r '.cnf["x5t#S256"]')"
check "mtls-client-2 token is bound to client-2 (cnf.x5t#S256)" \
  "$(thumbprint "$WORK/client-2.pem")" "$(jwt_payload "$T2" | jq -r '.cnf["x5t#S256"]')"

echo "== requests"
CA=(--cacert "$WORK/ca.pem")
# Kong reports healthy before its worker has started the plugin server; a request that arrives
# first gets 500 from Kong 3.9 (it cannot start the plugin instance, so neither mtls-pop nor the
# guard runs). Wait (up to 60 s) for the first good request before checking anything.
for attempt in $(seq 1 60); do
  code=$(http_status "${CA[@]}" --cert "$WORK/client-1.pem" --key "$WORK/client-1.key" \
    -H "Authorization: Bearer $T1" "$HAPROXY_URL/headers")
  [ "$code" = 200 ] && break
  echo "warm-up $attempt: $code"
  sleep 1
done
code=$(http_status "${CA[@]}" --cert "$WORK/client-1.pem" --key "$WORK/client-1.key" \
  -H "Authorization: Bearer $T1" "$HAPROXY_URL/headers")
check "client-1 certificate + its token via HAProxy -> 200" 200 "$code"
check "upstream received the certificate HAProxy verified (x-client-cert)" \
  "$(der_base64 "$WORK/client-1.pem")" \
  "$(jq -r '(.headers["X-Client-Cert"] // "<none>") | if type == "array" then .[0] else . end' "$WORK/body" 2>/dev/null \
    || echo '<not JSON>')"

check_401 "no client certificate via HAProxy -> 401" \
  "${CA[@]}" -H "Authorization: Bearer $T1" "$HAPROXY_URL/headers"

check_401 "no client certificate, forged x-client-cert (stripped by HAProxy) -> 401" \
  "${CA[@]}" -H "Authorization: Bearer $T1" -H "x-client-cert: $(der_base64 "$WORK/client-1.pem")" \
  "$HAPROXY_URL/headers"

check_401 "client-2's token with client-1's certificate -> 401" \
  "${CA[@]}" --cert "$WORK/client-1.pem" --key "$WORK/client-1.key" \
  -H "Authorization: Bearer $T2" "$HAPROXY_URL/headers"

check_401 "client-1 certificate without a token -> 401" \
  "${CA[@]}" --cert "$WORK/client-1.pem" --key "$WORK/client-1.key" "$HAPROXY_URL/headers"

check_401 "direct to Kong from an untrusted address with a forged x-client-cert -> 401" \
  -H "Authorization: Bearer $T1" -H "x-client-cert: $(der_base64 "$WORK/client-1.pem")" "$KONG_URL/headers"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj '/CN=client-1' \
  -keyout "$WORK/rogue.key" -out "$WORK/rogue.pem" 2>/dev/null
code=$(http_status "${CA[@]}" --cert "$WORK/rogue.pem" --key "$WORK/rogue.key" \
  -H "Authorization: Bearer $T1" "$HAPROXY_URL/headers")
check "certificate from another CA: HAProxy refuses the TLS handshake" 000 "$code"

echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
