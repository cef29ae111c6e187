"""Commands from web processes to the engine through Redis, and the engine's answers.

A web process pushes ``{id, target, method, args, kwargs, expires}`` onto one list; the engine
takes it, answers ``{"accepted": true}`` on the command's own reply list at once, runs it in a
greenlet of its own and pushes the answer there: ``{"result": ...}`` or ``{"error": {...}}``.
The web process waits :data:`~webapp.engine.interface.COMMAND_TIMEOUT_S` for the
acknowledgement (no engine: a clear 503) and longer for the answer (probing an unreachable
module takes its timeout). A command nobody took before it expired is dropped by the engine,
so an engine that starts later never carries out a request its user has given up on.

Only the methods in :data:`ALLOWED` can be called: the rig's, the setups', the control's and
the fault panel's public operations, the same ones the web layer calls in-process.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from webapp import runtime
from webapp.capture.schemas import FieldError
from webapp.engine import codec, keys
from webapp.engine.control import RequestError
from webapp.engine.interface import COMMAND_TIMEOUT_S, EngineUnavailable
from webapp.engine.trouble import report

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 120.0
"""How long a taken command may run before the web process gives up waiting for its answer."""
REPLY_TTL_S = 60
"""Reply lists expire, whoever reads them or not."""

ALLOWED: dict[str, frozenset[str]] = {
    "control": frozenset(
        {
            "arm",
            "start",
            "stop",
            "monitor",
            "record",
            "stop_recording",
            "trigger_now",
            "disarm",
            "detect",
            "return_to_idle",
            "socket_action",
            "start_outputs",
            "stop_outputs",
        }
    ),
    "rig": frozenset(
        {
            "view",
            "add",
            "remove",
            "configure",
            "probe",
            "probe_all",
            "ordered_addresses",
            "info",
            "is_emulated",
            "mark_emulated",
        }
    ),
    "setups": frozenset({"current", "for_rig", "update", "names", "save_as", "load", "delete"}),
    "faults": frozenset({"view", "inject", "clear", "emulates", "publish"}),
    "engine": frozenset({"status", "setup_view", "publish_setup"}),
}


def error_json(exc: BaseException) -> dict[str, Any]:
    """An exception as the web process re-raises it: a refusal keeps its field and status."""
    if isinstance(exc, RequestError):
        return {"message": exc.message, "field": exc.field, "status": exc.status}
    if isinstance(exc, FieldError):
        return {"message": exc.message, "field": exc.field, "status": 400}
    return {"message": f"the capture engine failed: {exc}", "field": None, "status": 500}


class CommandServer:
    """The engine's end: takes commands off the list and answers them."""

    def __init__(self, redis: Any, targets: dict[str, Any]) -> None:
        self.redis = redis
        self.targets = targets
        self._stop = False

    def start(self) -> None:
        runtime.spawn(self._loop, name="engine commands")

    def stop(self) -> None:
        self._stop = True

    def _loop(self) -> None:
        while not self._stop:
            try:
                got = self.redis.brpop([keys.COMMANDS], timeout=1)
            except Exception as exc:
                report(log, "reading commands from Redis", exc)
                runtime.sleep(0.5)
                continue
            if got is None:
                continue
            try:
                command = codec.loads(got[1])
            except ValueError:
                log.warning("dropped a command that is not JSON")
                continue
            if float(command.get("expires", 0)) < time.time():
                log.warning("dropped command %s.%s: it expired before it was taken",
                            command.get("target"), command.get("method"))  # fmt: skip
                continue
            self._reply(command["id"], {"accepted": True})
            runtime.spawn(self._run, command, name=f"command {command.get('method')}")

    def _run(self, command: dict[str, Any]) -> None:
        try:
            result = self.call(
                str(command.get("target")),
                str(command.get("method")),
                list(command.get("args") or []),
                dict(command.get("kwargs") or {}),
            )
            answer: dict[str, Any] = {"result": result}
        except Exception as exc:
            if not isinstance(exc, FieldError):
                log.exception("command %s.%s failed", command.get("target"), command.get("method"))
            answer = {"error": error_json(exc)}
        try:
            try:
                self._reply(command["id"], answer)
            except TypeError as exc:  # an answer that cannot cross: say so rather than hang
                self._reply(command["id"], {"error": error_json(exc)})
        except Exception as exc:  # Redis gone: the caller times out and says so
            report(log, f"answering command {command.get('target')}.{command.get('method')}", exc)

    def call(self, target: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if method not in ALLOWED.get(target, ()):
            raise RequestError(None, f"the capture engine has no command {target}.{method}", 400)
        return getattr(self.targets[target], method)(*args, **kwargs)

    def _reply(self, command_id: str, answer: dict[str, Any]) -> None:
        key = keys.REPLY + str(command_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(key, codec.dumps(answer))
        pipe.expire(key, REPLY_TTL_S)
        pipe.execute()


class CommandClient:
    """A web process's end: one call, one answer (or a clear error)."""

    def __init__(self, redis: Any, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self.redis = redis
        self.timeout_s = timeout_s

    def call(self, target: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if not self.redis.exists(keys.ENGINE):
            raise EngineUnavailable(
                "the capture engine is not running (start lanxi-dashboard engine on this "
                "message queue)"
            )
        command_id = uuid.uuid4().hex
        reply = keys.REPLY + command_id
        body = {
            "id": command_id,
            "target": target,
            "method": method,
            "args": list(args),
            "kwargs": kwargs,
            "expires": time.time() + self.timeout_s,
        }
        self.redis.lpush(keys.COMMANDS, codec.dumps(body))
        got = self.redis.blpop([reply], timeout=self.timeout_s)
        if got is None:
            raise EngineUnavailable(
                f"the capture engine is not running (no answer within {self.timeout_s:g} s)"
            )
        answer = codec.loads(got[1])
        if answer.get("accepted"):
            got = self.redis.blpop([reply], timeout=ANSWER_TIMEOUT_S)
            if got is None:
                raise RequestError(
                    None,
                    f"the capture engine took the request but gave no answer within "
                    f"{ANSWER_TIMEOUT_S:g} s",
                    504,
                )
            answer = codec.loads(got[1])
        if "error" in answer:
            err = answer["error"]
            raise RequestError(err.get("field"), str(err.get("message")), int(err["status"]))
        return answer.get("result")
