#!/usr/bin/env bash
# The bridge demo: two processes, one notifying and one awaiting, through a local redis-server.
#   1. redis-server starts on a free loopback port (no persistence);
#   2. herald-redis-wait imports channel 'demo' and waits; herald-redis-notify, another process,
#      exports a handle on 'demo' and notifies it N times: every one wakes the waiter;
#   3. a task followed across processes: pending -> running -> completed;
#   4. Redis stopped: a follower started now polls its state file (100 ms -> 5 s, x2) and still
#      sees the task end.
# The server is stopped on exit, whatever happens.
# usage: tools/redis_demo.sh DIR/WITH/herald-redis-notify-and-wait [N]
set -euo pipefail
bin=$1
n=${2:-5}
notify="$bin/herald-redis-notify"
waitfor="$bin/herald-redis-wait"
server=$(command -v redis-server || true)
[[ -n "$server" ]] || { echo "redis demo: redis-server not found (tools/setup installs it)"; exit 1; }
work=$(mktemp -d)
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

answers() { # PING on 127.0.0.1:$1 through bash's /dev/tcp
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  local reply
  read -r -t 1 reply <&3 || true
  exec 3<&- 3>&-
  [[ $reply == +PONG* ]]
}
start_server() { # on port $1
  "$server" --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --logfile "$work/redis.log" --daemonize no &
  pid=$!
  for _ in $(seq 100); do
    answers "$1" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
  pid=""
  return 1
}
port=""
for _ in $(seq 20); do
  candidate=$((20000 + RANDOM % 40000))
  answers "$candidate" && continue  # taken
  if start_server "$candidate"; then port=$candidate; break; fi
done
[[ -n "$port" ]] || { echo "redis demo: could not start redis-server"; exit 1; }
url="redis://127.0.0.1:$port"
echo "1. redis-server on $url (pid $pid)"

echo "2. a waiter in one process, $n notifications from another"
"$waitfor" --url "$url" --count "$n" --timeout-ms 10000 demo >"$work/wait.out" &
waiter=$!
for _ in $(seq 200); do grep -q ready "$work/wait.out" 2>/dev/null && break; sleep 0.02; done
"$notify" --url "$url" --count "$n" demo | sed 's/^/   notifier: /'
wait "$waiter"
sed 's/^/   waiter:   /' "$work/wait.out"
woken=$(grep -c '^woken' "$work/wait.out")
[[ $woken -eq $n ]] || { echo "redis demo: $woken of $n woken"; exit 1; }

echo "3. a task followed across processes"
state="$work/build-42.state"
echo pending >"$state"
"$waitfor" --url "$url" --task build-42 --state-file "$state" --timeout-ms 10000 >"$work/task.out" &
follower=$!
for _ in $(seq 200); do grep -q ready "$work/task.out" 2>/dev/null && break; sleep 0.02; done
sleep 0.2
"$notify" --url "$url" --task build-42 running --state-file "$state" >/dev/null
sleep 0.2
"$notify" --url "$url" --task build-42 completed --state-file "$state" >/dev/null
wait "$follower"
sed 's/^/   follower: /' "$work/task.out"
grep -q 'completed' "$work/task.out" || { echo "redis demo: the task did not complete"; exit 1; }

echo "4. Redis stopped: a follower polls its state file and still sees the task end"
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=""
state="$work/deploy-7.state"
echo running >"$state"
"$waitfor" --url "$url" --task deploy-7 --state-file "$state" --timeout-ms 10000 >"$work/poll.out" &
follower=$!
sleep 1
echo completed >"$state"
wait "$follower"
sed 's/^/   follower: /' "$work/poll.out"
grep -q 'completed' "$work/poll.out" || { echo "redis demo: polling did not see the end"; exit 1; }
echo "result: $woken of $n notifications crossed processes; both tasks ended"
