#!/usr/bin/env bash
# How a person deploys a small Node app to a few servers by hand, bench:push's "rsync script"
# side: build once in a checkout, rsync the build to every host at once, then restart the app
# over ssh (kill the old one, start the new one with nohup). Between the kill and the new app's
# listen the port is closed, so requests are refused there: the drop a hand script usually has.
#   push-rsync.sh CHECKOUT HOST_DIR:APP_PORT...
# ssh's options (port, key, known_hosts) come in $SSH_OPTS; every host is root@127.0.0.1.
set -euo pipefail
# With STAGE_MARKS set, `stage NAME EPOCH_MS` lines time the steps for bench/push.ts.
stage() { if [ -n "${STAGE_MARKS:-}" ]; then echo "stage $1 $(date +%s%3N)"; fi; }
checkout=$1
shift
cd "$checkout"
stage fetch
git fetch --quiet origin
git reset --quiet --hard origin/main
stage install
npm install --prefer-offline --no-audit --no-fund --loglevel=error
stage build
npm run --silent build
stage fan-out

pids=()
for spec in "$@"; do
  dir=${spec%:*}
  port=${spec##*:}
  (
    rsync -a --delete -e "ssh $SSH_OPTS" dist/ "root@127.0.0.1:$dir/app/"
    ssh $SSH_OPTS root@127.0.0.1 "cd $dir/app; kill \$(cat ../app.pid 2>/dev/null) 2>/dev/null;
      PORT=$port nohup node server.cjs >../app.log 2>&1 </dev/null & echo \$! >../app.pid"
  ) &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
stage done
