# gpu-supervisor on NVIDIA GPUs: ONNX Runtime's CUDA 12 provider on a CUDA 12 + cuDNN 9 runtime image.
# Build: docker build -t gpu-supervisor .
# Run:   docker run --gpus all --pid=host gpu-supervisor
#   --pid=host lets nvidia-smi's host PIDs match the workers' PIDs (per-worker GPU attribution).
#
# Checked by reading only: no Docker engine runs where this project is developed and tested.

# --- build: install with the CUDA provider, compile TypeScript, generate the MLP test model ---
FROM node:22-bookworm-slim AS build
WORKDIR /app
# The project's .npmrc skips onnxruntime-node's CUDA download (CI cannot reach it); this env var,
# which onnxruntime-node's install script reads before npm config, opts this image back in.
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
COPY package.json package-lock.json .npmrc tsconfig.base.json tsconfig.json tsconfig.workers.json ./
COPY src ./src
COPY workers ./workers
COPY scripts ./scripts
COPY config ./config
COPY models ./models
# `npm ci` builds (prepare). npm may hold back dependency install scripts, so the CUDA provider's
# install is run explicitly when its library is missing, and the build fails if it is still missing.
RUN npm ci --foreground-scripts \
 && ( ls node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime_providers_cuda.so \
      || node node_modules/onnxruntime-node/script/install ) \
 && ls node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime_providers_cuda.so \
 && npm prune --omit=dev

# --- runtime: CUDA + cuDNN libraries, Node 22 copied from the build stage ---
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV NODE_ENV=production \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/config ./config
COPY --from=build /app/models ./models
# GPU by default in this image; CPU stays as the fallback provider.
ENV GPU_SUPERVISOR_EXECUTION_PROVIDERS=cuda,cpu
USER 1000:1000
ENTRYPOINT ["node", "dist/supervisor.js"]
CMD ["--config", "config/default.json"]
