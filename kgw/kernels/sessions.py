"""Sessions: a path (a notebook, a console) bound to a kernel, as jupyter_server keeps them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.logger import Logger

from kgw.errors import NoSuchKernel, NotFound
from kgw.kernels.kernel import Kernel
from kgw.kernels.registry import KernelRegistry

log = Logger()


@attrs.define
class Session:
    id: str
    path: str
    name: str
    type: str
    kernel_id: str


class SessionManager:
    """In-memory sessions over the kernel registry; a session whose kernel is gone is gone."""

    def __init__(self, registry: KernelRegistry) -> None:
        self._registry = registry
        self._sessions: dict[str, Session] = {}

    def model(self, session: Session) -> dict[str, Any]:
        """jupyter_server's session model (which also carries jupyter_kernel_gateway's
        ``notebook`` field, so clients of either server read it)."""
        kernel = self._registry.get(session.kernel_id)
        return {
            "id": session.id,
            "path": session.path,
            "name": session.name,
            "type": session.type,
            "kernel": kernel.model(),
            "notebook": {"path": session.path, "name": session.name},
        }

    def _alive(self, session: Session) -> bool:
        try:
            self._registry.get(session.kernel_id)
        except NoSuchKernel:
            del self._sessions[session.id]
            return False
        return True

    def list(self) -> list[Session]:
        return [s for s in list(self._sessions.values()) if self._alive(s)]

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None or not self._alive(session):
            raise NotFound(f"Session not found: {session_id}")
        return session

    def find_by_path(self, path: str) -> Session | None:
        for session in self.list():
            if session.path == path:
                return session
        return None

    async def _kernel_for(
        self, kernel_id: str | None, kernel_name: str | None, env: Mapping[str, str] | None
    ) -> Kernel:
        if kernel_id:
            return self._registry.get(kernel_id)
        return await self._registry.start(kernel_name, env)

    async def create(
        self,
        path: str,
        name: str,
        type: str,
        kernel_id: str | None,
        kernel_name: str | None,
        env: Mapping[str, str] | None = None,
    ) -> Session:
        """A new session on an existing kernel (by id) or a new one (by kernelspec name)."""
        kernel = await self._kernel_for(kernel_id, kernel_name, env)
        session = Session(str(uuid.uuid4()), path, name, type, kernel.id)
        self._sessions[session.id] = session
        log.info(
            "session {session_id} ({path}) on kernel {kernel_id}",
            session_id=session.id,
            path=path,
            kernel_id=kernel.id,
        )
        return session

    async def update(
        self,
        session_id: str,
        path: str | None,
        name: str | None,
        type: str | None,
        kernel_id: str | None,
        kernel_name: str | None,
    ) -> Session:
        """Rename a session, or move it to another kernel (an old kernel no session uses any
        more is shut down, as jupyter_server does)."""
        session = self.get(session_id)
        if kernel_id or kernel_name:
            old = session.kernel_id
            kernel = await self._kernel_for(kernel_id, kernel_name, None)
            session.kernel_id = kernel.id
            if old != kernel.id and not any(s.kernel_id == old for s in self.list()):
                await self._registry.shutdown(old, reason=f"session {session_id} moved")
        if path is not None:
            session.path = path
        if name is not None:
            session.name = name
        if type is not None:
            session.type = type
        return session

    async def delete(self, session_id: str) -> None:
        """End a session and shut its kernel down."""
        session = self.get(session_id)
        del self._sessions[session_id]
        try:
            await self._registry.shutdown(session.kernel_id, reason=f"session {session_id} ended")
        except NoSuchKernel:
            pass
