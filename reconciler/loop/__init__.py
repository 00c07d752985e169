"""``image-factory run``: triggers, the loop, leader election, the HTTP server.

Modules: ``triggers`` (queue and sources), ``webhooks`` (GitHub/GitLab/Gitea push events),
``server`` (health, readiness, metrics, webhooks), ``metrics``, ``context`` (what a pass
gets), ``election`` (the elector interface), ``running`` (the loop). ``passing`` holds the
one-pass function the loop calls. Nothing is imported here, so importing one module stays cheap.
"""
