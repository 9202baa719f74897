"""One worker thread per service for blocking model calls, made per pipeline run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class WorkerThread:
    """A single-thread executor: the model serves one request at a time; cleanup ends it, the next run makes a new one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None

    def get(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
