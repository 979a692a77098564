#!/usr/bin/env bash
# Runs the tutorial's own Python client, unmodified, against greeterd
# --plaintext on 127.0.0.1:50051 and checks what it prints and downloads.
# Needs Debian's python3-grpcio and python3-grpc-tools (installed when root).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import grpc, grpc_tools' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-grpcio python3-grpc-tools >/dev/null
  else
    echo "needs python3-grpcio and python3-grpc-tools" >&2; exit 1
  fi
fi
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/greeterd" ./cmd/greeterd
/usr/bin/python3 -m grpc_tools.protoc -I e2e/tutorial --python_out="$work" --grpc_python_out="$work" e2e/tutorial/hello.proto
cp e2e/tutorial/python/client.py "$work/"
head -c 100000 /dev/urandom | base64 > "$work/test.txt"

"$work/greeterd" --plaintext --listen 127.0.0.1:50051 --state-dir "$work/state" --log-format json 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
  grep -q '"greeterd listening"' "$work/server.log" 2>/dev/null && break
  sleep 0.1
done
grep -q '"greeterd listening"' "$work/server.log" || { cat "$work/server.log" >&2; exit 1; }

out=$(cd "$work" && /usr/bin/python3 client.py)
echo "$out"
grep -qx 'Greeter client received: Hello, John Doe! Your age is 30' <<<"$out"
grep -qx 'Greeter client received: Success!' <<<"$out"
cmp "$work/test.txt" "$work/test_download.txt"
echo "the tutorial's python client works against greeterd"
