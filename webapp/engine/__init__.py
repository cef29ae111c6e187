"""The capture engine as a service: commands in, events and state out.

In the embedded default (``lanxi-dashboard serve``) the engine runs inside the web process
(:class:`~webapp.engine.core.EngineCore`); with ``--message-queue redis://...`` it runs as its
own process (``lanxi-dashboard engine``) and every web process talks to it through Redis
(:class:`~webapp.engine.remote.RemoteEngine`). The web layer sees one interface either way
(:class:`~webapp.engine.interface.Engine`). See docs/deploy.md.
"""
