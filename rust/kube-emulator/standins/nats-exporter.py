#!/usr/bin/python3
"""kube-emulator stand-in for prometheus-nats-exporter (no Debian package), for --runtime process.

Takes the exporter's flags (-port=N, -varz, -connz, -healthz, -jsz=all, then the NATS monitor
URL) and serves /metrics by really querying that NATS server on every scrape: numeric fields
of /varz as gnatsd_varz_<field>, /connz's num_connections as gnatsd_connz_num_connections,
/healthz as gnatsd_healthz_status (0 ok, 1 not), and per JetStream stream
jetstream_stream_total_messages / jetstream_stream_total_bytes and per consumer
jetstream_consumer_num_pending / jetstream_consumer_num_ack_pending, labelled stream_name
(and consumer_name). A NATS that cannot be reached shows as gnatsd_healthz_status 1 and
an up-style gauge nats_exporter_scrape_ok 0, never as stale numbers.
"""
import json
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 7777
URL = "http://localhost:8222"
WANT = set()
for arg in sys.argv[1:]:
    if arg.startswith("-port="):
        PORT = int(arg.split("=", 1)[1])
    elif arg.startswith("-"):
        WANT.add(arg.lstrip("-").split("=", 1)[0])
    else:
        URL = arg.rstrip("/")


def get(path):
    with urllib.request.urlopen(URL + path, timeout=3) as r:
        return json.loads(r.read())


def label(v):
    return str(v).replace("\\", "\\\\").replace('"', '\\"')


def metrics():
    lines, ok = [], 1
    sid = ""
    try:
        if "varz" in WANT:
            varz = get("/varz")
            sid = varz.get("server_id", "")
            for k, v in varz.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    lines.append(f'gnatsd_varz_{k}{{server_id="{label(sid)}"}} {v}')
        if "connz" in WANT:
            lines.append(f'gnatsd_connz_num_connections{{server_id="{label(sid)}"}} {get("/connz").get("num_connections", 0)}')
        if "jsz" in WANT:
            jsz = get("/jsz?streams=true&consumers=true&accounts=true")
            for acc in jsz.get("account_details") or []:
                for st in acc.get("stream_detail") or []:
                    name = label(st.get("name", ""))
                    state = st.get("state") or {}
                    lines.append(f'jetstream_stream_total_messages{{stream_name="{name}"}} {state.get("messages", 0)}')
                    lines.append(f'jetstream_stream_total_bytes{{stream_name="{name}"}} {state.get("bytes", 0)}')
                    for c in st.get("consumer_detail") or []:
                        cl = f'stream_name="{name}",consumer_name="{label(c.get("name", ""))}"'
                        lines.append(f"jetstream_consumer_num_pending{{{cl}}} {c.get('num_pending', 0)}")
                        lines.append(f"jetstream_consumer_num_ack_pending{{{cl}}} {c.get('num_ack_pending', 0)}")
    except Exception as e:
        ok = 0
        print(f"scrape of {URL} failed: {e}", file=sys.stderr, flush=True)
    if "healthz" in WANT:
        try:
            healthy = get("/healthz").get("status") == "ok"
        except Exception:
            healthy = False
        lines.append(f'gnatsd_healthz_status{{server_id="{label(sid)}"}} {0 if healthy else 1}')
    lines.append(f"nats_exporter_scrape_ok {ok}")
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = metrics().encode() if self.path.startswith("/metrics") else b"kube-emulator nats exporter stand-in: see /metrics\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    print(f"kube-emulator prometheus-nats-exporter stand-in on :{PORT} for {URL}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
