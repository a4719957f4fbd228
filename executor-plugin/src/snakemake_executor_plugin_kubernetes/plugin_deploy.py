"""Storage plugins in the job pods: from the image, or pip-installed when the image lacks them.

Upstream 0.5.1 keeps Snakemake's common setting `auto_deploy_default_storage_provider`, so
Snakemake starts every pod's command with `pip install --target .snakemake/pip-deployments`
of every storage plugin installed where Snakemake runs (`SpawnedJobArgsFactory.precommand`).
That is what makes an image like `snakemake/snakemake`, which has no storage plugin, work
with `--default-storage-provider`; it costs a pip install in every pod, also when the
image has the plugins (ours does).

`--kubernetes-auto-deploy-storage-plugins` chooses:
- `auto` (default): the pod's command starts with a check (one short Python start) that
  installs, like Snakemake would, only the plugins of the run's storage providers that the
  image lacks, and says so in the pod's log;
- `always`: Snakemake's own pip install in every pod, as 0.5.1 does;
- `never`: nothing; the image must contain the plugins.
"""

import enum
import re
import shlex
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

SETTING = "--kubernetes-auto-deploy-storage-plugins"
_MODULE = re.compile(r"^snakemake_storage_plugin_[a-z0-9_]+$")


class PluginDeployment(enum.Enum):
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


# Earlier releases of this plugin had an on/off flag; its values keep their meaning.
_ALIASES = {
    "true": PluginDeployment.ALWAYS,
    "yes": PluginDeployment.ALWAYS,
    "on": PluginDeployment.ALWAYS,
    "1": PluginDeployment.ALWAYS,
    "false": PluginDeployment.NEVER,
    "no": PluginDeployment.NEVER,
    "off": PluginDeployment.NEVER,
    "0": PluginDeployment.NEVER,
}


def parse_plugin_deployment(value: object) -> PluginDeployment:
    if isinstance(value, PluginDeployment):
        return value
    if isinstance(value, bool):
        return PluginDeployment.ALWAYS if value else PluginDeployment.NEVER
    text = str(value).strip().lower()
    if text in _ALIASES:
        return _ALIASES[text]
    try:
        return PluginDeployment(text)
    except ValueError:
        choices = ", ".join(mode.value for mode in PluginDeployment)
        raise WorkflowError(
            f"Invalid value {value!r} for setting {SETTING}: expected one of {choices}."
        ) from None


def unparse_plugin_deployment(value: PluginDeployment) -> str:
    return parse_plugin_deployment(value).value


def storage_plugin_modules(workflow: Any) -> list[str]:
    """Top-level modules of the storage plugins the run's jobs load: the default storage
    provider's and those of providers the Snakefile registered (storage directives,
    `storage.<provider>(...)`), as Snakemake's storage registry holds them."""
    modules: set[str] = set()
    registry = getattr(workflow, "storage_registry", None)
    # Snakemake's StorageRegistry has no public listing of its providers.
    providers = getattr(registry, "_storages", None) if registry is not None else None
    for provider in (providers or {}).values():
        modules.add(type(provider).__module__.split(".")[0])
    default = getattr(getattr(workflow, "storage_settings", None), "default_storage_provider", None)
    if default:
        modules.add("snakemake_storage_plugin_" + str(default).replace("-", "_"))
    return sorted(module for module in modules if _MODULE.match(module))


def install_missing_statements(modules: list[str]) -> str:
    """Python statements (one line, standard library only) that pip-install the packages of
    those `modules` the image lacks, where the pod's Snakemake finds them (its
    PIP_DEPLOYMENTS_PATH), and leave pip's exit code in `c` (0 when nothing was missing);
    empty for no modules. The launcher runs them in its own interpreter (launch.py)."""
    if not modules:
        return ""
    from snakemake import PIP_DEPLOYMENTS_PATH

    for module in modules:
        if not _MODULE.match(module):
            raise ValueError(f"not a storage plugin module: {module!r}")
    packages = tuple(module.replace("_", "-") for module in modules)
    return (
        "import importlib,importlib.util as u,site,subprocess as s,sys;"
        f"d={PIP_DEPLOYMENTS_PATH!r};site.addsitedir(d);"
        f"m=[p for p in {packages!r} if u.find_spec(p.replace('-','_')) is None];"
        "m and print('snakemake-executor-plugin-kubernetes: installing '+' '.join(m)+"
        "' into '+d+' with pip: the image lacks them and the run uses them as storage "
        f"providers ({SETTING}=auto; build them into the image to skip this, or set "
        "never)',file=sys.stderr,flush=True);"
        "c=s.call([sys.executable,'-m','pip','install','--no-input',"
        "'--disable-pip-version-check','--target',d,*m]) if m else 0;"
        "importlib.invalidate_caches()"
    )


def install_missing_command(modules: list[str], python: str = "python") -> str:
    """A shell command running `install_missing_statements` and exiting with pip's code;
    empty for no modules.

    It needs nothing but the image's Python: the image may have neither plugin."""
    statements = install_missing_statements(modules)
    if not statements:
        return ""
    return f"{python} -c {shlex.quote(statements + ';sys.exit(c)')}"
