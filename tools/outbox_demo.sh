#!/usr/bin/env bash
# The outbox demo: persist, notify, dispatch, and a crash in the middle.
#   1. enqueue N entries (committed before anything else happens);
#   2. a drain (worker-1) runs a shell handler per entry and is SIGKILLed mid-way;
#   3. the restart: worker-1's lease is released (a known owner restarted);
#   4. a new drain finishes the queue.
# Every id must be handled at least once, and the queue must end empty; an id handled twice is
# the at-least-once redelivery of the entry whose handler ran when the drain was killed.
# usage: tools/outbox_demo.sh PATH/TO/herald-outbox [N]
set -euo pipefail
tool=$1
n=${2:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HERALD_OUTBOX_DB="$work/demo.db"
handled="$work/handled.log"
# The handler: takes the payload on stdin, records the id, takes 5 ms.
handler="cat >/dev/null; echo \"\$HERALD_OUTBOX_ID\" >> '$handled'; sleep 0.005"

echo "1. enqueue $n entries into queue 'mail'"
seq 1 "$n" | awk '{ printf "msg-%04d\t{\"to\":\"user%d@example.org\"}\n", $1, $1 }' |
  "$tool" enqueue mail --lines
"$tool" stats mail

echo "2. drain as worker-1, SIGKILLed after 0.5 s"
"$tool" --owner worker-1 --lease-ms 60000 drain mail --exec "$handler" >/dev/null 2>&1 &
pid=$!
sleep 0.5
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
sleep 0.05  # the handler the drain had started finishes on its own
before=$(wc -l <"$handled")
echo "   killed after $before handler runs; the file now says:"
"$tool" stats mail

echo "3. restart: worker-1 is known to have restarted, so its lease is released at once"
"$tool" release worker-1

echo "4. drain again (worker-2)"
"$tool" --owner worker-2 drain mail --exec "$handler"
"$tool" stats mail

runs=$(wc -l <"$handled")
distinct=$(sort -u "$handled" | wc -l)
left=$("$tool" --json stats mail | grep -o '"queued":[0-9]*,"leased":[0-9]*,"failed":[0-9]*')
echo "result: $n enqueued, $distinct distinct ids handled in $runs handler runs" \
  "($((runs - distinct)) redelivered after the crash: at-least-once); left: $left"
[[ $distinct -eq $n ]] || { echo "outbox demo: $((n - distinct)) entries never handled"; exit 1; }
[[ $left == '"queued":0,"leased":0,"failed":0' ]] || { echo "outbox demo: entries left"; exit 1; }
