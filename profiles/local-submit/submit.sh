#!/usr/bin/env bash
# A "cluster" on this machine: each Snakemake job script runs as its own background process, the way sbatch
# would run it on a node. For trying the cluster path (and for tests/test_cluster.py) without a scheduler:
#
#   snakemake --executor cluster-generic --jobs 4 \
#       --cluster-generic-submit-cmd "$PWD/profiles/local-submit/submit.sh" \
#       --cluster-generic-status-cmd "$PWD/profiles/local-submit/status.sh"
#
# Called as `submit.sh [ignored options...] <jobscript>` (the generic executor appends the job script path to
# the submit command, so an sbatch-like template with options in front also works). Prints the job id, the
# PID of the background process, alone on stdout (as `sbatch --parsable` does) and appends
# "<jobid>\t<jobscript>" to the submit log: $LOCAL_SUBMIT_LOG, default .snakemake/local-submit.log.
# Each job's stdout+stderr go to <log dir>/local-submit/<jobid>.out and its exit status to <jobid>.exit,
# which status.sh reads (status.sh must see the same LOCAL_SUBMIT_LOG). The job sees its own id as
# $LOCAL_SUBMIT_JOB_ID, as a SLURM job sees $SLURM_JOB_ID.
set -euo pipefail

jobscript="${!#}"
if [[ $# -eq 0 || ! -f "$jobscript" ]]; then
    echo "submit.sh: the last argument must be a job script, got '${jobscript:-}'" >&2
    exit 2
fi
submit_log="${LOCAL_SUBMIT_LOG:-.snakemake/local-submit.log}"
state_dir="$(dirname "$submit_log")/local-submit"
mkdir -p "$state_dir"

# nohup execs bash, so $! is the PID of the bash below and $$ inside it is the same number. The exit status
# is written to a temporary name and renamed, so status.sh never reads a half-written file. A background
# command of a non-interactive shell ignores SIGINT: Ctrl-C on snakemake leaves running jobs alone, as a
# real cluster would.
nohup bash -c 'exec >"$1/$$.out" 2>&1 </dev/null
export LOCAL_SUBMIT_JOB_ID=$$
bash "$2"
echo $? >"$1/$$.exit.tmp" && mv "$1/$$.exit.tmp" "$1/$$.exit"' local-submit "$state_dir" "$jobscript" \
    </dev/null >/dev/null 2>&1 &
jobid=$!

printf '%s\t%s\n' "$jobid" "$jobscript" >>"$submit_log"
echo "$jobid"
