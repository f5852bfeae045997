# syntax=docker/dockerfile:1
#
# Executor image: the hybrid-quantum package with its CLI as the entrypoint. Argo runs it
# for every batch (`hybrid-quantum run-batch <manifest-uri> --batch <n> ...`).
#
#   docker build -t hybrid-quantum-executor:0.1.0 .                    # CPU (default target)
#   docker build --target gpu -t hybrid-quantum-executor:0.1.0-gpu .   # + CuPy, Aer-GPU
#
# Tags match DEFAULT_EXECUTOR_IMAGE / DEFAULT_EXECUTOR_GPU_IMAGE in hybrid_provider/constants.py
# and executor.image in charts/hybrid-quantum/values.yaml.
# Not built in this repository's CI (no container engine there): see docs/deploy.md.

# The Python the test jobs run (README, "Supported versions").
ARG PYTHON_VERSION=3.11

# --- build: a wheel of this package only (dependencies come from PyPI in the next stage) ---
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hybrid_provider ./hybrid_provider
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime: common to both variants ---
FROM python:${PYTHON_VERSION}-slim AS runtime
# fsspec backends for the artifact store (s3:// needs s3fs); override to add gcsfs, adlfs...
ARG STORE_PACKAGES="s3fs"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
# The chart runs pods as 10001:10001 with a read-only root filesystem and /tmp as scratch.
RUN groupadd --gid 10001 hq \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin hq
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl ${STORE_PACKAGES} && rm -rf /wheels
WORKDIR /tmp
ENTRYPOINT ["hybrid-quantum"]
CMD ["--help"]

# --- gpu: CuPy for reconstruction, Aer's GPU build for simulation ---
FROM runtime AS gpu
# qiskit-aer-gpu provides the same `qiskit_aer` module as qiskit-aer: install the GPU build
# at the version the package resolved, drop the CPU build, then rewrite the GPU build's files.
# Both bring the CUDA 12 user-space libraries as nvidia-* wheels; the driver comes from the node.
RUN AER_VERSION="$(python -c 'import importlib.metadata as m; print(m.version("qiskit-aer"))')" \
    && pip install "cupy-cuda12x>=13.0" "qiskit-aer-gpu==${AER_VERSION}" \
    && pip uninstall -y qiskit-aer \
    && pip install --no-deps --force-reinstall "qiskit-aer-gpu==${AER_VERSION}"
USER 10001:10001

# --- cpu: the default target (last stage) ---
FROM runtime AS cpu
USER 10001:10001
