"""Small workflows that several executor test modules run on the local cluster."""

CHAIN_SNAKEFILE = """
rule all:
    input:
        "second.txt",

rule first:
    output:
        "first.txt",
    shell:
        "echo one > {output}"

rule second:
    input:
        "first.txt",
    output:
        "second.txt",
    shell:
        "echo stopping-here; exit 3"
"""


ONE_JOB_SNAKEFILE = """
rule all:
    input:
        "one.txt",

rule one:
    output:
        "one.txt",
    shell:
        "touch {output}"
"""
