package main

// Help texts. Cobra prints them under "greeter --help" and "greeter COMMAND
// --help", followed by the flags it lists itself.

const rootLong = `greeter talks to a greeterd file server.

Connection flags (before or after the command) have a GREETER_* environment
equivalent: --addr is GREETER_ADDR, --state-dir GREETER_STATE_DIR, and so on;
a flag on the command line wins over the environment.

With several replicas (--addr HOST:PORT,HOST:PORT,... or dns:///NAME:PORT),
calls are spread over them and skip any replica whose health is not SERVING or
that is down; a transfer cut off by a replica going away retries on another.
TLS verifies every replica under one name: --server-name, else the host of the
first address. --plaintext is only for a local --plaintext server (tokens are
refused).

Tracing: each command is one trace (a root span "greeter COMMAND" with every
RPC it makes as a child) when OTEL_TRACES_EXPORTER or the OTLP endpoint
variables say so; the console exporter writes spans to stderr.

Exit codes: 0 ok, 1 failure (also local file errors: an unsafe partial file, a
download already in progress), 2 usage, 3 not found, 4 unauthenticated or denied,
5 invalid argument or failed condition, 6 unavailable or timed out, 7 integrity
failure, 8 resource exhausted.
When several transfers fail, stderr lists each and the exit code is the first's.`

const transferLong = `
Transfers retry broken connections, server restarts and rate limits with
backoff and resume where they stopped, also in a later run: an upload from the
bytes the server committed, a download from its .NAME.greeter-part file. That
file must be your own regular file, not writable by others and not a link;
anything else there is refused and left alone. While a download writes it, a
second download to the same path fails at once.

With --json, the command prints an array of per-file results (name, path,
size, sha256, bytes_sent, bytes_received, attempts, error); with a single FILE
or NAME argument, that one object.`

const uploadLong = `Store files. A DIR argument stores every regular file in it, named by its
path relative to DIR.

--as names a single FILE (default its base name); with -r or a DIR it is the
prefix of every name. --create-only stores only files that do not exist on the
server yet; --if-match SHA replaces the stored file only if its SHA-256 is SHA
(hex; a single FILE).
` + transferLong

const downloadLong = `Fetch files into PATH (-o; default: their base names in the current
directory). With several NAMEs, PATH must be a directory.
` + transferLong

const usageLong = `Show the storage you use and your quotas.

With --json it prints bytes, objects, quota_bytes and quota_objects (a quota
of 0 means none).`
