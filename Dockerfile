# Job image for `snakemake --executor kubernetes`: Snakemake 9 plus both plugins of this
# repository (snakemake-storage-plugin-azblob, snakemake-executor-plugin-kubernetes).
#
#   docker build -t snakemake-k8s-azblob:1.0.0 .
#   docker build --target bio -t snakemake-k8s-azblob-bio:1.0.0 .   # + pybwa, pysam, matplotlib
#   docker build --target conda -t snakemake-k8s-azblob-conda:1.0.0 . # + conda (Miniforge)
#
# No credential is baked in: pods receive storage credentials at run time through the
# Secret the executor creates for each run (or through workload identity).

ARG PYTHON_IMAGE=python:3.12-slim
ARG SNAKEMAKE_REQUIREMENT="snakemake>=9.0,<10"
# Miniforge release for the conda target: conda >= 24.7.1 (Snakemake 9's minimum), conda-forge
# as the only channel, the libmamba solver. Its installer is checked against its .sha256.
ARG MINIFORGE_VERSION=24.11.3-0

# --- Stage 1: build the two plugin wheels with hatchling (from the local sources only) -----
FROM ${PYTHON_IMAGE} AS wheels
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY storage-plugin/ storage-plugin/
COPY executor-plugin/ executor-plugin/
RUN python -m pip wheel --no-deps --wheel-dir /wheels ./storage-plugin ./executor-plugin

# --- Stage 2: the runtime image -----------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ARG SNAKEMAKE_REQUIREMENT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/snakemake \
    PATH=/opt/snakemake/bin:$PATH

# A virtual environment owned by root keeps the installed tools read-only for the job user.
COPY --from=wheels /wheels /tmp/wheels
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install "$SNAKEMAKE_REQUIREMENT" /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && snakemake --version \
    && python -c "import snakemake_storage_plugin_azblob, snakemake_executor_plugin_kubernetes"

# Non-root job user; the executor sets each container's workingDir to an emptyDir volume.
RUN groupadd --gid 1000 snakemake \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/snakemake \
       --shell /usr/sbin/nologin snakemake \
    && mkdir -p /workdir \
    && chown snakemake:snakemake /workdir
USER 1000:1000
ENV HOME=/home/snakemake
WORKDIR /workdir
CMD ["snakemake", "--version"]

# --- Optional stage: tools of the variant-calling example ---------------------------------
FROM base AS bio
USER root
RUN pip install "pybwa>=2" "pysam>=0.22" "matplotlib>=3.8"
USER 1000:1000

# --- Optional stage: conda for --software-deployment-method conda -------------------------
# Snakemake in the pod calls `conda` to create each rule's environment in the pod's working
# directory (.snakemake/conda). conda's own python stays off PATH: `python` and `snakemake`
# remain the venv's, only `conda` (condabin) is added. Packages are cached in the job user's
# home; the base installation stays root-owned and read-only.
FROM base AS conda
ARG MINIFORGE_VERSION
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && installer="Miniforge3-${MINIFORGE_VERSION}-Linux-$(uname -m).sh" \
    && cd /tmp \
    && curl -fsSLO "https://github.com/conda-forge/miniforge/releases/download/${MINIFORGE_VERSION}/${installer}" \
    && curl -fsSL "https://github.com/conda-forge/miniforge/releases/download/${MINIFORGE_VERSION}/${installer}.sha256" \
       | sha256sum -c - \
    && bash "${installer}" -b -p /opt/conda \
    && rm -f "${installer}" \
    && /opt/conda/bin/conda clean --all --yes \
    && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && /opt/conda/condabin/conda --version
ENV PATH=/opt/snakemake/bin:/opt/conda/condabin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CONDA_PKGS_DIRS=/home/snakemake/.conda/pkgs
USER 1000:1000
RUN conda --version && python -c "import snakemake_executor_plugin_kubernetes"

# The default target is the plain job image.
FROM base AS final
