"""SIMULATION: an ingress controller's routing, in place of Istio's or NGINX's gateway.

KServe's Standard mode publishes an InferenceService through an Ingress it writes and rewrites:
host ``<isvc>-<namespace>.<domain>`` to the Service of whichever predictor is current, so that a
client keeps one address while a canary is promoted (the stable predictor's name, and so its
Service, changes) or rolled back. No ingress controller runs here, so this proxy of ours does the
one thing of one that the tests rely on: it follows the Ingress objects through a watch, as a
controller does, and sends each HTTP request to the Service its Host header names, through the
pod runner's Service proxy (which sends it to a ready pod).

Not simulated: TLS, path rewrites, retries, weighted backends, Istio VirtualServices; a rule change
reaches the proxy as fast as the watch delivers it (a real controller's delay varies).
"""

from __future__ import annotations

import http.server
import threading

import httpx
from kubernetes import client, config

from support.waiting import keep_watching

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


class IngressProxy:
    """Listens on 127.0.0.1:<port>; ``url_for(host)`` gives a client's address for an Ingress host."""

    def __init__(self, kubeconfig: str):
        api = config.new_client_from_config(config_file=kubeconfig)
        self.networking, self.core = client.NetworkingV1Api(api), client.CoreV1Api(api)
        self.rules: dict[str, tuple[str, str, int]] = {}  # host -> (namespace, service, port)
        self.owners: dict[str, tuple[str, str]] = {}  # host -> the Ingress (namespace, name) routing it
        self.lock = threading.Lock()
        # A connection per request, as a gateway opens one to a fresh endpoint: a pooled
        # connection would stay pinned to a pod after it began terminating.
        self.upstream = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.stopping = threading.Event()

    def start(self) -> IngressProxy:
        threading.Thread(
            target=keep_watching,
            args=("ingress", self.networking.list_ingress_for_all_namespaces, self._on_ingress, self.stopping),
            daemon=True,
            name="ingress-watch",
        ).start()
        threading.Thread(target=self.server.serve_forever, daemon=True, name="ingress-proxy").start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def routes(self, host: str) -> tuple[str, str, int] | None:
        with self.lock:
            return self.rules.get(host)

    def _on_ingress(self, event) -> None:
        ingress = event["object"]
        namespace = ingress.metadata.namespace
        hosts = {}
        for rule in ingress.spec.rules or []:
            path = next(iter(rule.http.paths or []), None) if rule.http else None
            if rule.host and path and path.backend.service:
                hosts[rule.host] = (namespace, path.backend.service.name, path.backend.service.port.number)
        with self.lock:
            # An Ingress owns its hosts: drop what it routed before, then add what it routes now.
            owner = (namespace, ingress.metadata.name)
            self.rules = {h: r for h, r in self.rules.items() if self.owners.get(h) != owner}
            if event["type"] != "DELETED":
                self.rules.update(hosts)
                self.owners.update(dict.fromkeys(hosts, owner))

    def _forward(self, method: str, host: str, path: str, headers: dict, body: bytes) -> httpx.Response | None:
        route = self.routes(host.split(":")[0])
        if route is None:
            return None
        namespace, name, port = route
        cluster_ip = self.core.read_namespaced_service(name, namespace).spec.cluster_ip
        return self.upstream.request(method, f"http://{cluster_ip}:{port}{path}", headers=headers, content=body)

    def _handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _proxy(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    response = proxy._forward(self.command, self.headers.get("Host", ""), self.path, headers, body)
                except (httpx.HTTPError, client.ApiException) as error:
                    # What a gateway answers when the backend it routes to does not: 503.
                    self._answer(503, f"upstream failed: {type(error).__name__}: {error}".encode())
                    return
                if response is None:
                    self._answer(404, f"no Ingress rule for host {self.headers.get('Host')!r}".encode())
                    return
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            def _answer(self, status: int, text: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            do_GET = do_POST = do_PUT = do_DELETE = _proxy

        return Handler
