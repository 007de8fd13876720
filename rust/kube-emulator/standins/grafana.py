#!/usr/bin/python3
"""kube-emulator stand-in for Grafana (not packaged for Debian), for --runtime process.

Honest about what it is: /api/health reports version "stand-in", and answers only what the
FLUO checks use:
  GET /api/health                               database "ok" when provisioning is readable
  GET /api/search?query=Q                       dashboards from the provisioned dashboard files
  GET /api/datasources                          the provisioned datasources
  GET /api/datasources/uid/<uid>/health         really queries the datasource's Prometheus
  GET /api/datasources/proxy/uid/<uid>/<path>   proxied to the datasource's Prometheus
Everything else is 404. No authentication (any credentials are accepted).
Configuration: GF_PATHS_PROVISIONING (datasources/*.yaml, dashboards/*.yaml providers with
options.path), GF_SERVER_HTTP_PORT (default 3000).
"""
import glob
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

PROVISIONING = os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
PORT = int(os.environ.get("GF_SERVER_HTTP_PORT", "3000"))


def load_yaml_dir(sub):
    docs = []
    for path in sorted(glob.glob(os.path.join(PROVISIONING, sub, "*.y*ml"))):
        with open(path) as f:
            docs.append(yaml.safe_load(f) or {})
    return docs


def datasources():
    out = []
    for doc in load_yaml_dir("datasources"):
        out.extend(doc.get("datasources") or [])
    return out


def dashboards():
    found = []
    for doc in load_yaml_dir("dashboards"):
        for provider in doc.get("providers") or []:
            path = (provider.get("options") or {}).get("path", "")
            for file in sorted(glob.glob(os.path.join(path, "**", "*.json"), recursive=True)):
                with open(file) as f:
                    d = json.load(f)
                found.append({"title": d.get("title", ""), "uid": d.get("uid", ""), "type": "dash-db"})
    return found


def datasource(uid):
    return next((d for d in datasources() if d.get("uid") == uid), None)


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = urllib.parse.parse_qs(url.query)
        try:
            if parts == ["api", "health"]:
                ok = os.path.isdir(PROVISIONING)
                return self.reply(200 if ok else 503, {
                    "commit": "kube-emulator", "database": "ok" if ok else "failing",
                    "version": "stand-in"})
            if parts == ["api", "search"]:
                q = query.get("query", [""])[0].lower()
                return self.reply(200, [d for d in dashboards() if q in d["title"].lower()])
            if parts == ["api", "datasources"]:
                return self.reply(200, datasources())
            if len(parts) == 5 and parts[:3] == ["api", "datasources", "uid"] and parts[4] == "health":
                ds = datasource(parts[3])
                if ds is None:
                    return self.reply(404, {"message": "data source not found"})
                try:
                    fetch(ds["url"].rstrip("/") + "/api/v1/query?query=1")
                    return self.reply(200, {"status": "OK", "message": "Successfully queried the Prometheus API."})
                except (urllib.error.URLError, OSError) as e:
                    return self.reply(400, {"status": "ERROR", "message": f"Post \"{ds['url']}\": {e}"})
            if len(parts) >= 5 and parts[:4] == ["api", "datasources", "proxy", "uid"]:
                ds = datasource(parts[4])
                if ds is None:
                    return self.reply(404, {"message": "data source not found"})
                target = ds["url"].rstrip("/") + "/" + "/".join(parts[5:])
                if url.query:
                    target += "?" + url.query
                try:
                    status, body = fetch(target)
                    return self.reply(status, body)
                except urllib.error.HTTPError as e:
                    return self.reply(e.code, e.read())
                except (urllib.error.URLError, OSError) as e:
                    return self.reply(502, {"message": f"datasource {ds['uid']} unreachable: {e}"})
            return self.reply(404, {"message": "Not found (kube-emulator Grafana stand-in)"})
        except Exception as e:  # a broken provisioning file must show, not crash the server
            return self.reply(500, {"message": f"stand-in error: {e}"})

    def log_message(self, fmt, *args):
        sys.stdout.write("logger=standin " + (fmt % args) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    print(f"logger=standin msg=\"kube-emulator Grafana stand-in listening\" port={PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
