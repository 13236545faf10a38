#!/bin/sh
# "/" when ERROR_PERCENT or DELAY_MS is set (app-web then removes index.html, and busybox httpd
# runs this for "/"): waits DELAY_MS ms, answers 500 for ERROR_PERCENT % of the requests.
if [ -n "$DELAY_MS" ]; then usleep $((DELAY_MS * 1000)); fi
if [ -n "$ERROR_PERCENT" ]; then
  draw=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  if [ $((draw % 100)) -lt "$ERROR_PERCENT" ]; then
    printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n'
    echo "error $APP_VERSION"
    exit 0
  fi
fi
printf 'Content-Type: text/plain\r\n\r\n'
echo "$APP_VERSION $(hostname)"
