#!/bin/sh
# health-check-test.sh DIR: a health check driven by files in DIR, for the
# health-checks suite. Installed as /usr/libexec/graph/health-check-test.sh;
# busybox sh, builtins only except while hanging.
#
#   DIR/mode  "ok", empty or missing: exit 0; "fail": exit 1; "hang": wait
#             for a background sleep, so that only graph-resolver's
#             health_timeout (killing the check's process group) ends it
#   DIR/runs  one line appended per run: "<mode> <pid> <uptime>", the
#             uptime (from /proc/uptime) when the run began
#   DIR/hung  "<shell pid> <sleep pid> <uptime>" of the latest hanging run
dir=${1:?usage: health-check-test.sh DIR}
[ -d "$dir" ] || /bin/busybox mkdir -p "$dir" || exit 2
mode=ok
if [ -s "$dir/mode" ]; then
	read -r mode < "$dir/mode"
fi
read -r up _ < /proc/uptime
echo "$mode $$ $up" >> "$dir/runs"
case "$mode" in
ok)
	exit 0
	;;
fail)
	echo "health-check-test: $dir/mode says fail"
	exit 1
	;;
hang)
	/bin/busybox sleep 3600 &
	echo "$$ $! $up" > "$dir/hung"
	wait
	echo "health-check-test: the sleep ended; the check was not killed"
	exit 1
	;;
esac
echo "health-check-test: unknown mode '$mode' in $dir/mode (ok, fail, hang)"
exit 2
