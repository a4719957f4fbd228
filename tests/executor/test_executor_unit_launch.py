"""The one-interpreter launcher: the command it replaces, the arguments and exit codes it
keeps, and Snakemake imported once for both steps."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import venv

import pytest

from snakemake_executor_plugin_kubernetes.launch import (
    LAUNCH_MODULE,
    SEPARATOR,
    boot_script,
    launcher_command,
    main,
)

DEPLOY = (
    "python -m snakemake --deploy-sources 'az://c/.snakemake/source-cache/abc.tar.xz' "
    "abc123 --default-storage-prefix 'az://c' --default-storage-provider 'azblob' "
    "--storage-azblob-endpoint-url 'http://127.0.0.1:10000/devstoreaccount1'"
)
JOB = (
    "python -m snakemake --snakefile 'Snakefile' --target-jobs 'align:sample=a' "
    "--allowed-rules 'align' --cores 'all' --attempt 1 --mode 'remote'"
)


def test_the_two_starts_become_one_with_the_same_arguments():
    precommand = f"echo hi && {DEPLOY}"
    command = f"{precommand} && {JOB}"
    launched = launcher_command(command, precommand)
    assert launched is not None
    assert launched.startswith("echo hi && python -c ")
    assert launched.count("python -") == 1
    # The shell splits the new command into exactly the old two argument lists.
    words = shlex.split(launched.split(" && ", 1)[1])
    assert words[:3] == ["python", "-c", boot_script()]
    split = words.index(SEPARATOR)
    assert words[3:split] == shlex.split(DEPLOY)[3:]
    assert words[split + 1 :] == shlex.split(JOB)[3:]


@pytest.mark.parametrize(
    "command, precommand",
    [
        (JOB, ""),  # nothing to deploy (e.g. a shared filesystem)
        (f"{DEPLOY} && echo between && {JOB}", DEPLOY),  # not the shape Snakemake builds
        (f"{DEPLOY} && {JOB}", "python -m snakemake --other"),
    ],
)
def test_other_commands_are_left_as_snakemake_built_them(command, precommand):
    assert launcher_command(command, precommand) is None


def run_launcher(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", LAUNCH_MODULE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_both_steps_run_in_one_interpreter_and_the_job_s_exit_code_is_kept(tmp_path):
    (tmp_path / "Snakefile").write_text('rule fail:\n    shell: "exit 3"\n')
    snakefile = str(tmp_path / "Snakefile")
    ok = run_launcher("--version", SEPARATOR, "--version")
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.split()) == 2  # both steps ran and printed the version
    failed_job = run_launcher(
        "--version", SEPARATOR, "--snakefile", snakefile, "--cores", "1", "--directory",
        str(tmp_path),
    )  # fmt: skip
    assert failed_job.returncode == 1, failed_job.stderr
    assert "exit 3" in failed_job.stderr


def test_a_failing_first_step_ends_the_pod_with_its_code(capsys):
    assert main(["--no-such-option", SEPARATOR, "--version"]) == 2  # argparse's usage error
    assert capsys.readouterr().out == "", "the job step ran after the deploy step failed"
    assert main(["--version"]) == 2  # no separator: a usage error, nothing runs


def test_snakemake_is_imported_once_for_both_steps():
    probe = (
        "import sys, snakemake.cli as cli\n"
        "calls = []\n"
        "real = cli.main\n"
        "def counting(argv=None):\n"
        "    calls.append(sorted(m for m in sys.modules if m.startswith('snakemake.')))\n"
        "    real(argv)\n"
        "cli.main = counting\n"
        "from snakemake_executor_plugin_kubernetes.launch import main\n"
        "code = main(['--version', '::', '--version'])\n"
        "assert code == 0 and len(calls) == 2\n"
        "print(len(calls[0]) > 10 and set(calls[1]) >= set(calls[0]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "True"


def test_a_job_pod_does_not_import_the_kubernetes_client():
    # Snakemake imports every installed executor plugin at start, in each pod too; the
    # pod never talks to the API, so the official client (0.4 CPU-s) stays unimported.
    probe = (
        "import sys, snakemake.cli\n"
        "from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry\n"
        "plugin = ExecutorPluginRegistry().get_plugin('kubernetes')\n"
        "assert plugin.executor.__name__ == 'Executor'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_launcher_records_the_job_s_usage_in_its_own_interpreter(tmp_path):
    from snakemake_executor_plugin_kubernetes.usage import parse_message

    message = tmp_path / "termination-log"
    launched = launcher_command(f"{DEPLOY} && {JOB}", DEPLOY, message_file=str(message))
    assert launched is not None and launched.count("python -") == 1
    assert shlex.split(launched)[3:5] == ["--message-file", str(message)]
    failed = run_launcher("--message-file", str(message), "--version", SEPARATOR, "--no-such")
    assert failed.returncode == 2, failed.stderr
    usage = parse_message(message.read_text())
    assert usage is not None and usage.exit_code == 2 and usage.cpu_seconds > 0


def run_boot(tmp_path, *args: str, python: str = sys.executable):
    """The pod's boot program as the shell runs it, with ``python``."""
    return subprocess.run(
        [python, "-c", boot_script(), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONNOUSERSITE": "1"},
    )


def image_without_our_plugin(root) -> str:
    """The python of a venv like an image with Snakemake but not this plugin (e.g. an older
    release of it): a stand-in plugin of the same name, without the launch module, is
    installed in the venv's own site-packages; the test venv's packages (Snakemake, this
    plugin and the rest) come after it through a .pth line, as the local cluster's images
    are layered."""
    venv.create(root, with_pip=False)
    (site_packages,) = (root / "lib").glob("python3*/site-packages")
    # addsitedir, not a bare path: the test venv's own .pth files (editable installs of
    # this plugin among them) are read too, so only the stand-in's precedence hides ours.
    purelib = sysconfig.get_paths()["purelib"]
    (site_packages / "test-venv.pth").write_text(f"import site; site.addsitedir({purelib!r})\n")
    shadow = site_packages / "snakemake_executor_plugin_kubernetes"
    shadow.mkdir()
    (shadow / "__init__.py").write_text(
        "from snakemake_interface_executor_plugins.executors.base import AbstractExecutor\n"
        "from snakemake_interface_executor_plugins.settings import CommonSettings\n"
        "common_settings = CommonSettings(True, True, job_deploy_sources=True)\n"
        "class Executor(AbstractExecutor):\n"
        "    pass\n"
    )
    return str(root / "bin" / "python")


def test_the_boot_program_launches_in_one_interpreter_where_the_plugin_is(tmp_path):
    message = tmp_path / "m"
    done = run_boot(tmp_path, "--message-file", str(message), "--version", SEPARATOR, "--version")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 2 and "two Python starts" not in done.stderr
    assert message.exists(), "the launcher recorded no usage"


def test_the_boot_program_falls_back_to_snakemakes_two_starts_without_the_plugin(tmp_path):
    python = image_without_our_plugin(tmp_path / "image")
    (tmp_path / "Snakefile").write_text('rule fail:\n    shell: "exit 3"\n')
    message = tmp_path / "m"
    ok = run_boot(
        tmp_path, "--message-file", str(message), "--version", SEPARATOR, "--version",
        python=python,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "two Python starts" in ok.stderr and len(ok.stdout.split()) == 2
    assert not message.exists()
    failed_deploy = run_boot(tmp_path, "--no-such-option", SEPARATOR, "--version", python=python)
    assert failed_deploy.returncode == 2 and failed_deploy.stdout == ""
    failed_job = run_boot(
        tmp_path, "--version", SEPARATOR, "--snakefile", "Snakefile", "--cores", "1",
        python=python,
    )  # fmt: skip
    assert failed_job.returncode == 1, failed_job.stderr
