"""Write dvc.yaml from the Snakemake DAG (the one source of truth for the stage graph), or check that it is current.

    python -m workflow_scripts.pipeline.dvc_sync            # rewrite dvc.yaml
    python -m workflow_scripts.pipeline.dvc_sync --check    # exit 1 if dvc.yaml and the Snakemake DAG disagree

Regenerate after changing anything that changes the shape of the DAG (tasks, model depth, rules).
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import yaml

from workflow_scripts.pipeline.dag import read_snakemake_jobs, stage_from_job

HEADER = ("# Generated from the Snakemake DAG by `python -m workflow_scripts.pipeline.dvc_sync` (make dvc.yaml). Do not edit:\n"
          "# change rules/*.smk or params.yaml and regenerate. Each stage runs its Snakemake job.\n")


def render_dvc_yaml(snakefile: str = "Snakefile", workdir: str = ".", configfiles=()) -> str:
    stages = {}
    for job in read_snakemake_jobs(snakefile, workdir, configfiles):
        if job.output:  # target-only rules (all) have nothing for DVC to track
            name, stage = stage_from_job(job)
            stages[name] = stage
    return HEADER + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    parser.add_argument("--output", default="dvc.yaml", help="file to write or check")
    parser.add_argument("--configfile", action="append", default=[], help="extra Snakemake config file (preset)")
    args = parser.parse_args(argv)

    rendered = render_dvc_yaml(configfiles=args.configfile)
    current = Path(args.output).read_text() if Path(args.output).exists() else ""
    if args.check:
        if rendered != current:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), rendered.splitlines(True),
                                                       args.output, "from the Snakemake DAG"))
            sys.exit(f"{args.output} disagrees with the Snakemake DAG: run `make dvc.yaml`")
        print(f"{args.output} matches the Snakemake DAG")
        return
    Path(args.output).write_text(rendered)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
