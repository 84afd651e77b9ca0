#!/bin/bash
# Hot course-detail reads with a token: EduTrack against nginx serving the same bytes, wrk -c64,
# twice each (make load-hot). Needs nginx and wrk (Debian: nginx-light, wrk); run from the
# repository's root after make build.
set -e
dir=$(mktemp -d); port=18280; nport=18281
EDUTRACK_DATA_DIR=$dir EDUTRACK_HTTP_ADDR=127.0.0.1:$port EDUTRACK_LOG_LEVEL=error EDUTRACK_AUTH=disabled \
  EDUTRACK_RATE_LIMIT_IP=off EDUTRACK_RATE_LIMIT_USER=off ./bin/edutrack serve & pid=$!
sleep 2
./bin/edutrack-load -addr http://127.0.0.1:$port -phases healthz -duration 1s -warmup 0s -courses 20 -learners 4 -clients 8 -prefix hh -save-body $dir/course.json >/dev/null
kill $pid; wait $pid || true
id=$(python3 -c "import json,sys; print(json.load(open('$dir/course.json'))['id'])")
mkdir -p $dir/www/v1/courses; cp $dir/course.json $dir/www/v1/courses/$id
cat > $dir/nginx.conf <<NG
worker_processes auto; pid $dir/nginx.pid; error_log $dir/nginx.err;
events { worker_connections 4096; }
http { access_log off; sendfile on; default_type application/json;
  server { listen 127.0.0.1:$nport; root $dir/www; } }
NG
nginx -c $dir/nginx.conf
EDUTRACK_DATA_DIR=$dir EDUTRACK_HTTP_ADDR=127.0.0.1:$port EDUTRACK_LOG_LEVEL=error \
  EDUTRACK_RATE_LIMIT_IP=1000000/1s EDUTRACK_RATE_LIMIT_USER=1000000/1s ./bin/edutrack serve & pid=$!
sleep 2
L=$(EDUTRACK_DATA_DIR=$dir ./bin/edutrack token --sub hh-l0001 --role learner)
curl -sf -o /dev/null -H "Authorization: Bearer $L" http://127.0.0.1:$port/v1/courses/$id
for i in 1 2; do
  echo "== EduTrack with token, run $i"; wrk -t2 -c64 -d10s --latency -H "Authorization: Bearer $L" http://127.0.0.1:$port/v1/courses/$id | grep -E "Requests/sec|99%|50%"
  echo "== nginx, run $i"; wrk -t2 -c64 -d10s --latency http://127.0.0.1:$nport/v1/courses/$id | grep -E "Requests/sec|99%|50%"
done
kill $pid; wait $pid || true; kill $(cat $dir/nginx.pid); rm -rf $dir
