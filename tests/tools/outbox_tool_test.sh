#!/usr/bin/env bash
# Drives herald-outbox as an operator would: enqueue (with a duplicate), list --json, stats,
# a drain whose handler fails one entry into the dead-letter state, retry of that dead letter,
# a second drain, and the clear refusals (empty id, a file that is not an outbox).
set -euo pipefail
tool=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HERALD_OUTBOX_DB="$work/ops.db"
fail() { echo "outbox tool test: $*"; exit 1; }

"$tool" enqueue mail m1 ok >/dev/null
"$tool" enqueue mail m2 bad >/dev/null
"$tool" enqueue mail m3 ok >/dev/null
out=$("$tool" enqueue mail m1 changed)
[[ $out == "exists (unchanged) mail/m1" ]] || fail "dedup: $out"
printf 'b1\tok\nb2\tok\nb1\tdup\n' | "$tool" --json enqueue bulk --lines | grep -q '"inserted":2,"existed":1' ||
  fail "enqueue --lines"

list=$("$tool" --json list mail)
for id in m1 m2 m3; do grep -q "\"id\":\"$id\"" <<<"$list" || fail "list --json lacks $id: $list"; done
grep -q '"id":"m1","status":"queued","attempts":0' <<<"$list" || fail "list fields: $list"
grep -q '"payload":"ok"' <<<"$list" || fail "list payload: $list"
"$tool" --json stats mail | grep -q '"queued":3,"leased":0,"failed":0' || fail "stats before drain"
"$tool" stats | grep -q '^bulk: queued 2' || fail "stats (text): $("$tool" stats)"

# The handler reads the payload: 'bad' fails; with one attempt allowed it becomes a dead letter.
drain=$("$tool" --json --max-attempts 1 drain mail --exec 'test "$(cat)" = ok && test -n "$HERALD_OUTBOX_ID"')
grep -q '"sent":2,"retried":0,"failed":1' <<<"$drain" || fail "drain: $drain"
dead=$("$tool" --json list --status failed)
grep -q '"id":"m2","status":"failed"' <<<"$dead" || fail "dead letter: $dead"
grep -q '"last_error":"handler exited with status 1"' <<<"$dead" || fail "last error: $dead"

# A dead letter is never drained again until retried.
again=$("$tool" --json drain mail --exec 'cat >/dev/null')
grep -q '"sent":0,"retried":0,"failed":0' <<<"$again" || fail "dead letter drained: $again"
"$tool" retry mail m2 | grep -q "retried m2" || fail "retry"
"$tool" --json stats mail | grep -q '"queued":1,"leased":0,"failed":0' || fail "stats after retry"
"$tool" drain mail --exec 'cat >/dev/null' | grep -q "sent 1, retried 0, failed 0" || fail "second drain"
"$tool" --json stats mail | grep -q '"queued":0,"leased":0,"failed":0' || fail "stats at the end"

# Refusals: clear message, exit status 1 (refused) or 2 (usage); nothing committed is lost.
set +e
msg=$("$tool" enqueue mail "" x 2>&1); rc=$?
[[ $rc -eq 1 && $msg == *invalid_argument* ]] || fail "empty id: $rc $msg"
msg=$("$tool" retry mail nosuch 2>&1); rc=$?
[[ $rc -eq 1 ]] || fail "retry of a missing id: $rc $msg"
echo "not a database at all, just text" >"$work/notes.txt"
msg=$("$tool" --db "$work/notes.txt" stats 2>&1); rc=$?
[[ $rc -eq 1 && $msg == *"not a herald outbox"* ]] || fail "non-SQLite file: $rc $msg"
msg=$("$tool" --db "$work/missing/dir/x.db" stats 2>&1); rc=$?
[[ $rc -eq 1 && $msg == *"cannot open"* ]] || fail "missing directory: $rc $msg"
"$tool" frobnicate >/dev/null 2>&1; rc=$?
[[ $rc -eq 2 ]] || fail "unknown command exit $rc"
set -e
"$tool" --json stats bulk | grep -q '"queued":2' || fail "bulk entries lost"
"$tool" semantics | grep -q '"delivery":"at-least-once"' || fail "semantics"
echo "outbox tool: enqueue, dedup, list, stats, drain, dead letter, retry and refusals checked"
