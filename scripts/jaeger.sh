#!/usr/bin/env bash
# Runs a local Jaeger all-in-one (in-memory storage) bound to 127.0.0.1 only,
# installing it into ./.bin on first use (about 2.5 minutes cold).
#
#   OTLP gRPC  127.0.0.1:${JAEGER_OTLP_GRPC_PORT:-4317}
#   OTLP HTTP  127.0.0.1:${JAEGER_OTLP_HTTP_PORT:-4318}
#   UI/API     http://127.0.0.1:${JAEGER_QUERY_PORT:-16686}  (/api/traces?service=greeterd)
#
# Jaeger v1.42.0 is the newest release that builds from the Go module proxy
# here; its Go-built binary serves the query API but no UI assets.
set -euo pipefail
cd "$(dirname "$0")/.."
JAEGER_VERSION=v1.42.0
bin="$PWD/.bin/all-in-one"
if [ ! -x "$bin" ]; then
  echo "installing jaeger all-in-one $JAEGER_VERSION into .bin (one time)..." >&2
  GOBIN="$PWD/.bin" go install "github.com/jaegertracing/jaeger/cmd/all-in-one@$JAEGER_VERSION"
fi
grpc_port=${JAEGER_OTLP_GRPC_PORT:-4317}
http_port=${JAEGER_OTLP_HTTP_PORT:-4318}
query_port=${JAEGER_QUERY_PORT:-16686}
admin_port=${JAEGER_ADMIN_PORT:-14269}
export SPAN_STORAGE_TYPE=memory
exec "$bin" \
  --collector.otlp.enabled=true \
  --collector.otlp.grpc.host-port="127.0.0.1:$grpc_port" \
  --collector.otlp.http.host-port="127.0.0.1:$http_port" \
  --query.http-server.host-port="127.0.0.1:$query_port" \
  --query.grpc-server.host-port="127.0.0.1:0" \
  --admin.http.host-port="127.0.0.1:$admin_port" \
  --collector.grpc-server.host-port="127.0.0.1:0" \
  --collector.http-server.host-port="127.0.0.1:0" \
  --collector.zipkin.host-port="" \
  --http-server.host-port="127.0.0.1:0" \
  --processor.jaeger-binary.server-host-port="127.0.0.1:0" \
  --processor.jaeger-compact.server-host-port="127.0.0.1:0" \
  --processor.zipkin-compact.server-host-port="127.0.0.1:0" \
  "$@"
