"""Run reconcile passes continuously: on webhooks, polls, local file changes and cluster events.

Passes never overlap; triggers that arrive during a pass coalesce into one next pass. Serves
GET /healthz, /readyz and /metrics (Prometheus) and, when a webhook secret is configured
(IMAGE_FACTORY_WEBHOOK_SECRET or IMAGE_FACTORY_WEBHOOK_SECRET_FILE), POST /hooks/git
(also /hooks/github, /hooks/gitlab, /hooks/gitea) for GitHub, GitLab and Gitea push events.

With --leader-elect, replicas share a coordination.k8s.io/v1 Lease and only the holder runs
passes; a standby takes over within the lease duration when the leader dies. SIGTERM or
SIGINT: stop taking triggers, let the running pass reach a safe point, release the lease,
exit 0.

exit codes: 0 stopped by SIGTERM/SIGINT, 2 could not start (bad arguments, port in use,
unreadable webhook secret, no cluster for --leader-elect).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

HELP = __doc__

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def duration(text: str) -> float:
    """``60s``, ``1.5m``, ``500ms``, ``2h`` or plain seconds; ``0``/``off`` means disabled (0.0)."""
    if text.strip().lower() in ("off", "none", "never"):
        return 0.0
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration like 60s, 5m, 500ms")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def listen_address(text: str) -> tuple[str, int] | None:
    if text.strip().lower() in ("off", "none"):
        return None
    from ..loop.server import parse_listen

    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("source")
    src.add_argument("--repo", default=".", metavar="URL|PATH",
                     help="Git remote URL or local repository path to reconcile (default: .)")
    src.add_argument("--branch", default=None, help="branch to reconcile (default: the remote's default branch)")
    src.add_argument("--workdir", default=os.environ.get("IMAGE_FACTORY_WORKDIR"), metavar="DIR",
                     help="persistent work directory for the clone and caches (default: $IMAGE_FACTORY_WORKDIR)")
    src.add_argument("--offline", action="store_true",
                     help="select, render and plan on every trigger, but contact no cluster and write no status "
                          "(developer mode with --watch-local; benchmarks)")

    trig = parser.add_argument_group("triggers")
    trig.add_argument("--poll-interval", type=duration, default=60.0, metavar="DURATION",
                      help="poll the remote this often as a fallback to webhooks, e.g. 60s, 5m; 0 or off: never "
                           "(default: 60s)")
    trig.add_argument("--poll-jitter", type=float, default=0.1, metavar="FRACTION",
                      help="spread each poll wait by +/- this fraction (default: 0.1)")
    trig.add_argument("--watch-local", action="store_true",
                      help="developer mode: reconcile the files under --repo (a local directory) as they are on "
                           "disk, edited and uncommitted, on every change; each pass logs what it applied and "
                           "pruned. Nothing is written back (add --offline to plan without applying)")
    trig.add_argument("--webhook-max-body", type=int, default=5 * 1024 * 1024, metavar="BYTES",
                      help="reject webhook bodies larger than this (default: 5 MiB)")

    http = parser.add_argument_group("HTTP")
    http.add_argument("--listen", type=listen_address, default=("127.0.0.1", 8080), metavar="ADDR:PORT",
                      help="serve /healthz, /readyz, /metrics and /hooks/* here; :8080 for all interfaces, "
                           "port 0 for any free port, off for none (default: 127.0.0.1:8080)")
    http.add_argument("--ready-max-age", type=duration, default=None, metavar="DURATION",
                      help="/readyz fails when no pass has completed for this long "
                           "(default: 3 poll intervals + 1m; no limit without polling)")

    lead = parser.add_argument_group("leader election")
    lead.add_argument("--leader-elect", action="store_true",
                      help="run passes only while holding a coordination.k8s.io/v1 Lease (for several replicas)")
    lead.add_argument("--lease-namespace", default=None, metavar="NS",
                      help="namespace of the Lease (default: $POD_NAMESPACE, the pod's own namespace, "
                           "or image-factory)")
    lead.add_argument("--lease-name", default="image-factory", metavar="NAME", help="(default: image-factory)")
    lead.add_argument("--lease-duration", type=duration, default=15.0, metavar="DURATION",
                      help="how long a standby waits after the leader's last renew (default: 15s)")
    lead.add_argument("--renew-deadline", type=duration, default=10.0, metavar="DURATION",
                      help="the leader stops leading when it could not renew for this long (default: 10s)")
    lead.add_argument("--retry-period", type=duration, default=2.0, metavar="DURATION",
                      help="how often to try to acquire or renew (default: 2s)")
    lead.add_argument("--kubeconfig", default=None, metavar="PATH",
                      help="cluster holding the Lease (default: in-cluster service account, else $KUBECONFIG)")
    lead.add_argument("--identity", default=None,
                      help="this replica's name in the Lease (default: $POD_NAME or hostname, plus a random suffix)")

    out = parser.add_argument_group("shutdown and logs")
    out.add_argument("--shutdown-timeout", type=duration, default=25.0, metavar="DURATION",
                     help="on SIGTERM, wait this long for the running pass to reach a safe point (default: 25s, "
                          "under Kubernetes' 30s grace period)")
    out.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("IMAGE_FACTORY_LOG_FORMAT", "text"),
                     help="log lines as text or JSON objects; lines about a build or a cluster carry build, "
                          "provider, pool and revision fields (default: text, or $IMAGE_FACTORY_LOG_FORMAT)")
    out.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                     help="info: a line as each pass starts and ends, and per error, refused change, changed "
                          "object and build phase change (the first 20 of each kind in a pass); debug: all of "
                          "them, and each pass's step timings (default: info)")


def _lease_namespace(args: argparse.Namespace) -> str:
    if args.lease_namespace:
        return args.lease_namespace
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return Path(SA_NAMESPACE_FILE).read_text().strip() or "image-factory"
    except OSError:
        return "image-factory"


def run(args: argparse.Namespace) -> int:
    from .. import logging as flog
    from ..errors import UsageError

    log = flog.setup(fmt=args.log_format, level=args.log_level)
    from ..loop.election import LocalElector, default_identity
    from ..loop.metrics import Metrics
    from ..loop.passing import close_all, run_pass
    from ..loop.running import Loop
    from ..loop.server import HttpServer
    from ..loop.triggers import ClusterWatchSource, FileWatcher, Poller, TriggerQueue
    from ..loop.webhooks import WebhookReceiver, WebhookSecret

    if args.poll_jitter < 0 or args.poll_jitter >= 1:
        raise UsageError("--poll-jitter must be in [0, 1)")
    if args.watch_local and not Path(args.repo).is_dir():
        raise UsageError(f"--watch-local needs --repo to be a local directory; {args.repo} is not one")

    secret = WebhookSecret.from_env()
    if secret is not None:
        flog.add_redactor(flog.redact_values(secret.value()))

    metrics = Metrics()
    queue = TriggerQueue()
    sources: list = []
    if args.poll_interval > 0:
        sources.append(Poller(queue, args.poll_interval, jitter=args.poll_jitter))
    if args.watch_local:
        sources.append(FileWatcher(queue, args.repo))
    cluster_watch = ClusterWatchSource(queue)
    sources.append(cluster_watch)

    identity = args.identity or default_identity()
    if args.leader_elect:
        from ..cluster.leases import LeaseElector, LeaseTiming, api_client

        try:
            timing = LeaseTiming(args.lease_duration, args.renew_deadline, args.retry_period)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        try:
            client = api_client(args.kubeconfig)
        except Exception as exc:  # noqa: BLE001 - kubernetes.config raises several types
            raise UsageError(f"--leader-elect: no usable cluster configuration: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        elector = LeaseElector(client, _lease_namespace(args), args.lease_name, identity, timing=timing)
    else:
        elector = LocalElector(identity)

    ready_max_age = args.ready_max_age
    if ready_max_age is None and args.poll_interval > 0:
        ready_max_age = 3 * args.poll_interval + 60
    options = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    options["cluster_watch"] = cluster_watch  # the pass's cluster layer feeds watch events here
    loop = Loop(run_pass, queue=queue, metrics=metrics, elector=elector, sources=sources, options=options,
                shutdown_timeout=args.shutdown_timeout, ready_max_age=ready_max_age or None)

    if args.listen is not None:
        receiver = None
        if secret is not None:
            receiver = WebhookReceiver(secret, lambda push: queue.notify("webhook", push.as_detail()),
                                       branch=args.branch, max_body=args.webhook_max_body)
        try:
            loop.server = HttpServer(args.listen, metrics=metrics, alive=loop.alive, ready=loop.ready,
                                     webhooks=receiver)
        except OSError as exc:
            raise UsageError(f"--listen {args.listen[0]}:{args.listen[1]}: {exc.strerror}") from None
        log.info(f"listening on {loop.server.url}" + ("" if receiver else
                 " (webhooks disabled: set IMAGE_FACTORY_WEBHOOK_SECRET or IMAGE_FACTORY_WEBHOOK_SECRET_FILE)"),
                 extra=flog.fields(port=loop.server.port))
    log.info("starting", extra=flog.fields(repo=args.repo, branch=args.branch, identity=identity,
                                           leader_elect=args.leader_elect, poll_interval=args.poll_interval))
    try:
        code = loop.run()
    finally:
        close_all()
    if loop.left_running:
        # The unfinished pass may sit in a request to a cluster that never answers, and Python
        # would wait for its worker threads at exit: leave now. Its status commit was not made;
        # the next pass observes what it applied and writes the status then.
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
