#!/usr/bin/env bash
# Job status for profiles/local-submit/submit.sh, in the form the generic executor expects from
# --cluster-generic-status-cmd: one line, "running", "success" or "failed", for the job id given as the
# last argument. The exit status the job wrote decides; a process that is gone without writing one (killed,
# out of memory) is "failed", so Snakemake does not wait forever for it. Reads the same LOCAL_SUBMIT_LOG
# (default .snakemake/local-submit.log) as submit.sh, relative to the directory snakemake runs in.
set -euo pipefail

jobid="${!#}"
submit_log="${LOCAL_SUBMIT_LOG:-.snakemake/local-submit.log}"
exit_file="$(dirname "$submit_log")/local-submit/$jobid.exit"

if [[ -f "$exit_file" ]]; then
    [[ "$(cat "$exit_file")" == 0 ]] && echo success || echo failed
elif kill -0 "$jobid" 2>/dev/null; then
    echo running
elif [[ -f "$exit_file" ]]; then  # it finished between the two checks above
    [[ "$(cat "$exit_file")" == 0 ]] && echo success || echo failed
else
    echo failed
fi
