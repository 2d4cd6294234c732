# syntax=docker/dockerfile:1
# comfyui-agent on a CUDA PyTorch base: ComfyUI and its custom nodes at pinned commits, the agent in front.
#   docker build -t comfyui-agent .
#   docker run --gpus all -p 9000:9000 -v /data/comfyui:/mnt/auto/comfyui comfyui-agent
# The gateway (s.yaml `gateway`): the agent alone on a slim Python, no ComfyUI, no torch, in front of GPU workers.
#   docker build --target gateway -t comfyui-agent-gateway .
#   docker run -p 9000:9000 -v /data/comfyui:/mnt/auto/comfyui -e WORKER_URL=https://... comfyui-agent-gateway
# The last stage is the default target, so it stays the GPU image; BuildKit builds only the stages a target needs.

# PyTorch 2.9.1 built for CUDA 12.8 (ComfyUI 0.33.0 asks for torch 2.7 or newer). The image carries no driver: FC's
# GPU hosts bring theirs. CUDA 12.x runs on any driver from 525 on (NVIDIA's minor-version compatibility; the wheels
# carry compiled kernels for sm_75 to sm_120, so nothing is JIT-compiled from PTX), which covers the Tesla 535 and
# 550 drivers of Alibaba Cloud's GPU hosts and FC's T4, A10, Ada and Hopper types. A CUDA 13 base (ComfyUI's
# README advises cu130 for comfy-kitchen's fp8/fp4 kernels; without it those ops take its portable path) needs a
# 580 driver: pass --build-arg PYTORCH_IMAGE=...-cuda13.0-... only where the hosts have one.
ARG PYTORCH_IMAGE=pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# Sources: ComfyUI and the custom nodes of comfyui/custom_nodes.txt, each at its pinned commit, without .git.
FROM ${PYTHON_IMAGE} AS sources
ARG COMFYUI_REPO=https://github.com/comfyanonymous/ComfyUI.git
# ComfyUI 0.33.0 (master of 2026-08-22); agent/install.py pins the same (tests/packaging checks).
ARG COMFYUI_COMMIT=783545f689a0af730065994b46b382ae24844c99
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's package versions rotate with security updates; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY comfyui/custom_nodes.txt ./custom_nodes.txt
RUN fetch() { git init -q "$1" && git -C "$1" fetch -q --depth 1 "$2" "$3" \
              && git -C "$1" checkout -q FETCH_HEAD && rm -rf "$1/.git"; } \
    && fetch comfyui "${COMFYUI_REPO}" "${COMFYUI_COMMIT}" \
    && grep -v -e '^#' -e '^$' custom_nodes.txt | while read -r name repo commit; do \
           fetch "comfyui/custom_nodes/${name}" "${repo}" "${commit}"; \
       done

# The agent, built as a wheel from this repository.
FROM ${PYTHON_IMAGE} AS agent
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# The gateway: the agent wheel and its dependencies only, and the workflows it describes at /api/workflows
# (the worker runs the same ones). It reads tasks from the shared store and hands runs to WORKER_URL.
FROM ${PYTHON_IMAGE} AS gateway
COPY --from=agent /wheels /wheels
COPY comfyui/workflows /opt/comfyui-agent/workflows
# The NAS is mounted for uid/gid 1000 (s.yaml nasConfig), as for the GPU image.
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 1000 --user-group agent
USER 1000:1000
ENV AGENT_MODE=gateway \
    NAS_DIR=/mnt/auto/comfyui \
    WORKFLOWS_DIR=/opt/comfyui-agent/workflows \
    AGENT_PORT=9000 \
    PYTHONUNBUFFERED=1
EXPOSE 9000
ENTRYPOINT ["comfyui-agent"]
CMD ["gateway"]

# The image FC runs on the GPU: the default target, so it must stay the last stage.
FROM ${PYTORCH_IMAGE} AS worker
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# OpenCV in custom nodes needs libGL and GLib; the base image tag pins the distribution.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=sources /src/comfyui /comfyui
# torch, torchvision and torchaudio come with the base image, built for its CUDA: never replaced here.
RUN grep -v -E '^(torch|torchvision|torchaudio)([<>=~! ].*)?$' /comfyui/requirements.txt > /tmp/comfyui-requirements.txt \
    && pip install --no-cache-dir -r /tmp/comfyui-requirements.txt \
    && for requirements in /comfyui/custom_nodes/*/requirements.txt; do \
           pip install --no-cache-dir -r "${requirements}"; \
       done \
    && rm /tmp/comfyui-requirements.txt
COPY --from=agent /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY comfyui/workflows /comfyui/workflows
# The NAS is mounted for uid/gid 1000 (s.yaml nasConfig), so ComfyUI and the agent run as that user.
RUN useradd --create-home --uid 1000 --user-group comfy && chown -R comfy:comfy /comfyui
USER 1000:1000
ENV COMFYUI_DIR=/comfyui \
    NAS_DIR=/mnt/auto/comfyui \
    AGENT_PORT=9000 \
    PYTHONUNBUFFERED=1
EXPOSE 9000
ENTRYPOINT ["comfyui-agent"]
