"""Job notifications over HTTP: a generic JSON webhook and/or a Telegram bot.

Standard library only (no torch import), so any code can reuse it:

    from charlm.notify import notify
    notify("training finished", fields={"test_loss": 2.01, "plot": "/out/loss.png"})

Configuration comes from the environment:

* CHARLM_WEBHOOK_URL                   -> POST application/json {"text": ..., **fields}
* TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID -> POST {TELEGRAM_API_BASE}/bot<token>/sendMessage
  (TELEGRAM_API_BASE defaults to https://api.telegram.org; override it for tests/proxies)

Notification failures never raise: each channel's outcome is returned, and error text has
the bot token (and any secret in the webhook URL's query/userinfo) redacted.

Command line: python -m charlm.notify "message" [--field key=value ...]
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_TELEGRAM_API = "https://api.telegram.org"
REDACTED = "<redacted>"


def _secrets(env) -> list[str]:
    out = []
    token = env.get("TELEGRAM_BOT_TOKEN")
    if token:
        out.append(token)
    url = env.get("CHARLM_WEBHOOK_URL")
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.query:
            out.append(parts.query)
        if parts.password:
            out.append(parts.password)
        # path segments that look like tokens (e.g. Slack/Discord hook ids)
        out += [seg for seg in parts.path.split("/") if len(seg) >= 16]
    return out


def redact(text: str, env=None) -> str:
    env = os.environ if env is None else env
    for s in sorted(_secrets(env), key=len, reverse=True):
        text = text.replace(s, REDACTED)
        quoted = urllib.parse.quote(s, safe="")
        if quoted != s:
            text = text.replace(quoted, REDACTED)
    return text


def _post_json(url: str, payload: dict, timeout: float) -> int:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("notification URL must be http:// or https://")
    data = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 (scheme checked)
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        resp.read()
        return resp.status


def configured_channels(env=None) -> list[str]:
    env = os.environ if env is None else env
    channels = []
    if env.get("CHARLM_WEBHOOK_URL"):
        channels.append("webhook")
    if env.get("TELEGRAM_BOT_TOKEN") and env.get("TELEGRAM_CHAT_ID"):
        channels.append("telegram")
    return channels


def format_message(text: str, fields: dict | None) -> str:
    if not fields:
        return text
    lines = [text] + [f"{k}: {v}" for k, v in fields.items()]
    return "\n".join(lines)


def notify(text: str, fields: dict | None = None, env=None, timeout: float = 10.0) -> dict:
    """Send `text` (+ `fields`) to every configured channel. Returns {channel: "ok" | error}."""
    env = os.environ if env is None else env
    results = {}
    for channel in configured_channels(env):
        try:
            if channel == "webhook":
                payload = {"text": text}
                payload.update(fields or {})
                _post_json(env["CHARLM_WEBHOOK_URL"], payload, timeout)
            else:
                base = env.get("TELEGRAM_API_BASE", DEFAULT_TELEGRAM_API).rstrip("/")
                url = f"{base}/bot{env['TELEGRAM_BOT_TOKEN']}/sendMessage"
                _post_json(url, {"chat_id": env["TELEGRAM_CHAT_ID"], "text": format_message(text, fields)}, timeout)
            results[channel] = "ok"
        except urllib.error.HTTPError as e:
            results[channel] = redact(f"HTTP {e.code} {e.reason}", env)
        except Exception as e:  # network errors, timeouts, bad URLs: report, never raise
            results[channel] = redact(f"{type(e).__name__}: {e}", env)
    return results


def notify_and_report(text: str, fields: dict | None = None, env=None, stream=None) -> dict:
    """notify(), then print one line per failed channel to `stream` (stderr)."""
    stream = sys.stderr if stream is None else stream
    results = notify(text, fields, env=env)
    for channel, outcome in results.items():
        if outcome != "ok":
            print(f"charlm: notification via {channel} failed: {outcome}", file=stream)
    return results


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m charlm.notify", description="send a notification via the configured channels"
    )
    p.add_argument("text")
    p.add_argument("--field", action="append", default=[], help="key=value, repeatable")
    args = p.parse_args(argv)
    fields = dict(f.split("=", 1) for f in args.field if "=" in f)
    if not configured_channels():
        print(
            "charlm.notify: no channel configured (set CHARLM_WEBHOOK_URL or TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID)",
            file=sys.stderr,
        )
        return 2
    results = notify_and_report(args.text, fields)
    return 0 if all(v == "ok" for v in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
