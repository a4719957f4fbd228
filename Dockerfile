# Job image for `snakemake --executor kubernetes`: Snakemake 9 plus both plugins of this
# repository (snakemake-storage-plugin-azblob, snakemake-executor-plugin-kubernetes).
#
#   docker build -t snakemake-k8s-azblob:0.1.0 .
#   docker build --target bio -t snakemake-k8s-azblob-bio:0.1.0 .   # + pybwa, pysam, matplotlib
#
# No credential is baked in: pods receive storage credentials at run time through the
# Secret the executor creates for each run (or through workload identity).

ARG PYTHON_IMAGE=python:3.12-slim
ARG SNAKEMAKE_REQUIREMENT="snakemake>=9.0,<10"

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
# pip compiles every module's bytecode at install; since the job user cannot write it, a
# missing .pyc would be compiled again at every pod start, so the build checks a few.
ARG CHECK_BYTECODE="import importlib.util as u, pathlib, snakemake.cli, snakemake.workflow, \
azure.storage.blob, snakemake_executor_plugin_kubernetes.launch as launch; \
missing = [m.__file__ for m in (snakemake.cli, snakemake.workflow, azure.storage.blob, launch) \
if not pathlib.Path(u.cache_from_source(m.__file__)).is_file()]; \
assert not missing, f'no bytecode for {missing}'"
COPY --from=wheels /wheels /tmp/wheels
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install "$SNAKEMAKE_REQUIREMENT" /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && snakemake --version \
    && python -c "import snakemake_storage_plugin_azblob, snakemake_executor_plugin_kubernetes" \
    && python -c "$CHECK_BYTECODE"

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

# The default target is the plain job image.
FROM base AS final
