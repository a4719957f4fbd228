"""One Python start per pod: deploy the workflow sources, then run the job, in one interpreter.

Snakemake builds a remote job's command as two interpreter starts joined by the shell,
    python -m snakemake --deploy-sources QUERY CHECKSUM ... && python -m snakemake --snakefile ...
and each start imports Snakemake, its plugins and the Azure SDK again: for a short job that
is most of the pod's CPU time. The executor rewrites it (see `launcher_command`) to
    python -m snakemake_executor_plugin_kubernetes.launch --deploy-sources ... :: --snakefile ...
which calls Snakemake's own command line entry (`snakemake.cli.main`) with the first
argument list, and, if that succeeded, with the second: the same arguments as before
(the shell still splits and expands them), and the same exit code (the first step's if it
failed, else the job's).

With the efficiency report on, the launcher is given `--message-file PATH` first and records
the job's usage itself (`usage.record`), in the same interpreter, instead of a third start
of `python -m snakemake_executor_plugin_kubernetes.usage` around the command.

The pod's image may lack this plugin (a 0.5.1 user's plain Snakemake image), so the command
is `python -c BOOT ARGS...` (`boot_script`), not `python -m` of this module: in the same
interpreter, BOOT first pip-installs the storage plugins the image lacks (with
`--kubernetes-auto-deploy-storage-plugins auto`, see plugin_deploy), then runs `main` if
this plugin is importable, else Snakemake's two steps as the shell form would (deploy, then
exec the job; no usage recorded). One Python start per pod when the image has the plugins.
"""

import importlib.util
import os
import shlex
import sys
import time

SEPARATOR = "::"
MESSAGE_FILE_OPTION = "--message-file"
LAUNCH_MODULE = "snakemake_executor_plugin_kubernetes.launch"
DEPLOY_STEP = "python -m snakemake --deploy-sources "
JOB_STEP = "python -m snakemake "


def boot_script(install_missing: str = "") -> str:
    """The pod's `python -c` program (standard library only until it imports `main`).

    ``install_missing``: `plugin_deploy.install_missing_statements`, run first (they leave
    pip's exit code in `c`); empty for none."""
    lines = ["import importlib.util as u,os,subprocess as s,sys"]
    if install_missing:
        lines += [install_missing, "c and sys.exit(c)"]
    package = LAUNCH_MODULE.rpartition(".")[0]
    lines += [
        f"if u.find_spec({package!r}) and u.find_spec({LAUNCH_MODULE!r}):",
        f"    from {LAUNCH_MODULE} import main",
        "    sys.exit(main(sys.argv[1:]))",
        "a=sys.argv[1:]",
        f"a=a[2:] if a[:1]==[{MESSAGE_FILE_OPTION!r}] else a",
        f"i=a.index({SEPARATOR!r})",
        f"print('snakemake-executor-plugin-kubernetes: the image lacks {package}, so "
        "Snakemake runs in two Python starts and the job reports no usage',"
        "file=sys.stderr,flush=True)",
        "c=s.call([sys.executable,'-m','snakemake',*a[:i]])",
        "c and sys.exit(c)",
        "os.execv(sys.executable,[sys.executable,'-m','snakemake',*a[i+1:]])",
    ]
    return "\n".join(lines)


def launcher_command(
    command: str, precommand: str, message_file: str | None = None, install_missing: str = ""
) -> str | None:
    """The job's shell command with its two Snakemake starts made one; None if the
    command does not have the expected shape (then it is used as Snakemake built it).

    ``precommand`` is the string Snakemake put before the job's own start
    (``spawned_job_args_factory.precommand``): the sources deployment is its last step.
    ``message_file``: where the launcher records the job's usage (the efficiency report);
    ``install_missing``: statements installing the storage plugins the image lacks.
    """
    start = precommand.rfind(DEPLOY_STEP)
    if start < 0 or (start > 0 and not precommand[:start].endswith(" && ")):
        return None
    deploy_step = precommand[start:]
    joint = f"{deploy_step} && {JOB_STEP}"
    if command.count(joint) != 1:
        return None
    deploy_args = deploy_step.removeprefix("python -m snakemake ").rstrip()
    record = (
        f"{MESSAGE_FILE_OPTION} {shlex.quote(message_file)} " if message_file is not None else ""
    )
    boot = shlex.quote(boot_script(install_missing))
    return command.replace(joint, f"python -c {boot} {record}{deploy_args} {SEPARATOR} ")


def _exit_code(code: object) -> int:
    """What the interpreter would have exited with for ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_snakemake(args: list[str]) -> int:
    """Snakemake's command line entry with ``args``, as `python -m snakemake` runs it."""
    from snakemake.cli import main

    spec = importlib.util.find_spec("snakemake.__main__")
    sys.argv = [spec.origin if spec and spec.origin else "snakemake", *args]
    try:
        main(args)
    except SystemExit as e:
        return _exit_code(e.code)
    return 0


def run_steps(deploy: list[str], job: list[str]) -> int:
    code = run_snakemake(deploy)
    if code != 0:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    return run_snakemake(job)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    message_file = None
    if argv[:1] == [MESSAGE_FILE_OPTION] and len(argv) > 1:
        # Resolved now: Snakemake may change the working directory it is relative to.
        message_file = os.path.abspath(argv[1])
        argv = argv[2:]
    if SEPARATOR not in argv:
        print(
            f"usage: python -m {LAUNCH_MODULE} [{MESSAGE_FILE_OPTION} PATH] DEPLOY-ARGS... "
            f"{SEPARATOR} JOB-ARGS...",
            file=sys.stderr,
        )
        return 2
    split = argv.index(SEPARATOR)
    started = time.monotonic()
    code = run_steps(argv[:split], argv[split + 1 :])
    if message_file is not None:
        from snakemake_executor_plugin_kubernetes import usage

        usage.reap_orphans()
        usage.record(message_file, started, code, include_self=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
