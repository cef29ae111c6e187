"""Access control: who may watch, who may control.

With access control off (a personal bench on loopback) everybody is an admin, but requests must
still name a loopback host and state-changing requests must not come from another site, so a web
page elsewhere cannot drive the bench through the user's browser (CSRF, DNS rebinding).

With it on, ``install.init_app`` installs one gate in front of every view (:mod:`.gate`):
anonymous requests get 401 (API) or a redirect to /login (pages); share-link sessions are
read-only and confined to their scope; every POST/PUT/PATCH/DELETE needs the session's CSRF token
and a same-origin Origin/Referer; state-changing API requests need the control lock; and every
state-changing API request is written to the audit log with its outcome. Views therefore need
only ``guards.require_role``.

One module per job; the rest of the web layer imports the one it needs:

* :mod:`.install` — ``init_app(app, data_dir, enabled)``: sessions, CSRF, the request gate, the
  login, share-link and setup routes; :mod:`.proxy` — ``trust_proxy(app, hops)``.
* :mod:`.identity` — ``role_at_least(have, need)`` (viewer < operator < admin), ``enabled()``,
  ``current_role()``, ``current_user()``, ``current_share()``, ``socket_role()``, ``access()``.
* :mod:`.guards` — ``require_role(role)`` for Flask views (401 JSON when not logged in, 403 when
  the role is too low), ``require_control``, ``check_control()``, and the control lock:
  ``control_holder()``, ``acquire_control(user)``, ``release_control(user)``,
  ``control_state()``, ``on_control_change(listener)``.
* :mod:`.sockets` — ``socket_require_role(role)``, ``socket_require_control(action)`` (a refusal
  is emitted as ``auth_error`` and returned as the ack) and ``init_socketio(socketio)``, the
  gate on the Socket.IO handshake.
* :mod:`.audit` — ``audit(action, **details)``.
* :mod:`.exposure` — ``bind_refusal(host, data_dir)``, ``transport_warning(host, tls)``,
  ``users_configured(data_dir)``.
* :mod:`.accesscontrol` — the per-app state (``app.extensions["lanxi_auth"]``); :mod:`.settings`
  — its ``app.config`` keys; :mod:`.sessions` — the session cookie and its key.
* :mod:`.accounts` (users and share links), :mod:`.views` (login, logout, users, share links),
  :mod:`.setuptoken` (the one-time link for the first admin), :mod:`.usercli` (the ``user``
  command), :mod:`.store` / :mod:`.store_redis` (control lock, ended sessions, revoked links,
  shared between web processes), :mod:`.controllock`, :mod:`.ratelimit` /
  :mod:`.ratelimit_redis` (failed logins), :mod:`.requestchecks` (CSRF token, Origin, Host),
  :mod:`.safepaths` (names and paths from requests).
"""
