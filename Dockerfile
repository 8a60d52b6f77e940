# syntax=docker/dockerfile:1
#
# Kong Gateway with the mtls-pop external plugin (run by Kong's JavaScript plugin server).
#
#   docker build -t mtls-pop-kong .
#   docker build --build-arg KONG_IMAGE=kong/kong-gateway:3.9 -t mtls-pop-kong-gateway .
#
# KONG_IMAGE must be a Debian/Ubuntu-based Kong 3.x image (the Node binary below is built for glibc).
# The image trusts no proxy (trusted_ips unset): the certificate header is ignored and every request
# is rejected until KONG_TRUSTED_IPS names the TLS terminator, as docker-compose.yml does.

ARG KONG_IMAGE=kong:3.9
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: compile TypeScript, keep production dependencies only -------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /build
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY kong ./kong
COPY plugins ./plugins
COPY bin ./bin
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund
# The plugin server must list exactly one plugin, mtls-pop (Kong 3.9 registers only the first one).
RUN node dist/bin/mtls-pop-pluginserver.js -d /build/dist/plugins --dump-all-plugins >/tmp/dump.json \
 && node -e 'const d = JSON.parse(require("fs").readFileSync("/tmp/dump.json", "utf8")); if (!Array.isArray(d) || d.length !== 1 || d[0].Name !== "mtls-pop" || !d[0].Phases.includes("access")) { console.error("unexpected plugin dump:", JSON.stringify(d).slice(0, 300)); process.exit(1); }'

# ---- runtime: Kong + Node 22 + the compiled plugin ---------------------------------------------
FROM ${KONG_IMAGE}
USER root

# Kong's images have no usable Node (Ubuntu noble ships 18; the package declares Node >= 20.19).
COPY --from=build /usr/local/bin/node /usr/local/bin/node
RUN set -eu; \
    if ! /usr/local/bin/node --version >/dev/null 2>&1; then \
      apt-get update; \
      apt-get install -y --no-install-recommends libstdc++6; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    /usr/local/bin/node --version

COPY --from=build /build/package.json /usr/local/kong-plugins/mtls-pop/package.json
COPY --from=build /build/node_modules /usr/local/kong-plugins/mtls-pop/node_modules
COPY --from=build /build/dist /usr/local/kong-plugins/mtls-pop/dist

# Kong runs the plugin server with a minimal environment (nginx workers drop env vars; no PATH):
# every path is absolute. Kong derives the variable names from pluginserver_names: the name
# lower-cased with "-" turned into "_" (kong/conf_loader/init.lua), so "mtls-pop" reads
# pluginserver_mtls_pop_{socket,start_cmd,query_cmd}. No -v: it logs every RPC at debug level (values
# redacted by this launcher, but the volume does not belong in production logs).
ENV KONG_PLUGINS=bundled,mtls-pop \
    KONG_PLUGINSERVER_NAMES=mtls-pop \
    KONG_PLUGINSERVER_MTLS_POP_SOCKET=/usr/local/kong/mtls-pop.sock \
    KONG_PLUGINSERVER_MTLS_POP_START_CMD="/usr/local/bin/node /usr/local/kong-plugins/mtls-pop/dist/bin/mtls-pop-pluginserver.js -d /usr/local/kong-plugins/mtls-pop/dist/plugins -p /usr/local/kong --sock-name mtls-pop.sock" \
    KONG_PLUGINSERVER_MTLS_POP_QUERY_CMD="/usr/local/bin/node /usr/local/kong-plugins/mtls-pop/dist/bin/mtls-pop-pluginserver.js --dump-all-plugins -d /usr/local/kong-plugins/mtls-pop/dist/plugins" \
    KONG_NGINX_HTTP_LARGE_CLIENT_HEADER_BUFFERS="8 32k"

# The exact query command Kong will run must print the plugin's info as JSON.
RUN sh -c "$KONG_PLUGINSERVER_MTLS_POP_QUERY_CMD" >/tmp/dump.json \
 && /usr/local/bin/node -e 'const d = JSON.parse(require("fs").readFileSync("/tmp/dump.json", "utf8")); if (d[0].Name !== "mtls-pop") process.exit(1);' \
 && rm -f /tmp/dump.json

USER kong
HEALTHCHECK --interval=10s --timeout=10s --retries=10 CMD ["kong", "health"]
