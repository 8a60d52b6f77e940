#!/bin/sh
# Demo PKI for the Docker stack, and Kong's declarative config rendered with the CA in it.
#
#   gen-certs.sh CERTS_DIR [KONG_YML_TEMPLATE KONG_YML_OUT]
#
# Writes into CERTS_DIR (once; later runs reuse the files, so tokens and trust stay valid across
# `docker compose up`; `docker compose down -v` starts over):
#   ca.pem, ca.key              root CA (CA:TRUE, keyCertSign) trusted by HAProxy, Keycloak and Kong
#   client-1.pem/.key           client certificate (EKU clientAuth), subject O=mtls-pop demo, CN=client-1
#   client-2.pem/.key           a second client, for the "another client's token" case
#   keycloak.pem/.key           Keycloak TLS server certificate (DNS:keycloak, DNS:localhost)
#   haproxy.pem                 HAProxy TLS server certificate followed by its key (DNS:haproxy, DNS:localhost)
# Then, when a template is given, copies it to KONG_YML_OUT with every line that holds only
# @@MTLS_POP_CA_PEM@@ replaced by ca.pem, indented like the placeholder (a YAML block scalar).
#
# POSIX sh: runs in the compose `certs` service (an image that ships the openssl CLI, so no package
# is installed at run time and no network is needed) and on any machine with openssl.
# The keys are demo material in a Docker volume: server keys are world-readable so that Keycloak
# (uid 1000) and HAProxy (uid 99) can read them; the CA and client keys are not.
set -eu

CERTS_DIR=${1:?usage: gen-certs.sh CERTS_DIR [KONG_YML_TEMPLATE KONG_YML_OUT]}
TEMPLATE=${2:-}
RENDERED=${3:-}
PLACEHOLDER='@@MTLS_POP_CA_PEM@@'
CA_DAYS=3650
LEAF_DAYS=825
FILES='ca.pem ca.key client-1.pem client-1.key client-2.pem client-2.key keycloak.pem keycloak.key haproxy.pem'

log() { printf 'gen-certs: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# quiet CMD...: runs CMD, showing its stderr only when it fails (openssl chats on stderr).
quiet() {
  if ! "$@" 2>"$WORK/stderr"; then
    cat "$WORK/stderr" >&2
    return 1
  fi
}

if [ -n "$TEMPLATE" ] && [ -z "$RENDERED" ]; then
  die 'a template needs an output path (KONG_YML_OUT)'
fi

already_complete() {
  [ -f "$CERTS_DIR/.complete" ] || return 1
  for f in $FILES; do
    [ -s "$CERTS_DIR/$f" ] || return 1
  done
  return 0
}

ensure_openssl() {
  command -v openssl >/dev/null 2>&1 || die 'openssl not found (use an image that ships it; nothing is installed here)'
}

# new_key FILE: an ECDSA P-256 private key (PKCS#8 PEM).
new_key() {
  quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# sign NAME SUBJECT EXT_SECTION [ISSUER]: NAME.pem from NAME.key, signed by ISSUER (default: ca),
# or self-signed when ISSUER is "self".
sign() {
  name=$1 subject=$2 section=$3 issuer=${4:-ca}
  quiet openssl req -new -config "$WORK/req.cnf" -key "$WORK/$name.key" -subj "$subject" -out "$WORK/$name.csr"
  serial="0x$(openssl rand -hex 16)"
  if [ "$issuer" = self ]; then
    quiet openssl x509 -req -in "$WORK/$name.csr" -signkey "$WORK/$name.key" -days "$CA_DAYS" -sha256 \
      -set_serial "$serial" -extfile "$WORK/ext.cnf" -extensions "$section" -out "$WORK/$name.pem"
  else
    quiet openssl x509 -req -in "$WORK/$name.csr" -CA "$WORK/$issuer.pem" -CAkey "$WORK/$issuer.key" \
      -days "$LEAF_DAYS" -sha256 -set_serial "$serial" -extfile "$WORK/ext.cnf" -extensions "$section" \
      -out "$WORK/$name.pem"
  fi
  rm -f "$WORK/$name.csr"
}

generate() {
  ensure_openssl
  mkdir -p "$CERTS_DIR"
  WORK=$(mktemp -d "$CERTS_DIR/.work.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT

  cat >"$WORK/req.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
EOF
  cat >"$WORK/ext.cnf" <<'EOF'
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[v3_keycloak]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:keycloak, DNS:localhost, IP:127.0.0.1

[v3_haproxy]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:haproxy, DNS:localhost, IP:127.0.0.1
EOF

  for name in ca client-1 client-2 keycloak haproxy; do
    new_key "$WORK/$name.key"
  done
  sign ca '/O=mtls-pop demo/CN=mtls-pop demo root CA' v3_ca self
  sign client-1 '/O=mtls-pop demo/CN=client-1' v3_client
  sign client-2 '/O=mtls-pop demo/CN=client-2' v3_client
  sign keycloak '/O=mtls-pop demo/CN=keycloak' v3_keycloak
  sign haproxy '/O=mtls-pop demo/CN=haproxy' v3_haproxy
  cat "$WORK/haproxy.pem" "$WORK/haproxy.key" >"$WORK/haproxy.bundle"
  mv "$WORK/haproxy.bundle" "$WORK/haproxy.pem"
  rm -f "$WORK/haproxy.key" "$WORK/req.cnf" "$WORK/ext.cnf" "$WORK/stderr"

  for name in client-1 client-2 keycloak haproxy; do
    quiet openssl verify -CAfile "$WORK/ca.pem" -purpose any "$WORK/$name.pem" >/dev/null || die "$name.pem does not verify against ca.pem"
  done

  chmod 0644 "$WORK"/*.pem "$WORK/keycloak.key"
  chmod 0600 "$WORK/ca.key" "$WORK/client-1.key" "$WORK/client-2.key"
  rm -f "$CERTS_DIR/.complete"
  for f in $FILES; do
    mv -f "$WORK/$f" "$CERTS_DIR/$f"
  done
  : >"$CERTS_DIR/.complete"
  rm -rf "$WORK"
  trap - EXIT
  log "generated a new CA and certificates in $CERTS_DIR"
}

render() {
  [ -f "$TEMPLATE" ] || die "template not found: $TEMPLATE"
  out_dir=$(dirname "$RENDERED")
  mkdir -p "$out_dir"
  tmp="$RENDERED.tmp.$$"
  if ! awk -v pemfile="$CERTS_DIR/ca.pem" -v placeholder="$PLACEHOLDER" '
    {
      line = $0
      sub(/^ +/, "", line)
      sub(/ +$/, "", line)
      if (line == placeholder) {
        match($0, /^ */)
        indent = substr($0, 1, RLENGTH)
        while ((getline pem < pemfile) > 0) print indent pem
        close(pemfile)
        replaced++
        next
      }
      print
    }
    END { if (replaced == 0) exit 3 }
  ' "$TEMPLATE" >"$tmp"; then
    rm -f "$tmp"
    die "no $PLACEHOLDER line in $TEMPLATE"
  fi
  if grep -q "$PLACEHOLDER" "$tmp"; then
    rm -f "$tmp"
    die "$PLACEHOLDER left inside another line of $TEMPLATE"
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$RENDERED"
  log "rendered $RENDERED from $TEMPLATE"
}

if already_complete; then
  log "reusing the certificates in $CERTS_DIR"
else
  generate
fi

if [ -n "$TEMPLATE" ]; then
  render
fi
