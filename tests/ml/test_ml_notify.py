"""Notifications: webhook and Telegram against a local HTTP server; secrets never leak."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from charlm import notify

TOKEN = "123456:SECRET-bot-token-abcdefghijkl"  # noqa: S105 (a fake token for the test)


class Recorder(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
        code = self.server.status
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": %s}' % (b"true" if code == 200 else b"false"))

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.requests = []
    srv.status = 200
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def test_webhook_and_telegram(server):
    env = {
        "CHARLM_WEBHOOK_URL": server.url + "/hook",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": "42",
        "TELEGRAM_API_BASE": server.url,
    }
    res = notify.notify("done", {"test_loss": 2.01, "plot": "/x/loss.png"}, env=env)
    assert res == {"webhook": "ok", "telegram": "ok"}
    hook = [r for r in server.requests if r[0] == "/hook"][0]
    assert hook[1] == "application/json" and hook[2] == {"text": "done", "test_loss": 2.01, "plot": "/x/loss.png"}
    tg = [r for r in server.requests if r[0] != "/hook"][0]
    assert tg[0] == f"/bot{TOKEN}/sendMessage"
    assert tg[2]["chat_id"] == "42" and "test_loss: 2.01" in tg[2]["text"] and "/x/loss.png" in tg[2]["text"]


def test_nothing_configured_sends_nothing():
    assert notify.configured_channels({}) == []
    assert notify.notify("x", env={"TELEGRAM_BOT_TOKEN": TOKEN}) == {}  # chat id missing


def test_failures_are_reported_with_token_redacted(server, capsys):
    server.status = 500
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "1", "TELEGRAM_API_BASE": server.url}
    res = notify.notify_and_report("x", env=env)
    assert res["telegram"].startswith("HTTP 500")
    # connection refused: urllib puts the URL (with the token) in some errors; it must be redacted
    env["TELEGRAM_API_BASE"] = "http://127.0.0.1:9"
    res = notify.notify_and_report("x", env=env)
    err = capsys.readouterr().err
    assert "telegram failed" in err and TOKEN not in err and TOKEN not in res["telegram"]
    assert notify.redact(f"GET /bot{TOKEN}/x", env) == "GET /bot<redacted>/x"
    bad = {"CHARLM_WEBHOOK_URL": "file:///etc/passwd"}
    assert "http" in notify.notify("x", env=bad)["webhook"]


def test_notify_module_does_not_import_torch():
    code = "import sys, charlm.notify; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_training_job_notifies_with_loss_and_plot(server, tiny_names, tmp_path, monkeypatch, capsys):
    from charlm.cli import main

    monkeypatch.setenv("CHARLM_WEBHOOK_URL", server.url + "/hook")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "7")
    monkeypatch.setenv("TELEGRAM_API_BASE", server.url)
    out = tmp_path / "o"
    assert main(["train", "--data", tiny_names, "--model", "bigram", "--out", str(out)]) == 0
    hook = [r[2] for r in server.requests if r[0] == "/hook"][0]
    rep = json.loads((out / "report.json").read_text())
    assert hook["test_loss_nats"] == rep["test_loss"]["nats"] and hook["plot"] == str(out / "loss.png")
    assert "completed" in hook["text"]
    assert any(r[0].endswith("/sendMessage") for r in server.requests)
    assert TOKEN not in capsys.readouterr().err
    # a failing job notifies too
    server.requests.clear()
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["train", "--data", str(empty), "--model", "bigram", "--out", str(out)]) == 2
    hook = [r[2] for r in server.requests if r[0] == "/hook"][0]
    assert "failed" in hook["text"] and "no usable names" in hook["text"]
