#!/usr/bin/env bash
# Regenerates proto/greeterpb from proto/hello.proto with pinned generators.
# The generators are installed into ./.bin so the result does not depend on
# whatever happens to be on PATH. protoc itself comes from Debian's
# protobuf-compiler (3.21.12 on bookworm), whose version is stamped into the
# generated files.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.2
PROTOC_WANT=3.21.12

bin="$PWD/.bin"
mkdir -p "$bin"
if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null
  else
    echo "protoc is missing: apt-get install protobuf-compiler libprotobuf-dev" >&2
    exit 1
  fi
fi
have=$(protoc --version | awk '{print $2}')
if [ "$have" != "$PROTOC_WANT" ]; then
  echo "warning: protoc $have, the committed code was generated with $PROTOC_WANT" >&2
fi
[ -x "$bin/protoc-gen-go" ] && "$bin/protoc-gen-go" --version | grep -q "$PROTOC_GEN_GO" ||
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
[ -x "$bin/protoc-gen-go-grpc" ] && "$bin/protoc-gen-go-grpc" --version | grep -q "${PROTOC_GEN_GO_GRPC#v}" ||
  GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"

PATH="$bin:$PATH" protoc -I proto \
  --go_out=proto/greeterpb --go_opt=paths=source_relative \
  --go-grpc_out=proto/greeterpb --go-grpc_opt=paths=source_relative \
  proto/hello.proto

# The tutorial's own contract, unmodified, for the compatibility test in
# e2e/tutorial: a client generated from it must keep working against us.
PATH="$bin:$PATH" protoc -I e2e/tutorial \
  --go_out=e2e/tutorial/tutorialpb --go_opt=paths=source_relative \
  --go_opt=Mhello.proto=github.com/greeter/greeter/e2e/tutorial/tutorialpb \
  --go-grpc_out=e2e/tutorial/tutorialpb --go-grpc_opt=paths=source_relative \
  --go-grpc_opt=Mhello.proto=github.com/greeter/greeter/e2e/tutorial/tutorialpb \
  e2e/tutorial/hello.proto
